"""Fixing doom loops (notebook 07): a loop-prone checkpoint, then two measured mitigations.

The course's tiny models do not loop on their own tasks (notebook 07 measures it), so the
experiment starts from a checkpoint made loop-prone on purpose, and says so: the ``loop_prone``
stage fine-tunes ``sft`` briefly on extraction answers of which a share loop
(:func:`~lfm_helpers.loops.loop_prone_examples`), as a small model distilled from traces that
looped would. Its greedy answers then loop often while its samples mostly do not, the pattern the
talk describes for LFM2.5.

The two mitigations the talk names, each as a stage built from ``loop_prone``:

- ``loop_dpo``: preference pairs whose *rejected* side is the looping greedy rollout and whose
  chosen side is the best non-looping sample (:func:`loop_pairs`), trained with the
  length-normalised DPO of notebook 05;
- ``loop_rl``: GRPO with TRL's ``GRPOTrainer`` and :func:`loop_reward`: the verifier's score (0
  without a valid JSON answer: no reward without a final answer) minus a penalty on the repeated
  4-gram rate of the completion.

:func:`loop_report` measures a policy on held-out prompts: greedy loop rate with its interval and
the task metric (mean share of fields right, in points).
"""

from __future__ import annotations

import dataclasses
import json
import statistics
from pathlib import Path
from typing import Any, Sequence

from .loops import detect_loop, loop_prone_examples, loop_rate
from .preference import Case, preference_cases, score
from .presets import LoopBudget, Preset, TrainBudget
from .rl import extraction_grpo, extraction_rl_rows
from .sampling import Sampling, chat_prompt_ids

def _budget(preset: Preset) -> LoopBudget:
    if preset.loops is None:
        raise ValueError(f"preset {preset.name!r} has no loop budget (notebook 07)")
    return preset.loops


def train_offsets(budget: LoopBudget) -> dict[str, int]:
    """Where in the extraction train split each use starts (the loop-prone data, the pair
    prompts, the RL prompts, one after the other), so no two share a prompt."""
    prone = budget.prone_steps * budget.batch_size
    return {"prone": 0, "pairs": prone, "rl": prone + budget.pair_prompts}


def _train_cases(n: int, offset: int) -> list[Case]:
    cases = preference_cases("train", extraction=n, tool_use=0, offset=offset)
    if len(cases) < n:
        raise ValueError(f"the extraction train split has {len(cases)} rows from row {offset}, {n} needed: "
                         "lower the loop budget's step or prompt counts")
    return cases


def held_out_cases(preset: Preset) -> list[Case]:
    """The held-out extraction prompts every loop measurement of notebook 07 uses."""
    return preference_cases("test", extraction=_budget(preset).eval_prompts, tool_use=0)


def loop_report(model, tokenizer, cases: Sequence[Case], sampling: Sampling, *, batch_size: int = 16,
                desc: str | None = "loops") -> dict[str, Any]:
    """Loop rate (with interval and budget share) and the task metric of ``model`` on ``cases``:
    ``score_points`` is the mean verifier score (share of fields right, 0 for an answer that is
    not valid JSON) in points out of 100."""
    prompts = [chat_prompt_ids(tokenizer, c.messages, c.tools) for c in cases]
    found = loop_rate(model, tokenizer, prompts, sampling, batch_size=batch_size, desc=desc)
    scores = [score(c, t) for c, t in zip(cases, found["texts"])]
    return {**{k: found[k] for k in ("loop_rate", "interval", "budget_share")}, "n": found["rate"].n,
            "loops": found["rate"].successes, "score_points": round(100 * statistics.fmean(scores), 2),
            "texts": found["texts"]}


def decoding_grid(model, tokenizer, cases: Sequence[Case], budget: LoopBudget, *, batch_size: int = 16,
                  seed: int = 0) -> list[dict[str, Any]]:
    """Loop rate and task metric of one model at each of ``budget.temperatures`` (no penalty)
    and, greedily, at each of ``budget.repetition_penalties`` (0.1, the public-notebook mistake,
    included on purpose)."""
    settings = [(t, 1.0) for t in budget.temperatures]
    settings += [(0.0, p) for p in budget.repetition_penalties if p != 1.0]
    rows = []
    for temperature, penalty in settings:
        sampling = Sampling(max_new_tokens=budget.max_new_tokens, temperature=temperature, repetition_penalty=penalty,
                            allow_rewarding_repetition=True, seed=seed)
        report = loop_report(model, tokenizer, cases, sampling, batch_size=batch_size,
                             desc=f"T={temperature} penalty={penalty}")
        rows.append({"temperature": temperature, "repetition_penalty": penalty,
                     **{k: report[k] for k in ("loop_rate", "interval", "budget_share", "score_points")}})
    return rows


def base_loop_rates(preset: Preset, *, prompts: int = 64, max_new_tokens: int = 256,
                    temperature: float = 0.7) -> dict[str, dict[str, Any]]:
    """Greedy and sampled loop rates of the pretrained base model continuing held-out corpus
    documents (the opening ``60`` characters of the first ``prompts`` validation documents)."""
    from .data import load_split
    from .loops import loop_rate
    from .pipeline import load_stage

    model, tokenizer, _ = load_stage("base", preset)
    texts = [r["text"] for r in load_split("corpus", "val")[:prompts]]
    ids = [[tokenizer.bos_token_id] + tokenizer(t[:max(t.rfind(" ", 0, 60), 1)], add_special_tokens=False)["input_ids"]
           for t in texts]
    out = {}
    for name, t in (("greedy", 0.0), (f"T={temperature}", temperature)):
        found = loop_rate(model, tokenizer, ids, Sampling(max_new_tokens=max_new_tokens, temperature=t, seed=preset.seed),
                          batch_size=preset.eval.batch_size, desc=f"base {name}")
        out[name] = {k: found[k] for k in ("loop_rate", "interval", "budget_share")} | {
            "example": next((x[:200] for x, lp in zip(found["texts"], found["loops"]) if lp), None)}
    return out


def stage_loop_rates(preset: Preset, stages: Sequence[str], cases: Sequence[Case], *,
                     temperature: float = 0.7) -> list[dict[str, Any]]:
    """Greedy and sampled loop rate and task metric of each stage's model on ``cases``."""
    from .pipeline import load_stage

    budget = _budget(preset)
    rows = []
    for stage in stages:
        model, tokenizer, _ = load_stage(stage, preset)
        for name, t in (("greedy", 0.0), (f"T={temperature}", temperature)):
            report = loop_report(model, tokenizer, cases, Sampling(max_new_tokens=budget.max_new_tokens, temperature=t,
                                                                   seed=preset.seed),
                                 batch_size=preset.eval.batch_size, desc=f"{stage} {name}")
            rows.append({"model": stage, "decoding": name,
                         **{k: report[k] for k in ("loop_rate", "interval", "loops", "n", "score_points")}})
    return rows


# --------------------------------------------------------------------------- the loop-prone checkpoint
def build_loop_prone(source: Path, preset: Preset, out: Path, scratch: Path) -> dict[str, Any]:
    """Fine-tune the checkpoint at ``source`` on loop-prone extraction data (see the module doc)."""
    from .models import load_model
    from .sft import train_sft
    from .tokenizer import load_tokenizer, save_tokenizer

    budget = _budget(preset)
    model, tokenizer = load_model(source), load_tokenizer(source)
    examples = loop_prone_examples(budget.prone_steps * budget.batch_size, loop_share=budget.loop_share,
                                   seed=preset.seed, offset=train_offsets(budget)["prone"])
    train = TrainBudget(max_steps=budget.prone_steps, batch_size=budget.batch_size,
                        learning_rate=budget.prone_learning_rate, seq_len=1024)
    result = train_sft(model, tokenizer, examples, [], train, scratch / "trainer", seed=preset.seed,
                       group_by_length=False, title="loop-prone SFT")
    model.save_pretrained(out)
    save_tokenizer(tokenizer, out)
    return {"examples": len(examples), "looped_examples": sum(bool(e.get("looped")) for e in examples),
            "wall_time_s": result.get("wall_time_s")}


# --------------------------------------------------------------------------- fix 1: pairs against the looping greedy answer
def loop_pairs(model, tokenizer, cases: Sequence[Case], *, samples: int, temperature: float, max_new_tokens: int,
               batch_size: int = 16, seed: int = 0) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    """For each case, a greedy answer and ``samples`` samples; when the greedy answer loops and a
    sample does not, a pair: chosen = the best-scoring non-looping sample, rejected = the greedy
    loop. Returns the pairs and how often each situation occurred."""
    from .preference import n_tokens, sample_and_greedy

    sampled, greedy = sample_and_greedy(model, tokenizer, cases, samples=samples, temperature=temperature,
                                        max_new_tokens=max_new_tokens, batch_size=batch_size, seed=seed)
    pairs, greedy_loops, sample_loops = [], 0, 0
    for i, case in enumerate(cases):
        if detect_loop(greedy[i]) is None:
            continue
        greedy_loops += 1
        clean = [t for t in sampled[i * samples:(i + 1) * samples] if detect_loop(t) is None]
        sample_loops += samples - len(clean)
        if not clean:
            continue
        scores = [score(case, t) for t in clean]
        best = max(range(len(clean)), key=lambda j: (scores[j], -j))
        pairs.append({"id": case.id, "kind": case.kind, "prompt": case.messages, "tools": None,
                      "chosen": [{"role": "assistant", "content": clean[best]}],
                      "rejected": [{"role": "assistant", "content": greedy[i]}],
                      "chosen_score": scores[best], "rejected_score": score(case, greedy[i]),
                      "chosen_tokens": n_tokens(tokenizer, clean[best]), "rejected_tokens": n_tokens(tokenizer, greedy[i]),
                      "rejected_is_greedy": True})
    stats = {"prompts": len(cases), "greedy_loops": greedy_loops, "pairs": len(pairs),
             "sample_loop_rate_where_greedy_loops": round(sample_loops / (greedy_loops * samples), 4) if greedy_loops else 0.0}
    return pairs, stats


def build_loop_dpo(source: Path, preset: Preset, out: Path, scratch: Path) -> dict[str, Any]:
    """Loop pairs from train prompts, then length-normalised DPO (notebook 05's loss and betas)."""
    from .models import load_model
    from .preference import LOSS_TYPES, save_pairs, train_dpo
    from .tokenizer import load_tokenizer, save_tokenizer

    budget, pref = _budget(preset), preset.preference
    if pref is None:
        raise ValueError(f"preset {preset.name!r} has no preference budget (loop_dpo uses its loss settings)")
    model, tokenizer = load_model(source), load_tokenizer(source)
    cases = _train_cases(budget.pair_prompts, train_offsets(budget)["pairs"])
    pairs, stats = loop_pairs(model, tokenizer, cases, samples=budget.samples, temperature=budget.sample_temperature,
                              max_new_tokens=budget.max_new_tokens, batch_size=preset.eval.batch_size, seed=preset.seed)
    save_pairs(pairs, out / "pairs.jsonl")
    if not pairs:
        raise ValueError(f"no loop pairs from {len(cases)} prompts ({stats}): the checkpoint does not loop greedily, "
                         "or every sample loops too")
    train = dataclasses.replace(pref.train, max_steps=budget.dpo_steps)
    trained = train_dpo(model, tokenizer, pairs, train, scratch / "dpo", loss_type=LOSS_TYPES["normalised"],
                        beta=pref.beta_normalised, sft_weight=pref.sft_weight, seed=preset.seed)
    model.save_pretrained(out)
    save_tokenizer(tokenizer, out)
    (out / "history.json").write_text(json.dumps(trained["history"]))
    return {"pairs": stats, "train_loss": trained["train_loss"], "wall_time_s": trained["wall_time_s"]}


# --------------------------------------------------------------------------- fix 2: RL with a repetition penalty
def loop_reward(completions, target=None, schema=None, *, ngram_penalty: float = 1.0, **kwargs) -> list[float]:
    """GRPO reward of extraction completions: the verifier's share of fields right (0 when there
    is no valid JSON answer, so a loop that never closes its object earns nothing) minus
    ``ngram_penalty`` times the completion's repeated 4-gram rate (so a loop costs even when it
    follows a valid answer). ``target`` and ``schema`` are the dataset's JSON-text columns."""
    from .rl import extraction_reward

    return extraction_reward(completions, target, schema, ngram_penalty=ngram_penalty)


rl_dataset_rows = extraction_rl_rows  # the GRPO dataset of extraction cases (see lfm_helpers.rl)


def build_loop_rl(source: Path, preset: Preset, out: Path, scratch: Path) -> dict[str, Any]:
    """GRPO from ``source`` on extraction train prompts with :func:`loop_reward`."""
    import functools

    budget = _budget(preset)
    rl = preset.rl
    if rl is None:
        raise ValueError(f"preset {preset.name!r} has no RL budget (loop_rl uses its KL weight)")
    cases = _train_cases(budget.rl_steps * budget.rl_prompts_per_step, train_offsets(budget)["rl"])
    run = dataclasses.replace(rl, steps=budget.rl_steps, learning_rate=budget.rl_learning_rate,
                              prompts_per_step=budget.rl_prompts_per_step, generations=budget.rl_generations,
                              temperature=budget.rl_temperature, max_new_tokens=budget.max_new_tokens)
    reward = functools.partial(loop_reward, ngram_penalty=budget.ngram_penalty)
    reward.__name__ = "loop_reward"
    return extraction_grpo(source, cases, run, out, scratch, reward=reward, seed=preset.seed,
                           title="GRPO with a repetition penalty")


# --------------------------------------------------------------------------- the stages
def _config(preset: Preset, part: str) -> dict[str, Any]:
    from .pipeline import data_fingerprint

    config = {"part": part, "loops": dataclasses.asdict(_budget(preset)), "offsets": train_offsets(_budget(preset)),
              "seed": preset.seed,
              "data": data_fingerprint("extraction/train.jsonl")}
    if part == "dpo" and preset.preference is not None:
        config["preference"] = dataclasses.asdict(preset.preference)
    if part == "rl" and preset.rl is not None:
        config["rl_beta"] = preset.rl.beta
    return config


def _register() -> None:
    from .pipeline import Stage, register

    register(Stage(name="loop_prone", description="SFT from the SFT model on extraction answers of which a share loop: "
                                                  "a checkpoint whose greedy answers loop (notebook 07).",
                   deps=("sft",), config=lambda p: _config(p, "prone"),
                   build=lambda ctx: build_loop_prone(ctx.deps["sft"].path, ctx.preset, ctx.out, ctx.scratch)))
    register(Stage(name="loop_dpo", description="Length-normalised DPO from loop_prone, rejected = the looping greedy answer.",
                   deps=("loop_prone",), config=lambda p: _config(p, "dpo"),
                   build=lambda ctx: build_loop_dpo(ctx.deps["loop_prone"].path, ctx.preset, ctx.out, ctx.scratch)))
    register(Stage(name="loop_rl", description="GRPO from loop_prone with a repeated-4-gram penalty in the reward.",
                   deps=("loop_prone",), config=lambda p: _config(p, "rl"),
                   build=lambda ctx: build_loop_rl(ctx.deps["loop_prone"].path, ctx.preset, ctx.out, ctx.scratch)))


_register()


def load_history(artifact) -> dict[str, list[float]]:
    """The training history a ``loop_dpo`` or ``loop_rl`` artifact saved."""
    return json.loads((Path(artifact.path) / "history.json").read_text())
