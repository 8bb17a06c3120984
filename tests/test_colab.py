"""Colab support: every notebook opens with a working badge and a first cell that sets up Colab
and does nothing anywhere else; the version check says which package is out of range."""

import os
import re

import nbformat
import pytest

from lfm_helpers import colab
from lfm_helpers.course import list_notebooks
from lfm_helpers.paths import REPO_ROOT
from lfm_helpers.versions import check_versions, required_packages

NOTEBOOKS = list_notebooks()


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_each_notebook_opens_with_its_badge_and_the_colab_cell(path):
    nb = nbformat.read(path, as_version=4)
    badge, first_code = nb.cells[0], next(c for c in nb.cells if c.cell_type == "code")
    relative = path.relative_to(REPO_ROOT).as_posix()
    assert badge.cell_type == "markdown" and badge.source == colab.badge_markdown(relative)
    linked = re.search(rf"github/{colab.GITHUB_REPO}/blob/{colab.BRANCH}/(\S+?)\)", badge.source).group(1)
    assert (REPO_ROOT / linked).is_file() and linked == relative  # the badge opens this very file
    assert first_code is nb.cells[1] and first_code.source == colab.first_cell_source()
    # the book leaves both out (the badge image would come from Colab's server, so not offline)
    assert all("remove-cell" in c.metadata.get("tags", []) for c in (badge, first_code))


def test_the_first_cell_does_nothing_off_colab(monkeypatch, tmp_path):
    from IPython.core.inputtransformer2 import TransformerManager

    code = TransformerManager().transform_cell(colab.first_cell_source())  # the `!` and `%pip` lines
    _no_preset(monkeypatch)
    monkeypatch.chdir(tmp_path)

    def get_ipython():
        raise AssertionError("a shell or magic command ran off Colab")

    exec(compile(code, "first-cell", "exec"), {"get_ipython": get_ipython})
    assert "LFM_PRESET" not in os.environ and os.getcwd() == str(tmp_path)
    assert colab.setup() is None and "LFM_PRESET" not in os.environ


def _no_preset(monkeypatch):
    """Unset $LFM_PRESET for this test only (setenv first, so that teardown restores the original)."""
    monkeypatch.setenv("LFM_PRESET", "unset-by-the-test")
    monkeypatch.delenv("LFM_PRESET")


def test_setup_on_colab_picks_the_preset_and_installs_unsloth_on_a_gpu(monkeypatch):
    ran = []
    _no_preset(monkeypatch)
    assert colab.setup(force=True, run=ran.append, has_gpu=True) == "colab"
    assert os.environ["LFM_PRESET"] == "colab" and ran and ran[0][-1] == "unsloth"
    ran.clear()
    monkeypatch.delenv("LFM_PRESET")
    assert colab.setup(force=True, run=ran.append, has_gpu=False) == "tiny" and not ran  # a CPU runtime
    monkeypatch.setenv("LFM_PRESET", "tiny")
    assert colab.setup(force=True, run=ran.append, has_gpu=True) == "tiny"  # a choice already made is kept


def test_version_check_prints_ok_and_fail(capsys):
    results = check_versions(["pytest>=1", "numpy<1", "surely-not-a-package>=1"])
    assert results == {"pytest": True, "numpy": False, "surely-not-a-package": False}
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].startswith("[OK] pytest ") and lines[1].startswith("[FAIL] numpy ")
    assert lines[2] == "[FAIL] surely-not-a-package not installed (needs >=1)"


def test_this_environment_meets_the_declared_requirements(capsys):
    assert "torch>=2.4" in required_packages()
    assert all(check_versions().values()), capsys.readouterr().out
