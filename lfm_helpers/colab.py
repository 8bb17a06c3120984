"""Colab support: where the course is published, each notebook's badge, and the set-up that the
first cell of every notebook runs on Colab (and nowhere else).

A notebook opened from its "Open in Colab" badge arrives alone, without the package or the
shipped ``data/``. Its first cell therefore clones the repository and installs it (that part
cannot live in the package, which is not installed yet), then calls :func:`setup`, which picks
the ``colab`` preset and, on a GPU runtime, installs Unsloth. Locally the cell does nothing.
The hub checkpoints and datasets the ``colab`` preset uses are named in one place:
``lfm_helpers.presets`` (the ``colab`` entry of ``PRESETS``).
"""

from __future__ import annotations

import os
import subprocess
import sys
from typing import Callable

#: Where the course is published (``owner/name`` on GitHub); the badges and the clone use it.
GITHUB_REPO = "small-frontier-models/playbook"
BRANCH = "main"
#: Where the first cell clones the repository on Colab.
COLAB_CHECKOUT = "/content/playbook"


def on_colab() -> bool:
    """True inside a Colab runtime (its ``google.colab`` module is loaded by the kernel)."""
    return "google.colab" in sys.modules


def badge_url(notebook_path: str) -> str:
    """The Colab link for a notebook at ``notebook_path`` in the repository (``notebooks/00_x.ipynb``)."""
    return f"https://colab.research.google.com/github/{GITHUB_REPO}/blob/{BRANCH}/{notebook_path}"


def badge_markdown(notebook_path: str) -> str:
    """The markdown of the badge cell that opens every notebook."""
    return (f"[![Open In Colab](https://colab.research.google.com/assets/colab-badge.svg)]"
            f"({badge_url(notebook_path)})")


def first_cell_source() -> str:
    """The code of every notebook's first code cell: on Colab, clone and install the course, then
    :func:`setup`; elsewhere nothing (the ``if`` is false and nothing is imported)."""
    return (
        "import sys\n"
        "if \"google.colab\" in sys.modules:  # on Colab only: fetch and install the course, pick the colab preset\n"
        f"    !test -d {COLAB_CHECKOUT} || git clone -q --depth 1 https://github.com/{GITHUB_REPO}.git {COLAB_CHECKOUT}\n"
        f"    %pip install -q -e {COLAB_CHECKOUT}\n"
        f"    sys.path.insert(0, \"{COLAB_CHECKOUT}\")\n"
        "    from lfm_helpers.colab import setup\n"
        "    setup()"
    )


def setup(*, run: Callable[[list[str]], None] | None = None, has_gpu: bool | None = None,
          force: bool = False) -> str | None:
    """On Colab: select the ``colab`` preset (``$LFM_PRESET``, unless one is already set), install
    Unsloth on a GPU runtime (it must be imported before transformers, so this runs before any
    model code), and move to the checkout's ``notebooks/`` folder. Returns the preset name, or
    ``None`` (and does nothing) off Colab unless ``force``.
    """
    if not (force or on_colab()):
        return None
    if run is None:
        def run(cmd: list[str]) -> None:
            subprocess.run(cmd, check=True)
    if has_gpu is None:
        import torch

        has_gpu = torch.cuda.is_available()
    preset = os.environ.setdefault("LFM_PRESET", "colab" if has_gpu else "tiny")
    if has_gpu:
        run([sys.executable, "-m", "pip", "install", "-q", "unsloth"])
    notebooks = os.path.join(COLAB_CHECKOUT, "notebooks")
    if os.path.isdir(notebooks):
        os.chdir(notebooks)
    print(f"Colab set-up: preset {preset!r}" + (", Unsloth installed" if has_gpu else " (no GPU: the CPU preset)"))
    return preset
