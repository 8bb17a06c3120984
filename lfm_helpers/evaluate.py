"""The evaluation harness every post-training stage reports: the two narrow tasks, scored by verifiers.

- **Extraction**: the model gets the system prompt (the field list) and the text, and must reply
  with one JSON object. Reported: valid-JSON rate, schema-valid rate, exact match (the whole
  object right) and *field* exact match (each target field counted on its own).
- **Tool use**, in a real multi-turn loop: the model gets the system prompt, the tools offered
  and the first user message. When it writes a tool call, the call is parsed (never
  ``eval``-ed) and run against the tool registry, and the *real* result goes back in a ``tool``
  turn; when it answers, the next user message of the conversation follows. Each assistant turn
  is compared with the turn at the same position in the reference conversation: call turns by
  name and arguments (:func:`~lfm_helpers.verifiers.verify_tool_call`), answer turns by whether
  they contain the expected value (:func:`~lfm_helpers.verifiers.verify_final_answer`). A wrong
  call therefore usually costs the answer too, as it would in a product.

Every rate comes with the number of trials and a 95% Wilson interval: on 64 examples a rate of
0.80 is really "somewhere between 0.69 and 0.88", and two checkpoints whose intervals overlap
that much are not shown to differ.

What is simplified: generation is greedy by default (the preset's sampling settings), each
example is scored once, and the field-level rate treats fields as independent trials (they are
not quite: one misread sentence can cost two fields), so its interval is a little too narrow.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .sampling import Sampling, chat_prompt_ids, generate_batch
from .tools import ToolError, call_tool, parse_tool_calls, tool_schemas
from .verifiers import verify_extraction, verify_final_answer, verify_tool_call

TASKS = ("extraction", "tool_use")
Z_95 = 1.959964  # two-sided 95% normal quantile


def wilson_interval(successes: int, n: int, z: float = Z_95) -> tuple[float, float]:
    """The Wilson score interval of a binomial rate: unlike ``p +- 1.96 sqrt(p(1-p)/n)`` it stays
    inside [0, 1] and is honest at rates near 0 or 1, where small evaluations live."""
    if n <= 0:
        return (0.0, 1.0)
    if not 0 <= successes <= n:
        raise ValueError(f"successes={successes} is outside 0..{n}")
    p = successes / n
    centre = (p + z * z / (2 * n)) / (1 + z * z / n)
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / (1 + z * z / n)
    return (max(0.0, centre - half), min(1.0, centre + half))


def difference_interval(after: "Rate", before: "Rate") -> tuple[float, float, float]:
    """``after - before`` and its 95% interval (Newcombe's method from the two Wilson intervals):
    how a later stage's rate moved from an earlier one's on the same split.

    The two rates are treated as independent samples, which they are not quite (same prompts),
    so the interval is conservative.
    """
    pa, pb = after.value, before.value
    (la, ua), (lb, ub) = after.interval, before.interval
    diff = pa - pb
    return diff, diff - math.sqrt((pa - la) ** 2 + (ub - pb) ** 2), diff + math.sqrt((ua - pa) ** 2 + (pb - lb) ** 2)


@dataclass(frozen=True)
class Rate:
    """``successes`` out of ``n`` trials, with its 95% interval."""

    successes: int
    n: int

    @property
    def value(self) -> float:
        return self.successes / self.n if self.n else 0.0

    @property
    def interval(self) -> tuple[float, float]:
        return wilson_interval(self.successes, self.n)


@dataclass
class EvalReport:
    """The rates of one evaluation, and each example's outputs for a learner to read."""

    task: str
    split: str
    n_examples: int
    rates: dict[str, Rate]
    examples: list[dict[str, Any]] = field(default_factory=list)

    def metrics(self) -> dict[str, float]:
        """``{rate name: value}`` plus ``n_examples``: what manifests and notebooks record."""
        return {"n_examples": self.n_examples, **{k: round(r.value, 4) for k, r in self.rates.items()}}

    def table(self):
        """A pandas DataFrame: one row per rate, with successes, trials and the 95% interval."""
        import pandas as pd

        rows = [{"metric": name, "rate": round(r.value, 3), "95% low": round(r.interval[0], 3),
                 "95% high": round(r.interval[1], 3), "successes": r.successes, "n": r.n}
                for name, r in self.rates.items()]
        return pd.DataFrame(rows).set_index("metric")

    def by_family(self) -> dict[str, dict[str, float]]:
        """The task's headline rate in each template family: ``{family: {"rate": r, "n": examples}}``.

        Extraction: the mean share of fields right; tool use: the share of expected calls made
        exactly right. Held-out families that trail the rest point at phrasings the model has not
        learnt to generalise to, which more steps on the same families will not fix.
        """
        groups: dict[str, list[dict[str, Any]]] = {}
        for ex in self.examples:
            groups.setdefault(ex["family"], []).append(ex)
        out = {}
        for family, exs in sorted(groups.items()):
            if self.task == "extraction":
                rate = sum(ex["field_accuracy"] for ex in exs) / len(exs)
            else:
                calls = [s for ex in exs for s in ex["scores"] if s["kind"] == "call"]
                rate = sum(bool(s["correct"]) for s in calls) / len(calls) if calls else float("nan")
            out[family] = {"rate": round(rate, 4), "n": len(exs)}
        return out

    def to_dict(self) -> dict[str, Any]:
        return {"task": self.task, "split": self.split, "n_examples": self.n_examples,
                "rates": {k: {"successes": r.successes, "n": r.n} for k, r in self.rates.items()},
                "examples": self.examples}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> "EvalReport":
        return cls(data["task"], data["split"], data["n_examples"],
                   {k: Rate(v["successes"], v["n"]) for k, v in data["rates"].items()}, list(data["examples"]))


# --------------------------------------------------------------------------- extraction
def evaluate_extraction(model, tokenizer, rows: Sequence[Mapping[str, Any]], schemas: Mapping[str, Any],
                        sampling: Sampling, *, batch_size: int = 16, split: str = "?") -> EvalReport:
    """Generate one reply per extraction row and score it against the row's target."""
    from .data import extraction_messages

    prompts = [chat_prompt_ids(tokenizer, extraction_messages(r, schemas, with_answer=False)) for r in rows]
    outputs = generate_batch(model, tokenizer, prompts, sampling, batch_size=batch_size, desc="extraction")
    counts = {"valid_json": 0, "schema_valid": 0, "exact_match": 0}
    fields_right = fields_total = 0
    examples = []
    for row, out in zip(rows, outputs, strict=True):
        v = verify_extraction(out, row["target"], schemas[row["record_type"]])
        for key in counts:
            counts[key] += bool(v[key])
        fields_right += round(v["field_accuracy"] * len(row["target"]))
        fields_total += len(row["target"])
        examples.append({"id": row["id"], "family": row["family"], "output": out, **v})
    n = len(rows)
    rates = {k: Rate(c, n) for k, c in counts.items()}
    rates["field_exact_match"] = Rate(fields_right, fields_total)
    return EvalReport("extraction", split, n, rates, examples)


# --------------------------------------------------------------------------- tool use
@dataclass
class _Episode:
    """One conversation replayed live: the reference's user turns, the model's own assistant
    and tool turns, and the reference turns each model turn is scored against."""

    row: Mapping[str, Any]
    tools: list[dict[str, Any]]
    groups: list[tuple[dict[str, str], list[Any]]]  # (user message, reference assistant turns)
    messages: list[dict[str, str]]
    scores: list[dict[str, Any]] = field(default_factory=list)
    group: int = 0
    position: int = 0  # index of the next reference turn within the current group
    done: bool = False

    @classmethod
    def start(cls, row: Mapping[str, Any]) -> "_Episode":
        from .data import conversation_turns

        turns = conversation_turns(row)
        msgs = row["messages"]
        groups: list[tuple[dict[str, str], list[Any]]] = []
        for i, m in enumerate(msgs):
            if m["role"] == "user":
                groups.append((dict(m), []))
            elif m["role"] == "assistant":
                if not groups:
                    raise ValueError(f"{row['id']}: an assistant turn comes before any user turn")
                groups[-1][1].append(next(t for t in turns if t.index == i))
        system = [dict(m) for m in msgs if m["role"] == "system"][:1]
        ep = cls(row, tool_schemas(row["tools"]), groups, system)
        ep.messages.append(ep.groups[0][0])
        return ep

    def receive(self, text: str, run_tool: Callable[[str, Mapping[str, Any]], str]) -> None:
        """Score the model's reply against the reference turn at this position, then run its
        tool calls (the conversation goes on with their real results) or move to the next user
        message (an answer ends the user's turn)."""
        expected = self.groups[self.group][1]
        ref = expected[self.position]
        check = verify_tool_call(text, ref.expected_calls)
        made_call = bool(check["calls"])
        if ref.kind == "call":
            self.scores.append({"kind": "call", "parsed": check["parsed"], "name_correct": check["name_correct"],
                                "correct": check["args_correct"], "output": text})
        else:
            correct = not made_call and verify_final_answer(text, ref.expected_answer)
            self.scores.append({"kind": "answer", "correct": correct, "output": text})
        self.messages.append({"role": "assistant", "content": text})
        self.position += 1
        if made_call and self.position < len(expected):
            results = []
            for call in parse_tool_calls(text):
                try:
                    results.append(run_tool(call.name, call.arguments))
                except ToolError as exc:
                    results.append(f"error: {exc}")
            self.messages.append({"role": "tool", "content": "\n".join(results)})
            return
        # The model answered (or used up the reference's turns): what is left of this user turn
        # is failed, and the next user message follows.
        for missed in expected[self.position:]:
            self.scores.append({"kind": missed.kind, "correct": False, "parsed": False, "name_correct": False,
                                "output": None})
        self.group, self.position = self.group + 1, 0
        if self.group == len(self.groups):
            self.done = True
        else:
            self.messages.append(self.groups[self.group][0])


def evaluate_tool_use(model, tokenizer, rows: Sequence[Mapping[str, Any]], sampling: Sampling, *,
                      batch_size: int = 16, split: str = "?",
                      run_tool: Callable[[str, Mapping[str, Any]], str] = call_tool) -> EvalReport:
    """Play each conversation live against the tools and score every assistant turn.

    Rounds of generation: each round answers every unfinished conversation once (batched), so a
    conversation of k assistant turns costs k rounds, whatever the number of conversations.
    """
    episodes = [_Episode.start(r) for r in rows]
    round_ = 0
    while active := [e for e in episodes if not e.done]:
        round_ += 1
        prompts = [chat_prompt_ids(tokenizer, e.messages, e.tools) for e in active]
        outputs = generate_batch(model, tokenizer, prompts, sampling, batch_size=batch_size,
                                 desc=f"tool use, round {round_}")
        for ep, out in zip(active, outputs, strict=True):
            ep.receive(out, run_tool)
    calls = [s for e in episodes for s in e.scores if s["kind"] == "call"]
    answers = [s for e in episodes for s in e.scores if s["kind"] == "answer"]
    rates = {
        "call_parsed": Rate(sum(bool(s["parsed"]) for s in calls), len(calls)),
        "call_name": Rate(sum(bool(s["name_correct"]) for s in calls), len(calls)),
        "call_accuracy": Rate(sum(bool(s["correct"]) for s in calls), len(calls)),
        "final_answer_accuracy": Rate(sum(bool(s["correct"]) for s in answers), len(answers)),
        "conversation_success": Rate(sum(all(s["correct"] for s in e.scores) for e in episodes), len(episodes)),
    }
    examples = [{"id": e.row["id"], "family": e.row["family"], "messages": e.messages[1:], "scores": e.scores}
                for e in episodes]
    return EvalReport("tool_use", split, len(rows), rates, examples)


# --------------------------------------------------------------------------- one call
def eval_sampling(preset) -> Sampling:
    """The decoding settings a preset evaluates with."""
    return Sampling(max_new_tokens=preset.eval.max_new_tokens, temperature=preset.eval.temperature,
                    seed=preset.seed)


def evaluate(model_or_path, task: str, split: str = "test", preset=None, *, n: int | None = None,
             tokenizer=None, sampling: Sampling | None = None) -> EvalReport:
    """Evaluate a model folder (or a loaded model with its ``tokenizer``) on one task's split.

    ``n`` defaults to the preset's ``eval.num_examples`` (the first rows of the split, which the
    generators shuffled, so every template family and record type is represented).
    """
    from .paths import preset_data
    from .presets import load_preset

    if task not in TASKS:
        raise ValueError(f"unknown task {task!r}; tasks: {', '.join(TASKS)}")
    preset = preset or load_preset(check_device=False)
    with preset_data(preset):  # a preset with a data folder of its own is evaluated on it
        return _evaluate(model_or_path, task, split, preset, n=n, tokenizer=tokenizer, sampling=sampling)


def _evaluate(model_or_path, task: str, split: str, preset, *, n: int | None, tokenizer, sampling) -> EvalReport:
    from .data import load_schemas, load_split

    if isinstance(model_or_path, (str, Path)):
        from .device import pick_device
        from .models import load_model
        from .tokenizer import load_tokenizer

        tokenizer = tokenizer or load_tokenizer(model_or_path)
        model = load_model(model_or_path, device=pick_device().device)
    else:
        model = model_or_path
        if tokenizer is None:
            raise ValueError("pass tokenizer= with a loaded model")
    rows = load_split(task, split)[: n or preset.eval.num_examples]
    sampling = sampling or eval_sampling(preset)
    kwargs = dict(batch_size=preset.eval.batch_size, split=split)
    if task == "extraction":
        return evaluate_extraction(model, tokenizer, rows, load_schemas(), sampling, **kwargs)
    return evaluate_tool_use(model, tokenizer, rows, sampling, **kwargs)


def write_report(report: EvalReport, path: Path) -> None:
    """Save a report as JSON, atomically (rates and every example's outputs)."""
    from .artifacts import atomic_write_text

    atomic_write_text(Path(path), json.dumps(report.to_dict(), indent=1) + "\n")


def evaluate_stage(stage: str, task: str, split: str = "test", preset=None, *, n: int | None = None,
                   root: Path | None = None, log: Callable[[str], None] = print) -> EvalReport:
    """Evaluate the model a pipeline stage saved, reusing the stored report when the artifact and
    the evaluation settings are the same (``runs/<preset>/evals/``).

    Every later notebook compares its stage against earlier ones on the same split; this way
    each checkpoint is evaluated once per preset, not once per notebook.
    """
    from .pipeline import run_stage
    from .presets import load_preset

    preset = preset or load_preset(check_device=False)
    art = run_stage(stage, preset, root=root, log=log)
    key = {"artifact": art.config_hash, "task": task, "split": split, "n": n}
    return cached_report(f"{stage}-{task}-{split}", key, preset, lambda: evaluate(art.path, task, split, preset, n=n),
                         root=root, log=log)


def cached_report(name: str, key: Mapping[str, Any], preset, compute: Callable[[], EvalReport], *,
                  root: Path | None = None, log: Callable[[str], None] = print) -> EvalReport:
    """The report stored as ``runs/<preset>/evals/<name>-<hash>.json``, where the hash covers
    ``key`` and the preset's evaluation settings; ``compute()`` makes and stores it when missing."""
    import dataclasses

    from .artifacts import config_hash
    from .paths import runs_dir

    digest = config_hash({**key, "eval": dataclasses.asdict(preset.eval)})
    path = Path(root or runs_dir()) / preset.name / "evals" / f"{name}-{digest}.json"
    if path.is_file():
        log(f"[{preset.name}/evals] reusing {path.name}")
        return EvalReport.from_dict(json.loads(path.read_text()))
    report = compute()
    write_report(report, path)
    return report


# --------------------------------------------------------------------------- reward signal
def first_call_prompts(rows: Sequence[Mapping[str, Any]], limit: int) -> list[tuple[list[dict], list[dict], list]]:
    """``(messages, tools, expected_calls)`` for the first assistant turn of up to ``limit``
    conversations whose first turn is a tool call: the prompts an RL stage would sample on."""
    from .data import conversation_turns

    out = []
    for row in rows:
        turn = conversation_turns(row)[0]
        if turn.kind == "call":
            out.append((turn.prefix, tool_schemas(row["tools"]), turn.expected_calls))
        if len(out) == limit:
            break
    return out


def reward_signal(model, tokenizer, rows: Sequence[Mapping[str, Any]], *, prompts: int, samples: int,
                  temperature: float, max_new_tokens: int = 64, seed: int = 0, batch_size: int = 16) -> dict[str, float]:
    """What GRPO-style RL would see on the tool-use task: ``samples`` sampled completions for each
    of ``prompts`` first-turn prompts, each scored by :func:`~lfm_helpers.verifiers.tool_call_reward`.

    RL learns from the *differences* between a prompt's samples (a group whose rewards are all
    equal has zero advantage and teaches nothing), so besides the mean reward this reports the
    mean within-prompt standard deviation and the share of prompts whose samples differ at all.
    ``greedy_call_accuracy`` is the task metric at temperature 0 on the same prompts.
    """
    import statistics

    from .verifiers import tool_call_reward

    cases = first_call_prompts(rows, prompts)
    if not cases:
        raise ValueError("no tool-use rows whose first turn is a call")
    ids = [chat_prompt_ids(tokenizer, msgs, tools) for msgs, tools, _ in cases]
    sampled = generate_batch(model, tokenizer, [p for p in ids for _ in range(samples)],
                             Sampling(max_new_tokens=max_new_tokens, temperature=temperature, seed=seed),
                             batch_size=batch_size, desc="sampling")
    greedy = generate_batch(model, tokenizer, ids, Sampling(max_new_tokens=max_new_tokens),
                            batch_size=batch_size, desc="greedy")
    groups = [[tool_call_reward(sampled[i * samples + j], cases[i][2]) for j in range(samples)]
              for i in range(len(cases))]
    spreads = [statistics.pstdev(g) for g in groups]
    return {
        "prompts": len(cases),
        "samples": samples,
        "mean_reward": round(statistics.fmean(r for g in groups for r in g), 4),
        "reward_std_within_prompt": round(statistics.fmean(spreads), 4),
        "prompts_with_signal": round(sum(s > 0 for s in spreads) / len(spreads), 4),
        "greedy_call_accuracy": round(statistics.fmean(tool_call_reward(g, c[2]) == 1.0
                                                       for g, c in zip(greedy, cases, strict=True)), 4),
    }
