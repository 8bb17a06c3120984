"""Plots the notebooks share, so each notebook cell stays one line."""

from __future__ import annotations

import matplotlib.pyplot as plt
from matplotlib.ticker import FormatStrFormatter, LogLocator, NullFormatter
import numpy as np

from .memory import MemoryRow
from .scaling import check_runs, compute_optimal, isoflop_curve


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


def _context_axes(ax, contexts, values) -> None:
    """Contexts on a log-2 x axis labelled as plain numbers (2048, not 2^11); values on a log y axis
    when they span more than a decade, else a linear one (a log axis over 7-15 ms shows one tick)."""
    ax.set_xscale("log", base=2)
    ax.set_xticks(sorted(set(contexts)))
    ax.xaxis.set_major_formatter(FormatStrFormatter("%d"))
    ax.xaxis.set_minor_formatter(NullFormatter())
    values = [v for v in values if v > 0]
    if values and max(values) > 10 * min(values):
        ax.set_yscale("log")
        ax.yaxis.set_major_locator(LogLocator(base=10, subs=(1.0, 2.0, 5.0)))  # 1, 2, 5, 10, 20, ...
        ax.yaxis.set_major_formatter(FormatStrFormatter("%g"))
        ax.yaxis.set_minor_formatter(NullFormatter())
    ax.grid(True, which="both", alpha=0.3)


def _by_architecture(table):
    """Rows of a tidy table grouped by architecture, in the order they first appear."""
    return [(arch, table[table["architecture"] == arch].sort_values("context"))
            for arch in dict.fromkeys(table["architecture"])]


def plot_profile_latency(table, *, axes=None):
    """Prefill time and per-token decode time against context (log scale), one line per architecture."""
    if table.empty:
        raise ValueError("no rows to plot")
    if axes is None:
        _, axes = plt.subplots(1, 2, figsize=(11, 3.8))
    threads = int(table["threads"].iloc[0])
    for arch, rows in _by_architecture(table):
        axes[0].plot(rows["context"], rows["prefill_s"], marker="o", label=arch)
        axes[1].plot(rows["context"], rows["decode_ms"], marker="o", label=arch)
    for ax, title, unit in ((axes[0], "Prefill (whole prompt)", "seconds"),
                            (axes[1], "Decode (one token, median)", "ms per token")):
        _context_axes(ax, table["context"], table["prefill_s" if ax is axes[0] else "decode_ms"])
        ax.set_xlabel("context (tokens)")
        ax.set_ylabel(unit)
        ax.set_title(f"{title}, {threads} CPU threads", fontsize=10)
    axes[0].legend(fontsize=8)
    return axes


def plot_cache_bytes(table, analytical=None, *, ax=None):
    """Decode cache/state in MB against context: measured points from the profile, and, if given,
    the analytical curve of each architecture (``profiling.analytical_table``) as a dashed line."""
    if table.empty:
        raise ValueError("no rows to plot")
    if ax is None:
        _, ax = plt.subplots(figsize=(7, 4))
    for i, (arch, rows) in enumerate(_by_architecture(table)):
        color = f"C{i}"
        ax.plot(rows["context"], rows["cache_bytes"] / 1e6, "o", color=color, label=f"{arch} (measured)")
        if analytical is not None:
            curve = analytical[analytical["architecture"] == arch].sort_values("context")
            ax.plot(curve["context"], curve["state_bytes"] / 1e6, "--", color=color, alpha=0.8)
    curves = table if analytical is None else analytical
    values = table["cache_bytes"] if analytical is None else analytical["state_bytes"]
    _context_axes(ax, curves["context"], values)
    ax.tick_params(axis="x", labelsize=8, labelrotation=45)
    ax.set_xlabel("context (tokens)")
    ax.set_ylabel("decode cache / state (MB, float32)")
    ax.set_title("What each design keeps to decode the next token\n(points: read from the cache object; dashed: formula)",
                 fontsize=10)
    ax.legend(fontsize=8)
    return ax


def plot_cache_at_scale(table, *, budget_gb: float = 1.0, ax=None):
    """Stacked bars per real model and context (``profiling.cache_at_scale``): weights, KV cache and
    constant states, against the device budget."""
    if table.empty:
        raise ValueError("no rows to plot")
    if ax is None:
        _, ax = plt.subplots(figsize=(9, 3.8))
    labels = [f"{r.model}\n{r.context // 1024}k tokens" for r in table.itertuples()]
    weights = table["weights_gb"].to_numpy()
    kv = table["kv_gb"].to_numpy()
    states = (table["conv_gb"] + table["recurrent_gb"]).to_numpy()
    ax.bar(labels, weights, color="tab:blue", alpha=0.8, label=f"weights ({table['precision'].iloc[0]})")
    ax.bar(labels, kv, bottom=weights, color="tab:orange", label="KV cache")
    ax.bar(labels, states, bottom=weights + kv, color="tab:green", label="conv / recurrent state")
    ax.axhline(budget_gb, color="black", linestyle="--", label=f"{budget_gb:g} GB budget")
    ax.set_ylabel("GB")
    ax.set_title("Weights + decode state for one sequence, real configs", fontsize=10)
    ax.tick_params(axis="x", labelsize=8)
    ax.legend(fontsize=8)
    return ax


def plot_scaling_fit(N, D, L, law, *, ax=None):
    """Observed final losses against tokens, one colour per model size, with the fitted law's curves.

    Lines: for each distinct size, the observed points (markers) then the law's curve ``L(N, D)``
    over the budgets (from half the smallest to twice the largest), so a sweep of 3 sizes gives 6.
    """
    N, D, L = check_runs(N, D, L)  # the same validation as the fit, with the same messages
    if ax is None:
        _, ax = plt.subplots(figsize=(7, 4.2))
    D_grid = np.geomspace(D.min() / 2, D.max() * 2, 200)
    for i, size in enumerate(np.unique(N)):
        runs = N == size
        ax.plot(D[runs], L[runs], "o", color=f"C{i}", label=f"N = {size:.3g} (runs)")
        ax.plot(D_grid, law.loss(size, D_grid), "-", color=f"C{i}", alpha=0.7)
    ax.set_xscale("log")
    ax.set_xlabel("training tokens D")
    ax.set_ylabel("final loss (nats/token)")
    ax.set_title(f"Runs (points) and {law.name} (lines)\n"
                 f"E={law.E:.3g}, A={law.A:.3g}, B={law.B:.3g}, alpha={law.alpha:.3f}, beta={law.beta:.3f}",
                 fontsize=10)
    ax.legend(fontsize=8)
    return ax


def plot_isoflop(law, budgets, *, span: float = 30.0, ax=None):
    """IsoFLOP valleys: the law's loss against model size at each fixed FLOP budget ``C = 6ND``.

    Each curve covers sizes from ``N_opt / span`` to ``N_opt * span``; a last line joins the
    compute-optimal points (the valleys' minima). Lines: one per budget, then the optima.
    """

    budgets = np.asarray(budgets, dtype=float)
    if budgets.ndim != 1 or len(budgets) == 0:
        raise ValueError("budgets must be a non-empty sequence of FLOP counts")
    if ax is None:
        _, ax = plt.subplots(figsize=(7, 4.2))
    N_opt, D_opt = compute_optimal(law, budgets)
    for i, (C, n) in enumerate(zip(budgets, N_opt)):
        N, _, L = isoflop_curve(law, C, np.geomspace(n / span, n * span, 200))
        ax.plot(N, L, color=f"C{i}", label=f"C = {C:.0e} FLOPs")
    ax.plot(N_opt, law.loss(N_opt, D_opt), "k--o", markersize=4, label="compute-optimal N")
    ax.set_xscale("log")
    ax.set_xlabel("parameters N (tokens D = C / 6N)")
    ax.set_ylabel("predicted loss (nats/token)")
    ax.set_title(f"IsoFLOP curves, {law.name}", fontsize=10)
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(fontsize=8)
    return ax


def plot_training_history(history: dict, *, reference: dict[str, float] | None = None, ax=None):
    """Training loss per step and validation loss per evaluation, with optional horizontal
    reference lines (for example the corpus' unigram entropy)."""
    if ax is None:
        _, ax = plt.subplots(figsize=(7, 3.5))
    ax.plot(history["step"], history["loss"], label="train", alpha=0.7)
    ax.plot(history["val_step"], history["val_loss"], "o-", label="validation")
    for name, value in (reference or {}).items():
        ax.axhline(value, linestyle="--", color="gray")
        ax.annotate(name, (history["step"][-1], value), ha="right", va="bottom", fontsize=8)
    ax.set(xlabel="step", ylabel="loss (nats/token)", title="pretraining")
    ax.legend()
    return ax


#: Colours of the parameter-budget parts (``lfm_helpers.budget.PARTS``), the vocabulary's in red.
_PART_COLORS = {"embedding": "tab:red", "output_head": "lightcoral", "attention": "tab:blue",
                "convolution": "tab:green", "linear_attention": "tab:purple", "mlp": "tab:orange", "norms": "tab:gray"}


def plot_parameter_budgets(table, *, ax=None):
    """One horizontal bar per model (``budget.budget_table``): each part's share of the parameters,
    stacked to 100%, with the embedding share written on each bar. Parts no model has are left out."""
    if table.empty:
        raise ValueError("no rows to plot")
    if ax is None:
        _, ax = plt.subplots(figsize=(9, 0.45 * len(table) + 1.2))
    parts = [p for p in _PART_COLORS if p in table and table[p].sum() > 0]
    labels = [f"{r.model} ({r.total / 1e6:,.0f}M)" for r in table.itertuples()]
    left = np.zeros(len(table))
    for part in parts:
        share = 100 * table[part].to_numpy() / table["total"].to_numpy()
        ax.barh(labels, share, left=left, color=_PART_COLORS[part], label=part.replace("_", " "))
        left += share
    for y, pct in enumerate(table["embedding_pct"]):
        ax.text(1, y, f"{pct:.1f}%", va="center", ha="left", fontsize=8, color="white", fontweight="bold")
    ax.invert_yaxis()  # first row on top
    ax.set_xlim(0, 100)
    ax.set_xlabel("share of parameters (%)")
    ax.set_title("Where the parameters go (embedding share written on each bar)", fontsize=10)
    ax.legend(fontsize=8, loc="center left", bbox_to_anchor=(1.01, 0.5))
    return ax


def plot_vocabulary_tradeoff(sweep, costs, *, axes=None):
    """Three panels over vocabulary size (log 2): compression of the held-out documents
    (``budget.vocabulary_sweep``); the embedding's share of each model; and each model's decode
    work per document relative to its cheapest vocabulary (``budget.vocabulary_costs``), whose
    minimum is marked."""
    if sweep.empty or costs.empty:
        raise ValueError("no rows to plot")
    if axes is None:
        _, axes = plt.subplots(1, 3, figsize=(13, 3.6), layout="constrained")
    measured = sweep.drop_duplicates("vocab_size")
    axes[0].plot(measured["vocab_size"], measured["bytes_per_token"], "o-", color="black")
    _context_axes(axes[0], measured["vocab_size"], measured["bytes_per_token"])
    axes[0].set(ylabel="bytes per token (held out)", title="What a bigger vocabulary buys")
    for i, (model, rows) in enumerate(costs.groupby("model", sort=False)):
        axes[1].plot(rows["vocab_size"], rows["embedding_pct"], "o-", color=f"C{i}", label=model)
        axes[2].plot(rows["vocab_size"], rows["relative_cost"], "o-", color=f"C{i}", label=model)
        best = rows.loc[rows["relative_cost"].idxmin()]
        axes[2].plot(best["vocab_size"], best["relative_cost"], "*", color=f"C{i}", markersize=14)
    _context_axes(axes[1], costs["vocab_size"], costs["embedding_pct"])
    _context_axes(axes[2], costs["vocab_size"], costs["relative_cost"])
    axes[1].set(ylabel="embedding share (%)", title="What it costs in parameters")
    axes[2].set(ylabel="decode work per document (relative)", title="Where it stops paying (star: cheapest)")
    for ax in axes:
        ax.set_xlabel("vocabulary size")
        ax.tick_params(axis="x", labelsize=8, labelrotation=45)
        ax.title.set_fontsize(10)
    axes[1].legend(fontsize=8)
    return axes


def plot_sft_histories(histories: dict[str, dict], *, ax=None):
    """Training (thin) and validation (dots) loss on assistant tokens, one colour per SFT run."""
    if not histories:
        raise ValueError("no histories to plot")
    if ax is None:
        _, ax = plt.subplots(figsize=(7, 3.5))
    for (name, h), color in zip(histories.items(), plt.rcParams["axes.prop_cycle"].by_key()["color"]):
        ax.plot(h["step"], h["loss"], color=color, alpha=0.5, linewidth=1, label=f"{name} (train)")
        if h.get("val_step"):
            ax.plot(h["val_step"], h["val_loss"], "o-", color=color, label=f"{name} (validation)")
    ax.set(xlabel="step", ylabel="loss on assistant tokens", title="SFT", yscale="log")
    ax.legend(fontsize=8)
    return ax


def plot_task_comparison(reports: dict[str, dict], metrics: dict[str, tuple[str, str]], *, ax=None):
    """Grouped bars with 95% intervals: ``reports[model][task]`` is an ``EvalReport``;
    ``metrics`` maps a label to ``(task, rate name)``."""
    if not reports or not metrics:
        raise ValueError("nothing to plot")
    if ax is None:
        _, ax = plt.subplots(figsize=(9, 3.5))
    width = 0.8 / len(reports)
    x = np.arange(len(metrics))
    for i, (model, by_task) in enumerate(reports.items()):
        rates = [by_task[task].rates[name] for task, name in metrics.values()]
        values = np.array([r.value for r in rates])
        low = values - np.array([r.interval[0] for r in rates])
        high = np.array([r.interval[1] for r in rates]) - values
        ax.bar(x + (i - (len(reports) - 1) / 2) * width, values, width, yerr=[low, high], capsize=3, label=model)
    ax.set_xticks(x, list(metrics), fontsize=8)
    ax.set(ylim=(0, 1.05), ylabel="rate (95% interval)", title="Held-out test split")
    ax.legend(fontsize=8, ncol=len(reports))
    return ax


def plot_cold_start(rows: list[dict], *, ax=None):
    """Mean reward and the share of prompts whose samples disagree, against the tool-use rows in SFT."""
    if not rows:
        raise ValueError("no rows to plot")
    if ax is None:
        _, ax = plt.subplots(figsize=(6, 3.5))
    labels = [f"{r['tool_use_rows']} rows\n({100 * r['tool_use_share']:.0f}%)" for r in rows]
    x = np.arange(len(rows))
    ax.bar(x - 0.2, [r["mean_reward"] for r in rows], 0.4, label="mean reward")
    ax.bar(x + 0.2, [r["prompts_with_signal"] for r in rows], 0.4, label="prompts with reward spread")
    ax.set_xticks(x, labels, fontsize=8)
    ax.set(ylim=(0, 1.05), xlabel="tool-use rows in SFT", title="What RL would start from")
    ax.legend(fontsize=8)
    return ax


def plot_sft_search(results: list[dict], targets: dict[tuple[str, str], float], *, ax=None):
    """One group of bars per variant of the SFT preset search (``sft_search``): each target
    metric with its 95% interval, and a dashed line at each target."""
    if not results:
        raise ValueError("no search results to plot")
    if ax is None:
        _, ax = plt.subplots(figsize=(10, 3.8))
    width = 0.8 / len(targets)
    x = np.arange(len(results))
    for i, ((task, metric), target) in enumerate(targets.items()):
        values = np.array([r["metrics"][task][metric] for r in results])
        low = values - np.array([r["intervals"][task][metric][0] for r in results])
        high = np.array([r["intervals"][task][metric][1] for r in results]) - values
        bars = ax.bar(x + (i - (len(targets) - 1) / 2) * width, values, width, yerr=[low, high], capsize=3,
                      label=f"{metric} (target {target:.2f})")
        ax.axhline(target, color=bars.patches[0].get_facecolor(), linestyle="--", linewidth=1)
    ax.set_xticks(x, [r["variant"] for r in results], fontsize=8, rotation=25, ha="right")
    ax.set(ylim=(0, 1.05), ylabel="rate on the test split (95% interval)", title="SFT preset search")
    ax.legend(fontsize=8, loc="lower right")
    return ax


def plot_preference_rounds(rounds: dict[str, list[dict]], metrics: dict[str, tuple[str, str]], *, axes=None):
    """Per-round curves of on-policy preference optimisation: each metric in ``metrics`` (label ->
    (task, rate)), the mean reply length, and the share of pairs whose chosen side is longer.
    ``rounds[variant]`` lists ``rounds.json`` entries, round 0 (the starting model) first."""
    if not rounds:
        raise ValueError("no rounds to plot")
    panels = len(metrics) + 2
    if axes is None:
        _, axes = plt.subplots(1, panels, figsize=(3.6 * panels, 3.2))
    for variant, rs in rounds.items():
        x = [r["round"] for r in rs]
        for ax, (label, (task, rate)) in zip(axes, metrics.items()):
            ax.plot(x, [r["metrics"][task][rate] for r in rs], marker="o", label=variant)
            ax.set(title=label, xlabel="round", ylim=(0, 1))
        axes[-2].plot(x, [r["mean_output_tokens"] for r in rs], marker="o", label=variant)
        later = [r for r in rs if "pairs" in r]
        axes[-1].plot([r["round"] for r in later], [r["pairs"]["chosen_longer_share"] for r in later], marker="o",
                      label=variant)
    axes[-2].set(title="mean reply length (tokens)", xlabel="round")
    axes[-2].set_ylim(bottom=0)  # from zero, so a one-token change does not look like a trend
    axes[-1].set(title="pairs whose chosen is longer", xlabel="round", ylim=(0, 1))
    axes[-1].axhline(0.5, color="grey", linestyle=":", linewidth=1)
    axes[0].legend(fontsize=8)
    for ax in axes:
        ax.xaxis.get_major_locator().set_params(integer=True)
    plt.tight_layout()
    return axes


def plot_pair_scores(pair_set, *, ax=None):
    """Histogram of the verifier scores of sampled and greedy candidates (a ``PairSet``)."""
    if not pair_set.scores:
        raise ValueError("no scored prompts")
    if ax is None:
        _, ax = plt.subplots(figsize=(6, 3.2))
    bins = np.linspace(0, 1, 11)
    ax.hist([s for g in pair_set.scores for s in g[:-1]], bins=bins, alpha=0.6, density=True, label="sampled")
    ax.hist([g[-1] for g in pair_set.scores], bins=bins, alpha=0.6, density=True, label="greedy")
    ax.set(xlabel="verifier score", ylabel="density", title="Candidate scores")
    ax.legend(fontsize=8)
    return ax


def plot_rl_histories(histories: dict[str, dict], *, axes=None):
    """GRPO runs side by side: mean episode reward (band: the within-group spread), the share of
    groups whose rewards are all equal (no gradient), KL to the start, and policy entropy."""
    if not histories:
        raise ValueError("no histories to plot")
    if axes is None:
        _, axes = plt.subplots(1, 4, figsize=(15, 3.2))
    for name, h in histories.items():
        step, reward, spread = np.array(h["step"]), np.array(h["reward"]), np.array(h["reward_std"])
        (line,) = axes[0].plot(step, reward, label=name)
        axes[0].fill_between(step, reward - spread, reward + spread, color=line.get_color(), alpha=0.15)
        axes[1].plot(step, h["zero_std_groups"], label=name)
        axes[2].plot(step, h["kl"], label=name)
        axes[3].plot(step, h["entropy"], label=name)
    axes[0].set(title="episode reward (± spread)", xlabel="step", ylim=(0, 1))
    axes[1].set(title="groups with no reward spread", xlabel="step", ylim=(0, 1.05))
    axes[2].set(title="KL to the starting policy", xlabel="step")
    axes[3].set(title="entropy", xlabel="step")
    axes[0].legend(fontsize=8)
    plt.tight_layout()
    return axes


def _rate_bars(ax, labels, rates, intervals, **kwargs):
    rates = np.asarray(rates, dtype=float)
    lo = rates - np.array([i[0] for i in intervals])
    hi = np.array([i[1] for i in intervals]) - rates
    ax.bar(labels, rates, yerr=[lo, hi], capsize=4, **kwargs)


def plot_loop_grid(rows: list[dict], *, axes=None):
    """Loop rate (with 95% intervals) against temperature (no penalty), and against the
    repetition penalty at greedy decoding (rows of ``loop_fixes.decoding_grid``)."""
    if not rows:
        raise ValueError("no decoding settings to plot")
    if axes is None:
        _, axes = plt.subplots(1, 2, figsize=(11, 3.4))
    by_t = [r for r in rows if r["repetition_penalty"] == 1.0]
    t = np.array([r["temperature"] for r in by_t])
    rate = np.array([r["loop_rate"] for r in by_t])
    err = [rate - np.array([r["interval"][0] for r in by_t]), np.array([r["interval"][1] for r in by_t]) - rate]
    axes[0].errorbar(t, rate, yerr=err, marker="o", capsize=4)
    axes[0].set(xlabel="temperature (0 = greedy)", ylabel="loop rate", title="Loops against temperature", ylim=(0, 1.05))
    greedy = [r for r in rows if r["temperature"] == 0.0]
    greedy.sort(key=lambda r: (r["repetition_penalty"] < 1, r["repetition_penalty"]))
    colors = ["tab:red" if r["repetition_penalty"] < 1 else "tab:blue" for r in greedy]
    _rate_bars(axes[1], [str(r["repetition_penalty"]) for r in greedy], [r["loop_rate"] for r in greedy],
               [r["interval"] for r in greedy], color=colors)
    axes[1].set(xlabel="repetition_penalty (greedy)", ylabel="loop rate", title="Loops against the penalty (red: < 1)",
                ylim=(0, 1.05))
    return axes


def plot_loop_fixes(reports: dict[str, dict], *, axes=None):
    """Greedy loop rate (with 95% intervals) and task metric of each model (``loop_report`` dicts)."""
    if not reports:
        raise ValueError("no models to plot")
    if axes is None:
        _, axes = plt.subplots(1, 2, figsize=(11, 3.4))
    names = list(reports)
    _rate_bars(axes[0], names, [reports[n]["loop_rate"] for n in names], [reports[n]["interval"] for n in names])
    axes[0].set(ylabel="greedy loop rate", title="Loops, before and after each fix", ylim=(0, 1.05))
    axes[1].bar(names, [reports[n]["score_points"] for n in names], color="tab:green")
    axes[1].set(ylabel="fields right (points of 100)", title="Task metric")
    return axes


def plot_interference(losses, *, start: str, axes=None):
    """One panel per task: each model's loss on it, with the ``start`` model's as a dashed line
    (below the line: the model learned that task; above: it forgot). ``losses``: a table with
    one row per model and one column per task."""
    if len(losses) == 0 or start not in losses.index:
        raise ValueError(f"the losses need a row for the start model {start!r}")
    if axes is None:
        _, axes = plt.subplots(1, len(losses.columns), figsize=(5 * len(losses.columns), 3.2))
    for ax, task in zip(np.atleast_1d(axes), losses.columns):
        others = losses.drop(index=start)
        ax.bar(range(len(others)), others[task], color=[f"C{i}" for i in range(len(others))])
        ax.axhline(losses.loc[start, task], color="black", linestyle="--", label=start)
        ax.set_xticks(range(len(others)), others.index, rotation=20, fontsize=8)
        ax.set(ylabel="loss per answer token", title=f"{task} (lower is better)")
        ax.legend(fontsize=8)
    return axes


def plot_merge_tradeoff(sweep, losses, *, ax=None):
    """Each merge method's path through (extraction loss, tool-use loss) as its parameter moves,
    with the SFT model, the two specialists and the multitask model as reference points (lower
    left is better on both tasks). ``sweep``: rows of method, value, extraction, tool_use;
    ``losses``: the same two columns indexed by model name."""
    if len(sweep) == 0:
        raise ValueError("no merges to plot")
    if ax is None:
        _, ax = plt.subplots(figsize=(6.5, 4.5))
    for method, rows in sweep.groupby("method", sort=False):
        rows = rows.sort_values("value")
        ax.plot(rows["extraction"], rows["tool_use"], marker="o", label=method)
        for _, r in rows.iterrows():
            ax.annotate(f"{r['value']:g}", (r["extraction"], r["tool_use"]), fontsize=7, xytext=(3, 3),
                        textcoords="offset points")
    for name, r in losses.iterrows():
        ax.scatter(r["extraction"], r["tool_use"], marker="*", s=120, color="black", zorder=3)
        ax.annotate(name, (r["extraction"], r["tool_use"]), fontsize=8, xytext=(4, -10), textcoords="offset points")
    ax.set(xlabel="extraction loss (per answer token)", ylabel="tool-use loss (per answer token)",
           title="Merges of the two specialists")
    ax.legend(fontsize=8)
    return ax


def plot_curriculum(schedules: dict[str, list[dict]], start: dict[str, float], *, axes=None):
    """Per task, the loss after each round of each curriculum schedule (round 0: ``start``)."""
    if not schedules:
        raise ValueError("no schedules to plot")
    tasks = list(start)
    if axes is None:
        _, axes = plt.subplots(1, len(tasks), figsize=(5 * len(tasks), 3.2))
    for ax, task in zip(np.atleast_1d(axes), tasks):
        for name, rounds in schedules.items():
            ax.plot([0] + [r["round"] for r in rounds], [start[task]] + [r[task] for r in rounds], marker="o", label=name)
        ax.set_xticks(range(max(len(rounds) for rounds in schedules.values()) + 1))
        ax.set(xlabel="round (0: the start)", ylabel=f"{task} loss", title=task)
        ax.legend(fontsize=8)
    return axes


def plot_roofline(table, *, axes=None):
    """Per model, measured decode tokens/s of each runtime and format (bars) beside the memory-
    bandwidth bound of its weights (black ticks): bars near their tick are memory-bound.
    ``table``: :func:`~lfm_helpers.deploy.roofline_table` rows."""
    if len(table) == 0:
        raise ValueError("no speeds to plot")
    models = list(dict.fromkeys(table["model"]))
    if axes is None:
        _, axes = plt.subplots(1, len(models), figsize=(5.5 * len(models), 3.4), squeeze=False)
        axes = axes[0]
    for ax, name in zip(axes, models):
        rows = table[table["model"] == name]
        labels = [f"{r.format}\n{'llama.cpp' if r.runtime == 'llama.cpp' else 'eager'}" for r in rows.itertuples()]
        x = np.arange(len(rows))
        ax.bar(x, rows["decode_tok_s"], color=["C0" if r == "llama.cpp" else "C1" for r in rows["runtime"]])
        ax.scatter(x, rows["roofline_tok_s"], marker="_", s=600, color="black", zorder=3, label="bandwidth bound")
        ax.set_xticks(x, labels, fontsize=8)
        ax.set_ylim(0, 1.25 * max(rows["decode_tok_s"].max(), rows["roofline_tok_s"].max()))
        ax.set(ylabel="decode tokens/s", title=name)
        ax.legend(fontsize=8, loc="upper left")
    return axes
