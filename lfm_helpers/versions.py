"""Library versions: printed at the top of every notebook and stored in every artifact manifest.

When a learner reports "it broke", the first question is which versions they ran; when an
artifact is reused, the manifest says which versions made it.
"""

from __future__ import annotations

import platform
import sys
from importlib import metadata

#: The libraries whose versions matter for reproducing a run.
TRACKED = (
    "torch",
    "transformers",
    "tokenizers",
    "safetensors",
    "accelerate",
    "datasets",
    "trl",
    "peft",
    "numpy",
    "matplotlib",
    "lfm_helpers",
)


def library_versions(names: tuple[str, ...] = TRACKED) -> dict[str, str]:
    """Installed version of each library (``"not installed"`` where it is missing), plus Python."""
    out = {"python": platform.python_version()}
    for name in names:
        try:
            out[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            out[name] = "not installed"
    return out


def print_versions() -> dict[str, str]:
    """Print the version table a notebook opens with, and return it."""
    versions = library_versions()
    width = max(map(len, versions))
    print(f"platform{' ' * (width - 8)}  {platform.platform()} ({sys.implementation.name})")
    for name, version in versions.items():
        print(f"{name:<{width}}  {version}")
    return versions
