"""Doom loops (notebook 07): find them, measure how often a model falls into them, stop them.

A *doom loop* is a generation that repeats the same block again and again until the token budget
runs out. :func:`detect_loop` finds the earliest block (any period, from one token or character
to hundreds) that repeats at least ``min_repeats`` times in a row, and reports its period, where
it starts, how many times it repeats and how much of the budget it used. It works on text (a
``str``, compared character by character) and on token ids (any sequence of ints).

Repetition is not always a loop: a JSON array of similar objects, a numbered list, code with
similar lines, a refrain. Exact repetition of a whole block is what separates a loop from those
(the items of a list differ somewhere), plus two guards against legitimate exact repeats: the
repeated region must cover at least ``min_span`` units (``"...."`` or a run of spaces is not a
loop), and in text a block with no letter or digit in it (a horizontal rule, table borders,
indentation) only counts when it runs to the end of the text. :func:`detector_scores` measures
precision and recall on the labelled set shipped in ``data/loops/labelled.jsonl``
(:func:`labelled_examples` generates it with the rest of ``data/``, and the data check
regenerates it).

Cheaper signals, for dashboards: :func:`repeated_ngram_rate` and :func:`compression_ratio`.
:class:`LoopGuard` uses the detector while generating, to stop a sequence once it loops.

Simplified: exact repeats only. A loop whose block drifts (a counter that increments) is missed,
and legitimately identical items are flagged; the labelled set includes both, so the misses are
measured, not hidden.
"""

from __future__ import annotations

import json
import random
import statistics
import zlib
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

#: Defaults: a block repeated 4 times in a row, covering at least 32 characters or 12 tokens.
MIN_REPEATS = 4
MIN_SPAN = {"text": 32, "tokens": 12}


@dataclass(frozen=True)
class Loop:
    """A repeated block: ``period`` units long, first seen at ``onset``, ``repeats`` times in a row
    (the last copy may be cut short by the budget), covering ``span`` units; ``budget_share`` is
    ``span`` over the budget (the sequence's length unless one is given)."""

    period: int
    onset: int
    repeats: int
    span: int
    budget_share: float
    runs_to_end: bool
    block: str | list[int]


def _units(seq: str | Sequence[int]) -> np.ndarray:
    if isinstance(seq, str):
        return np.frombuffer(seq.encode("utf-32-le"), dtype=np.uint32) if seq else np.zeros(0, np.uint32)
    return np.asarray(list(seq), dtype=np.int64)


def _runs(matches: np.ndarray) -> list[tuple[int, int]]:
    """(start, length) of every run of True in ``matches``."""
    if not matches.any():
        return []
    padded = np.concatenate(([False], matches, [False]))
    edges = np.flatnonzero(padded[1:] != padded[:-1])
    return [(int(a), int(b - a)) for a, b in zip(edges[::2], edges[1::2])]


def detect_loop(seq: str | Sequence[int], *, min_repeats: int = MIN_REPEATS, max_period: int = 512,
                min_span: int | None = None, budget: int | None = None, to_end: bool = False) -> Loop | None:
    """The earliest loop in ``seq`` (shortest period among those starting there), or ``None``.

    A loop of period ``p`` at ``onset`` means ``seq[k] == seq[k + p]`` for every ``k`` from
    ``onset`` over at least ``(min_repeats - 1) * p`` positions, so the block ``seq[onset:onset+p]``
    appears ``min_repeats`` times in a row; it must also cover ``min_span`` units (default 32
    characters for text, 12 for token ids). ``budget`` (default ``len(seq)``) is what
    ``budget_share`` is measured against: a generation's ``max_new_tokens`` when ``seq`` is its
    token ids. ``to_end=True`` keeps only loops that run to the end of ``seq``: the doom-loop
    signature (the model never got out), which spares legitimate repeats that are followed by
    anything else.
    """
    if min_repeats < 2:
        raise ValueError(f"min_repeats must be at least 2, got {min_repeats}")
    is_text = isinstance(seq, str)
    min_span = MIN_SPAN["text" if is_text else "tokens"] if min_span is None else min_span
    units = _units(seq)
    n = len(units)
    best: Loop | None = None
    for period in range(1, min(max_period, n // min_repeats) + 1):
        for start, length in _runs(units[:-period] == units[period:]):
            span = length + period
            if span // period < min_repeats or span < min_span:
                continue
            if best is not None and start >= best.onset:
                break
            block = seq[start:start + period]
            runs_to_end = start + span >= n
            if to_end and not runs_to_end:
                continue
            if is_text and not any(ch.isalnum() for ch in block) and not runs_to_end:
                continue  # formatting (a rule, table borders, indentation) that ends: not a loop
            best = Loop(period=period, onset=start, repeats=span // period, span=span,
                        budget_share=span / (budget or n), runs_to_end=runs_to_end,
                        block=block if is_text else [int(t) for t in block])
            break
    return best


def repeated_ngram_rate(seq: str | Sequence[int], n: int = 4) -> float:
    """Share of the ``n``-grams (of words for text, of ids otherwise) that already appeared
    earlier in ``seq``: 0 for text that never repeats itself, near 1 deep inside a loop."""
    items = seq.split() if isinstance(seq, str) else list(seq)
    grams = [tuple(items[i:i + n]) for i in range(len(items) - n + 1)]
    return 1 - len(set(grams)) / len(grams) if grams else 0.0


def compression_ratio(text: str) -> float:
    """Bytes of ``text`` over bytes of its zlib compression: about 1 to 3 for ordinary text, far
    higher for a loop (a compressor stores the repeats as references)."""
    raw = text.encode()
    return len(raw) / len(zlib.compress(raw, 9)) if raw else 0.0


# --------------------------------------------------------------------------- the labelled set
_WORDS = ("order", "lamp", "city", "price", "blue", "ship", "date", "river", "token", "model", "answer", "tool")
_SENTENCES = ("The order ships from Puerto Lindo on Monday.", "I will check the weather for you.",
              "The total price is 42 dollars.", "Let me look that up.", "The answer is in the table below.",
              "This model repeats itself when it is unsure.")


def _loop_text(rng: random.Random, period_kind: str) -> tuple[str, int]:
    """A looping generation: an ordinary prefix, then a block repeated until a budget is spent."""
    prefix = " ".join(rng.sample(_SENTENCES, rng.randint(0, 2)))
    if period_kind == "char":
        block = rng.choice("!?.ax\n")
    elif period_kind == "word":
        block = rng.choice(_WORDS) + " "
    elif period_kind == "phrase":
        block = " ".join(rng.sample(_WORDS, rng.randint(2, 4))) + ", "
    elif period_kind == "sentence":
        block = rng.choice(_SENTENCES) + " "
    elif period_kind == "paragraph":
        block = " ".join(rng.sample(_SENTENCES, 5)) + "\n"
    elif period_kind == "json":
        block = json.dumps({"name": rng.choice(_WORDS), "arguments": {"city": "Puerto Lindo"}}) + ", "
    elif period_kind == "counting":  # a loop whose block drifts (a counter): no exact repeat
        word = rng.choice(_WORDS)
        return prefix + "".join(f" Step {i}: check the {word}." for i in range(1, 60)), 0
    else:
        raise ValueError(period_kind)
    budget = max(len(prefix) + 5 * len(block), rng.randint(300, 900))
    text = (prefix + " " if prefix else "") + block * (budget // len(block) + 1)
    return text[:budget], len(block)


def _not_loop_text(rng: random.Random, kind: str) -> str:
    """Repetitive text that is not a loop: every item differs somewhere, or it repeats only a few times."""
    if kind == "json_array":
        items = [{"id": i, "name": rng.choice(_WORDS), "price": round(rng.uniform(1, 99), 2)} for i in range(rng.randint(6, 14))]
        return json.dumps(items)
    if kind == "numbered_list":
        return "\n".join(f"{i}. {rng.choice(_WORDS)} {rng.choice(_WORDS)}" for i in range(1, rng.randint(8, 16)))
    if kind == "code":
        names = rng.sample(_WORDS, 6)
        return "def total(row):\n" + "".join(f"    {a} = row['{a}'] * 2\n" for a in names) + "    return " + " + ".join(names)
    if kind == "refrain":
        line = rng.choice(_SENTENCES)
        return f"{line} {rng.choice(_SENTENCES)} {line} And again: {line} That is all."
    if kind == "table":
        rows = "".join(f"| {rng.choice(_WORDS)} | {rng.randint(1, 99)} | {rng.choice(_WORDS)} |\n" for _ in range(6))
        return "| a | b | c |\n|---|---|---|\n" + rows + "\n" + "-" * 40 + "\nDone."
    if kind == "prose":
        return " ".join(rng.choice(_SENTENCES) for _ in range(rng.randint(3, 6)))
    if kind == "laugh":  # a short exact repeat inside ordinary text
        return f"{rng.choice(_SENTENCES)} Ha ha ha ha! {rng.choice(_SENTENCES)}"
    if kind == "identical_items":  # legitimately identical items: an exact repeat a detector flags
        item = json.dumps({"sku": rng.choice(_WORDS), "quantity": 1})
        return "[" + ", ".join([item] * rng.randint(4, 6)) + "]"
    raise ValueError(kind)


LOOP_KINDS = ("char", "word", "phrase", "sentence", "paragraph", "json", "counting")
NOT_LOOP_KINDS = ("json_array", "numbered_list", "code", "refrain", "table", "prose", "laugh", "identical_items")


def labelled_examples(per_kind: int = 8, seed: int = 0) -> list[dict[str, Any]]:
    """The labelled detector set: ``per_kind`` looping texts of each period kind and ``per_kind``
    repetitive-but-not-looping texts of each kind, each with ``label`` (is it a loop?) and, for
    loops, the true ``period`` in characters. Two kinds are there to be hard: ``counting`` loops
    (a counter changes every repeat, so no block repeats exactly: the detector misses them) and
    ``identical_items`` (a JSON list of equal objects, which it flags)."""
    rng = random.Random(seed)
    rows = []
    for kind in LOOP_KINDS:
        for i in range(per_kind):
            text, period = _loop_text(rng, kind)
            rows.append({"id": f"loop-{kind}-{i}", "kind": kind, "label": True, "period": period or None,
                         "text": text})
    for kind in NOT_LOOP_KINDS:
        for i in range(per_kind):
            rows.append({"id": f"not-{kind}-{i}", "kind": kind, "label": False, "period": None,
                         "text": _not_loop_text(rng, kind)})
    return rows


def load_labelled(path: Path | None = None) -> list[dict[str, Any]]:
    """The shipped labelled set (``data/loops/labelled.jsonl``), checked row by row."""
    from .data.generate import REGENERATE_HINT
    from .paths import data_dir

    path = Path(path) if path else data_dir() / "loops" / "labelled.jsonl"
    if not path.exists():
        raise FileNotFoundError(f"{path} is missing; {REGENERATE_HINT}")
    rows = []
    for n, line in enumerate(path.read_text().splitlines(), 1):
        row = json.loads(line)
        if not isinstance(row.get("text"), str) or not isinstance(row.get("label"), bool):
            raise ValueError(f"{path}:{n}: a labelled row needs a string 'text' and a boolean 'label'")
        rows.append(row)
    return rows


def detector_scores(rows: Sequence[dict[str, Any]], **detect_kwargs) -> dict[str, Any]:
    """Precision, recall and the confusion counts of :func:`detect_loop` on labelled rows; per
    kind, the share flagged; and, for true loops found, the share whose period is exactly right."""
    flagged = [detect_loop(r["text"], **detect_kwargs) for r in rows]
    tp = sum(bool(f) and r["label"] for f, r in zip(flagged, rows))
    fp = sum(bool(f) and not r["label"] for f, r in zip(flagged, rows))
    fn = sum(not f and r["label"] for f, r in zip(flagged, rows))
    tn = len(rows) - tp - fp - fn
    kinds: dict[str, list[bool]] = {}
    for f, r in zip(flagged, rows):
        kinds.setdefault(r["kind"], []).append(f is not None)
    periods = [f.period == r["period"] for f, r in zip(flagged, rows) if f and r["label"]]
    return {"precision": tp / (tp + fp) if tp + fp else 1.0, "recall": tp / (tp + fn) if tp + fn else 1.0,
            "tp": tp, "fp": fp, "fn": fn, "tn": tn,
            "flagged_by_kind": {k: round(statistics.fmean(v), 3) for k, v in kinds.items()},
            "period_exact": round(statistics.fmean(periods), 3) if periods else 0.0}


# --------------------------------------------------------------------------- a loop-prone checkpoint
def looping_reply(reply: str, rng: random.Random, *, length: int = 400) -> str:
    """``reply`` (a JSON object's text) cut after a random field, then that field repeated until
    the text is ``length`` characters long: the doom loop of a model that lost its place."""
    fields = [i for i, ch in enumerate(reply) if ch == ","]
    if not fields:
        return (reply + " ") * (length // (len(reply) + 1) + 1)
    cut = rng.choice(fields) + 1
    start = reply.rfind(",", 0, cut - 1) + 1 or 1
    block = reply[start:cut]
    return (reply[:cut] + block * (length // len(block) + 1))[:length]


def loop_prone_examples(n: int, *, loop_share: float, seed: int = 0, offset: int = 0) -> list[dict[str, Any]]:
    """``n`` extraction SFT conversations from the train split (from row ``offset``) in which a
    ``loop_share`` of the answers are :func:`looping_reply` loops: the kind of data a small model
    picks loops up from (distilled traces that looped, cut at the teacher's budget)."""
    from .data import load_schemas, load_split
    from .sft import extraction_example

    if not 0 <= loop_share <= 1:
        raise ValueError(f"loop_share must be in [0, 1], got {loop_share}")
    rng = random.Random(seed)
    schemas = load_schemas()
    rows = load_split("extraction", "train")[offset:offset + n]
    if len(rows) < n:
        raise ValueError(f"the train split has {len(rows)} extraction rows from {offset}, not {n}")
    examples = []
    for row in rows:
        example = extraction_example(row, schemas)
        if rng.random() < loop_share:
            example["messages"][-1] = {**example["messages"][-1],
                                       "content": looping_reply(example["messages"][-1]["content"], rng)}
            example["looped"] = True
        examples.append(example)
    return examples


# --------------------------------------------------------------------------- measuring a model
def loop_rate(model, tokenizer, prompts: Sequence[Sequence[int]], sampling, *, batch_size: int = 16,
              desc: str | None = "generating", **detect_kwargs) -> dict[str, Any]:
    """Generate for every tokenised prompt and detect loops in the text: the loop rate (a
    :class:`~lfm_helpers.evaluate.Rate`, with its Wilson interval), the mean share of the token
    budget the loops used, the texts and the loops found."""
    from .evaluate import Rate
    from .sampling import generate_batch

    texts = generate_batch(model, tokenizer, prompts, sampling, batch_size=batch_size, desc=desc)
    loops = [detect_loop(t, **detect_kwargs) for t in texts]
    found = [(t, lp) for t, lp in zip(texts, loops) if lp]
    # the loop's text re-tokenised (a loop can tokenise a little differently from how it was
    # generated), so the share is capped at the whole budget
    shares = [min(1.0, len(tokenizer(t[lp.onset:lp.onset + lp.span], add_special_tokens=False)["input_ids"])
                  / sampling.max_new_tokens) for t, lp in found]
    rate = Rate(len(found), len(texts))
    return {"rate": rate, "loop_rate": round(rate.value, 4), "interval": tuple(round(x, 4) for x in rate.interval),
            "budget_share": round(statistics.fmean(shares), 4) if shares else 0.0, "texts": texts, "loops": loops}


class LoopGuard:
    """A ``transformers`` stopping criterion that ends a sequence as soon as its generated tokens
    contain a loop (:func:`detect_loop` on token ids, checked every ``every`` new tokens), and
    remembers which rows it stopped. Pass it as ``model.generate(..., stopping_criteria=[guard])``.

    Stopping a looping generation saves the rest of the budget; the caller still decides what
    to do with a flagged answer (retry with sampling, return an error, or cut at the onset).
    """

    def __init__(self, prompt_length: int, *, every: int = 8, **detect_kwargs) -> None:
        if every < 1:
            raise ValueError(f"every must be at least 1, got {every}")
        self.prompt_length, self.every, self.detect_kwargs = prompt_length, every, detect_kwargs
        self.flagged: dict[int, Loop] = {}

    def __call__(self, input_ids, scores=None, **kwargs):
        import torch

        done = torch.zeros(input_ids.shape[0], dtype=torch.bool, device=input_ids.device)
        new = input_ids.shape[1] - self.prompt_length
        if new <= 0 or new % self.every:
            for row in self.flagged:
                done[row] = True
            return done
        for row in range(input_ids.shape[0]):
            if row not in self.flagged:
                found = detect_loop(input_ids[row, self.prompt_length:].tolist(), **self.detect_kwargs)
                if found:
                    self.flagged[row] = found
            done[row] = row in self.flagged
        return done


def guarded_generate(model, tokenizer, prompt: Sequence[int], *, max_new_tokens: int, every: int = 8,
                     **detect_kwargs) -> dict[str, Any]:
    """Greedy generation for one tokenised prompt with a :class:`LoopGuard`: the text, how many
    tokens were generated, and the loop that stopped it (``None`` if it ended on its own)."""
    import torch
    from transformers import StoppingCriteriaList

    from .sampling import stop_token_ids

    x = torch.tensor([list(prompt)], device=model.device)
    guard = LoopGuard(x.shape[1], every=every, **detect_kwargs)
    with torch.no_grad():
        out = model.generate(x, attention_mask=torch.ones_like(x), max_new_tokens=max_new_tokens, do_sample=False,
                             eos_token_id=stop_token_ids(tokenizer), pad_token_id=tokenizer.pad_token_id,
                             stopping_criteria=StoppingCriteriaList([guard]))
    new = out[0, x.shape[1]:].tolist()
    return {"text": tokenizer.decode(new, skip_special_tokens=False), "new_tokens": len(new),
            "loop": guard.flagged.get(0)}
