"""The environment files agree with each other, and the two commands are what CI runs."""

from __future__ import annotations

import re
import tomllib
from pathlib import Path

import yaml

from lfm_helpers.paths import REPO_ROOT


def _pyproject():
    return tomllib.loads((REPO_ROOT / "pyproject.toml").read_text())


def _constraints() -> dict[str, str]:
    pins = {}
    for line in (REPO_ROOT / "requirements" / "constraints.txt").read_text().splitlines():
        if line and not line.startswith("#"):
            name, version = line.split("==")
            pins[name.lower().replace("_", "-")] = version
    return pins


def _name(req: str) -> str:
    return re.split(r"[<>=!~\[ ]", req, maxsplit=1)[0].lower().replace("_", "-")


def test_environment_yml_mirrors_pyproject():
    project = _pyproject()["project"]
    expected = project["dependencies"] + project["optional-dependencies"]["dev"] + project["optional-dependencies"]["lab"]
    env = yaml.safe_load((REPO_ROOT / "environment.yml").read_text())
    pip_section = next(d for d in env["dependencies"] if isinstance(d, dict))["pip"]
    listed = [r for r in pip_section if not r.startswith("-")]
    assert sorted(listed) == sorted(expected)


def test_constraints_pin_every_dependency_and_cpu_torch():
    pins = _constraints()
    project = _pyproject()["project"]
    needed = project["dependencies"] + project["optional-dependencies"]["dev"]
    missing = [_name(r) for r in needed if _name(r) not in pins]
    assert not missing, f"not pinned in constraints.txt: {missing}"
    assert pins["torch"] == "2.13.0"


def test_ci_runs_the_readme_test_command():
    readme = (REPO_ROOT / "README.md").read_text()
    ci = (REPO_ROOT / ".ci" / "run").read_text()
    assert "make test" in readme and "make course" in readme
    assert re.search(r"^make test$", ci, re.M)
    makefile = (REPO_ROOT / "Makefile").read_text()
    for target in ("course:", "test:", "env:"):
        assert target in makefile
    assert "requirements/constraints.txt" in makefile
