"""Shared fixtures: every test writes its artifacts into a temporary store, never ``runs/``."""

from __future__ import annotations

import pytest


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
