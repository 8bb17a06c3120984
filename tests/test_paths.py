import pytest

from lfm_helpers.paths import data_dir, resolve_pretrained, runs_dir


def test_env_overrides(monkeypatch, tmp_path):
    monkeypatch.setenv("LFM_DATA_DIR", str(tmp_path / "d"))
    monkeypatch.setenv("LFM_RUNS_DIR", str(tmp_path / "r"))
    assert data_dir() == tmp_path / "d" and runs_dir() == tmp_path / "r"


def test_resolve_pretrained(tmp_path):
    assert resolve_pretrained("LiquidAI/LFM2.5-350M", "config.json", "model") == "LiquidAI/LFM2.5-350M"
    folder = tmp_path / "ckpt"
    folder.mkdir()
    with pytest.raises(FileNotFoundError, match="config.json is missing"):
        resolve_pretrained(folder, "config.json", "model")
    (folder / "config.json").write_text("{}")
    assert resolve_pretrained(folder, "config.json", "model") == str(folder)
    with pytest.raises(FileNotFoundError, match="is a file"):
        resolve_pretrained(folder / "config.json", "config.json", "model")
    with pytest.raises(FileNotFoundError, match="does not exist"):
        resolve_pretrained(tmp_path / "missing", "config.json", "model")
    with pytest.raises(FileNotFoundError, match="does not exist"):
        resolve_pretrained("./relative/missing", "config.json", "model")
