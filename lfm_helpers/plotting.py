"""Plots the notebooks share, so each notebook cell stays one line."""

from __future__ import annotations

import matplotlib.pyplot as plt

from .memory import MemoryRow


def plot_memory_budget(rows: list[MemoryRow], *, ax=None):
    """Stacked bars (weights + KV cache + conv state) per model and precision, against the budget line."""
    if not rows:
        raise ValueError("no rows to plot")
    if ax is None:
        _, ax = plt.subplots(figsize=(9, 3.8))
    labels = [f"{r.model}\n{r.precision}" for r in rows]
    weights = [r.weights_gb for r in rows]
    caches = [r.kv_cache_gb + r.conv_state_gb for r in rows]
    colors = ["tab:green" if r.fits else "tab:red" for r in rows]
    ax.bar(labels, weights, color=colors, alpha=0.8, label="weights")
    ax.bar(labels, caches, bottom=weights, color="tab:gray", label="KV cache + conv state")
    ax.axhline(rows[0].budget_gb, color="black", linestyle="--", label=f"{rows[0].budget_gb:g} GB budget")
    ax.set_ylabel("GB")
    ax.set_title("Memory to run one sequence (green: fits the budget, red: does not)")
    ax.tick_params(axis="x", labelsize=8)
    ax.legend(loc="upper left", fontsize=8)
    return ax
