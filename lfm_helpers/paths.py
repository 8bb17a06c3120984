"""Where the course keeps its files.

The course is used from a git checkout (``pip install -e .`` locally or on Colab), so the shipped
``data/`` folder and the ``runs/`` artifact store live beside the package at the repository root.
Both can be moved with environment variables, which is what tests and scale-out runs do:

- ``LFM_DATA_DIR``: the shipped data (default ``<repo>/data``);
- ``LFM_RUNS_DIR``: the artifact store (default ``<repo>/runs``).
"""

from __future__ import annotations

import contextlib
import os
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

REPO_ROOT = Path(__file__).resolve().parents[1]


def data_dir() -> Path:
    """The folder holding the shipped data (``data/``), or ``$LFM_DATA_DIR``."""
    return Path(os.environ.get("LFM_DATA_DIR", REPO_ROOT / "data"))


@contextmanager
def using_data_dir(path: Path | str) -> Iterator[Path]:
    """Read the data from ``path`` inside the ``with`` block (``$LFM_DATA_DIR``, restored after)."""
    old = os.environ.get("LFM_DATA_DIR")
    os.environ["LFM_DATA_DIR"] = str(path)
    try:
        yield Path(path)
    finally:
        if old is None:
            del os.environ["LFM_DATA_DIR"]
        else:
            os.environ["LFM_DATA_DIR"] = old


def preset_data(preset) -> contextlib.AbstractContextManager:
    """``with preset_data(preset):`` reads the preset's own data folder (``Preset.data_dir``, the
    capstone's), or changes nothing for a preset without one."""
    data = getattr(preset, "data_dir", None)
    return using_data_dir(data) if data else contextlib.nullcontext()


def runs_dir() -> Path:
    """The root of the artifact store (``runs/``), or ``$LFM_RUNS_DIR``."""
    return Path(os.environ.get("LFM_RUNS_DIR", REPO_ROOT / "runs"))


def resolve_pretrained(path_or_id: str | Path, required_file: str, what: str) -> str:
    """Check a ``from_pretrained`` source: a local folder holding ``required_file``, or a hub id.

    ``from_pretrained`` takes both, and treats anything that is not an existing folder as a hub
    id, so a mistyped local path fails later on the network with a confusing message. Here a
    folder without ``required_file``, a file, or a path-like string that does not exist raises
    ``FileNotFoundError`` naming the problem. Hub ids (``"LiquidAI/LFM2.5-350M"``) pass through.
    """
    text = str(path_or_id)
    local = Path(text).expanduser()
    if local.is_dir():
        if not (local / required_file).is_file():
            raise FileNotFoundError(f"no {what} in {local}: {required_file} is missing")
        return str(local)
    if local.exists():
        raise FileNotFoundError(f"{text!r} is a file; pass the folder that holds {required_file}")
    if text.startswith((".", "/", "~")) or text.count("/") > 1:
        raise FileNotFoundError(f"{what} folder {text!r} does not exist")
    return text
