"""Shared fixtures: every test writes its artifacts into a temporary store, never ``runs/``."""

from __future__ import annotations

import dataclasses
import hashlib
import json

import pytest

from lfm_helpers.presets import PRESETS, ModelSpec


@pytest.fixture
def runs_root(tmp_path, monkeypatch):
    """A fresh, empty artifact store for one test (``$LFM_RUNS_DIR``)."""
    root = tmp_path / "runs"
    monkeypatch.setenv("LFM_RUNS_DIR", str(root))
    return root


NOTEBOOK_TIMES = pytest.StashKey[dict]()


@pytest.fixture
def notebook_times(request):
    """Wall time of each executed notebook, printed at the end of the test run."""
    return request.config.stash.setdefault(NOTEBOOK_TIMES, {})


def pytest_terminal_summary(terminalreporter, exitstatus, config):
    times = config.stash.get(NOTEBOOK_TIMES, {})
    if times:
        terminalreporter.section("notebook wall times (tiny preset)")
        for name, seconds in times.items():
            terminalreporter.write_line(f"{name:<28} {seconds:7.1f} s")
        terminalreporter.write_line(f"{'total':<28} {sum(times.values()):7.1f} s")


SENTENCES = [
    "Anna ordered 3 lamps from the shop in Porto on 2024-05-02.",
    "The concert at the Blue Hall starts at 19:30; tickets cost 12.50 EUR.",
    '{"name": "Ben", "city": "Lyon", "age": 41}',
    "Ten days after 2024-03-25 is 2024-04-04.",
    "12 km is 7.46 miles.",
]


@pytest.fixture
def small_data(tmp_path, monkeypatch):
    """A tiny corpus in the shipped layout, so the pipeline runs in a second."""
    root = tmp_path / "data"
    (root / "corpus").mkdir(parents=True)
    files = {}
    for split, n in (("train", 40), ("val", 4)):
        rows = [{"kind": "demo", "text": f"{SENTENCES[i % 5]} (#{i})"} for i in range(n)]
        text = "".join(json.dumps(r) + "\n" for r in rows)
        (root / "corpus" / f"{split}.jsonl").write_text(text)
        files[f"corpus/{split}.jsonl"] = {"sha256": hashlib.sha256(text.encode()).hexdigest(), "bytes": len(text)}
    (root / "MANIFEST.json").write_text(json.dumps({"files": files}))
    monkeypatch.setenv("LFM_DATA_DIR", str(root))
    return root


SMALL = dataclasses.replace(
    PRESETS["tiny"],
    vocab_size=320,
    model=ModelSpec(hidden_size=32, num_layers=4, attention_layers=(1, 3), num_heads=4, num_kv_heads=2,
                    intermediate_size=48, max_position_embeddings=128),
)


@pytest.fixture
def task_data(small_data):
    """``small_data`` plus the first rows of the shipped extraction and tool-use splits (and the
    schemas and world tables they need), so SFT and evaluation stages run in seconds."""
    import shutil

    from lfm_helpers.paths import REPO_ROOT

    shipped = REPO_ROOT / "data"
    manifest = json.loads((small_data / "MANIFEST.json").read_text())
    for task in ("extraction", "tool_use"):
        (small_data / task).mkdir()
        for split, n in (("train", 48), ("val", 8), ("test", 8)):
            lines = (shipped / task / f"{split}.jsonl").read_text().splitlines(keepends=True)[:n]
            text = "".join(lines)
            (small_data / task / f"{split}.jsonl").write_text(text)
            manifest["files"][f"{task}/{split}.jsonl"] = {"sha256": hashlib.sha256(text.encode()).hexdigest(),
                                                          "bytes": len(text)}
    shutil.copy(shipped / "extraction" / "schemas.json", small_data / "extraction" / "schemas.json")
    shutil.copytree(shipped / "world", small_data / "world")
    (small_data / "MANIFEST.json").write_text(json.dumps(manifest))
    return small_data


def pytest_collection_modifyitems(session, config, items):
    """Book tests last: they build the site from the notebooks the notebook tests executed."""
    items.sort(key=lambda item: item.get_closest_marker("book") is not None)
