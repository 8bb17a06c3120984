"""The shipped data is reproducible, consistent with the world and the tools, and well-formed."""

from __future__ import annotations

import json
import re
from pathlib import Path

import jsonschema
import pytest

from lfm_helpers.data import (
    SCHEMAS,
    SPLITS,
    build_world,
    canonical_json,
    check_data,
    conversation_turns,
    extraction_messages,
    load_jsonl,
    load_schemas,
    load_split,
)
from lfm_helpers.data.generate import MANIFEST
from lfm_helpers.paths import data_dir
from lfm_helpers.tools import TOOLS, ToolCall, call_tool, format_tool_calls, parse_tool_calls
from lfm_helpers.verifiers import verify_extraction, verify_final_answer, verify_tool_call


@pytest.fixture(scope="module")
def extraction_rows() -> dict[str, list[dict]]:
    return {split: load_split("extraction", split) for split in SPLITS["extraction"]}


@pytest.fixture(scope="module")
def tool_rows() -> dict[str, list[dict]]:
    return {split: load_split("tool_use", split) for split in SPLITS["tool_use"]}


# -- reproducibility -----------------------------------------------------------------------


def test_regeneration_is_byte_identical_to_shipped_data():
    """Regenerating in this process (its own hash seed) gives exactly the committed bytes."""
    assert check_data() == []


def test_check_reports_changed_and_missing_files(tmp_path, capsys):
    """``python -m lfm_helpers data --check`` exits 1 and names what differs."""
    import shutil

    from lfm_helpers.data.generate import main

    shutil.copytree(data_dir(), tmp_path, dirs_exist_ok=True)
    (tmp_path / "tool_use" / "val.jsonl").write_text("{}\n", encoding="utf-8")
    (tmp_path / "world" / "cities.json").unlink()
    assert main(["--check", "--out", str(tmp_path)]) == 1
    out = capsys.readouterr().out
    assert "2 file(s)" in out and "tool_use/val.jsonl" in out and "world/cities.json" in out


def test_manifest_matches_files_and_size_budget():
    import hashlib

    root = data_dir()
    manifest = json.loads((root / MANIFEST).read_text(encoding="utf-8"))["files"]
    assert list(manifest) == sorted(manifest)
    total = 0
    for relative, entry in manifest.items():
        content = (root / relative).read_bytes()
        assert entry == {"bytes": len(content), "sha256": hashlib.sha256(content).hexdigest()}
        assert b"\r\n" not in content
        total += len(content)
    assert total < 30_000_000


# -- world ---------------------------------------------------------------------------------


def test_world_is_consistent():
    import random

    world = build_world(0)
    assert len(world.cities) == 40 and len({c.name for c in world.cities}) == 40
    assert len({p.name for p in world.people}) == len(world.people)
    assert len({c.famous_dish for c in world.cities}) == 40
    rng = random.Random("test")
    for _ in range(200):
        order = world.make_order(rng)
        assert order.ship_to_city == world.person_by_name[order.customer].city
        event = world.make_event(rng)
        assert event.city == next(v.city for v in world.venues if v.name == event.venue)
        meeting = world.make_meeting(rng)
        assert meeting.city == world.person_by_name[meeting.organizer].city
        assert meeting.organizer != meeting.attendee
    shipped = json.loads((data_dir() / "world" / "cities.json").read_text(encoding="utf-8"))
    assert shipped == world.city_rows()


# -- extraction ----------------------------------------------------------------------------


def test_extraction_sizes_and_schemas(extraction_rows):
    assert {s: len(r) for s, r in extraction_rows.items()} == {"train": 3000, "val": 200, "test": 300}
    assert load_schemas() == SCHEMAS
    for schema in SCHEMAS.values():
        jsonschema.Draft202012Validator.check_schema(schema)
        assert schema["additionalProperties"] is False
        assert schema["required"] == list(schema["properties"])


def test_every_extraction_target_is_schema_valid_and_verifies(extraction_rows):
    validators = {name: jsonschema.Draft202012Validator(schema) for name, schema in SCHEMAS.items()}
    for rows in extraction_rows.values():
        for row in rows:
            validators[row["record_type"]].validate(row["target"])
            assert list(row["target"]) == list(SCHEMAS[row["record_type"]]["properties"])
            answer = extraction_messages(row, SCHEMAS)[-1]["content"]
            assert verify_extraction(answer + "<|im_end|>", row["target"], SCHEMAS[row["record_type"]])[
                "exact_match"
            ]


def test_verbatim_fields_appear_in_the_text(extraction_rows):
    """Names, ids, emails... are copied, not paraphrased: the text must contain them."""
    verbatim = {
        "order_id",
        "customer",
        "product",
        "ship_to_city",
        "venue",
        "city",
        "title",
        "organizer",
        "attendee",
        "email",
        "phone",
        "job",
    }
    for rows in extraction_rows.values():
        for row in rows:
            for key, value in row["target"].items():
                if key in verbatim:  # a signature may capitalise the job: compare casefolded
                    assert value.casefold() in row["text"].casefold(), (row["id"], key, value)


def test_test_families_are_unseen(extraction_rows, tool_rows):
    for rows in (extraction_rows, tool_rows):
        train_val = {r["family"] for split in ("train", "val") for r in rows[split]}
        test = {r["family"] for r in rows["test"]}
        assert test and train_val and not test & train_val


def test_date_styles_by_split_names_the_families_of_the_shipped_splits(tool_rows):
    from lfm_helpers.data.tool_use import date_styles_by_split

    styles = date_styles_by_split()
    for part, splits in (("train", ("train", "val")), ("test", ("test",))):
        named = {f for s in styles.values() for f in s[part]}
        assert named <= {r["family"] for split in splits for r in tool_rows[split]}
    # the ordinal style ("the 22nd of April, 2024") is written only by held-out families
    assert styles["ordinal"]["train"] == [] and "days_between.how_long" in styles["ordinal"]["test"]
    ordinal = re.compile(r"the \d+(st|nd|rd|th) of [A-Z][a-z]+, \d{4}")
    for split, rows in tool_rows.items():
        written = {r["family"] for r in rows if any(ordinal.search(m["content"]) for m in r["messages"] if m["role"] == "user")}
        assert written <= set(styles["ordinal"]["test"] if split == "test" else []), (split, written)


def test_val_texts_are_not_train_texts(extraction_rows):
    train = {r["text"] for r in extraction_rows["train"]}
    assert not any(r["text"] in train for r in extraction_rows["val"])


def test_extraction_messages_shape(extraction_rows):
    row = extraction_rows["train"][0]
    chat = extraction_messages(row, SCHEMAS)
    assert [m["role"] for m in chat] == ["system", "user", "assistant"]
    assert chat[1]["content"] == row["text"]
    assert json.loads(chat[2]["content"]) == row["target"]
    assert chat[2]["content"] == canonical_json(row["target"], SCHEMAS[row["record_type"]])
    assert all(field in chat[0]["content"] for field in SCHEMAS[row["record_type"]]["properties"])
    assert len(extraction_messages(row, SCHEMAS, with_answer=False)) == 2


# -- tool use ------------------------------------------------------------------------------


def test_tool_use_sizes_and_shares(tool_rows):
    assert {s: len(r) for s, r in tool_rows.items()} == {"train": 3000, "val": 200, "test": 300}
    train = tool_rows["train"]
    multi = sum(len(r["final_answers"]) > 1 for r in train) / len(train)
    no_tool = sum(not r["expected_calls"] for r in train) / len(train)
    assert 0.25 < multi < 0.42 and 0.01 < no_tool < 0.1


def test_every_tool_result_is_what_the_tool_returns(tool_rows):
    """Replay every conversation against the real tools (reading the shipped cities.json)."""
    for rows in tool_rows.values():
        for row in rows:
            assert row["messages"][0]["role"] == "system"
            assert all(name in TOOLS for name in row["tools"])
            assert list(row["tools"]) == [t for t in TOOLS if t in row["tools"]]
            turns = conversation_turns(row)
            for turn in turns:
                if turn.kind == "call":
                    calls = [ToolCall.from_dict(c) for c in turn.expected_calls]
                    assert turn.reference == format_tool_calls(calls)
                    assert parse_tool_calls(turn.reference) == calls
                    assert all(c.name in row["tools"] for c in calls)
                    assert verify_tool_call(turn.reference, turn.expected_calls)["args_correct"]
                    tool_message = row["messages"][turn.index + 1]
                    assert tool_message["role"] == "tool"
                    assert tool_message["content"] == call_tool(calls[0].name, calls[0].arguments)
                else:
                    assert verify_final_answer(turn.reference, turn.expected_answer), (
                        row["id"],
                        turn.reference,
                    )
            assert turns[-1].kind == "answer"


# -- corpus --------------------------------------------------------------------------------


def test_corpus_kinds_and_size():
    train = load_split("corpus", "train")
    val = load_split("corpus", "val")
    kinds = {r["kind"] for r in train}
    assert {
        "city",
        "person",
        "story",
        "dialogue",
        "json",
        "arithmetic",
        "units",
        "calendar",
        "order",
        "event",
    } <= kinds
    chars = sum(len(r["text"]) for r in train)
    assert 7_000_000 < chars < 11_000_000
    assert 200_000 < sum(len(r["text"]) for r in val) < 500_000
    for row in train[:2000]:
        if row["kind"] == "json":
            json.loads(row["text"])


def test_corpus_never_uses_test_phrasings():
    """Record-like corpus documents come from train families only (each marker below is a
    fixed fragment of one test-only family)."""
    markers = (
        "-> ",
        "Can you check order",
        "id,customer,item",
        "This is your weekend guide!",
        "*** presented by",
        "Is anyone going to the",
        "this message is from",
        "About me:",
        "today - ",
        "wants to see",
        " w/ ",
        "be able to meet",
    )
    texts = [
        r["text"]
        for r in load_split("corpus", "train")
        if r["kind"] in ("order", "event", "contact", "meeting")
    ]
    assert texts
    assert not any(m in text for text in texts for m in markers)
    test_rows = load_split("extraction", "test")
    assert all(any(m in r["text"] for m in markers) for r in test_rows)


# -- loaders -------------------------------------------------------------------------------


def _write(path: Path, lines: list[str]) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(line + "\n" for line in lines), encoding="utf-8")
    return path


GOOD_EXTRACTION = json.dumps({"id": "x", "record_type": "order", "family": "f", "text": "t", "target": {}})


@pytest.mark.parametrize(
    ("bad_line", "message"),
    [
        ("{not json", "invalid JSON"),
        ("[1, 2]", "expected a JSON object"),
        (json.dumps({"id": "x", "record_type": "order", "family": "f", "text": "t"}), "missing key 'target'"),
        (
            json.dumps({"id": 1, "record_type": "order", "family": "f", "text": "t", "target": {}}),
            "'id' should be str",
        ),
        (
            json.dumps({"id": "x", "record_type": "poem", "family": "f", "text": "t", "target": {}}),
            "unknown record_type",
        ),
        (
            json.dumps({"id": "x", "record_type": "order", "family": "f", "text": "t", "target": {}, "z": 1}),
            "unexpected key",
        ),
    ],
)
def test_load_split_rejects_malformed_extraction_rows(tmp_path, bad_line, message):
    path = _write(tmp_path / "extraction" / "train.jsonl", [GOOD_EXTRACTION, "", bad_line])
    with pytest.raises(ValueError, match=message) as info:
        load_split("extraction", "train", tmp_path)
    assert f"{path}:3:" in str(info.value)


@pytest.mark.parametrize(
    ("row", "message"),
    [
        ({"messages": [{"role": "robot", "content": "x"}]}, r"messages\[0\]"),
        ({"messages": [{"role": "user"}]}, r"messages\[0\]"),
        ({"expected_calls": [{"name": "x", "arguments": {}}]}, r"expected_calls\[0\]"),
        ({"expected_calls": [[{"name": "x"}]]}, r"expected_calls\[0\]"),
        ({"final_answers": [7]}, "final_answers"),
        ({"tools": "calculator"}, "'tools' should be list"),
    ],
)
def test_load_split_rejects_malformed_tool_rows(tmp_path, row, message):
    good = {
        "id": "x",
        "family": "f",
        "tools": [],
        "messages": [{"role": "user", "content": "hi"}],
        "expected_calls": [],
        "final_answers": ["a"],
    }
    path = _write(tmp_path / "tool_use" / "val.jsonl", [json.dumps(good), json.dumps({**good, **row})])
    with pytest.raises(ValueError, match=message) as info:
        load_split("tool_use", "val", tmp_path)
    assert f"{path}:2:" in str(info.value)


def test_load_split_missing_file_and_bad_names(tmp_path):
    with pytest.raises(FileNotFoundError, match="python -m lfm_helpers data"):
        load_split("corpus", "train", tmp_path)
    with pytest.raises(FileNotFoundError, match="python -m lfm_helpers data"):
        load_jsonl(tmp_path / "nope.jsonl")
    with pytest.raises(ValueError, match="corpus, extraction, tool_use"):
        load_split("poems", "train")
    with pytest.raises(ValueError, match="train, val"):
        load_split("corpus", "test")
