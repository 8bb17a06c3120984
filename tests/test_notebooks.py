"""Every notebook runs top to bottom on the tiny preset in a fresh kernel, and says what it should.

Notebooks run in learning order against the repository's ``runs/`` store, exactly as ``make
course`` runs them, so later notebooks reuse what earlier ones built. The executed copies land
in ``build/executed/`` (the book is built from them). Each notebook's key results are asserted
from the metrics it reported.
"""

from __future__ import annotations

import pytest

from lfm_helpers.course import execute_notebook, list_notebooks
from lfm_helpers.paths import REPO_ROOT


def _check_00(m):
    assert m["lfm2_350m_params"] == 354_483_968
    assert m["lfm2_1_2b_params"] == 1_170_340_608
    assert m["lfm2_350m_bf16_fits_1gb"] and not m["lfm2_1_2b_bf16_fits_1gb"] and m["lfm2_1_2b_int4_fits_1gb"]
    assert 1_000_000 < m["tiny_params"] < 20_000_000
    assert abs(m["untrained_loss"] - m["ln_vocab"]) < 0.5  # a fresh model guesses uniformly
    assert m["extraction_target_verified"] and m["tool_call_verified"]


KEY_RESULTS = {"00_orientation": _check_00}

NOTEBOOKS = list_notebooks()


def test_there_are_notebooks():
    assert NOTEBOOKS, "no notebooks found in notebooks/"
    assert NOTEBOOKS[0].stem == "00_orientation"


@pytest.mark.slow
@pytest.mark.notebook
@pytest.mark.parametrize("notebook", NOTEBOOKS, ids=lambda p: p.stem)
def test_notebook_runs_top_to_bottom(notebook, notebook_times):
    run = execute_notebook(notebook, preset="tiny", output=REPO_ROOT / "build" / "executed" / notebook.name)
    notebook_times[run.name] = run.wall_time_s
    assert run.ok, run.error[-4000:]
    assert run.metrics, f"{notebook.name} reported no metrics (call lfm_helpers.course.report_metrics)"
    KEY_RESULTS[run.name](run.metrics)


@pytest.mark.parametrize("notebook", NOTEBOOKS, ids=lambda p: p.stem)
def test_notebook_is_committed_clean(notebook):
    """Committed notebooks carry no outputs or widget state (GitHub cannot render widget state,
    and outputs belong to the learner's run or the book build)."""
    import nbformat

    nb = nbformat.read(notebook, as_version=4)
    assert "widgets" not in nb.metadata
    assert nb.metadata["kernelspec"]["name"] == "python3"
    for cell in nb.cells:
        if cell.cell_type == "code":
            assert not cell.outputs and cell.execution_count is None, f"{notebook.name} has outputs"
