"""Notebook 07's loop-prone checkpoint and its two fixes: pairs against the looping greedy answer,
and GRPO with a repetition penalty."""

from __future__ import annotations

import dataclasses
import json

import pytest

from lfm_helpers import loop_fixes
from lfm_helpers.pipeline import run_stage
from lfm_helpers.presets import LoopBudget, RLBudget
from test_preference import PREF_SMALL
from test_sft import tok  # noqa: F401  (a fixture)

LOOPS_SMALL = dataclasses.replace(
    PREF_SMALL, rl=RLBudget(steps=1, learning_rate=1e-3, prompts_per_step=1, generations=2, max_new_tokens=8),
    loops=LoopBudget(prone_steps=1, batch_size=2, eval_prompts=2, max_new_tokens=8, pair_prompts=2, samples=2,
                     dpo_steps=1, rl_steps=1, rl_prompts_per_step=1, rl_generations=2),
)


def _quiet(_):
    pass


def test_budget_validation_and_offsets():
    with pytest.raises(ValueError, match="loop_share"):
        LoopBudget(loop_share=2)
    with pytest.raises(ValueError, match="rl_generations"):
        LoopBudget(rl_generations=1)
    with pytest.raises(ValueError, match="repetition penalties"):
        LoopBudget(repetition_penalties=(0.0,))
    offsets = loop_fixes.train_offsets(LoopBudget())
    assert offsets == {"prone": 0, "pairs": 320, "rl": 384}
    with pytest.raises(ValueError, match="no loop budget"):
        loop_fixes.held_out_cases(dataclasses.replace(LOOPS_SMALL, loops=None))


def test_loop_reward_pays_for_fields_and_charges_for_repeats():
    case = loop_fixes.preference_cases("test", extraction=1, tool_use=0)[0]
    target, schema = case.expected["target"], case.expected["schema"]
    right = json.dumps(target)
    row = loop_fixes.rl_dataset_rows([case])[0]
    looping = right[:-1] + ", " + ('"x": 1, ' * 30)
    rewards = loop_fixes.loop_reward([[{"role": "assistant", "content": t}] for t in (right, looping, "")],
                                     [row["target"]] * 3, [row["schema"]] * 3, ngram_penalty=1.0)
    assert rewards[0] == pytest.approx(1.0)
    assert rewards[1] < 0  # no valid JSON (no final answer) and a repeated-4-gram rate well above 0
    assert rewards[2] == 0.0
    # a valid answer followed by a loop still pays for the loop
    tail = right + " " + "again and again " * 10
    assert loop_fixes.loop_reward([tail], [row["target"]], [row["schema"]])[0] < 0.5


def test_loop_pairs_reject_the_looping_greedy_answer(monkeypatch, tok):  # noqa: F811
    cases = loop_fixes.preference_cases("test", extraction=3, tool_use=0)
    right = [json.dumps(c.expected["target"]) for c in cases]
    loop = "the same thing " * 10
    greedy = [loop, right[1], loop]
    # case 0: one clean sample -> a pair; case 1: greedy is fine -> no pair; case 2: every sample loops -> no pair
    sampled = [loop, right[0], right[1], right[1], loop, loop]

    def fake(model, tokenizer, prompts, sampling, **kw):
        return greedy if sampling.temperature == 0 else sampled

    monkeypatch.setattr("lfm_helpers.sampling.generate_batch", fake)
    pairs, stats = loop_fixes.loop_pairs(None, tok, cases, samples=2, temperature=0.7, max_new_tokens=8)
    assert stats == {"prompts": 3, "greedy_loops": 2, "pairs": 1, "sample_loop_rate_where_greedy_loops": 0.75}
    (pair,) = pairs
    assert pair["rejected"][0]["content"] == loop and pair["chosen"][0]["content"] == right[0]
    assert pair["chosen_score"] == 1.0 and pair["rejected_is_greedy"]


def test_loop_stages_build_from_sft(task_data, runs_root, monkeypatch, tok):  # noqa: F811
    prone = run_stage("loop_prone", LOOPS_SMALL, log=_quiet)
    assert prone.metrics["examples"] == 2
    cases = loop_fixes.preference_cases("test", extraction=1, tool_use=0)
    fixed_pair = {"prompt": cases[0].messages, "tools": None,
                  "chosen": [{"role": "assistant", "content": json.dumps(cases[0].expected["target"])}],
                  "rejected": [{"role": "assistant", "content": "loop " * 20}], "chosen_score": 1.0, "rejected_score": 0.0}
    monkeypatch.setattr(loop_fixes, "loop_pairs", lambda *a, **k: ([fixed_pair], {"pairs": 1}))
    dpo = run_stage("loop_dpo", LOOPS_SMALL, log=_quiet)
    assert dpo.metrics["pairs"] == {"pairs": 1} and (dpo.path / "pairs.jsonl").exists()
    rl = run_stage("loop_rl", LOOPS_SMALL, log=_quiet)
    assert rl.metrics["steps"] == 1 and loop_fixes.load_history(rl)["reward"]
    model_dir = rl.path
    from lfm_helpers.models import load_model
    from lfm_helpers.sampling import Sampling
    from lfm_helpers.tokenizer import load_tokenizer

    report = loop_fixes.loop_report(load_model(model_dir), load_tokenizer(model_dir), loop_fixes.held_out_cases(LOOPS_SMALL),
                                    Sampling(max_new_tokens=8), desc=None)
    assert report["n"] == 2 and 0 <= report["loop_rate"] <= 1 and 0 <= report["score_points"] <= 100


def test_no_pairs_is_a_clear_error(task_data, runs_root, monkeypatch):
    run_stage("loop_prone", LOOPS_SMALL, log=_quiet)
    monkeypatch.setattr(loop_fixes, "loop_pairs", lambda *a, **k: ([], {"pairs": 0}))
    with pytest.raises(ValueError, match="no loop pairs"):
        run_stage("loop_dpo", LOOPS_SMALL, log=_quiet)
