"""The multi-turn tool environment for RL: episodes, rewards, tokens and masks, the GRPO rollout."""

from __future__ import annotations

import json

import pytest

from lfm_helpers import rl
from lfm_helpers.data import load_split
from lfm_helpers.sampling import Sampling
from test_sft import _tiny_model, tok  # noqa: F401  (tok is a fixture)


def _call_text(call):
    args = ", ".join(f"{k}={json.dumps(v)}" for k, v in call["arguments"].items())
    return f"<|tool_call_start|>[{call['name']}({args})]<|tool_call_end|>"


def _row_with_one_call():
    for row in load_split("tool_use", "train"):
        ep = rl.ToolEpisode.start(row)
        if [t.kind for t in ep.expected] == ["call", "answer"]:
            return row
    raise AssertionError("no single-call row")


def test_a_right_episode_earns_full_reward_and_runs_the_tool():
    row = _row_with_one_call()
    ep = rl.ToolEpisode.start(row)
    assert ep.messages[-1]["role"] == "user" and ep.max_turns == 3
    call, answer = ep.expected
    ep.step(_call_text(call.expected_calls[0]))
    assert not ep.done and ep.messages[-1]["role"] == "tool" and ep.call_rewards == [1.0]
    ep.step(f"The answer is {answer.expected_answer}.")
    assert ep.done and ep.answered and ep.answer_correct and ep.reward == 1.0


def test_rewards_need_a_final_answer():
    row = _row_with_one_call()
    call = rl.ToolEpisode.start(row).expected[0].expected_calls[0]
    looping = rl.ToolEpisode.start(row)
    for _ in range(looping.max_turns):
        looping.step(_call_text(call))
    assert looping.done and not looping.answered and looping.reward == 0.0  # right calls, no answer: nothing
    wrong_tool = rl.ToolEpisode.start(row)
    wrong_tool.step('<|tool_call_start|>[calculator(expression="1+1")]<|tool_call_end|>' if call["name"] != "calculator"
                    else '<|tool_call_start|>[get_weather(city="Oslo")]<|tool_call_end|>')
    wrong_tool.step("I do not know.")
    assert wrong_tool.answered and wrong_tool.reward == 0.0
    no_call = rl.ToolEpisode.start(row)
    no_call.step(f"It is {no_call.expected[1].expected_answer}.")  # right answer, skipped the call
    assert no_call.reward == 0.5


def test_play_batches_rounds_and_tokens_mask_the_environment(tok, monkeypatch):  # noqa: F811
    row = _row_with_one_call()
    call, answer = rl.ToolEpisode.start(row).expected
    script = iter([[_call_text(call.expected_calls[0])] * 2, [f"It is {answer.expected_answer}.", "no idea"]])
    monkeypatch.setattr(rl, "generate_batch", lambda *a, **k: next(script))
    episodes = rl.play(None, tok, [row], Sampling(temperature=1.0), generations=2)
    assert [e.reward for e in episodes] == [1.0, 0.5]
    assert rl.summarise(episodes)["mean_reward"] == 0.75
    prompt, completion, mask = rl.episode_tokens(tok, episodes[0])
    assert len(completion) == len(mask) and 0 < sum(mask) < len(mask)
    written = tok.decode([t for t, m in zip(completion, mask) if m])
    assert "tool_call_start" in written and answer.expected_answer in written
    result = episodes[0].messages[episodes[0].prompt_messages + 1]["content"]
    assert result and result not in written  # the tool's result is the environment's text, masked out


def test_reward_function_reads_the_rollout_field():
    assert rl.episode_reward(episode_reward=[1, 0.5]) == [1.0, 0.5]
    with pytest.raises(ValueError, match="make_rollout"):
        rl.episode_reward(prompts=["x"], completions=["y"])


@pytest.mark.slow
def test_grpo_trains_through_the_rollout(tok, tmp_path):  # noqa: F811
    from datasets import Dataset
    from trl import GRPOConfig, GRPOTrainer

    rows = load_split("tool_use", "train")[:2]
    model = _tiny_model(tok)
    model.save_pretrained(tmp_path / "policy")  # GRPO loads its KL reference from the model's path
    model = type(model).from_pretrained(tmp_path / "policy")
    rollout = rl.make_rollout(rows, tok, Sampling(max_new_tokens=12, temperature=1.0))
    args = GRPOConfig(output_dir=str(tmp_path / "out"), max_steps=2, per_device_train_batch_size=4, num_generations=2,
                      learning_rate=1e-3, beta=0.04, logging_steps=1, report_to="none", use_cpu=True, bf16=False,
                      save_strategy="no", max_completion_length=256)
    trainer = GRPOTrainer(model=model, reward_funcs=rl.episode_reward, args=args, processing_class=tok,
                          train_dataset=Dataset.from_list(rl.rl_prompts(rows)), rollout_func=rollout)
    trainer.train()
    logs = [h for h in trainer.state.log_history if "reward" in h]
    assert len(logs) == 2 and all("kl" in h for h in logs)


def _rl_preset():
    import dataclasses

    from lfm_helpers.presets import ColdStartBudget, RLBudget
    from test_preference import PREF_SMALL

    # the cold-start runs RL starts from: one step each, a few samples (the tiny preset's take minutes)
    cold = ColdStartBudget(tool_use_rows=(0, 8), steps=1, batch_size=2, prompts=2, samples=2)
    return dataclasses.replace(PREF_SMALL, cold_start=cold,
                               rl=RLBudget(steps=2, learning_rate=1e-3, prompts_per_step=1, generations=2,
                                           max_new_tokens=8, cold_steps=1, row_offset=0))


@pytest.mark.slow
def test_rl_stage_trains_from_the_preference_model_and_is_reused(task_data, runs_root, monkeypatch):
    from lfm_helpers import preference as pref
    from lfm_helpers.pipeline import run_stage

    monkeypatch.setattr(pref, "score", lambda case, text: min(1.0, len(text) / 20))  # pairs from an untrained model
    preset = _rl_preset()
    art = run_stage("rl", preset, log=lambda m: None)
    history = rl.load_history(art)
    assert history["step"] == [1, 2] and art.metrics["steps"] == 2
    assert all(0 <= r <= 1 for r in history["reward"]) and len(history["kl"]) == 2
    assert run_stage("rl", preset, log=lambda m: None).reused
    cold = rl.rl_cold_start(preset, log=lambda m: None)
    assert rl.load_history(cold)["step"] == [1] and cold.metrics["steps"] == 1


def test_rl_budget_and_rows_are_checked(tok, tmp_path):  # noqa: F811
    from lfm_helpers.presets import RLBudget

    with pytest.raises(ValueError, match="generations must be >= 2"):
        RLBudget(steps=1, learning_rate=1e-3, generations=1)
    budget = RLBudget(steps=3, learning_rate=1e-3, prompts_per_step=2)
    with pytest.raises(ValueError, match="6 rows needed"):
        rl.train_grpo(tmp_path, tok, load_split("tool_use", "train")[:5], budget, tmp_path)
