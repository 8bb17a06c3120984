"""The SFT preset search: variants, shared bases, the result table and the target check."""

from __future__ import annotations

import dataclasses
import json

import pytest

from lfm_helpers import sft_search as ss
from lfm_helpers.presets import PRESETS, TrainBudget
from test_sft import SFT_SMALL

SEARCH_SMALL = dataclasses.replace(
    SFT_SMALL, base_pretrain=TrainBudget(max_steps=2, batch_size=2, learning_rate=1e-3, seq_len=32),
    sft=dataclasses.replace(SFT_SMALL.sft, max_steps=1),
    eval=dataclasses.replace(SFT_SMALL.eval, num_examples=2),
)


def _metrics(json_rate, field_em, call_acc):
    return {"extraction": {"valid_json": json_rate, "field_exact_match": field_em},
            "tool_use": {"call_accuracy": call_acc}}


def test_targets_need_every_rate():
    assert ss.meets_targets(_metrics(0.95, 0.70, 0.70))
    assert not ss.meets_targets(_metrics(1.0, 0.69, 0.9))
    assert not ss.meets_targets(_metrics(0.94, 0.9, 0.9))


def test_variants_change_one_thing_and_share_bases():
    tiny = PRESETS["tiny"]
    names = [v.name for v in ss.VARIANTS]
    assert len(set(names)) == len(names) and ss.VARIANTS[0].own_base is False
    p = ss.variant_preset(tiny, ss.variant_named("sft-3x"))
    assert p.sft.max_steps == 2400 and p.model == tiny.model and p.name == "tiny-search-sft-3x" and not p.shipped_sft
    wider = ss.variant_preset(tiny, ss.variant_named("wider"))
    assert wider.model == ss.WIDER and wider.pretrain.max_steps == 4000 and wider.sft == tiny.sft
    assert (ss.base_preset(tiny, ss.variant_named("base-4x")).name
            == ss.base_preset(tiny, ss.variant_named("base-4x-sft-3x")).name != ss.base_preset(tiny, ss.variant_named("wider")).name)
    with pytest.raises(ValueError, match="unknown variant 'nope'"):
        ss.variant_named("nope")
    with pytest.raises(ValueError, match="hub checkpoint"):
        ss.variant_preset(PRESETS["colab"], ss.VARIANTS[0])


def test_search_trains_evaluates_and_saves(task_data, runs_root, tmp_path):
    variants = (ss.Variant("a", "own base", base_steps=2),
                ss.Variant("b", "own base, 2 SFT steps, own data", base_steps=2, sft_steps=2, train_rows=40))
    messages, saved = [], []
    results = ss.search(SEARCH_SMALL, variants, log=messages.append, on_result=saved.append)
    assert [len(s) for s in saved] == [1, 2] and saved[-1] == results  # saved as each variant finishes
    assert [r["variant"] for r in results] == ["a", "b"] and [r["sft_steps"] for r in results] == [1, 2]
    assert sum("reusing" in m and "/pretrain" in m for m in messages) == 1  # the second variant reuses the base
    assert [r["train_rows"] for r in results] == [None, 40]
    assert sum("search-b/data] building" in m for m in messages) == 1
    for r in results:
        assert r["examples"] == {"extraction": 2, "tool_use": 2} and r["meets_targets"] is False
        assert {t: sum(f["n"] for f in fams.values()) for t, fams in r["families"].items()} == r["examples"]
        for (task, metric) in ss.TARGETS:
            lo, hi = r["intervals"][task][metric]
            assert lo <= r["metrics"][task][metric] <= hi
    table = ss.search_table(results)
    assert list(table.index) == ["a", "b"] and "field_exact_match (>= 0.70)" in table.columns
    assert "restyled train families" not in table.columns and all(r["train_date_styles"] is None for r in results)
    restyled = [results[0], dict(results[1], train_date_styles=dict(ss.ORDINAL_IN_TRAINING))]
    assert list(ss.search_table(restyled)["restyled train families"]) == [0, 3]
    assert ss.smallest_passing(results) is None
    families = ss.family_table(results, "tool_use")
    assert list(families.columns) == ["examples", "a", "b"] and set(families.index) <= set(results[0]["families"]["tool_use"])
    assert families["examples"].sum() <= 2 and families[["a", "b"]].notna().all().all()
    with pytest.raises(ValueError, match="per-family"):
        ss.family_table([{k: v for k, v in results[0].items() if k != "families"}], "tool_use")
    passing = [dict(results[0], variant="wider", meets_targets=True), dict(results[1], variant="sft-3x", meets_targets=True)]
    assert ss.smallest_passing(passing)["variant"] == "sft-3x"  # cheaper in VARIANTS order
    near = [dict(results[0], metrics=_metrics(1.0, 0.9, 0.3)), dict(results[1], metrics=_metrics(0.96, 0.72, 0.6))]
    assert ss.closest_to_targets(near) is near[1]  # its worst metric (0.6 of 0.7) beats 0.3 of 0.7
    out = tmp_path / "search.json"
    ss.save_results(results, out, command="test", versions={"torch": "x"})
    assert ss.load_results(out) == results
    ss.save_results(results[:1], out, command="more", versions={}, merge=True)  # one variant finished
    ss.save_results(results[1:], out, command="more", versions={}, merge=True)  # the next, same run
    saved = json.loads(out.read_text())
    assert saved["commands"] == ["test", "more"] and [r["variant"] for r in saved["results"]] == ["a", "b"]
    with pytest.raises(FileNotFoundError, match="sft-search"):
        ss.load_results(tmp_path / "missing.json")


@pytest.mark.slow
def test_parallel_search_matches_the_serial_one(task_data, runs_root, monkeypatch):
    variants = (ss.Variant("a", "own base", base_steps=2), ss.Variant("c", "shared base, other SFT", base_steps=2, sft_steps=2))
    parallel = ss.search(SEARCH_SMALL, variants, jobs=2, log=lambda m: None)
    monkeypatch.setenv("LFM_RUNS_DIR", str(runs_root.parent / "runs-serial"))
    serial = ss.search(SEARCH_SMALL, variants, log=lambda m: None)
    keep = ("variant", "metrics", "sft_steps", "base_val_loss", "sft_val_loss")
    assert [{k: r[k] for k in keep} for r in parallel] == [{k: r[k] for k in keep} for r in serial]


def test_shipped_search_results_are_complete():
    """data/sft/tiny/search.json (made on a GPU by scripts/gpu_check.sh) covers every variant."""
    from lfm_helpers.paths import data_dir

    results = ss.load_results(data_dir() / "sft" / "tiny" / "search.json")
    names = [v.name for v in ss.VARIANTS]
    assert set(ss.NOT_YET_RUN) <= set(names)  # once a variant's results are merged it comes off NOT_YET_RUN
    assert [r["variant"] for r in results] == [n for n in names if n not in ss.NOT_YET_RUN]
    for r in results:
        assert r["meets_targets"] == ss.meets_targets(r["metrics"]) and r["examples"] == {"extraction": 128, "tool_use": 128}


def test_a_data_variant_has_longer_train_splits_and_the_same_test_splits(runs_root, monkeypatch):
    from lfm_helpers.data.generate import load_split
    from lfm_helpers.paths import REPO_ROOT, data_dir, using_data_dir

    shipped = REPO_ROOT / "data"
    monkeypatch.setenv("LFM_DATA_DIR", str(shipped))
    assert ss.variant_data(PRESETS["tiny"], ss.VARIANTS[0]) == shipped
    folder = ss.variant_data(PRESETS["tiny"], ss.Variant("d", "more data", train_rows=40), log=lambda m: None)
    for task in ("extraction", "tool_use"):
        assert load_split(task, "train", folder) == load_split(task, "train", shipped)[:40]  # a prefix of the shipped rows
        assert (folder / task / "test.jsonl").read_bytes() == (shipped / task / "test.jsonl").read_bytes()
    with using_data_dir(folder):
        assert data_dir() == folder
    assert data_dir() == shipped


def test_a_date_style_variant_restyles_train_families_only(runs_root, monkeypatch):
    """The ordinal variants' data: the same conversations, with the named train families' dates
    written as "the 5th of March, 2024"; every other row, and both test splits, as shipped."""
    import re

    from lfm_helpers.data.generate import load_split
    from lfm_helpers.data.tool_use import date_styles_by_split
    from lfm_helpers.paths import REPO_ROOT

    shipped = REPO_ROOT / "data"
    monkeypatch.setenv("LFM_DATA_DIR", str(shipped))
    variant = ss.variant_named("base-4x-sft-3x-ordinal")
    assert variant.own_data and variant.train_rows is None
    restyled = {family for family, _ in ss.ORDINAL_IN_TRAINING}
    assert sorted(date_styles_by_split(dict(ss.ORDINAL_IN_TRAINING))["ordinal"]["train"]) == sorted(restyled)
    assert date_styles_by_split()["ordinal"]["train"] == []  # the shipped data: test-only
    folder = ss.variant_data(PRESETS["tiny"], variant, log=lambda m: None)
    for task in ("extraction", "tool_use"):
        assert (folder / task / "test.jsonl").read_bytes() == (shipped / task / "test.jsonl").read_bytes()
    assert (folder / "extraction" / "train.jsonl").read_bytes() == (shipped / "extraction" / "train.jsonl").read_bytes()
    ordinal = re.compile(r"the \d{1,2}(st|nd|rd|th) of [A-Z][a-z]+, \d{4}")
    for split in ("train", "val"):
        new, old = load_split("tool_use", split, folder), load_split("tool_use", split, shipped)
        assert len(new) == len(old)
        changed = 0
        for a, b in zip(new, old):
            assert (a["id"], a["family"], a["expected_calls"], a["final_answers"]) == (b["id"], b["family"], b["expected_calls"], b["final_answers"])
            if a["family"] in restyled:
                assert ordinal.search(a["messages"][1]["content"]) and not ordinal.search(b["messages"][1]["content"])
                assert a["messages"][2:] == b["messages"][2:]  # the calls and answers keep ISO dates
                changed += 1
            else:
                assert a == b
        assert changed >= 0.03 * len(new)  # one family in six of three intents: about 5% of the rows


@pytest.mark.parametrize("styles, message", [
    ({"days_between.how_long": "iso"}, "held-out"),
    ({"days_between.from_to": "roman"}, "unknown date style"),
    ({"calc.what_is": "ordinal"}, "not a template family that writes dates"),
])
def test_date_style_overrides_that_would_change_the_test_are_refused(styles, message, runs_root):
    from lfm_helpers.data.tool_use import build_split, date_styles_by_split
    from lfm_helpers.data.world import build_world

    with pytest.raises(ValueError, match=message):
        date_styles_by_split(styles)
    with pytest.raises(ValueError, match=message):
        build_split(build_world(0), "train", size=2, date_styles=styles)
    bad = ss.Variant("bad", "restyles a held-out family", train_date_styles=tuple(styles.items()))
    with pytest.raises(ValueError, match=message):
        ss.variant_data(PRESETS["tiny"], bad, log=lambda m: None)
