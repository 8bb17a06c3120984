"""The doom-loop detector, its labelled set, the cheap signals, the generation guard."""

from __future__ import annotations

import random

import pytest
import torch

from lfm_helpers import loops
from lfm_helpers.sampling import Sampling


@pytest.mark.parametrize("period", [1, 2, 3, 7, 40, 300])
def test_true_loops_of_many_periods_are_found_with_their_period_and_onset(period):
    rng = random.Random(period)
    block = "".join(rng.choice("abcdefghij ") for _ in range(period))
    while len(set(block)) < min(period, 2) or any(block == block[:d] * (period // d) for d in range(1, period)
                                                  if period % d == 0):
        block = "".join(rng.choice("abcdefghij ") for _ in range(period))  # a primitive block
    prefix = "The order ships on Monday. "
    text = prefix + block * max(6, 64 // period + 2)
    found = loops.detect_loop(text)
    assert found is not None and found.period == period
    assert found.onset <= len(prefix)  # at the prefix's end, or earlier if its tail matches the block
    assert found.runs_to_end and found.repeats >= 4 and found.span == len(text) - found.onset


def test_token_ids_and_budget_share():
    ids = [5, 6, 7, 8] + [1, 2, 3] * 10
    found = loops.detect_loop(ids, budget=64)
    assert (found.period, found.onset, found.repeats, found.block) == (3, 4, 10, [1, 2, 3])
    assert found.budget_share == pytest.approx(30 / 64)
    assert loops.detect_loop(list(range(40))) is None


@pytest.mark.parametrize("text", [
    '[{"id": 1, "name": "lamp", "price": 3.5}, {"id": 2, "name": "lamp", "price": 4.5}, {"id": 3, "name": "lamp", "price": 5.5}, {"id": 4, "name": "lamp", "price": 6.5}]',
    "\n".join(f"{i}. check the lamp" for i in range(1, 12)),
    "def f(row):\n" + "".join(f"    x{i} = row['x{i}'] * 2\n" for i in range(8)),
    "Location, location, location! The shop is on the corner. Ha ha ha ha, said the owner.",
    "| a | b |\n|---|---|\n| 1 | 2 |\n" + "=" * 60 + "\nThe end.",
])
def test_repetition_that_is_not_a_loop_is_not_flagged(text):
    assert loops.detect_loop(text) is None


def test_below_the_span_or_repeat_threshold_is_not_a_loop():
    assert loops.detect_loop("no no no no. Fine.") is None  # 4 repeats but only 12 characters
    assert loops.detect_loop("abc, abc, abc, " * 1 + "done") is None
    assert loops.detect_loop("x" * 40, min_repeats=41) is None
    with pytest.raises(ValueError, match="min_repeats"):
        loops.detect_loop("aaaa", min_repeats=1)


def test_to_end_keeps_only_loops_the_model_never_left():
    item = '{"sku": "lamp", "quantity": 1}, '
    listing = "[" + item * 5 + "]"
    assert loops.detect_loop(listing) is not None  # identical items are an exact repeat
    assert loops.detect_loop(listing, to_end=True) is None
    assert loops.detect_loop("Answer: " + item * 8, to_end=True) is not None


def test_cheap_signals_separate_loops_from_prose():
    prose = "The order ships from Puerto Lindo on Monday. I will check the weather for you."
    loop = "I will check the weather for you. " * 12
    assert loops.repeated_ngram_rate(prose) == 0.0 and loops.repeated_ngram_rate(loop) > 0.8
    assert loops.repeated_ngram_rate([1, 2, 3, 4, 1, 2, 3, 4], n=4) == pytest.approx(1 / 5)
    assert loops.compression_ratio(loop) > 5 * loops.compression_ratio(prose)
    assert loops.repeated_ngram_rate("") == 0.0 and loops.compression_ratio("") == 0.0


def test_labelled_set_is_shipped_and_scored():
    rows = loops.load_labelled()
    assert rows == loops.labelled_examples()
    kinds = {r["kind"] for r in rows}
    assert set(loops.LOOP_KINDS) | set(loops.NOT_LOOP_KINDS) == kinds
    scores = loops.detector_scores(rows)
    assert scores["tp"] + scores["fp"] + scores["fn"] + scores["tn"] == len(rows)
    # measured, not assumed: the exact detector misses drifting loops and flags identical items
    assert scores["flagged_by_kind"]["counting"] == 0 and scores["flagged_by_kind"]["identical_items"] > 0.5
    assert 0.8 < scores["precision"] < 1 and 0.8 < scores["recall"] < 1 and scores["period_exact"] == 1.0
    assert loops.detector_scores(rows, to_end=True)["precision"] == 1.0


def test_a_malformed_labelled_row_is_refused(tmp_path):
    path = tmp_path / "labelled.jsonl"
    path.write_text('{"text": "abc", "label": "yes"}\n')
    with pytest.raises(ValueError, match="boolean 'label'"):
        loops.load_labelled(path)
    with pytest.raises(FileNotFoundError, match="python -m lfm_helpers data"):
        loops.load_labelled(tmp_path / "missing.jsonl")


def test_looping_replies_and_loop_prone_examples():
    reply = '{"a": 1, "b": "x", "c": 3}'
    looped = loops.looping_reply(reply, random.Random(0), length=200)
    assert len(looped) == 200 and loops.detect_loop(looped) is not None and looped.startswith('{"a": 1,')
    examples = loops.loop_prone_examples(40, loop_share=0.5, seed=0)
    n_looped = sum(bool(e.get("looped")) for e in examples)
    assert 10 < n_looped < 30
    assert all((loops.detect_loop(e["messages"][-1]["content"]) is not None) == bool(e.get("looped")) for e in examples)
    with pytest.raises(ValueError, match="loop_share"):
        loops.loop_prone_examples(4, loop_share=1.5)


def test_the_guard_stops_a_looping_row_only():
    guard = loops.LoopGuard(prompt_length=2, every=1)
    looping = [9, 9] + [1, 2, 3] * 6
    fine = [9, 9] + list(range(10, 28))
    done = guard(torch.tensor([looping, fine]))
    assert done.tolist() == [True, False] and guard.flagged[0].period == 3
    assert guard(torch.tensor([looping + [4], fine + [5]])).tolist() == [True, False]  # stays stopped
    with pytest.raises(ValueError, match="every"):
        loops.LoopGuard(0, every=0)


def test_the_guard_ends_a_real_generation_early(monkeypatch):
    """With the repetition-rewarding penalty a tiny model loops; the guard stops it."""
    from test_sft import _tiny_model
    from lfm_helpers.tokenizer import train_tokenizer

    tok = train_tokenizer(["the lamp ships on monday to the city of lindo"] * 50, vocab_size=300)
    model = _tiny_model(tok).eval()
    x = torch.tensor([tok("the lamp", add_special_tokens=False)["input_ids"]])
    kwargs = dict(max_new_tokens=120, do_sample=False, repetition_penalty=0.1, eos_token_id=None,
                  pad_token_id=tok.pad_token_id)
    free = model.generate(x, **kwargs)
    guard = loops.LoopGuard(x.shape[1], every=4)
    guarded = model.generate(x, stopping_criteria=[guard], **kwargs)
    assert loops.detect_loop(free[0, x.shape[1]:].tolist()) is not None
    assert guarded.shape[1] < free.shape[1] and 0 in guard.flagged


def test_loop_rate_counts_loops_with_an_interval(monkeypatch):
    texts = ["ok " * 3, "again " * 20, '{"a": 1}', "loop! " * 30]
    monkeypatch.setattr("lfm_helpers.sampling.generate_batch", lambda *a, **k: texts)

    class Tok:
        def __call__(self, text, add_special_tokens=False):
            return {"input_ids": text.split()}

    out = loops.loop_rate(None, Tok(), [[1]] * 4, Sampling(max_new_tokens=40))
    assert out["loop_rate"] == 0.5 and out["rate"].n == 4 and out["interval"][0] < 0.5 < out["interval"][1]
    assert out["budget_share"] == pytest.approx((20 / 40 + 30 / 40) / 2)
    assert [lp is not None for lp in out["loops"]] == [False, True, False, True]


def test_guarded_generate_reports_the_loop_and_the_tokens_used(monkeypatch):
    from test_sft import _tiny_model
    from lfm_helpers.tokenizer import train_tokenizer

    tok = train_tokenizer(["the lamp ships on monday to the city of lindo"] * 50, vocab_size=300)
    model = _tiny_model(tok).eval()
    prompt = tok("the lamp", add_special_tokens=False)["input_ids"]
    free = model.generate(torch.tensor([prompt]), max_new_tokens=100, do_sample=False, pad_token_id=tok.pad_token_id)
    assert loops.detect_loop(free[0, len(prompt):].tolist()).budget_share == 1.0  # this untrained model loops at once
    out = loops.guarded_generate(model, tok, prompt, max_new_tokens=100, every=4, min_span=12)
    assert out["loop"] is not None and out["loop"].period == 1
    assert 12 <= out["new_tokens"] <= 16  # stopped at the first check after the loop covered 12 tokens
    assert isinstance(out["text"], str)
