"""The notebook runner that `make course` and the notebook tests share."""

import json

import nbformat
import pytest

from lfm_helpers.course import NotebookRun, execute_notebook, format_summary, metrics_path, report_metrics


def _notebook(path, *sources):
    nb = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell(s) for s in sources])
    nbformat.write(nb, path)
    return path


def test_report_metrics_writes_atomically(runs_root, monkeypatch):
    monkeypatch.setenv("LFM_PRESET", "tiny")
    report_metrics("99_demo", loss=1.25, steps=3)
    data = json.loads(metrics_path("99_demo").read_text())
    assert data == {"notebook": "99_demo", "metrics": {"loss": 1.25, "steps": 3}}
    assert metrics_path("99_demo").parent == runs_root / "tiny" / "notebooks"
    with pytest.raises(ValueError):
        report_metrics("99_demo")


@pytest.mark.slow
def test_execute_notebook_reports_metrics_and_errors(runs_root, tmp_path):
    good = _notebook(tmp_path / "98_good.ipynb",
                     "import os\npreset = os.environ['LFM_PRESET']",
                     "from lfm_helpers.course import report_metrics\nreport_metrics('98_good', answer=42, preset=preset)")
    run = execute_notebook(good, preset="tiny", output=tmp_path / "out" / "98_good.ipynb")
    assert run.ok and run.metrics == {"answer": 42, "preset": "tiny"}
    executed = nbformat.read(tmp_path / "out" / "98_good.ipynb", as_version=4)
    assert executed.cells[0].execution_count == 1

    bad = _notebook(tmp_path / "97_bad.ipynb", "x = 1", "raise ValueError('boom in cell two')")
    run = execute_notebook(bad, preset="tiny")
    assert not run.ok and "boom in cell two" in run.error and run.metrics == {}


def test_format_summary_lists_every_notebook():
    text = format_summary([NotebookRun("00_a", 1.5, True, metrics={"loss": 0.123456}),
                           NotebookRun("01_b", 2.0, False, "err")])
    assert "00_a" in text and "loss=0.1235" in text and "FAILED" in text
    assert text.splitlines()[-1] == "1/2 notebooks ran, 3.5 s in all"
