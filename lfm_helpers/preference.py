"""On-policy preference optimisation (notebook 05): pairs from the policy's own samples, scored
by the task verifiers, then DPO, standard or length-normalised, with TRL's ``DPOTrainer``.

The recipe follows the LFM2 report's description (reference sheet): for each prompt, sample a few
completions from the *current* policy plus one greedy rollout, score them with the verifiers,
keep the best as *chosen* and the worst as *rejected* when their scores differ by a real margin,
train, and repeat from the updated policy (iterative, "semi-online" DPO).

Length normalisation: standard DPO compares *summed* log-ratios, so a longer answer moves the
loss more than a short one and the policy can drift longer. The length-normalised variant divides
each sequence's log-ratio by its number of tokens,

    L = -log sigmoid( beta/|y_w| * log(pi(y_w|x)/pi_ref(y_w|x)) - beta/|y_l| * log(pi(y_l|x)/pi_ref(y_l|x)) ),

which is what TRL's ``loss_type="sigmoid_norm"`` computes (``DPOTrainer._compute_loss``: the
summed scores are divided by ``completion_mask.sum(dim=1)`` before the sigmoid).
:func:`dpo_loss` is the same formula in a few lines, tested against a hand computation and
against TRL's own loss on a tiny model.

Simplified: one prompt set per round from the train split, no reward model (the verifiers are
exact), and ties between samples broken by sampling order (never by length, which would bias
the pairs).
"""

from __future__ import annotations

import dataclasses
import json
import math
import statistics
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Mapping, Sequence

import torch
import torch.nn.functional as F

from .presets import PreferenceBudget, Preset, TrainBudget

#: ``DPOConfig.loss_type`` of each variant: TRL's standard sigmoid loss and its length-normalised form.
LOSS_TYPES: dict[str, str] = {"standard": "sigmoid", "normalised": "sigmoid_norm"}


# --------------------------------------------------------------------------- prompts and scores
@dataclass(frozen=True)
class Case:
    """One prompt the policy answers, and what its answer is scored against.

    ``kind`` is ``extraction`` (score: the share of target fields right, 0 without valid JSON),
    ``call`` (score: :func:`~lfm_helpers.verifiers.tool_call_reward`) or ``answer`` (1 if the
    final answer is right, else 0).
    """

    kind: str
    id: str
    messages: list[dict]
    tools: list[dict] | None
    expected: Any


def preference_cases(split: str, *, extraction: int, tool_use: int, offset: int = 0) -> list[Case]:
    """``extraction`` extraction prompts and the assistant turns of ``tool_use`` tool-use
    conversations of ``split``, starting at row ``offset`` (each round takes fresh rows)."""
    from .data import conversation_turns, extraction_messages, load_schemas, load_split
    from .tools import tool_schemas

    schemas = load_schemas()
    cases = [Case("extraction", r["id"], extraction_messages(r, schemas, with_answer=False), None,
                  {"target": r["target"], "schema": schemas[r["record_type"]]})
             for r in (load_split("extraction", split)[offset:offset + extraction] if extraction else [])]
    for row in load_split("tool_use", split)[offset:offset + tool_use] if tool_use else []:
        tools = tool_schemas(row["tools"])
        for i, turn in enumerate(conversation_turns(row)):
            expected = turn.expected_calls if turn.kind == "call" else turn.expected_answer
            cases.append(Case(turn.kind, f"{row['id']}#{i}", turn.prefix, tools, expected))
    return cases


def score(case: Case, text: str) -> float:
    """The verifier's score of ``text`` as an answer to ``case``, in [0, 1]."""
    from .verifiers import tool_call_reward, verify_extraction, verify_final_answer

    if case.kind == "extraction":
        return float(verify_extraction(text, case.expected["target"], case.expected["schema"])["field_accuracy"])
    if case.kind == "call":
        return float(tool_call_reward(text, case.expected))
    if case.kind == "answer":
        return float(verify_final_answer(text, case.expected))
    raise ValueError(f"unknown case kind {case.kind!r}")


# --------------------------------------------------------------------------- on-policy pairs
@dataclass
class PairSet:
    """The pairs one round produced, and every candidate's score (for the distribution)."""

    pairs: list[dict[str, Any]]
    scores: list[list[float]]  # per prompt: the sampled candidates' scores, then the greedy one's

    def stats(self) -> dict[str, Any]:
        """How many prompts gave a pair, the mean scores, and the length balance of the pairs."""
        n = len(self.scores)
        pairs = self.pairs
        return {
            "prompts": n,
            "pairs": len(pairs),
            "pair_yield": round(len(pairs) / n, 4) if n else 0.0,
            "mean_sampled_score": round(statistics.fmean(s for g in self.scores for s in g[:-1]), 4) if n else 0.0,
            "mean_greedy_score": round(statistics.fmean(g[-1] for g in self.scores), 4) if n else 0.0,
            "all_equal_prompts": round(sum(max(g) == min(g) for g in self.scores) / n, 4) if n else 0.0,
            "chosen_longer_share": round(statistics.fmean(p["chosen_tokens"] > p["rejected_tokens"] for p in pairs), 4)
            if pairs else 0.0,
            "rejected_is_greedy_share": round(statistics.fmean(p["rejected_is_greedy"] for p in pairs), 4)
            if pairs else 0.0,
            "mean_margin": round(statistics.fmean(p["chosen_score"] - p["rejected_score"] for p in pairs), 4)
            if pairs else 0.0,
        }


def choose_pair(candidates: Sequence[str], scores: Sequence[float], min_margin: float) -> tuple[int, int] | None:
    """Indices of (chosen, rejected): the first best and the first worst candidate, or ``None``
    when their scores differ by less than ``min_margin``."""
    if len(candidates) != len(scores) or len(scores) < 2:
        raise ValueError("need at least two scored candidates")
    best = max(range(len(scores)), key=lambda i: (scores[i], -i))
    worst = min(range(len(scores)), key=lambda i: (scores[i], i))
    return (best, worst) if scores[best] - scores[worst] >= min_margin else None


def n_tokens(tokenizer, text: str) -> int:
    """How many tokens ``text`` is (an empty reply, which a model can write, is 0)."""
    return len(tokenizer(text, add_special_tokens=False)["input_ids"]) if text else 0


def sample_and_greedy(model, tokenizer, cases: Sequence[Case], *, samples: int, temperature: float,
                      max_new_tokens: int, batch_size: int = 16, seed: int = 0) -> tuple[list[str], list[str]]:
    """``samples`` sampled completions per case (case-major: case ``i``'s are
    ``[i * samples:(i + 1) * samples]``) and one greedy completion per case: the candidates of an
    on-policy round (notebook 05) and of the loop pairs (notebook 07)."""
    from .sampling import Sampling, chat_prompt_ids, generate_batch

    if samples < 1:
        raise ValueError("need at least one sampled completion per prompt")
    ids = [chat_prompt_ids(tokenizer, c.messages, c.tools) for c in cases]
    sampled = generate_batch(model, tokenizer, [p for p in ids for _ in range(samples)],
                             Sampling(max_new_tokens=max_new_tokens, temperature=temperature, seed=seed),
                             batch_size=batch_size, desc="sampling")
    greedy = generate_batch(model, tokenizer, ids, Sampling(max_new_tokens=max_new_tokens), batch_size=batch_size,
                            desc="greedy")
    return sampled, greedy


def sample_pairs(model, tokenizer, cases: Sequence[Case], *, samples: int, temperature: float, max_new_tokens: int,
                 min_margin: float, batch_size: int = 16, seed: int = 0) -> PairSet:
    """``samples`` sampled completions and one greedy completion per case, scored; best vs worst."""
    sampled, greedy = sample_and_greedy(model, tokenizer, cases, samples=samples, temperature=temperature,
                                        max_new_tokens=max_new_tokens, batch_size=batch_size, seed=seed)
    pairs, all_scores = [], []
    for i, case in enumerate(cases):
        candidates = sampled[i * samples:(i + 1) * samples] + [greedy[i]]
        scores = [score(case, text) for text in candidates]
        all_scores.append(scores)
        picked = choose_pair(candidates, scores, min_margin)
        if picked is None:
            continue
        c, r = picked
        pairs.append({
            "id": case.id, "kind": case.kind,
            "prompt": case.messages, "tools": json.dumps(case.tools) if case.tools else None,
            "chosen": [{"role": "assistant", "content": candidates[c]}],
            "rejected": [{"role": "assistant", "content": candidates[r]}],
            "chosen_score": scores[c], "rejected_score": scores[r],
            "chosen_tokens": n_tokens(tokenizer, candidates[c]), "rejected_tokens": n_tokens(tokenizer, candidates[r]),
            "chosen_is_greedy": c == samples, "rejected_is_greedy": r == samples,
        })
    return PairSet(pairs, all_scores)


def save_pairs(pairs: Sequence[Mapping[str, Any]], path: Path) -> None:
    """The pairs as JSON lines (prompt, chosen, rejected, their scores and lengths), atomically."""
    from .artifacts import atomic_write_text

    atomic_write_text(Path(path), "".join(json.dumps(p) + "\n" for p in pairs))


def load_pairs(path: Path) -> list[dict[str, Any]]:
    required = {"prompt", "chosen", "rejected", "chosen_score", "rejected_score"}
    pairs = []
    for n, line in enumerate(Path(path).read_text().splitlines(), 1):
        row = json.loads(line)
        missing = required - row.keys()
        if missing:
            raise ValueError(f"{path}:{n}: a preference pair needs {sorted(required)}; missing {sorted(missing)}")
        pairs.append(row)
    return pairs


# --------------------------------------------------------------------------- the loss
def dpo_loss(chosen_logratio: torch.Tensor, rejected_logratio: torch.Tensor, chosen_tokens: torch.Tensor,
             rejected_tokens: torch.Tensor, *, beta: float, normalise: bool) -> torch.Tensor:
    """Mean DPO loss of a batch of pairs from their *summed* log-ratios ``log pi/pi_ref``.

    ``normalise=False`` is standard DPO, ``-log sigmoid(beta (r_w - r_l))``; ``normalise=True``
    divides each log-ratio by its completion's token count first (TRL's ``sigmoid_norm``).
    """
    if normalise:
        chosen_logratio = chosen_logratio / chosen_tokens.clamp(min=1)
        rejected_logratio = rejected_logratio / rejected_tokens.clamp(min=1)
    return -F.logsigmoid(beta * (chosen_logratio - rejected_logratio)).mean()


# --------------------------------------------------------------------------- training
def dpo_config(budget: TrainBudget, output_dir: Path | str, *, loss_type: str, beta: float, sft_weight: float = 0.0,
               seed: int = 0):
    """The ``trl.DPOConfig`` of a budget (CPU flags as for SFT: no bf16 autocast on a CPU).

    ``sft_weight > 0`` adds TRL's ``"sft"`` loss (the chosen completion's negative log-likelihood)
    with that weight, as in RPO (Pang et al. 2024): it keeps the chosen answers likely while the
    preference term pushes the rejected ones down.
    """
    from trl import DPOConfig

    from .sft import trainer_device_args

    return DPOConfig(
        output_dir=str(output_dir), max_steps=budget.max_steps, per_device_train_batch_size=budget.batch_size,
        learning_rate=budget.learning_rate, warmup_steps=budget.warmup_steps, lr_scheduler_type="cosine",
        weight_decay=0.0, max_grad_norm=1.0, max_length=budget.seq_len, beta=beta,
        loss_type=[loss_type] + (["sft"] if sft_weight else []), loss_weights=[1.0] + ([sft_weight] if sft_weight else []),
        logging_steps=max(1, budget.max_steps // 20), save_strategy="no", report_to="none", seed=seed,
        data_seed=seed, dataloader_num_workers=0, disable_tqdm=False, **trainer_device_args(DPOConfig),
    )


def train_dpo(model, tokenizer, pairs: Sequence[Mapping[str, Any]], budget: TrainBudget, output_dir: Path | str, *,
              loss_type: str, beta: float, sft_weight: float = 0.0, seed: int = 0) -> dict[str, Any]:
    """Train ``model`` in place with TRL's ``DPOTrainer`` on ``pairs``; return the logged history
    and speed.

    The reference is a frozen copy of ``model`` as it is now, passed explicitly: left to itself,
    TRL reloads the reference from ``model.config._name_or_path``, which in a second on-policy
    round is the checkpoint the *first* round started from, not the current policy.
    """
    import copy

    from datasets import Dataset
    from transformers import TrainerCallback
    from trl import DPOTrainer

    if loss_type not in LOSS_TYPES.values():
        raise ValueError(f"unknown loss_type {loss_type!r}; use one of {sorted(LOSS_TYPES.values())}")
    if not pairs:
        raise ValueError("no preference pairs to train on")
    columns = ("prompt", "chosen", "rejected", "tools")
    dataset = Dataset.from_list([{k: p.get(k) for k in columns} for p in pairs])
    history: dict[str, list[float]] = {"step": [], "loss": [], "reward_margin": [], "reward_accuracy": []}

    class Record(TrainerCallback):
        def on_log(self, args, state, control, logs=None, **kwargs):
            if logs and "loss" in logs:
                history["step"].append(state.global_step)
                history["loss"].append(float(logs["loss"]))
                history["reward_margin"].append(float(logs.get("rewards/margins", math.nan)))
                history["reward_accuracy"].append(float(logs.get("rewards/accuracies", math.nan)))

    args = dpo_config(budget, output_dir, loss_type=loss_type, beta=beta, sft_weight=sft_weight, seed=seed)
    reference = copy.deepcopy(model).eval().requires_grad_(False)
    trainer = DPOTrainer(model=model, ref_model=reference, args=args,
                         train_dataset=dataset, processing_class=tokenizer, callbacks=[Record()])
    start = time.perf_counter()
    result = trainer.train()
    return {"history": history, "wall_time_s": round(time.perf_counter() - start, 1),
            "train_loss": round(float(result.training_loss), 4), "steps": int(result.global_step)}


# --------------------------------------------------------------------------- evaluation helpers
def output_tokens(report, tokenizer) -> list[int]:
    """Token counts of every reply in an evaluation report (extraction replies, and each
    assistant turn of the tool-use episodes): how long the policy's answers are."""
    texts = [e["output"] for e in report.examples if "output" in e]
    texts += [s["output"] for e in report.examples for s in e.get("scores", []) if "output" in s]
    return [n_tokens(tokenizer, t) for t in texts]


def preference_tasks(budget: PreferenceBudget) -> tuple[str, ...]:
    """The tasks a preference budget samples prompts from (a task with no prompts is left out,
    of the pairs and of the per-round evaluation)."""
    return tuple(t for t, n in (("extraction", budget.extraction_prompts), ("tool_use", budget.tool_use_rows)) if n)


def round_metrics(model, tokenizer, preset: Preset) -> dict[str, Any]:
    """The held-out test metrics of a policy on the tasks it is optimised for, and the mean
    length of its replies."""
    from .evaluate import evaluate

    reports = {task: evaluate(model, task, "test", preset, tokenizer=tokenizer)
               for task in preference_tasks(preset.preference)}
    return summarise_reports(reports, tokenizer)


def summarise_reports(reports: Mapping[str, Any], tokenizer) -> dict[str, Any]:
    """Eval reports (task -> ``EvalReport``) as a ``rounds.json`` entry records them: the rates,
    their successes and trials (for difference intervals later), and the mean reply length."""
    lengths = [n for r in reports.values() for n in output_tokens(r, tokenizer)]
    return {"metrics": {task: r.metrics() for task, r in reports.items()},
            "successes": {task: {k: [v.successes, v.n] for k, v in r.rates.items()} for task, r in reports.items()},
            "mean_output_tokens": round(statistics.fmean(lengths), 2) if lengths else 0.0}


# --------------------------------------------------------------------------- the stages
def on_policy_dpo(source: Path, preset: Preset, out: Path, scratch: Path, *, variant: str) -> dict[str, Any]:
    """``preset.preference.rounds`` rounds of sample -> score -> pair -> DPO from the checkpoint at
    ``source``; each round starts from (and is regularised towards) the previous round's policy.

    Writes the final policy to ``out`` with ``pairs-round-<r>.jsonl`` and ``rounds.json`` (per
    round: pair statistics, DPO history, test metrics and mean reply length).
    """
    from .models import load_model
    from .tokenizer import load_tokenizer, save_tokenizer

    if variant not in LOSS_TYPES:
        raise ValueError(f"unknown DPO variant {variant!r}; variants: {', '.join(LOSS_TYPES)}")
    budget = preset.preference
    if budget is None:
        raise ValueError(f"preset {preset.name!r} has no preference budget")
    beta = budget.beta_normalised if variant == "normalised" else budget.beta
    model, tokenizer = load_model(source), load_tokenizer(source)
    rounds = []
    for r in range(1, budget.rounds + 1):
        start = time.perf_counter()
        cases = preference_cases("train", extraction=budget.extraction_prompts, tool_use=budget.tool_use_rows,
                                 offset=(r - 1) * max(budget.extraction_prompts, budget.tool_use_rows))
        pair_set = sample_pairs(model, tokenizer, cases, samples=budget.samples, temperature=budget.temperature,
                                max_new_tokens=budget.max_new_tokens, min_margin=budget.min_margin,
                                batch_size=preset.eval.batch_size, seed=preset.seed + r)
        save_pairs(pair_set.pairs, out / f"pairs-round-{r}.jsonl")
        # No pair: every prompt's samples scored alike, so there is nothing to prefer (the cold
        # start of notebook 04); the round is recorded and the policy left as it was.
        trained = (train_dpo(model, tokenizer, pair_set.pairs, budget.train, scratch / f"round-{r}",
                             loss_type=LOSS_TYPES[variant], beta=beta, sft_weight=budget.sft_weight,
                             seed=preset.seed + r)
                   if pair_set.pairs else None)
        rounds.append({"round": r, "pairs": pair_set.stats(), "dpo": trained, **round_metrics(model, tokenizer, preset),
                       "wall_time_s": round(time.perf_counter() - start, 1)})
    model.save_pretrained(out)
    save_tokenizer(tokenizer, out)
    (out / "rounds.json").write_text(json.dumps(rounds, indent=1))
    last = rounds[-1]
    return {"variant": variant, "loss_type": LOSS_TYPES[variant], "beta": beta, "rounds": budget.rounds,
            "pairs": [x["pairs"]["pairs"] for x in rounds], "final": last["metrics"],
            "mean_output_tokens": last["mean_output_tokens"]}


def load_rounds(artifact) -> list[dict[str, Any]]:
    """The per-round record a preference artifact saved (``rounds.json``)."""
    return json.loads((Path(artifact.path) / "rounds.json").read_text())


def _config(preset: Preset, variant: str) -> dict[str, Any]:
    if preset.preference is None:
        raise ValueError(f"preset {preset.name!r} has no preference budget")
    from .pipeline import data_fingerprint

    return {"variant": variant, "budget": dataclasses.asdict(preset.preference), "eval": dataclasses.asdict(preset.eval),
            "data": {t: data_fingerprint(f"{t}/train.jsonl") for t in preference_tasks(preset.preference)},
            "seed": preset.seed}


def _register() -> None:
    from .pipeline import Stage, register

    for name, variant in (("preference", "normalised"), ("preference_standard", "standard")):
        register(Stage(
            name=name,
            description=f"On-policy DPO from the SFT model, {variant} loss ({LOSS_TYPES[variant]}), "
                        "pairs scored by the verifiers, several rounds.",
            deps=("sft",),
            config=lambda p, v=variant: _config(p, v),
            build=lambda ctx, v=variant: on_policy_dpo(ctx.deps["sft"].path, ctx.preset, ctx.out, ctx.scratch,
                                                       variant=v),
        ))


_register()


# --------------------------------------------------------------------------- reading the results
def trl_loss_code(loss_type: str) -> str:
    """The branch of the installed TRL's ``DPOTrainer._compute_loss`` that computes ``loss_type``
    (so a learner can see what an option really does, in the version they run)."""
    import inspect

    from trl import DPOTrainer

    lines = inspect.getsource(DPOTrainer._compute_loss).splitlines()
    start = next((i for i, line in enumerate(lines) if f'loss_type == "{loss_type}"' in line), None)
    if start is None:
        raise ValueError(f"the installed TRL's DPOTrainer has no loss_type {loss_type!r}")
    indent = len(lines[start]) - len(lines[start].lstrip())
    end = next(i for i in range(start + 1, len(lines))
               if lines[i].strip() and len(lines[i]) - len(lines[i].lstrip()) <= indent)
    return "\n".join(line[indent:] for line in lines[start:end]).rstrip()


def stage_start(reports: Mapping[str, Any], tokenizer) -> dict[str, Any]:
    """Round 0 in the shape of a ``rounds.json`` entry, from the starting model's eval reports."""
    return {"round": 0, **summarise_reports(reports, tokenizer)}


def improvement_table(start: Mapping[str, Any], finals: Mapping[str, Mapping[str, Any]],
                      metrics: Mapping[str, tuple[str, str]]):
    """One row per (variant, metric): the starting rate, the final rate, their difference and its
    95% interval (:func:`~lfm_helpers.evaluate.difference_interval`)."""
    import pandas as pd

    from .evaluate import Rate, difference_interval

    rows = []
    for variant, final in finals.items():
        for label, (task, rate) in metrics.items():
            before, after = Rate(*start["successes"][task][rate]), Rate(*final["successes"][task][rate])
            diff, lo, hi = difference_interval(after, before)
            rows.append({"variant": variant, "metric": label, "before": round(before.value, 3),
                         "after": round(after.value, 3), "difference": round(diff, 3),
                         "95% interval": f"[{lo:+.3f}, {hi:+.3f}]", "clearly better": lo > 0})
    return pd.DataFrame(rows).set_index(["variant", "metric"])


# --------------------------------------------------------------------------- a length-bias stress test
#: A polite tail that adds tokens and no task value (the verifiers read the first JSON object, so
#: it changes no score): appended to the chosen side, it makes "longer" and "preferred" coincide,
#: as they often do in chat preference data.
VERBOSE_TAIL = " I hope this helps. Let me know if there is anything else I can do for you."


def with_verbose_chosen(pairs: Sequence[Mapping[str, Any]], tokenizer, *, tail: str = VERBOSE_TAIL,
                        every: int = 1) -> list[dict[str, Any]]:
    """Copies of ``pairs`` in which every ``every``-th chosen reply ends with ``tail`` (token
    counts updated); the originals are left as they are."""
    import copy

    if every < 1:
        raise ValueError(f"every must be at least 1, got {every}")
    out = []
    for i, pair in enumerate(pairs):
        pair = copy.deepcopy(dict(pair))
        if i % every == 0:
            pair["chosen"][-1]["content"] += tail
            pair["chosen_tokens"] = n_tokens(tokenizer, pair["chosen"][-1]["content"])
        out.append(pair)
    return out


@torch.no_grad()
def ending_logodds(model, tokenizer, prompts: Sequence[Sequence[int]], replies: Sequence[str], *,
                   tail: str = VERBOSE_TAIL) -> float:
    """Mean log-odds, in nats, of ending each reply with ``tail`` and then end-of-turn rather than
    with end-of-turn at once: ``log p(tail, <|im_end|> | x, y) - log p(<|im_end|> | x, y)``.

    A continuous measure of how much a policy prefers the verbose ending, useful long before the
    preference is strong enough to change a greedy reply.
    """
    if len(prompts) != len(replies) or not prompts:
        raise ValueError("need one reply per prompt, and at least one")
    end = tokenizer.convert_tokens_to_ids("<|im_end|>")
    if not isinstance(end, int) or end == tokenizer.unk_token_id:
        raise ValueError("the tokenizer has no <|im_end|> token (a chat tokenizer is needed)")
    tail_ids = tokenizer(tail, add_special_tokens=False)["input_ids"] + [end]
    device = next(model.parameters()).device
    values = []
    for prompt, reply in zip(prompts, replies):
        head = list(prompt) + tokenizer(reply, add_special_tokens=False)["input_ids"]
        logits = model(torch.tensor([head + tail_ids], device=device)).logits[0, len(head) - 1:-1]
        logp = torch.log_softmax(logits.float(), -1)
        verbose = logp[torch.arange(len(tail_ids)), torch.tensor(tail_ids, device=device)].sum()
        values.append(float(verbose - logp[0, end]))
    return statistics.fmean(values)


def length_bias_experiment(model, tokenizer, pairs: Sequence[Mapping[str, Any]], preset: Preset,
                           cases: Sequence[Case], *, steps: int, tail: str = VERBOSE_TAIL):
    """Train a copy of ``model`` with each DPO variant on ``pairs`` whose chosen side ends with
    ``tail`` (no chosen-NLL term, so only the preference loss acts), then measure on ``cases``:
    the log-odds of the verbose ending after the starting model's greedy replies
    (:func:`ending_logodds`), the greedy replies' mean length and share ending in the tail, and
    their mean verifier score. One row for the start and one per variant.
    """
    import copy
    import tempfile

    import pandas as pd

    from .sampling import Sampling, chat_prompt_ids, generate_batch

    budget = preset.preference
    if budget is None:
        raise ValueError(f"preset {preset.name!r} has no preference budget")
    biased = with_verbose_chosen(pairs, tokenizer, tail=tail)
    prompts = [chat_prompt_ids(tokenizer, c.messages, c.tools) for c in cases]
    marker = tail.strip()[:20]

    def measure(policy, replies_at_start=None):
        replies = generate_batch(policy, tokenizer, prompts, Sampling(max_new_tokens=budget.max_new_tokens),
                                 batch_size=preset.eval.batch_size, desc="greedy")
        return replies, {
            "verbose-ending log-odds": round(ending_logodds(policy, tokenizer, prompts, replies_at_start or replies,
                                                            tail=tail), 2),
            "greedy reply tokens": round(statistics.fmean(n_tokens(tokenizer, r) for r in replies), 2),
            "greedy replies with the tail": round(statistics.fmean(marker in r for r in replies), 3),
            "mean score": round(statistics.fmean(score(c, r) for c, r in zip(cases, replies)), 3),
        }

    start_replies, start = measure(model)
    rows = {"start": start}
    train = dataclasses.replace(budget.train, max_steps=steps)
    with tempfile.TemporaryDirectory() as scratch:
        for variant, loss_type in LOSS_TYPES.items():
            policy = copy.deepcopy(model)
            beta = budget.beta_normalised if variant == "normalised" else budget.beta
            train_dpo(policy, tokenizer, biased, train, Path(scratch) / variant, loss_type=loss_type, beta=beta,
                      seed=preset.seed)
            rows[variant] = measure(policy, start_replies)[1]
    return pd.DataFrame(rows).T


from . import rl as _rl  # noqa: E402,F401  (its stage builds on "preference"; see pipeline.py)
