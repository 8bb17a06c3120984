"""Stages build into the artifact store, are reused when valid, and rebuilt when stale."""

from __future__ import annotations

import dataclasses
import json
import subprocess
import sys

import pytest
import torch

from lfm_helpers.pipeline import STAGES, load_stage, run_stage
from lfm_helpers.presets import PRESETS, TrainBudget
from conftest import SENTENCES, SMALL

def _quiet(_):
    pass


def test_init_builds_its_dependencies_then_reuses(small_data, runs_root):
    art = run_stage("init", SMALL, log=_quiet)
    tok = run_stage("tokenizer", SMALL, log=_quiet)
    assert not art.reused and tok.reused
    assert art.path == runs_root / "tiny" / "init"
    assert art.manifest["config"]["deps"] == {"tokenizer": tok.config_hash}
    assert art.metrics["parameters"]["total"] > 0
    assert (art.path / "model.safetensors").is_file() and (art.path / "tokenizer.json").is_file()
    assert run_stage("init", SMALL, log=_quiet).reused


def test_changing_the_tokenizer_makes_the_model_stale(small_data, runs_root):
    first = run_stage("init", SMALL, log=_quiet)
    messages = []
    bigger = dataclasses.replace(SMALL, vocab_size=340)
    second = run_stage("init", bigger, log=messages.append)
    assert not second.reused and second.config_hash != first.config_hash
    assert any("stale" in m and "tokenizer" in m for m in messages)
    assert any("stale" in m and "init" in m for m in messages)


def test_regenerated_data_makes_the_tokenizer_stale(small_data, runs_root):
    run_stage("tokenizer", SMALL, log=_quiet)
    manifest = json.loads((small_data / "MANIFEST.json").read_text())
    manifest["files"]["corpus/train.jsonl"]["sha256"] = "changed"
    (small_data / "MANIFEST.json").write_text(json.dumps(manifest))
    assert not run_stage("tokenizer", SMALL, log=_quiet).reused


def test_checkpoint_path_is_the_colab_code_path(small_data, runs_root, tmp_path):
    """The colab preset loads `LiquidAI/LFM2.5-350M` with from_pretrained; a local folder stands in."""
    model, tok, art = load_stage("init", SMALL, log=_quiet)
    checkpoint = tmp_path / "LFM2.5-350M-stand-in"
    model.save_pretrained(checkpoint)
    tok.save_pretrained(checkpoint)
    colab = PRESETS["colab"].with_base_model(str(checkpoint))
    loaded, loaded_tok, colab_art = load_stage("init", colab, log=_quiet)
    assert colab_art.path == runs_root / "colab" / "init"
    assert colab_art.manifest["config"]["config"] == {"source": str(checkpoint)}
    ids = torch.tensor([tok.encode(SENTENCES[0])])
    with torch.no_grad():
        assert torch.allclose(model(ids).logits, loaded(ids).logits)
    assert loaded_tok.encode(SENTENCES[1]) == tok.encode(SENTENCES[1])


def test_missing_checkpoint_folder_is_a_clear_error(small_data, runs_root, tmp_path):
    colab = PRESETS["colab"].with_base_model(str(tmp_path / "not-there"))
    with pytest.raises(FileNotFoundError):
        run_stage("init", colab, log=_quiet)
    assert not (runs_root / "colab" / "init").exists()


def test_unknown_stage_and_missing_data(runs_root, tmp_path, monkeypatch):
    with pytest.raises(ValueError, match="unknown stage 'pretrian'; stages: tokenizer, init"):
        run_stage("pretrian", SMALL)
    monkeypatch.setenv("LFM_DATA_DIR", str(tmp_path / "empty"))
    with pytest.raises(FileNotFoundError, match="python -m lfm_helpers data"):
        run_stage("tokenizer", SMALL, log=_quiet)


def test_stage_registry_order():
    assert list(STAGES)[:2] == ["tokenizer", "init"]
    assert STAGES["init"].deps == ("tokenizer",)


@pytest.mark.parametrize("module", ["sft", "preference", "rl", "loop_fixes", "merge_study", "deploy", "unsloth_smoke",
                                    "capstone"])
def test_every_stage_registers_whichever_module_is_imported_first(module):
    """A stage registers after its dependencies; a module imported on its own (as the Unsloth
    environment imports ``sft``) must not break that order."""
    code = (f"import lfm_helpers.{module}; from lfm_helpers.pipeline import STAGES; "
            "print(' '.join(sorted(STAGES)))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert out.returncode == 0, out.stderr[-2000:]
    assert {"sft_live", "merge", "merge_curriculum", "loop_rl", "rl", "rl_merge", "export_merged"} <= set(out.stdout.split())


def _cli(*args, env=None):
    return subprocess.run([sys.executable, "-m", "lfm_helpers", *args], capture_output=True, text=True, env=env)


def test_cli_lists_and_rejects(monkeypatch):
    out = _cli("presets")
    assert out.returncode == 0 and "tiny" in out.stdout and "colab" in out.stdout
    assert "init" in _cli("stages").stdout
    bad = _cli("run", "init", "--preset", "huge")
    assert bad.returncode == 2 and "valid presets: colab, full, tiny" in bad.stderr
    assert _cli("run", "nonsense").returncode == 2


@pytest.mark.slow
def test_cli_runs_a_stage(small_data, runs_root):
    import os

    env = {**os.environ, "LFM_RUNS_DIR": str(runs_root), "LFM_DATA_DIR": str(small_data)}
    out = _cli("run", "tokenizer", "--preset", "tiny", env=env)
    assert out.returncode == 0, out.stderr
    result = json.loads(out.stdout[out.stdout.index("{"):])
    assert result["reused"] is False and result["metrics"]["vocab_size"] > 267
    again = json.loads(_cli("run", "tokenizer", env=env).stdout.split("\n", 1)[1])
    assert again["reused"] is True


PRETRAIN = dataclasses.replace(SMALL, pretrain=TrainBudget(max_steps=6, batch_size=2, learning_rate=3e-3, seq_len=16,
                                                           warmup_steps=1))


def test_pretrain_stage_trains_and_records(small_data, runs_root):
    art = run_stage("pretrain", PRETRAIN, log=_quiet)
    m = art.metrics
    assert m["steps"] == 6 and m["tokens_seen"] == 6 * 2 * 16
    assert m["final_val_loss"] < m["initial_val_loss"]
    history = json.loads((art.path / "history.json").read_text())
    assert len(history["loss"]) == 6 and round(history["val_loss"][-1], 4) == m["final_val_loss"]
    assert art.manifest["config"]["deps"]["init"] == run_stage("init", PRETRAIN, log=_quiet).config_hash
    assert not (runs_root / "tiny" / ".scratch").exists() or not any((runs_root / "tiny" / ".scratch").iterdir())


def test_interrupted_pretrain_stage_resumes(small_data, runs_root, monkeypatch):
    import lfm_helpers.pretrain as pretrain

    real = pretrain.train_lm

    def interrupted(*args, **kwargs):
        real(*args, **{**kwargs, "stop_after": 2})
        raise KeyboardInterrupt  # the learner stopped the kernel after step 2

    monkeypatch.setattr(pretrain, "train_lm", interrupted)
    with pytest.raises(KeyboardInterrupt):
        run_stage("pretrain", PRETRAIN, log=_quiet)
    assert not (runs_root / "tiny" / "pretrain").exists()  # no half-written artifact
    monkeypatch.setattr(pretrain, "train_lm", real)
    art = run_stage("pretrain", PRETRAIN, log=_quiet)
    assert art.metrics["resumed_from_step"] == 2 and art.metrics["tokens_seen"] == 6 * 2 * 16
