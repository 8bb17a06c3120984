"""Run the course: execute every notebook top to bottom in a fresh kernel and summarise.

``make course`` and the notebook tests both call :func:`execute_notebook`, so what CI checks is
what a learner runs. Each notebook reports its key results with :func:`report_metrics`, which
writes ``runs/<preset>/notebooks/<notebook>.json``; the runner clears that file before a run
(so a stale number is never reported), reads it afterwards, and the tests assert on it.
"""

from __future__ import annotations

import json
import os
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .artifacts import atomic_write_text
from .paths import REPO_ROOT, runs_dir
from .presets import PRESET_ENV, load_preset

NOTEBOOKS_DIR = REPO_ROOT / "notebooks"


def list_notebooks(folder: Path = NOTEBOOKS_DIR) -> list[Path]:
    """The course notebooks in learning order (``00_...``, ``01_...``, ...)."""
    return sorted(p for p in Path(folder).glob("[0-9][0-9]_*.ipynb"))


def metrics_path(notebook: str, preset: str | None = None) -> Path:
    """Where ``notebook`` (a stem such as ``00_orientation``) reports its key metrics."""
    return runs_dir() / (preset or load_preset(check_device=False).name) / "notebooks" / f"{notebook}.json"


def report_metrics(notebook: str, **metrics: Any) -> dict[str, Any]:
    """Record a notebook's key results (JSON-serialisable values) for the summary and the tests.

    The first metric given is the notebook's headline number in the course summary.
    """
    if not metrics:
        raise ValueError("report_metrics needs at least one metric")
    payload = {"notebook": notebook, "metrics": metrics}
    atomic_write_text(metrics_path(notebook), json.dumps(payload, indent=2) + "\n")
    return metrics


@dataclass
class NotebookRun:
    """The outcome of executing one notebook."""

    name: str
    wall_time_s: float
    ok: bool
    error: str = ""
    metrics: dict[str, Any] = field(default_factory=dict)

    @property
    def headline(self) -> str:
        if not self.metrics:
            return "-"
        key, value = next(iter(self.metrics.items()))
        return f"{key}={value:.4g}" if isinstance(value, float) else f"{key}={value}"


def execute_notebook(path: Path, *, preset: str | None = None, output: Path | None = None,
                     timeout: int = 2400) -> NotebookRun:
    """Execute ``path`` in a fresh ``python3`` kernel (cwd: the notebook's folder).

    ``timeout`` is per cell: a post-training cell trains a stage (notebook 05's DPO rounds take
    about 10 minutes here), so it allows four times that before calling a cell stuck.

    ``preset`` is passed to the kernel through ``LFM_PRESET``. The executed copy is written to
    ``output`` when given (the book is built from these). Errors are caught and returned, with
    the failing cell's error text, so a course run can report every notebook.
    """
    import nbformat
    from nbclient import NotebookClient
    from nbclient.exceptions import CellExecutionError

    path = Path(path)
    preset_name = preset or load_preset(check_device=False).name
    mpath = metrics_path(path.stem, preset_name)
    mpath.unlink(missing_ok=True)
    nb = nbformat.read(path, as_version=4)
    client = NotebookClient(nb, timeout=timeout, kernel_name="python3",
                            resources={"metadata": {"path": str(path.parent)}})
    old = os.environ.get(PRESET_ENV)
    os.environ[PRESET_ENV] = preset_name  # the kernel inherits the environment
    start = time.perf_counter()
    error = ""
    try:
        client.execute()
    except CellExecutionError as exc:
        error = str(exc)
    finally:
        if old is None:
            os.environ.pop(PRESET_ENV, None)
        else:
            os.environ[PRESET_ENV] = old
    wall = time.perf_counter() - start
    if output is not None:
        output = Path(output)
        output.parent.mkdir(parents=True, exist_ok=True)
        atomic_write_text(output, nbformat.writes(nb))
    metrics = json.loads(mpath.read_text())["metrics"] if mpath.is_file() else {}
    return NotebookRun(path.stem, round(wall, 1), not error, error, metrics)


def run_course(notebooks: list[Path] | None = None, *, preset: str | None = None,
               executed_dir: Path | None = REPO_ROOT / "build" / "executed") -> list[NotebookRun]:
    """Execute the notebooks in order, print a summary table, and return the runs."""
    notebooks = notebooks or list_notebooks()
    if not notebooks:
        raise FileNotFoundError(f"no notebooks found in {NOTEBOOKS_DIR}")
    preset_name = preset or load_preset().name
    runs = []
    for i, nb in enumerate(notebooks, 1):
        print(f"[{i}/{len(notebooks)}] executing {nb.name} (preset {preset_name}) ...", flush=True)
        out = executed_dir / nb.name if executed_dir else None
        run = execute_notebook(nb, preset=preset_name, output=out)
        status = "ok" if run.ok else "FAILED"
        print(f"    {status} in {run.wall_time_s:.1f} s  {run.headline}", flush=True)
        if not run.ok:
            print(run.error[-2000:], flush=True)
        runs.append(run)
    print(format_summary(runs))
    return runs


def format_summary(runs: list[NotebookRun]) -> str:
    """A plain-text table: notebook, status, wall time, key metric."""
    rows = [("notebook", "status", "wall time", "key metric")]
    rows += [(r.name, "ok" if r.ok else "FAILED", f"{r.wall_time_s:.1f} s", r.headline) for r in runs]
    widths = [max(len(row[i]) for row in rows) for i in range(4)]
    lines = ["  ".join(cell.ljust(w) for cell, w in zip(row, widths)).rstrip() for row in rows]
    lines.insert(1, "  ".join("-" * w for w in widths))
    total = sum(r.wall_time_s for r in runs)
    lines.append(f"{sum(r.ok for r in runs)}/{len(runs)} notebooks ran, {total:.1f} s in all")
    return "\n".join(lines)
