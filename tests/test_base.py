"""The shipped base: its files are what its manifest says, and its first steps reproduce."""

from __future__ import annotations

import json

import pytest

from lfm_helpers.artifacts import ArtifactError
from lfm_helpers.base import (
    BASE_MANIFEST,
    base_training_preset,
    check_base_matches,
    read_shipped_base,
    shipped_base_dir,
)
from lfm_helpers.models import load_model
from lfm_helpers.pipeline import data_fingerprint, packed_corpus, run_stage
from lfm_helpers.presets import PRESETS
from lfm_helpers.pretrain import PretrainConfig, train_lm

TINY = PRESETS["tiny"]
REPRODUCED_STEPS = 5


def test_shipped_base_is_intact_and_documented():
    manifest = read_shipped_base(TINY)
    assert manifest["command"] == "python -m lfm_helpers ship-base --preset tiny"
    assert manifest["pretrain"]["max_steps"] == TINY.base_pretrain.max_steps
    assert manifest["metrics"]["final_val_loss"] < manifest["metrics"]["initial_val_loss"]
    assert sum((shipped_base_dir(TINY) / f).stat().st_size for f in manifest["files"]) < 25e6


@pytest.mark.slow
def test_shipped_base_reproduces_its_first_steps(runs_root):
    manifest = read_shipped_base(TINY)
    cfg = PretrainConfig(**{**manifest["pretrain"], "betas": tuple(manifest["pretrain"]["betas"])})
    init = run_stage("init", base_training_preset(TINY), log=lambda _: None)
    check_base_matches(manifest, data_fingerprint("corpus/train.jsonl"), init.path / "tokenizer.json")
    train, val = packed_corpus(base_training_preset(TINY), cfg.seq_len, log=lambda _: None)
    result = train_lm(load_model(init.path), train, val, cfg, stop_after=REPRODUCED_STEPS, progress=False)
    assert result.history.loss == pytest.approx(manifest["first_losses"][:REPRODUCED_STEPS], rel=1e-4)


@pytest.mark.slow
def test_base_stage_hands_over_the_shipped_weights(runs_root):
    art = run_stage("base", TINY, log=lambda _: None)
    assert art.metrics["source"] == "shipped"
    assert art.metrics["final_val_loss"] == read_shipped_base(TINY)["metrics"]["final_val_loss"]
    load_model(art.path)


def test_a_stale_or_missing_base_is_refused(tmp_path, monkeypatch):
    manifest = read_shipped_base(TINY)
    tokenizer_json = tmp_path / "tokenizer.json"
    tokenizer_json.write_text("{}")
    with pytest.raises(ArtifactError, match="another version of data/corpus"):
        check_base_matches(manifest, "0" * 64, tokenizer_json)
    with pytest.raises(ArtifactError, match="another tokenizer"):
        check_base_matches(manifest, manifest["corpus_sha256"], tokenizer_json)
    monkeypatch.setenv("LFM_DATA_DIR", str(tmp_path))
    with pytest.raises(ArtifactError, match="ship-base --preset tiny"):
        read_shipped_base(TINY)


def test_an_altered_base_file_is_refused(tmp_path, monkeypatch):
    import shutil

    copy = tmp_path / "base" / "tiny"
    shutil.copytree(shipped_base_dir(TINY), copy)
    monkeypatch.setenv("LFM_DATA_DIR", str(tmp_path))
    manifest = json.loads((copy / BASE_MANIFEST).read_text())
    name = next(iter(manifest["files"]))
    (copy / name).write_bytes((copy / name).read_bytes()[:-1])
    with pytest.raises(ArtifactError, match="missing or altered"):
        read_shipped_base(TINY)


def test_presets_without_a_long_run_use_their_checkpoint():
    with pytest.raises(ValueError, match="no base_pretrain"):
        base_training_preset(PRESETS["colab"])
