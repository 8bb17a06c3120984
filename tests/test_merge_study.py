"""Notebook 08's experiments on a tiny preset: specialists, the sweep, the merge stage, the curriculum."""

from __future__ import annotations

import dataclasses

import pytest

from lfm_helpers import merge_study as ms
from lfm_helpers.pipeline import run_stage
from lfm_helpers.presets import MergeBudget, TrainBudget
from test_sft import SFT_SMALL, _tiny_model, tok  # noqa: F401  (tok is a fixture)

MERGE_SMALL = dataclasses.replace(
    SFT_SMALL, merging=MergeBudget(specialist=TrainBudget(max_steps=1, batch_size=2, learning_rate=1e-2, seq_len=2048),
                                   weights=(0.5,), scales=(1.0,), densities=(1.0,), rounds=2, curriculum_steps=1, val_rows=2,
                                   eval_examples=2),
)


def _quiet(_):
    pass


def test_budget_validation():
    train = TrainBudget(max_steps=1, batch_size=2, learning_rate=1e-3, seq_len=128)
    with pytest.raises(ValueError, match="two rounds"):
        MergeBudget(specialist=train, rounds=1)
    with pytest.raises(ValueError, match="densities"):
        MergeBudget(specialist=train, densities=(0.0,))
    with pytest.raises(ValueError, match="scales"):
        MergeBudget(specialist=train, scales=(0.0,))
    with pytest.raises(ValueError, match="no merge budget"):
        ms.merge_sweep(dataclasses.replace(MERGE_SMALL, merging=None))


def test_stage_configs_hold_only_what_each_result_depends_on():
    from lfm_helpers.pipeline import STAGES

    def stage_config(name, preset):
        return STAGES[name].config(preset)

    other = dataclasses.replace(MERGE_SMALL, merging=dataclasses.replace(MERGE_SMALL.merging, eval_examples=5, densities=(0.5,)))
    assert stage_config("specialist_extraction", other) == stage_config("specialist_extraction", MERGE_SMALL)
    assert stage_config("merge_curriculum", other) == stage_config("merge_curriculum", MERGE_SMALL)
    assert stage_config("merge", other) != stage_config("merge", MERGE_SMALL)


def test_task_losses_are_per_assistant_token(tok):  # noqa: F811
    model = _tiny_model(tok)
    losses = ms.task_losses(model, tok, rows=2)
    assert set(losses) == {"extraction", "tool_use"} and all(4 < v < 8 for v in losses.values())  # ~log(500) untrained


def test_sweep_covers_every_method_and_value():
    budget = MergeBudget(specialist=TrainBudget(max_steps=1, batch_size=2, learning_rate=1e-3, seq_len=128))
    specs = ms.sweep_specs(budget, "a", "b", "base")
    assert [(m, v) for m, v, _ in specs] == ([("linear", w) for w in budget.weights] + [("slerp", w) for w in budget.weights]
                                             + [("task_arithmetic", s) for s in budget.scales]
                                             + [("ties", d) for d in budget.densities]
                                             + [("dare_ties", d) for d in budget.densities])
    linear = specs[0][2]
    assert linear.weights == (0.75, 0.25) and specs[3][2].base == "a" and specs[6][2].base == "base"
    assert specs[8][2].weights == (budget.scales[-1],) * 2
    assert all(spec.normalize for m, _, spec in specs if m in ("ties", "dare_ties"))
    assert ms.best_spec([{"extraction": 1.0, "tool_use": 3.0}, {"extraction": 2.0, "tool_use": 1.0}])["extraction"] == 2.0
    with pytest.raises(ValueError):
        ms.best_spec([])


@pytest.mark.slow
def test_specialists_merge_stage_and_curriculum(task_data, runs_root):
    arts = {n: run_stage(n, MERGE_SMALL, log=_quiet) for n in (*ms.SPECIALISTS, "multitask")}
    assert arts["specialist_extraction"].metrics["train_by_task"] == {"extraction": 2, "tool_use": 0}
    assert arts["specialist_tool_use"].metrics["train_by_task"] == {"extraction": 0, "tool_use": 2}
    assert arts["multitask"].metrics["train_by_task"] == {"extraction": 2, "tool_use": 2}
    assert arts["multitask"].metrics["steps"] == 2 * arts["specialist_extraction"].metrics["steps"]
    merged = run_stage("merge", MERGE_SMALL, log=_quiet)
    sweep = ms.load_sweep(merged)
    assert len(sweep) == merged.metrics["merges"] == 5 and merged.metrics["best"] in sweep
    assert (merged.path / "model.safetensors").exists() and (merged.path / "tokenizer.json").exists()
    curriculum = run_stage("merge_curriculum", MERGE_SMALL, log=_quiet)
    rounds = curriculum.metrics["rounds"]
    assert [r["round"] for r in rounds["sequential"]] == [1, 2] == [r["round"] for r in rounds["merged"]]
    assert all(set(ms.TASKS) <= set(r) for rs in rounds.values() for r in rs)
    assert curriculum.metrics["steps_per_schedule"] == 4
    finals = ms.curriculum_folders(curriculum)
    assert all((folder / "model.safetensors").exists() for folder in finals.values())
    # the merged schedule's last model is the merge of its last round, as measured
    assert ms.folder_losses(finals["merged"], rows=2) == {t: rounds["merged"][-1][t] for t in ms.TASKS}
