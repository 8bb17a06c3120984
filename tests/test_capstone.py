"""The capstone: a learner's task checked, templated, generated into a data folder, and run
through the course's stages under its own preset."""

from __future__ import annotations

import dataclasses
import json

import pytest

from lfm_helpers import capstone as cs
from lfm_helpers.data import load_split
from lfm_helpers.paths import REPO_ROOT, using_data_dir
from lfm_helpers.presets import PRESETS, CapstoneBudget, EvalBudget, PreferenceBudget, RLBudget, TrainBudget
from lfm_helpers.verifiers import verify_extraction

TASK_FILE = REPO_ROOT / "data" / "capstone" / "flight_booking.json"


@pytest.fixture(scope="module")
def task():
    return cs.load_task(TASK_FILE)


def _with(task, **changes):
    return dataclasses.replace(task, **changes)


def test_the_shipped_task_makes_one_template_per_example(task):
    temps = cs.templates(task)
    assert len(temps) == len(task.examples) == 8 and [t.split for t in temps].count("test") == task.held_out == 2
    for t, ex in zip(temps, task.examples):
        assert t.fill(ex["target"]) == ex["text"]  # a template gives its example back
        assert all("{" + name + "}" in t.pattern for name in task.schema["properties"])


def test_generated_rows_are_valid_distinct_and_keep_the_test_phrasings_apart(task):
    train = cs.generate_rows(task, "train", 300)
    test = cs.generate_rows(task, "test", 40)
    assert cs.generate_rows(task, "train", 300) == train  # seeded
    assert len({r["text"] for r in train}) == 300
    test_families = {t.family for t in cs.templates(task) if t.split == "test"}
    assert {r["family"] for r in test} == test_families and not {r["family"] for r in train} & test_families
    schema = task.schema
    for r in train + test:
        canonical = json.dumps(r["target"])
        assert verify_extraction(canonical, r["target"], schema)["schema_valid"]
        assert all(cs.render(v) in r["text"] for v in r["target"].values())
        assert len({cs.render(v) for v in r["target"].values()}) == len(r["target"])  # no value serves two fields
    # values come from the schema's range, dates are drawn, strings from the examples and the lists
    assert {r["target"]["seats"] for r in train} == set(range(1, 7))
    assert len({r["target"]["date"] for r in train}) > 250
    assert {r["target"]["passenger"] for r in train} <= (set(task.values["passenger"])
                                                          | {ex["target"]["passenger"] for ex in task.examples})
    val = cs.generate_rows(task, "val", 20, exclude={r["text"] for r in train})
    assert not {r["text"] for r in val} & {r["text"] for r in train}


def test_too_few_values_for_the_rows_asked_is_a_clear_error(task):
    # three examples, one held out: two train templates and three values a field (dates and seats
    # from the examples too, once the schema gives no range or format): at most 2 x 3^6 texts
    props = {**task.schema["properties"], "date": {"type": "string"}, "seats": {"type": "integer"}}
    narrow = _with(task, values={}, examples=task.examples[:3], held_out=1, schema={**task.schema, "properties": props})
    assert len(cs.generate_rows(narrow, "train", 200)) == 200
    with pytest.raises(ValueError, match="could only make .* distinct train rows of 2000"):
        cs.generate_rows(narrow, "train", 2000)


@pytest.mark.parametrize("change, message", [
    (lambda t: _with(t, name="Flight Booking"), "lower-case"),
    (lambda t: _with(t, schema={"type": "array"}), "object with properties"),
    (lambda t: _with(t, schema={**t.schema, "properties": {**t.schema["properties"], "vip": {"type": "boolean"}},
                                "required": [*t.schema["required"], "vip"]}), "'vip' has type 'boolean'"),
    (lambda t: _with(t, schema={**t.schema, "required": ["passenger"]}), "must be required"),
    (lambda t: _with(t, held_out=7), "hold out at least one"),
    (lambda t: _with(t, examples=(*t.examples[:1], {"text": "x", "target": {**t.examples[0]["target"], "seats": 9}},
                                   *t.examples[2:])), "example 1: the target does not match the schema"),
    (lambda t: _with(t, examples=({"text": t.examples[0]["text"].replace("LX 318", "LX318"),
                                   "target": t.examples[0]["target"]}, *t.examples[1:])),
     "example 0: the value 'LX 318' of 'flight' is not in the text"),
    (lambda t: _with(t, examples=({"text": "booking", "tgt": {}}, *t.examples[1:])), "example 0: expected"),
    (lambda t: _with(t, values={"gate": ["B12"]}), "'gate', which is not a field"),
    (lambda t: _with(t, values={"flight": ["lx 1"]}), "listed value 'lx 1' of 'flight'"),
])
def test_bad_tasks_are_refused_with_the_reason(task, change, message):
    with pytest.raises(ValueError, match=message):
        cs.check_task(change(task))


def test_a_value_inside_a_longer_token_is_not_taken_for_the_slot(task):
    ex = {"text": "Seat count 2 for Maya Lind on LX 318, Aldenport to Ostrova, 2025-03-12.",
          "target": {"passenger": "Maya Lind", "flight": "LX 318", "origin": "Aldenport", "destination": "Ostrova",
                     "date": "2025-03-12", "seats": 2}}
    (t,) = cs.templates(_with(task, examples=(ex,), held_out=0))
    assert t.pattern == "Seat count {seats} for {passenger} on {flight}, {origin} to {destination}, {date}."


def test_builds_only_drops_the_reuse_lines():
    seen = []
    log = cs.builds_only(seen.append)
    for message in ("[x/sft] reusing /runs/x/sft (config 1)", "[x/sft] building (missing) -> /runs/x/sft"):
        log(message)
    assert seen == ["[x/sft] building (missing) -> /runs/x/sft"]


def test_task_files_are_checked_on_load(tmp_path, task):
    bad = tmp_path / "task.json"
    bad.write_text(json.dumps({"name": "x", "schema": {}, "examples": [], "colour": "red"}))
    with pytest.raises(ValueError, match=r"unknown keys \['colour'\], missing keys \['description'\]"):
        cs.load_task(bad)
    bad.write_text("{not json")
    with pytest.raises(ValueError, match="not valid JSON"):
        cs.load_task(bad)
    with pytest.raises(FileNotFoundError):
        cs.load_task(tmp_path / "missing.json")


def test_the_data_folder_reads_like_the_shipped_one(task, tmp_path):
    budget = PRESETS["tiny"].capstone
    small = dataclasses.replace(budget, train_rows=60, val_rows=8, test_rows=8, rl=dataclasses.replace(budget.rl, row_offset=0, steps=1))
    manifest = cs.write_task_data(task, tmp_path / "data", small)
    with using_data_dir(tmp_path / "data"):
        assert len(load_split("extraction", "train")) == 60 and load_split("extraction", "test")[0]["record_type"] == task.name
        assert load_split("tool_use", "test") == load_split("tool_use", "test", REPO_ROOT / "data")  # linked, unchanged
    assert "extraction/train.jsonl" in manifest and "corpus/train.jsonl" in manifest
    # the shipped folder still refuses the new record type: it has no schema for it
    (tmp_path / "shipped_like").mkdir()
    (tmp_path / "shipped_like" / "extraction").mkdir()
    (tmp_path / "shipped_like" / "extraction" / "test.jsonl").write_text((tmp_path / "data" / "extraction" / "test.jsonl").read_text())
    with pytest.raises(ValueError, match="unknown record_type 'flight_booking'"):
        load_split("extraction", "test", tmp_path / "shipped_like")


def test_the_capstone_preset_is_the_task_alone_from_a_checkpoint(task):
    tiny = PRESETS["tiny"]
    p = cs.capstone_preset(task, tiny, "/some/checkpoint")
    assert p.name == "tiny-capstone-flight_booking" and p.sources.base_model == p.sources.tokenizer == "/some/checkpoint"
    assert p.base_pretrain is None and not p.shipped_sft and p.sft_mix.tool_use == 0 and p.sft_mix.extraction is None
    assert p.preference.tool_use_rows == 0 and p.sft == tiny.capstone.sft and p.deploy.formats == tiny.capstone.formats
    assert cs.capstone_preset(task, PRESETS["colab"], "LiquidAI/LFM2.5-350M").requires_gpu
    with pytest.raises(ValueError, match="no capstone budget"):
        cs.capstone_preset(task, dataclasses.replace(tiny, capstone=None), "x")
    # a preset with a checkpoint of its own (colab: the hub id; tests: a local folder) starts from it
    assert cs.start_checkpoint(PRESETS["colab"]) == PRESETS["colab"].sources.base_model == "LiquidAI/LFM2.5-350M"
    assert cs.start_checkpoint(PRESETS["colab"].with_base_model("/local/lfm2")) == "/local/lfm2"


def test_a_preset_with_a_data_folder_reads_it(tmp_path):
    from lfm_helpers.paths import data_dir, preset_data

    before = data_dir()
    with preset_data(dataclasses.replace(PRESETS["tiny"], data_dir=str(tmp_path))):
        assert data_dir() == tmp_path
    with preset_data(PRESETS["tiny"]):
        assert data_dir() == before
    assert data_dir() == before


def test_capstone_budgets_are_checked():
    b = PRESETS["tiny"].capstone
    with pytest.raises(ValueError, match="strictly between"):
        dataclasses.replace(b, merge_t=(0.0, 0.5))
    with pytest.raises(ValueError, match="extraction prompts only"):
        dataclasses.replace(b, preference=dataclasses.replace(b.preference, tool_use_rows=4))
    with pytest.raises(ValueError, match="beyond the 100 generated"):
        dataclasses.replace(b, train_rows=100)


CAP_SMALL = CapstoneBudget(
    sft=TrainBudget(max_steps=2, batch_size=4, learning_rate=3e-3, seq_len=512),
    preference=PreferenceBudget(train=TrainBudget(max_steps=1, batch_size=2, learning_rate=1e-4, seq_len=512), rounds=1,
                                extraction_prompts=4, tool_use_rows=0, samples=2, max_new_tokens=16),
    rl=RLBudget(steps=1, learning_rate=1e-4, prompts_per_step=2, generations=2, max_new_tokens=16, row_offset=8),
    eval=EvalBudget(num_examples=4, max_new_tokens=16), train_rows=24, val_rows=4, test_rows=4, merge_t=(0.5,),
    formats=("f16",))


@pytest.mark.slow
def test_the_recipe_runs_end_to_end_on_a_small_model(task, task_data, runs_root):
    pytest.importorskip("llama_cpp", reason="the export stage needs llama-cpp-python (make llama-cpp)")
    from test_sft import SFT_SMALL

    preset = dataclasses.replace(SFT_SMALL, capstone=CAP_SMALL)
    run = cs.run_capstone(task, preset, log=lambda m: None)
    assert list(run.artifacts) == list(cs.CAPSTONE_STAGES) and run.preset.name == "tiny-capstone-flight_booking"
    assert run.artifacts["sft"].metrics["train_by_task"] == {"extraction": 24, "tool_use": 0}
    assert run.artifacts["rl_extraction"].metrics["steps"] == 1
    merge = run.artifacts["rl_merge"].metrics
    assert merge["t"] == 0.5 and set(merge["val_field_exact_match"]) == {"0.5"}
    assert (run.artifacts["export_merged"].path / f"{run.preset.name}-f16.gguf").is_file()
    # it started from the course preset's SFT model, and left the course's artifacts alone
    assert run.preset.sources.base_model == str(runs_root / SFT_SMALL.name / "sft")
    reports = cs.stage_reports(run)
    assert list(reports) == ["base", "sft", "preference", "rl_extraction", "rl_merge"]
    table = cs.report_table(reports)
    assert list(table.index) == ["start", "sft", "preference", "rl_extraction", "rl_merge"] and (table["examples"] == 4).all()
    again = cs.run_capstone(task, preset, stages=("sft",), log=lambda m: None)  # reused, not retrained
    assert again.artifacts["sft"].config_hash == run.artifacts["sft"].config_hash
    # the preset carries its data: a stage or an evaluation called on its own reads the task's data
    from lfm_helpers.evaluate import evaluate
    from lfm_helpers.pipeline import run_stage

    assert run_stage("sft", run.preset, log=lambda m: None).reused
    report = evaluate(run.artifacts["sft"].path, "extraction", "test", run.preset)
    assert report.examples[0]["id"].startswith("flight_booking-test-")
    with pytest.raises(ValueError, match="unknown capstone stages"):
        cs.run_capstone(task, preset, stages=("pretrain",))


def test_the_command_line_refuses_a_bad_task_file(tmp_path, capsys):
    from lfm_helpers.__main__ import main

    assert main(["capstone", str(tmp_path / "missing.json")]) == 2
    bad = tmp_path / "task.json"
    task = json.loads(TASK_FILE.read_text())
    task["examples"][0]["text"] = task["examples"][0]["text"].replace("Ostrova", "Oslo")
    bad.write_text(json.dumps(task))
    assert main(["capstone", str(bad)]) == 2
    assert "example 0: the value 'Ostrova' of 'destination' is not in the text" in capsys.readouterr().err
