import json

import pytest

from lfm_helpers.artifacts import (
    ArtifactError,
    atomic_write_text,
    check_artifact,
    config_hash,
    ensure_artifact,
    load_artifact,
)

CONFIG = {"lr": 0.1, "steps": 3}


def _build(text="weights"):
    calls = []

    def build(out):
        calls.append(out)
        (out / "weights.bin").write_text(text)
        return {"loss": 1.5}

    return build, calls


def _ensure(path, build, config=CONFIG, **kw):
    return ensure_artifact(path, build, stage="s", preset="tiny", config=config, log=lambda _: None, **kw)


def test_config_hash_is_order_independent_and_sensitive():
    assert config_hash({"a": 1, "b": 2}) == config_hash({"b": 2, "a": 1})
    assert config_hash({"a": 1}) != config_hash({"a": 2})


def test_build_then_reuse(tmp_path):
    build, calls = _build()
    art = _ensure(tmp_path / "s", build)
    assert not art.reused and art.metrics == {"loss": 1.5}
    manifest = json.loads((tmp_path / "s" / "manifest.json").read_text())
    assert manifest["config"] == CONFIG and manifest["files"] == {"weights.bin": 7}
    assert manifest["versions"]["torch"] and manifest["wall_time_s"] >= 0
    again = _ensure(tmp_path / "s", build)
    assert again.reused and len(calls) == 1


def test_stale_config_is_rebuilt(tmp_path):
    build, calls = _build()
    _ensure(tmp_path / "s", build)
    ok, reason = check_artifact(tmp_path / "s", config_hash({"lr": 0.2, "steps": 3}))
    assert not ok and reason.startswith("stale")
    art = _ensure(tmp_path / "s", build, config={"lr": 0.2, "steps": 3})
    assert not art.reused and len(calls) == 2


@pytest.mark.parametrize("damage", ["delete_file", "truncate_file", "delete_manifest", "corrupt_manifest"])
def test_partial_artifact_is_rebuilt(tmp_path, damage):
    build, calls = _build()
    path = tmp_path / "s"
    _ensure(path, build)
    if damage == "delete_file":
        (path / "weights.bin").unlink()
    elif damage == "truncate_file":
        (path / "weights.bin").write_text("w")
    elif damage == "delete_manifest":
        (path / "manifest.json").unlink()
    else:
        (path / "manifest.json").write_text("{not json")
    assert not check_artifact(path, config_hash(CONFIG))[0]
    with pytest.raises(ArtifactError, match="not usable"):
        load_artifact(path, config_hash(CONFIG))
    assert not _ensure(path, build).reused and len(calls) == 2
    assert check_artifact(path, config_hash(CONFIG)) == (True, "valid")


def test_interrupted_first_write_leaves_nothing_valid(tmp_path):
    def crash(out):
        (out / "weights.bin").write_text("half")
        raise KeyboardInterrupt  # the learner pressed stop half-way

    with pytest.raises(KeyboardInterrupt):
        _ensure(tmp_path / "s", crash)
    assert not (tmp_path / "s").exists()
    assert list(tmp_path.iterdir()) == []  # the temporary folder is cleaned up too


def test_interrupted_rewrite_keeps_the_old_artifact(tmp_path):
    build, _ = _build("old weights")
    _ensure(tmp_path / "s", build)

    def crash(out):
        (out / "weights.bin").write_text("new")
        raise RuntimeError("out of memory")

    with pytest.raises(RuntimeError):
        _ensure(tmp_path / "s", crash, force=True)
    assert (tmp_path / "s" / "weights.bin").read_text() == "old weights"
    assert check_artifact(tmp_path / "s", config_hash(CONFIG))[0]


def test_half_written_temp_folder_is_never_taken_as_valid(tmp_path):
    # A process killed hard (no exception handler ran) leaves its temporary folder behind.
    debris = tmp_path / ".s.tmp-deadbeef"
    debris.mkdir()
    (debris / "weights.bin").write_text("half")
    assert check_artifact(tmp_path / "s")[1] == "missing"
    build, calls = _build()
    art = _ensure(tmp_path / "s", build)
    assert not art.reused and len(calls) == 1 and not debris.exists()


def test_atomic_write_text_replaces_whole_file(tmp_path):
    target = tmp_path / "a" / "b.json"
    atomic_write_text(target, "one")
    atomic_write_text(target, "two")
    assert target.read_text() == "two"
    assert [p.name for p in target.parent.iterdir()] == ["b.json"]


def test_install_folder_replaces_whole_folders(tmp_path):
    from lfm_helpers.artifacts import install_folder

    target = tmp_path / "t"
    for content in ("first", "second"):
        new = tmp_path / f".t.tmp-{content}"
        new.mkdir()
        (new / "f.txt").write_text(content)
        install_folder(new, target)
        assert (target / "f.txt").read_text() == content and not new.exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["t"]  # the old folder was removed
