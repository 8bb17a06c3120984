"""The SFT plots draw what they are given, and refuse empty input."""

from __future__ import annotations

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot
import pytest

from lfm_helpers.evaluate import EvalReport, Rate
from lfm_helpers.plotting import (plot_cold_start, plot_pair_scores, plot_preference_rounds, plot_rl_histories,
                                   plot_sft_histories, plot_sft_search, plot_task_comparison)


def test_sft_histories_one_colour_per_run():
    h = {"step": [1, 2, 3], "loss": [2.0, 1.0, 0.5], "val_step": [3], "val_loss": [0.7]}
    ax = plot_sft_histories({"full": h, "lora": {**h, "val_step": []}})
    assert len(ax.lines) == 3 and ax.get_yscale() == "log"
    with pytest.raises(ValueError):
        plot_sft_histories({})


def test_task_comparison_bars_and_intervals():
    report = EvalReport("extraction", "test", 10, {"valid_json": Rate(9, 10), "exact_match": Rate(2, 10)})
    ax = plot_task_comparison({"base": {"extraction": report}, "sft": {"extraction": report}},
                              {"valid JSON": ("extraction", "valid_json"), "exact": ("extraction", "exact_match")})
    heights = sorted(round(p.get_height(), 2) for p in ax.patches)
    assert heights == [0.2, 0.2, 0.9, 0.9]
    with pytest.raises(ValueError):
        plot_task_comparison({}, {})


def test_cold_start_plot():
    rows = [{"tool_use_rows": 0, "tool_use_share": 0.0, "mean_reward": 0.0, "prompts_with_signal": 0.0},
            {"tool_use_rows": 60, "tool_use_share": 0.02, "mean_reward": 0.3, "prompts_with_signal": 0.5}]
    ax = plot_cold_start(rows)
    assert [round(p.get_height(), 2) for p in ax.patches] == [0.0, 0.3, 0.0, 0.5]
    with pytest.raises(ValueError):
        plot_cold_start([])


def test_sft_search_bars_and_target_lines():
    from lfm_helpers.sft_search import TARGETS

    def result(name, value):
        metrics = {task: {m: value for (t, m) in TARGETS if t == task} for task, _ in TARGETS}
        intervals = {task: {m: [value - 0.1, value + 0.05] for m in ms} for task, ms in metrics.items()}
        return {"variant": name, "metrics": metrics, "intervals": intervals}

    ax = plot_sft_search([result("a", 0.5), result("b", 0.8)], TARGETS)
    assert sorted(round(p.get_height(), 2) for p in ax.patches) == [0.5] * 3 + [0.8] * 3
    assert sorted(round(line.get_ydata()[0], 2) for line in ax.lines if line.get_linestyle() == "--") == [0.7, 0.7, 0.95]
    assert [t.get_text() for t in ax.get_xticklabels()] == ["a", "b"]
    with pytest.raises(ValueError):
        plot_sft_search([], TARGETS)


def test_preference_rounds_one_line_per_variant_and_panel():
    def entry(r, v):
        e = {"round": r, "metrics": {"extraction": {"field_exact_match": v}}, "mean_output_tokens": 30 + r}
        return e if r == 0 else {**e, "pairs": {"chosen_longer_share": 0.4}}

    rounds = {"standard": [entry(r, 0.3 + 0.1 * r) for r in range(3)], "normalised": [entry(r, 0.3) for r in range(3)]}
    axes = plot_preference_rounds(rounds, {"field EM": ("extraction", "field_exact_match")})
    assert len(axes) == 3 and [len(ax.lines) for ax in axes] == [2, 2, 3]  # the last panel has the 0.5 line
    assert list(axes[0].lines[0].get_ydata()) == [0.3, 0.4, 0.5] and list(axes[2].lines[0].get_xdata()) == [1, 2]
    with pytest.raises(ValueError):
        plot_preference_rounds({}, {})


def test_pair_scores_histogram():
    from lfm_helpers.preference import PairSet

    ax = plot_pair_scores(PairSet([], [[0.0, 1.0, 0.5], [1.0, 1.0, 1.0]]))
    assert len(ax.patches) == 20  # ten bins, sampled and greedy
    with pytest.raises(ValueError):
        plot_pair_scores(PairSet([], []))


def test_rl_histories_four_panels_one_line_each():
    h = {"step": [1, 2], "reward": [0.2, 0.4], "reward_std": [0.1, 0.1], "zero_std_groups": [0.5, 0.25],
         "kl": [0.0, 0.01], "entropy": [0.7, 0.6]}
    axes = plot_rl_histories({"cold": {**h, "reward": [0.0, 0.0]}, "warm": h})
    assert len(axes) == 4 and all(len(ax.lines) == 2 for ax in axes)
    assert list(axes[0].lines[1].get_ydata()) == [0.2, 0.4] and len(axes[0].collections) == 2  # the spread bands
    with pytest.raises(ValueError):
        plot_rl_histories({})


def test_loop_plots_draw_rates_with_intervals():
    from lfm_helpers.plotting import plot_loop_fixes, plot_loop_grid

    rows = [{"temperature": t, "repetition_penalty": 1.0, "loop_rate": r, "interval": (max(0, r - 0.1), r + 0.1)}
            for t, r in ((0.0, 0.5), (0.7, 0.1))]
    rows += [{"temperature": 0.0, "repetition_penalty": p, "loop_rate": r, "interval": (r / 2, min(1, r * 1.5))}
             for p, r in ((1.3, 0.2), (0.1, 0.9))]
    axes = plot_loop_grid(rows)
    assert len(axes[0].lines) >= 1 and [t.get_text() for t in axes[1].get_xticklabels()] == ["1.0", "1.3", "0.1"]
    reports = {"before": {"loop_rate": 0.5, "interval": (0.4, 0.6), "score_points": 10.0},
               "after": {"loop_rate": 0.05, "interval": (0.01, 0.1), "score_points": 30.0}}
    axes = plot_loop_fixes(reports)
    assert [p.get_height() for p in axes[1].patches] == [10.0, 30.0]
    with pytest.raises(ValueError):
        plot_loop_grid([])
    with pytest.raises(ValueError):
        plot_loop_fixes({})
    matplotlib.pyplot.close("all")


def test_merge_plots_draw_every_method_and_schedule():
    import pandas as pd

    from lfm_helpers.plotting import plot_curriculum, plot_interference, plot_merge_tradeoff

    sweep = pd.DataFrame([{"method": m, "value": v, "extraction": 1 + v, "tool_use": 2 - v}
                          for m in ("linear", "ties") for v in (0.3, 0.6)])
    losses = pd.DataFrame({"extraction": [1.5, 1.0], "tool_use": [1.5, 2.0]}, index=["sft", "specialist"])
    ax = plot_merge_tradeoff(sweep, losses)
    assert [line.get_label() for line in ax.get_lines()] == ["linear", "ties"]
    axes = plot_curriculum({"sequential": [{"round": 1, "extraction": 1.0, "tool_use": 2.0}],
                            "merged": [{"round": 1, "extraction": 1.2, "tool_use": 1.8}]},
                           {"extraction": 1.5, "tool_use": 2.5})
    assert len(axes) == 2 and len(axes[0].get_lines()) == 2
    with pytest.raises(ValueError):
        plot_merge_tradeoff(sweep.iloc[:0], losses)
    with pytest.raises(ValueError):
        plot_curriculum({}, {"extraction": 1.0})
    axes = plot_interference(losses, start="sft")
    assert len(axes) == 2 and [b.get_height() for b in axes[0].patches] == [1.0]
    assert axes[1].get_lines()[0].get_ydata()[0] == 1.5
    with pytest.raises(ValueError, match="start model"):
        plot_interference(losses, start="base")
    matplotlib.pyplot.close("all")


def test_roofline_plot_one_panel_per_model_with_a_bound_per_bar():
    from lfm_helpers.deploy import Speed, roofline_table
    from lfm_helpers.plotting import plot_roofline

    speeds = [Speed("tiny", "llama.cpp", "q8_0", 3.0, 1000.0, 900.0),
              Speed("tiny", "transformers (eager)", "float32", 12.0, 900.0, 90.0),
              Speed("350M", "llama.cpp", "q8_0", 380.0, 200.0, 60.0)]
    axes = plot_roofline(roofline_table(speeds, 30.0))
    assert [ax.get_title() for ax in axes] == ["tiny", "350M"]
    assert len(axes[0].patches) == 2 and len(axes[1].patches) == 1
    assert axes[0].get_ylim()[1] >= 1.25 * 10_000  # room for the tiny model's q8_0 bound (30 GB/s over 3 MB)
    with pytest.raises(ValueError, match="no speeds"):
        plot_roofline(roofline_table(speeds, 30.0).iloc[:0])
    matplotlib.pyplot.close("all")
