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


def required_packages() -> list[str]:
    """The package's requirements, as ``pyproject.toml`` declares them (``"torch>=2.4"``, ...).

    Read from ``pyproject.toml`` beside the package in a checkout (it is the source of truth, even
    before ``pip install -e .`` has refreshed the installed metadata), else from the installed metadata.
    """
    from .paths import REPO_ROOT

    pyproject = REPO_ROOT / "pyproject.toml"
    if pyproject.is_file() and sys.version_info >= (3, 11):
        import tomllib

        return list(tomllib.loads(pyproject.read_text(encoding="utf-8"))["project"]["dependencies"])
    return [r for r in (metadata.requires("lfm_helpers") or []) if "extra ==" not in r]


def check_versions(requirements: list[str] | None = None) -> dict[str, bool]:
    """Print ``[OK]`` or ``[FAIL]`` for each required package (installed version against the
    declared range) and return ``{name: ok}``. Colab and conda environments drift; this says
    which package to fix before a cryptic error does."""
    from packaging.requirements import Requirement

    results = {}
    for line in requirements if requirements is not None else required_packages():
        req = Requirement(line)
        try:
            installed = metadata.version(req.name)
        except metadata.PackageNotFoundError:
            installed = None
        ok = installed is not None and req.specifier.contains(installed, prereleases=True)
        wanted = str(req.specifier) or "any version"
        print(f"[{'OK' if ok else 'FAIL'}] {req.name} {installed or 'not installed'} (needs {wanted})")
        results[req.name] = ok
    return results
