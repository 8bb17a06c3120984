"""The evaluation harness: intervals, batched generation, and both tasks scored end to end.

The task scorers are driven by scripted "models" (a stand-in for ``generate_batch`` that replies
from the reference conversations, or replies wrongly on purpose), so the tests pin down what is
counted as right and wrong without depending on a trained checkpoint.
"""

from __future__ import annotations

import re

import pytest
import torch

import lfm_helpers.evaluate as ev
from lfm_helpers.data import load_schemas, load_split
from lfm_helpers.data.extraction import canonical_json
from lfm_helpers.models import build_model, tiny_lfm2_config
from lfm_helpers.sampling import GREEDY, Sampling, chat_prompt_ids, generate_batch
from lfm_helpers.tokenizer import train_tokenizer
from conftest import SMALL


@pytest.fixture(scope="module")
def tok():
    rows = load_split("tool_use", "train")[:200] + load_split("extraction", "train")[:200]
    texts = [m["content"] for r in rows if "messages" in r for m in r["messages"]]
    texts += [r["text"] for r in rows if "text" in r]
    return train_tokenizer(texts, vocab_size=600)


def test_wilson_interval_known_values():
    lo, hi = ev.wilson_interval(8, 10)
    assert lo == pytest.approx(0.4902, abs=1e-4) and hi == pytest.approx(0.9433, abs=1e-4)
    assert ev.wilson_interval(0, 10)[0] == 0.0 and ev.wilson_interval(0, 10)[1] == pytest.approx(0.2775, abs=1e-4)
    assert ev.wilson_interval(10, 10)[1] == pytest.approx(1.0)
    assert ev.wilson_interval(0, 0) == (0.0, 1.0)
    with pytest.raises(ValueError, match="outside"):
        ev.wilson_interval(11, 10)
    # more trials, narrower interval
    assert (lambda a, b: a[1] - a[0] > b[1] - b[0])(ev.wilson_interval(8, 10), ev.wilson_interval(80, 100))


def test_batched_left_padded_generation_equals_one_at_a_time(tok):
    model = build_model(tiny_lfm2_config(SMALL, vocab_size=len(tok)), seed=3)
    rows = load_split("tool_use", "test")[:4]
    prompts = [chat_prompt_ids(tok, r["messages"][:2]) for r in rows]
    assert len({len(p) for p in prompts}) > 1  # really different lengths, so padding happens
    one = generate_batch(model, tok, prompts, Sampling(max_new_tokens=12), batch_size=1, desc=None)
    batched = generate_batch(model, tok, prompts, Sampling(max_new_tokens=12), batch_size=4, desc=None)
    assert one == batched and all(one)
    sampled = Sampling(max_new_tokens=12, temperature=1.0, seed=5)
    assert generate_batch(model, tok, prompts, sampled, batch_size=2, desc=None) == \
        generate_batch(model, tok, prompts, sampled, batch_size=2, desc=None)
    with pytest.raises(ValueError):
        generate_batch(model, tok, prompts, GREEDY, batch_size=0)


def _script(monkeypatch, reply):
    """Replace generation by ``reply(decoded_prompt) -> text``."""
    def fake(model, tokenizer, prompts, sampling, *, batch_size, desc=None):
        return [reply(tokenizer.decode(p)) for p in prompts]
    monkeypatch.setattr(ev, "generate_batch", fake)


def test_extraction_scores_perfect_and_broken_outputs(tok, monkeypatch):
    schemas = load_schemas()
    rows = load_split("extraction", "test")[:12]
    by_text = {r["text"]: canonical_json(r["target"], schemas[r["record_type"]]) for r in rows}

    def answer(prompt):
        return next(a for t, a in by_text.items() if t in prompt)

    _script(monkeypatch, answer)
    report = ev.evaluate_extraction(None, tok, rows, schemas, GREEDY, split="test")
    assert report.metrics() == {"n_examples": 12, "valid_json": 1.0, "schema_valid": 1.0, "exact_match": 1.0,
                                "field_exact_match": 1.0}
    assert report.rates["field_exact_match"].n == sum(len(r["target"]) for r in rows)

    _script(monkeypatch, lambda prompt: answer(prompt)[:-1])  # a missing brace: not JSON
    broken = ev.evaluate_extraction(None, tok, rows, schemas, GREEDY)
    assert broken.rates["valid_json"].successes == 0 and broken.rates["exact_match"].value == 0
    table = broken.table()
    assert list(table.columns) == ["rate", "95% low", "95% high", "successes", "n"]
    assert ev.EvalReport.from_dict(broken.to_dict()).metrics() == broken.metrics()
    families = report.by_family()
    assert sum(f["n"] for f in families.values()) == 12 and {f["rate"] for f in families.values()} == {1.0}
    assert set(families) == {r["family"] for r in rows}


def _reference_reply(rows):
    """Reply with the reference assistant message at the conversation's current position."""
    def reply(prompt):
        row = next(r for r in rows if all(m["content"] in prompt for m in r["messages"] if m["role"] == "user")
                   or r["messages"][1]["content"] in prompt)
        done = len(re.findall(r"<\|im_start\|>assistant", prompt)) - 1  # the last is the generation prompt
        return [m["content"] for m in row["messages"] if m["role"] == "assistant"][done]
    return reply


def test_tool_use_replayed_live_against_the_tools(tok, monkeypatch):
    rows = load_split("tool_use", "test")[:16]
    assert any(len(r["expected_calls"]) > 1 for r in rows)  # follow-up turns are covered
    _script(monkeypatch, _reference_reply(rows))
    report = ev.evaluate_tool_use(None, tok, rows, GREEDY)
    assert all(r.value == 1.0 for r in report.rates.values()), report.metrics()
    assert report.rates["call_accuracy"].n == sum(len(r["expected_calls"]) for r in rows)
    assert report.rates["final_answer_accuracy"].n == sum(len(r["final_answers"]) for r in rows)
    # the tool turns in the transcript are the real tools' results, equal to the data's
    first = report.examples[0]["messages"]
    assert [m for m in first if m["role"] == "tool"] == [m for m in rows[0]["messages"] if m["role"] == "tool"]


def test_tool_use_wrong_calls_cost_the_answer_too(tok, monkeypatch):
    rows = [r for r in load_split("tool_use", "test") if r["expected_calls"]][:8]
    reference = _reference_reply(rows)

    def wrong_tool(prompt):
        text = reference(prompt)
        return text.replace("[calculator(", "[weekday(").replace("[convert_units(", "[weekday(") \
            .replace("[add_days(", "[calculator(").replace("[days_between(", "[calculator(") \
            .replace("[lookup_city(", "[calculator(").replace("[weekday(date", "[calculator(date")

    _script(monkeypatch, wrong_tool)
    report = ev.evaluate_tool_use(None, tok, rows, GREEDY)
    assert report.rates["call_parsed"].value == 1.0
    assert report.rates["call_name"].value == 0.0 and report.rates["call_accuracy"].value == 0.0
    assert report.rates["conversation_success"].value == 0.0
    # the bad call's error went back to the model as the tool result, not as an exception
    assert any(m["role"] == "tool" and m["content"].startswith("error:") for m in report.examples[0]["messages"])

    _script(monkeypatch, lambda prompt: "I think it is 42.")  # never calls a tool
    silent = ev.evaluate_tool_use(None, tok, rows, GREEDY)
    assert silent.rates["call_parsed"].value == 0.0 and silent.rates["final_answer_accuracy"].value == 0.0

    def right_only_in_one_family(prompt):  # the reference in the first row's family, a wrong tool elsewhere
        return reference(prompt) if rows[0]["messages"][1]["content"] in prompt else wrong_tool(prompt)

    _script(monkeypatch, right_only_in_one_family)
    families = ev.evaluate_tool_use(None, tok, rows[:1] + rows[1:], GREEDY).by_family()
    assert families[rows[0]["family"]]["rate"] > 0 and sum(f["n"] for f in families.values()) == len(rows)
    assert all(f["rate"] == 0.0 for name, f in families.items() if name != rows[0]["family"])


def test_evaluate_rejects_unknown_tasks_and_missing_tokenizer():
    with pytest.raises(ValueError, match="unknown task"):
        ev.evaluate("x", "translation", preset=SMALL)
    with pytest.raises(ValueError, match="tokenizer"):
        ev.evaluate(torch.nn.Linear(1, 1), "extraction", preset=SMALL)


def test_difference_interval_matches_newcombe():
    # Newcombe (1998), Statistics in Medicine 17:873, example (a): 56/70 - 48/80, method 10: 0.0524 to 0.3339
    diff, lo, hi = ev.difference_interval(ev.Rate(56, 70), ev.Rate(48, 80))
    assert diff == pytest.approx(0.2) and lo == pytest.approx(0.0524, abs=1e-4) and hi == pytest.approx(0.3339, abs=1e-4)
    same = ev.difference_interval(ev.Rate(5, 10), ev.Rate(5, 10))
    assert same[0] == 0 and same[1] < 0 < same[2]
