"""Narrow-task RL (notebook 06): GRPO with verifiable rewards in a multi-turn tool environment.

An *episode* is the first user turn of a tool-use conversation played live: the policy writes a
turn; a tool call is executed against the real tool registry and its result appended as a
``tool`` message; the policy writes again, until it answers in plain text (or runs out of
turns). The episode is scored on its calls (each against the reference call at that position,
with :func:`~lfm_helpers.verifiers.tool_call_reward`) and on its final answer
(:func:`~lfm_helpers.verifiers.verify_final_answer`); an episode without a final answer earns
nothing, so the policy cannot collect reward by calling tools forever.

TRL's ``GRPOTrainer`` can run tool-calling rollouts itself, but only for chat templates whose
tool-call format it can parse (it recognises the official LFM2 / LFM2.5 templates, not this
course's tokenizer). So the environment is given to it as a ``rollout_func``
(:func:`make_rollout`): it plays the episodes and returns the token ids of each, with an
``env_mask`` that excludes the tool results (text the policy did not write) from the loss.

Simplified: only the first user turn of each conversation is played (a third of the rows have a
second one), the episode's tokens are re-rendered through the chat template after play (so the
policy is trained on the template's tokenisation of its own text, not on the sampled ids), and no
importance-sampling correction is applied (generation and training use the same weights).

A single-turn task needs no environment: :func:`extraction_grpo` lets TRL sample the completions
and scores them with :func:`extraction_reward` (the ``rl_extraction`` stage of the capstone, and
notebook 07's ``loop_rl`` with a repetition penalty added).
"""

from __future__ import annotations

import dataclasses
import statistics
import warnings
from dataclasses import dataclass, field
from typing import Any, Callable, Mapping, Sequence

from .sampling import Sampling, chat_prompt_ids, generate_batch

# Imported by ``sft`` (through ``preference``) to register the ``rl`` stage, so this module must
# import in the Unsloth environment too, which lacks the verifiers' jsonschema: the tools and
# verifiers are imported where they are used.


@dataclass
class ToolEpisode:
    """One live episode: the first user turn of ``row``, played by the policy."""

    row: Mapping[str, Any]
    tools: list[dict[str, Any]]
    messages: list[dict[str, str]]
    prompt_messages: int
    expected: list[Any]  # the reference turns of the first user turn (``data.Turn``)
    call_rewards: list[float] = field(default_factory=list)
    answered: bool = False
    answer_correct: bool = False
    tool_errors: int = 0
    done: bool = False

    @classmethod
    def start(cls, row: Mapping[str, Any]) -> "ToolEpisode":
        from .data import conversation_turns
        from .tools import tool_schemas

        msgs = row["messages"]
        users = [i for i, m in enumerate(msgs) if m["role"] == "user"]
        if not users:
            raise ValueError(f"{row['id']}: a tool-use row without a user message")
        end = users[1] if len(users) > 1 else len(msgs)
        expected = [t for t in conversation_turns(row) if users[0] < t.index < end]
        prompt = [dict(m) for m in msgs[:users[0] + 1]]
        return cls(row, tool_schemas(row["tools"]), prompt, len(prompt), expected)

    @property
    def max_turns(self) -> int:
        """The reference's number of turns, plus one: room for one extra call."""
        return len(self.expected) + 1

    @property
    def turns(self) -> int:
        return sum(m["role"] == "assistant" for m in self.messages[self.prompt_messages:])

    def step(self, text: str, run_tool: Callable[[str, Mapping[str, Any]], str] | None = None) -> None:
        """Take the policy's next turn: run its tool calls (with ``run_tool``, default the real
        registry's ``call_tool``), or end the episode on an answer."""
        from .tools import ToolError, call_tool, parse_tool_calls
        from .verifiers import tool_call_reward, verify_final_answer, verify_tool_call

        run_tool = run_tool or call_tool
        self.messages.append({"role": "assistant", "content": text})
        calls = verify_tool_call(text, [])["calls"]
        if not calls:
            answer = next((t.expected_answer for t in self.expected if t.kind == "answer"), None)
            self.answered = True
            self.answer_correct = answer is not None and verify_final_answer(text, answer)
            self.done = True
            return
        references = [t for t in self.expected if t.kind == "call"]
        position = len(self.call_rewards)
        self.call_rewards.append(tool_call_reward(text, references[position].expected_calls)
                                 if position < len(references) else 0.0)
        results = []
        for call in parse_tool_calls(text):
            try:
                results.append(run_tool(call.name, call.arguments))
            except ToolError as exc:
                self.tool_errors += 1
                results.append(f"error: {exc}")
        self.messages.append({"role": "tool", "content": "\n".join(results)})
        self.done = self.turns >= self.max_turns

    @property
    def reward(self) -> float:
        """0 without a final answer; else half for the answer, half for the calls (each expected
        call scored 1 / 0.5 / 0, a missing one 0; a call-free reference counts the answer only)."""
        if not self.answered:
            return 0.0
        n_calls = sum(t.kind == "call" for t in self.expected)
        if n_calls == 0:
            return float(self.answer_correct)
        calls = sum(self.call_rewards[:n_calls]) / n_calls
        return 0.5 * float(self.answer_correct) + 0.5 * calls


def play(model, tokenizer, rows: Sequence[Mapping[str, Any]], sampling: Sampling, *, generations: int = 1,
         batch_size: int = 16, run_tool: Callable[[str, Mapping[str, Any]], str] | None = None) -> list[ToolEpisode]:
    """Play ``generations`` episodes of each row (row-major: all of row 0's first), in batched
    rounds: each round generates one turn for every unfinished episode."""
    episodes = [ToolEpisode.start(r) for r in rows for _ in range(generations)]
    round_ = 0
    while active := [e for e in episodes if not e.done]:
        round_ += 1
        prompts = [chat_prompt_ids(tokenizer, e.messages, e.tools) for e in active]
        texts = generate_batch(model, tokenizer, prompts, dataclasses.replace(sampling, seed=sampling.seed + round_),
                               batch_size=batch_size, desc=None)
        for episode, text in zip(active, texts, strict=True):
            episode.step(text, run_tool)
    return episodes


def episode_tokens(tokenizer, episode: ToolEpisode) -> tuple[list[int], list[int], list[int]]:
    """``(prompt_ids, completion_ids, env_mask)`` of a played episode: the conversation rendered by
    the chat template, split after the prompt; ``env_mask`` is 1 on the tokens the policy wrote
    (the template's assistant-generation spans) and 0 on tool results and turn headers."""
    prompt = chat_prompt_ids(tokenizer, episode.messages[:episode.prompt_messages], episode.tools)
    full = tokenizer.apply_chat_template(episode.messages, tools=episode.tools, tokenize=True, return_dict=True,
                                         return_assistant_tokens_mask=True)
    ids, mask = list(full["input_ids"]), list(full["assistant_masks"])
    if ids[:len(prompt)] != prompt:
        raise ValueError(f"{episode.row['id']}: the rendered episode does not start with its prompt")
    return prompt, ids[len(prompt):], mask[len(prompt):]


def summarise(episodes: Sequence[ToolEpisode]) -> dict[str, float]:
    """Mean reward, answer rate and accuracy, and calls per episode: what a round of play did."""
    return {
        "episodes": len(episodes),
        "mean_reward": round(statistics.fmean(e.reward for e in episodes), 4),
        "answered": round(statistics.fmean(e.answered for e in episodes), 4),
        "answer_correct": round(statistics.fmean(e.answer_correct for e in episodes), 4),
        "calls_per_episode": round(statistics.fmean(len(e.call_rewards) for e in episodes), 4),
        "tool_errors": sum(e.tool_errors for e in episodes),
    }


def make_rollout(rows: Sequence[Mapping[str, Any]], tokenizer, sampling: Sampling, *, batch_size: int = 16):
    """A ``rollout_func`` for TRL's ``GRPOTrainer``: plays ``trainer.num_generations`` episodes per
    distinct prompt (a prompt is a row's first user turn, found by its text) with the policy
    being trained.

    Besides the token ids it returns ``env_mask`` (TRL leaves masked tokens out of the loss) and
    each episode's ``episode_reward``, ``answered`` and ``answer_correct``, which TRL forwards to
    the reward functions.
    """
    by_prompt: dict[str, Mapping[str, Any]] = {}
    for row in rows:
        by_prompt.setdefault(_prompt_key(ToolEpisode.start(row).messages), row)

    def rollout(prompts: list, trainer) -> dict[str, Any]:
        missing = [p for p in prompts if _prompt_key(p) not in by_prompt]
        if missing:
            raise KeyError(f"{len(missing)} prompts are not first user turns of the rollout's rows")
        model = trainer.accelerator.unwrap_model(trainer.model)
        was_training = model.training
        # TRL's sampler may already have repeated each prompt num_generations times (it does in
        # TRL 1.16); then one episode per prompt, else num_generations of each.
        n = trainer.num_generations
        keys = [_prompt_key(p) for p in prompts]
        repeated = len(keys) % n == 0 and all(keys[i] == keys[i - i % n] for i in range(len(keys)))
        episodes = play(model, tokenizer, [by_prompt[k] for k in keys], sampling, generations=1 if repeated else n,
                        batch_size=batch_size)
        model.train(was_training)
        out: dict[str, Any] = {"prompt_ids": [], "completion_ids": [], "env_mask": [], "logprobs": None,
                               "episode_reward": [], "answered": [], "answer_correct": []}
        for e in episodes:
            prompt, completion, mask = episode_tokens(tokenizer, e)
            out["prompt_ids"].append(prompt)
            out["completion_ids"].append(completion)
            out["env_mask"].append(mask)
            out["episode_reward"].append(e.reward)
            out["answered"].append(float(e.answered))
            out["answer_correct"].append(float(e.answer_correct))
        return out

    return rollout


def _prompt_key(messages: Sequence[Mapping[str, str]]) -> str:
    return "\n".join(f"{m['role']}: {m['content']}" for m in messages)


def episode_reward(prompts=None, completions=None, episode_reward=None, **kwargs) -> list[float]:
    """The GRPO reward function: the environment's score of each episode (forwarded by the rollout)."""
    if episode_reward is None:
        raise ValueError("episode_reward is missing: use this reward with make_rollout's rollout_func")
    return [float(r) for r in episode_reward]


def rl_prompts(rows: Sequence[Mapping[str, Any]]) -> list[dict[str, Any]]:
    """The GRPO dataset: one ``{"prompt": messages}`` per row (its first user turn)."""
    return [{"prompt": ToolEpisode.start(r).messages} for r in rows]


# --------------------------------------------------------------------------- training
#: What the GRPO logs are read for (TRL's names -> ours).
LOGGED = {"reward": "reward", "reward_std": "reward_std", "kl": "kl", "entropy": "entropy",
          "frac_reward_zero_std": "zero_std_groups", "completions/mean_length": "mean_length", "loss": "loss"}


def grpo_config(budget, output_dir, *, steps: int | None = None, seed: int = 0, **overrides):
    """The ``trl.GRPOConfig`` of an :class:`~lfm_helpers.presets.RLBudget` (a step is
    ``prompts_per_step x generations`` episodes; CPU flags as for SFT). ``overrides`` replace
    fields, e.g. ``max_completion_length`` and ``temperature`` when TRL generates the
    completions itself (notebook 07) instead of this module's tool rollout."""
    from trl import GRPOConfig

    from .sft import trainer_device_args

    settings = dict(
        output_dir=str(output_dir), max_steps=steps or budget.steps,
        per_device_train_batch_size=budget.prompts_per_step * budget.generations, num_generations=budget.generations,
        learning_rate=budget.learning_rate, lr_scheduler_type="constant", beta=budget.beta, max_grad_norm=1.0,
        # an episode's tokens end in the template's newline after <|im_end|>, so TRL counts every
        # one as "truncated": it must not drop them from the loss
        max_completion_length=1024, mask_truncated_completions=False, logging_steps=1, save_strategy="no", report_to="none", seed=seed,
        data_seed=seed, dataloader_num_workers=0, disable_tqdm=False, **trainer_device_args(GRPOConfig),
    )
    return GRPOConfig(**{**settings, **overrides})


def grpo_recorder(*, live_plot: bool = False, title: str = "GRPO"):
    """A history dict (step and the ``LOGGED`` series) and the ``TrainerCallback`` that fills it
    from GRPOTrainer's logs, redrawing a live reward plot when ``live_plot``."""
    from transformers import TrainerCallback

    history: dict[str, list[float]] = {"step": [], **{ours: [] for ours in LOGGED.values()}}
    plot = None
    if live_plot:
        from .liveplot import LivePlot

        plot = LivePlot(title, "step", "mean reward")

    class Record(TrainerCallback):
        def on_log(self, args, state, control, logs=None, **kwargs):
            if logs and "reward" in logs:
                history["step"].append(state.global_step)
                for theirs, ours in LOGGED.items():
                    history[ours].append(float(logs.get(theirs, float("nan"))))
                if plot is not None:
                    plot.update({"reward": (history["step"], history["reward"])})

    return history, Record()


def train_grpo(source, tokenizer, rows: Sequence[Mapping[str, Any]], budget, output_dir, *, steps: int | None = None,
               seed: int = 0, live_plot: bool = False, title: str = "GRPO"):
    """GRPO from the checkpoint folder ``source`` (TRL loads the policy and its KL reference from
    it) on the first user turns of ``rows``; returns the trained model and the logged history."""
    from datasets import Dataset
    from trl import GRPOTrainer

    n_rows = (steps or budget.steps) * budget.prompts_per_step
    if len(rows) < n_rows:
        raise ValueError(f"{n_rows} rows needed ({steps or budget.steps} steps x {budget.prompts_per_step} prompts), "
                         f"got {len(rows)}")
    history, record = grpo_recorder(live_plot=live_plot, title=title)
    sampling = Sampling(max_new_tokens=budget.max_new_tokens, temperature=budget.temperature, seed=seed)
    with warnings.catch_warnings():
        # known and documented above: rollout_func is experimental in TRL; TRL calls a
        # transformers method deprecated in 5.24 once per step
        warnings.filterwarnings("ignore", message="You are using 'rollout_func'", category=UserWarning)
        warnings.filterwarnings("ignore", message=".*is_gradient_checkpointing.*", category=FutureWarning)
        trainer = GRPOTrainer(model=str(source), reward_funcs=episode_reward, processing_class=tokenizer,
                              args=grpo_config(budget, output_dir, steps=steps, seed=seed),
                              train_dataset=Dataset.from_list(rl_prompts(rows[:n_rows])),
                              rollout_func=make_rollout(rows[:n_rows], tokenizer, sampling), callbacks=[record])
        trainer.train()
    return trainer.model, history


def rl_training_rows(budget) -> list[Mapping[str, Any]]:
    from .data import load_split

    return load_split("tool_use", "train")[budget.row_offset:]


def rl_from(source, preset, out, scratch, *, steps: int | None = None, title: str = "GRPO") -> dict[str, Any]:
    """Train GRPO from the checkpoint at ``source`` and save the policy and its logged history
    (reward, its spread, KL, entropy) to ``out``; ``evaluate_stage`` scores it on the test split."""
    import json
    import time

    from .evaluate import evaluate
    from .liveplot import in_notebook
    from .tokenizer import load_tokenizer, save_tokenizer

    budget = preset.rl
    if budget is None:
        raise ValueError(f"preset {preset.name!r} has no RL budget")
    tokenizer = load_tokenizer(source)
    start = time.perf_counter()
    model, history = train_grpo(source, tokenizer, rl_training_rows(budget), budget, scratch / "trainer", steps=steps,
                                seed=preset.seed, live_plot=in_notebook(), title=title)
    wall = time.perf_counter() - start
    model.save_pretrained(out)
    save_tokenizer(tokenizer, out)
    (out / "history.json").write_text(json.dumps(history))
    return {"steps": len(history["step"]), "wall_time_s": round(wall, 1),
            "first_reward": history["reward"][0] if history["reward"] else None,
            "last_reward": history["reward"][-1] if history["reward"] else None,
            "zero_std_groups": round(statistics.fmean(history["zero_std_groups"]), 4) if history["step"] else None}


# --------------------------------------------------------------------------- single-turn extraction
# The narrow task of one JSON answer needs no environment: TRL's GRPOTrainer samples the
# completions itself and a reward function scores them (notebook 07's loop_rl, the capstone's RL).
def extraction_reward(completions, target=None, schema=None, *, ngram_penalty: float = 0.0, **kwargs) -> list[float]:
    """GRPO reward of extraction completions: the verifier's share of fields right (0 without a
    valid JSON answer: no reward without a final answer), minus ``ngram_penalty`` times the
    completion's repeated 4-gram rate. ``target`` and ``schema`` are the dataset's JSON-text
    columns (:func:`extraction_rl_rows`), which TRL forwards to the reward function."""
    import json

    from .loops import repeated_ngram_rate
    from .verifiers import verify_extraction

    if target is None or schema is None:
        raise ValueError("target and schema are missing: use this reward with extraction_rl_rows' dataset")
    rewards = []
    for completion, tgt, sch in zip(completions, target, schema, strict=True):
        text = completion[-1]["content"] if isinstance(completion, list) else completion
        found = verify_extraction(text, json.loads(tgt), json.loads(sch))["field_accuracy"]
        penalty = ngram_penalty * repeated_ngram_rate(text) if ngram_penalty else 0.0
        rewards.append(float(found) - penalty)
    return rewards


def extraction_rl_rows(cases) -> list[dict[str, Any]]:
    """GRPO dataset rows of extraction :class:`~lfm_helpers.preference.Case` s: the prompt as
    messages, and the target and schema as JSON text (the reward function's columns)."""
    import json

    return [{"prompt": c.messages, "target": json.dumps(c.expected["target"]), "schema": json.dumps(c.expected["schema"])}
            for c in cases]


def extraction_grpo(source, cases, budget, out, scratch, *, reward=extraction_reward, seed: int = 0,
                    title: str = "GRPO on extraction") -> dict[str, Any]:
    """GRPO from the checkpoint at ``source`` on extraction ``cases`` (``budget.steps`` steps of
    ``prompts_per_step`` x ``generations`` completions of at most ``max_new_tokens``, sampled by
    TRL at ``temperature``), rewarded by ``reward``; saves the policy and its history to ``out``."""
    import json
    import time

    from datasets import Dataset
    from trl import GRPOTrainer

    from .liveplot import in_notebook
    from .models import load_model
    from .sampling import stop_token_ids
    from .tokenizer import load_tokenizer, save_tokenizer

    needed = budget.steps * budget.prompts_per_step
    if len(cases) < needed:
        raise ValueError(f"{needed} extraction prompts needed ({budget.steps} steps x {budget.prompts_per_step}), "
                         f"got {len(cases)}")
    model, tokenizer = load_model(source), load_tokenizer(source)
    model.generation_config.eos_token_id = stop_token_ids(tokenizer)  # a chat turn ends at <|im_end|>
    args = grpo_config(budget, scratch / "trainer", seed=seed, max_completion_length=budget.max_new_tokens,
                       temperature=budget.temperature)
    history, record = grpo_recorder(live_plot=in_notebook(), title=title)
    start = time.perf_counter()
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=".*is_gradient_checkpointing.*", category=FutureWarning)
        trainer = GRPOTrainer(model=model, reward_funcs=reward, processing_class=tokenizer, args=args,
                              train_dataset=Dataset.from_list(extraction_rl_rows(cases[:needed])), callbacks=[record])
        trainer.train()
    trainer.model.save_pretrained(out)
    save_tokenizer(tokenizer, out)
    (out / "history.json").write_text(json.dumps(history))
    return {"steps": len(history["step"]), "wall_time_s": round(time.perf_counter() - start, 1),
            "first_reward": history["reward"][0] if history["reward"] else None,
            "last_reward": history["reward"][-1] if history["reward"] else None}


def _build_rl_extraction(ctx) -> dict[str, Any]:
    from .preference import preference_cases

    budget = ctx.preset.rl
    if budget is None:
        raise ValueError(f"preset {ctx.preset.name!r} has no RL budget")
    cases = preference_cases("train", extraction=budget.steps * budget.prompts_per_step, tool_use=0,
                             offset=budget.row_offset)
    return extraction_grpo(ctx.deps["preference"].path, cases, budget, ctx.out, ctx.scratch, seed=ctx.preset.seed)


def load_history(artifact) -> dict[str, list[float]]:
    import json
    from pathlib import Path

    return json.loads((Path(artifact.path) / "history.json").read_text())


def _config(preset, *, source: str, steps: int, task: str = "tool_use") -> dict[str, Any]:
    import dataclasses

    from .pipeline import data_fingerprint

    if preset.rl is None:
        raise ValueError(f"preset {preset.name!r} has no RL budget")
    return {"budget": dataclasses.asdict(preset.rl), "steps": steps, "source": source, "seed": preset.seed,
            "data": data_fingerprint(f"{task}/train.jsonl")}


def rl_cold_start(preset, *, log: Callable[[str], None] = print):
    """GRPO from notebook 04's SFT run that saw no tool-use data (``cold_start/tool_use-0``), for
    ``rl.cold_steps`` steps: the case where sampled rewards have no spread and RL cannot start."""
    from .artifacts import artifact_dir, config_hash, ensure_artifact
    from .sft import cold_start_experiment

    cold_start_experiment(preset, log=log)  # builds (or reuses) notebook 04's runs
    source = artifact_dir(preset.name, f"cold_start/tool_use-{preset.cold_start.tool_use_rows[0]}")
    config = {**_config(preset, source="cold_start", steps=preset.rl.cold_steps),
              "source_hash": _built_from(source)}
    path = artifact_dir(preset.name, "rl_cold_start")
    scratch = path.parent / ".scratch" / f"rl_cold_start-{config_hash(config)}"
    return ensure_artifact(path, lambda out: rl_from(source, preset, out, scratch, steps=preset.rl.cold_steps,
                                                     title="GRPO from the no-tool-data SFT run"),
                           stage="rl_cold_start", preset=preset.name, config=config, log=log)


def _built_from(folder) -> str:
    """The config hash an artifact folder's manifest records (so a rebuilt source invalidates)."""
    import json
    from pathlib import Path

    return json.loads((Path(folder) / "manifest.json").read_text())["config_hash"]


def _register() -> None:
    from .pipeline import Stage, register

    register(Stage(
        name="rl_extraction",
        description="GRPO on single-turn extraction prompts from the preference model (TRL samples the "
                    "completions; reward: the verifier's share of fields right, 0 without valid JSON).",
        deps=("preference",),
        config=lambda p: _config(p, source="preference", steps=p.rl.steps if p.rl else 0, task="extraction"),
        build=_build_rl_extraction,
    ))
    register(Stage(
        name="rl",
        description="GRPO in the multi-turn tool environment from the preference model (TRL GRPOTrainer, "
                    "rewards from the verifiers, no reward without a final answer).",
        deps=("preference",),
        config=lambda p: _config(p, source="preference", steps=p.rl.steps if p.rl else 0),
        build=lambda ctx: rl_from(ctx.deps["preference"].path, ctx.preset, ctx.out, ctx.scratch),
    ))


_register()


from . import loop_fixes as _loop_fixes  # noqa: E402,F401  (its stages build on "sft"; see pipeline.py)
from . import capstone as _capstone  # noqa: E402,F401  (its merge and export stages build on "rl_extraction")
