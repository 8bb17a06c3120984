"""Shared fixtures: every test writes its artifacts into a temporary store, never ``runs/``."""

from __future__ import annotations

import pytest


@pytest.fixture
def runs_root(tmp_path, monkeypatch):
    """A fresh, empty artifact store for one test (``$LFM_RUNS_DIR``)."""
    root = tmp_path / "runs"
    monkeypatch.setenv("LFM_RUNS_DIR", str(root))
    return root
