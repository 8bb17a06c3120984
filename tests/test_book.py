"""The published course: the book lists every notebook, builds offline from the executed
notebooks, has no broken internal links, and renders in a real browser without console errors."""

from __future__ import annotations

import functools
import http.server
import os
import shutil
import threading

import nbformat
import pytest
import yaml

from lfm_helpers import book, colab
from lfm_helpers.course import list_notebooks
from lfm_helpers.paths import REPO_ROOT

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
SCREENSHOTS = REPO_ROOT / "build" / "book-screenshots"


def test_every_notebook_is_in_the_book(tmp_path):
    book.check_toc()
    assert book.toc_notebooks() == [p.stem for p in list_notebooks()]  # in course order
    extra = tmp_path / "notebooks"
    extra.mkdir()
    for p in list_notebooks():
        shutil.copy(p, extra / p.name)
    (extra / "99_new.ipynb").write_text(nbformat.writes(nbformat.v4.new_notebook()))
    with pytest.raises(ValueError, match="99_new.ipynb is not in book/_toc.yml"):
        book.check_toc(notebooks_dir=extra)


def test_book_config_points_at_the_published_repository():
    config = yaml.safe_load((book.BOOK_DIR / "_config.yml").read_text())
    assert config["repository"]["url"] == f"https://github.com/{colab.GITHUB_REPO}"
    assert config["execute"]["execute_notebooks"] == "off"  # the book never re-trains
    for page in book.toc_files():
        assert any((book.BOOK_DIR / f"{page}{ext}").is_file() for ext in (".md", ".ipynb")) or page.startswith("notebooks/")


def test_staging_needs_the_executed_notebooks_and_mathjax(tmp_path):
    with pytest.raises(FileNotFoundError, match="make course"):
        book.stage_book(tmp_path / "a", executed_dir=tmp_path / "nothing")
    executed = tmp_path / "executed"
    executed.mkdir()
    for p in list_notebooks():
        shutil.copy(p, executed / p.name)
    with pytest.raises(FileNotFoundError, match="make book-env"):
        book.stage_book(tmp_path / "b", executed_dir=executed, mathjax_dir=tmp_path / "no-mathjax")


def test_widgets_are_dropped_and_their_text_kept(tmp_path):
    nb = nbformat.v4.new_notebook(metadata={"widgets": {"state": {}}})
    cell = nbformat.v4.new_code_cell("x")
    cell.outputs = [nbformat.v4.new_output("display_data", data={
        "application/vnd.jupyter.widget-view+json": {"model_id": "m"}, "text/plain": "100%|##| 3/3"})]
    nb.cells = [cell]
    nbformat.write(nb, tmp_path / "a.ipynb")
    book.without_widgets(tmp_path / "a.ipynb", tmp_path / "b.ipynb")
    out = nbformat.read(tmp_path / "b.ipynb", as_version=4)
    assert "widgets" not in out.metadata and out.cells[0].outputs[0].data == {"text/plain": "100%|##| 3/3"}


def test_duplicate_scripts_are_dropped():
    html = "<head>\n  <script>const A = 1;</script>\n  <script src='x.js'></script>\n  <script>const A = 1;</script>\n</head>\n"
    assert book.drop_duplicate_scripts(html) == "<head>\n  <script>const A = 1;</script>\n  <script src='x.js'></script>\n</head>\n"


def test_broken_internal_links_are_found(tmp_path):
    (tmp_path / "sub").mkdir()
    (tmp_path / "index.html").write_text('<a href="sub/page.html#x">ok</a> <img src="missing.png"> '
                                         '<a href="https://example.org/">external</a> <a href="#top">anchor</a>')
    (tmp_path / "sub" / "page.html").write_text('<a href="../index.html">up</a> <a href="gone.html">gone</a>')
    assert book.broken_links(tmp_path) == ["index.html: missing.png", "sub/page.html: gone.html"]


def _serve(site):
    class Quiet(http.server.SimpleHTTPRequestHandler):
        def log_message(self, *args):
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), functools.partial(Quiet, directory=str(site)))
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server


@pytest.mark.book
@pytest.mark.slow
def test_the_book_builds_and_renders_in_a_browser():
    """`make book` on the notebooks the notebook tests just executed; then headless Chromium."""
    missing = [p.name for p in list_notebooks() if not (book.EXECUTED_DIR / p.name).is_file()]
    if missing:
        pytest.fail(f"executed notebooks missing ({', '.join(missing)}): run the notebook tests or `make course` first")
    site = book.build_book()
    assert book.broken_links(site) == []
    assert (site / "favicon.ico").is_file()  # browsers ask for it at the root, whatever the page says
    if CHROMIUM is None:
        if os.environ.get("CI"):
            pytest.fail("chromium is not installed; `make book-env` installs Debian's chromium")
        pytest.skip("no chromium here (make book-env installs it on Debian)")
    from playwright.sync_api import sync_playwright

    server = _serve(site)
    base = f"http://127.0.0.1:{server.server_address[1]}"
    problems, seen = [], {}  # problems: every console error, page error and failed request
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    try:
        with sync_playwright() as p:
            browser = p.chromium.launch(executable_path=CHROMIUM, args=[
                "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking",
                "--disable-component-update", "--disable-sync"])
            page = browser.new_page(viewport={"width": 1280, "height": 900})
            page.on("console", lambda m: problems.append(f"console {m.type}: {m.text} ({m.location.get('url')})")
                    if m.type == "error" else None)
            page.on("pageerror", lambda e: problems.append(f"page error: {e}"))
            page.on("requestfailed", lambda r: problems.append(f"request failed: {r.url}"))
            page.on("response", lambda r: problems.append(f"HTTP {r.status}: {r.url}") if r.status >= 400 else None)
            for name in ["index.html"] + [f"{f}.html" for f in book.toc_files()]:  # every page: nothing fails offline
                before = len(problems)
                page.goto(f"{base}/{name}", wait_until="networkidle")
                problems[before:] = [f"{name}: {p}" for p in problems[before:]]
                seen[name] = page.evaluate(
                    "({figures: Array.from(document.images).filter(i => i.complete && i.naturalWidth > 0"
                    " && i.src.includes('/_images/')).length, math: document.querySelectorAll('mjx-container').length,"
                    " title: document.title})")
                if name in ("index.html", "notebooks/03_pretraining.html", "appendix/reference_facts.html"):
                    page.screenshot(path=str(SCREENSHOTS / f"{name.replace('/', '_')}.png"))
            browser.close()
    finally:
        server.shutdown()
    assert problems == []
    assert "Small Frontier Models" in seen["index.html"]["title"]
    assert seen["notebooks/03_pretraining.html"]["figures"] >= 1  # the executed outputs' plots
    assert seen["appendix/reference_facts.html"]["math"] >= 1  # MathJax rendered, from the local copy
    assert sum(page["figures"] for page in seen.values()) >= 10  # the notebooks' plots, across the book
    for name in ("index.html", "notebooks/03_pretraining.html", "appendix/reference_facts.html"):
        assert (SCREENSHOTS / f"{name.replace('/', '_')}.png").stat().st_size > 10_000


def test_pages_workflow_builds_the_book_the_tested_way():
    """The GitHub Pages workflow runs `make course` (which ends with `make book`'s build, the one
    tested above) and publishes build/book."""
    workflow = yaml.safe_load((REPO_ROOT / ".github" / "workflows" / "book.yml").read_text())
    steps = workflow["jobs"]["build"]["steps"]
    assert [s["run"] for s in steps if "run" in s] == ["make course"]
    upload = next(s for s in steps if s.get("uses", "").startswith("actions/upload-pages-artifact"))
    assert upload["with"]["path"] == "build/book" and book.SITE_DIR == REPO_ROOT / "build" / "book"
    makefile = (REPO_ROOT / "Makefile").read_text()
    course = makefile.split("\ncourse:", 1)[1].split("\n\n", 1)[0]
    assert "-m lfm_helpers course" in course and "-m lfm_helpers book" in course


def test_readme_lists_every_notebook():
    readme = (REPO_ROOT / "README.md").read_text()
    assert all(f"| `{p.stem}` |" in readme for p in list_notebooks())
