"""Where the course keeps its files.

The course is used from a git checkout (``pip install -e .`` locally or on Colab), so the shipped
``data/`` folder and the ``runs/`` artifact store live beside the package at the repository root.
Both can be moved with environment variables, which is what tests and scale-out runs do:

- ``LFM_DATA_DIR``: the shipped data (default ``<repo>/data``);
- ``LFM_RUNS_DIR``: the artifact store (default ``<repo>/runs``).
"""

from __future__ import annotations

import os
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[1]


def data_dir() -> Path:
    """The folder holding the shipped data (``data/``), or ``$LFM_DATA_DIR``."""
    return Path(os.environ.get("LFM_DATA_DIR", REPO_ROOT / "data"))


def runs_dir() -> Path:
    """The root of the artifact store (``runs/``), or ``$LFM_RUNS_DIR``."""
    return Path(os.environ.get("LFM_RUNS_DIR", REPO_ROOT / "runs"))
