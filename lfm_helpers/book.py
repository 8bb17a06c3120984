"""The published course: build the Jupyter Book from the executed notebooks, offline, and check it.

The book (``book/``: ``_config.yml``, ``_toc.yml``, a landing page and appendices) is built by
Jupyter Book 1.x, which builds offline (version 2 downloads its theme at build time). It lives in
its own environment (``make book-env``: it pins markdown-it-py 3, older than the main
environment's). Execution is off: the pages show the outputs of the notebooks that ``make course``
(or the test suite) executed into ``build/executed/``, so building the book never re-trains.
MathJax comes from a local copy (npm's ``mathjax`` package, unpacked by ``make book-env``), so the
built site renders math without a connection.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
from html.parser import HTMLParser
from pathlib import Path
from urllib.parse import unquote, urlsplit

from .course import NOTEBOOKS_DIR, list_notebooks
from .paths import REPO_ROOT

BOOK_DIR = REPO_ROOT / "book"
EXECUTED_DIR = REPO_ROOT / "build" / "executed"
SITE_DIR = REPO_ROOT / "build" / "book"
#: MathJax 3's ``es5`` folder (``make book-env`` unpacks npm's ``mathjax`` here).
MATHJAX_DIR = REPO_ROOT / "build" / "mathjax" / "es5"
#: The ``jupyter-book`` command of the book's environment (``make book-env``), or ``$JUPYTER_BOOK``.
JUPYTER_BOOK = Path(os.environ.get("JUPYTER_BOOK", REPO_ROOT / ".venv-book" / "bin" / "jupyter-book"))


def toc_files(book_dir: Path = BOOK_DIR) -> list[str]:
    """The pages of the book, in order, as ``_toc.yml`` lists them (``notebooks/00_orientation``, ...)."""
    import yaml

    toc = yaml.safe_load((Path(book_dir) / "_toc.yml").read_text(encoding="utf-8"))
    files = [toc["root"]]
    for part in toc.get("parts", [{"chapters": toc.get("chapters", [])}]):
        files += [chapter["file"] for chapter in part["chapters"]]
    return files


def toc_notebooks(book_dir: Path = BOOK_DIR) -> list[str]:
    """The notebooks the book lists, in order, by stem (``00_orientation``, ...)."""
    return [f.removeprefix("notebooks/") for f in toc_files(book_dir) if f.startswith("notebooks/")]


def check_toc(book_dir: Path = BOOK_DIR, notebooks_dir: Path = NOTEBOOKS_DIR) -> None:
    """Fail if a course notebook is missing from the book, or the book lists one that does not exist."""
    listed = set(toc_notebooks(book_dir))
    present = {p.stem for p in list_notebooks(notebooks_dir)}
    problems = [f"notebooks/{n}.ipynb is not in book/_toc.yml" for n in sorted(present - listed)]
    problems += [f"book/_toc.yml lists notebooks/{n}, which does not exist" for n in sorted(listed - present)]
    if problems:
        raise ValueError("; ".join(problems))


def stage_book(stage: Path, executed_dir: Path = EXECUTED_DIR, book_dir: Path = BOOK_DIR,
               mathjax_dir: Path = MATHJAX_DIR) -> Path:
    """Assemble the book's sources in ``stage``: ``book/``, the executed notebooks and MathJax."""
    check_toc(book_dir)
    notebooks = toc_notebooks(book_dir)
    missing = [n for n in notebooks if not (Path(executed_dir) / f"{n}.ipynb").is_file()]
    if missing:
        raise FileNotFoundError(f"executed notebooks missing in {executed_dir}: {', '.join(missing)}; "
                                "run `make course` first (the book shows their outputs)")
    if not (Path(mathjax_dir) / "tex-chtml.js").is_file():
        raise FileNotFoundError(f"no MathJax at {mathjax_dir}; run `make book-env`")
    shutil.copytree(book_dir, stage, ignore=shutil.ignore_patterns("README.md", "_build"))
    (stage / "notebooks").mkdir()
    for n in notebooks:
        without_widgets(Path(executed_dir) / f"{n}.ipynb", stage / "notebooks" / f"{n}.ipynb")
    # not in _static: Jupyter Book adds every script found there to every page (_config.yml
    # names this folder in html_static_path, so it still lands in the site's _static/mathjax)
    shutil.copytree(mathjax_dir, stage / "_mathjax" / "mathjax")
    return stage


def without_widgets(src: Path, dst: Path) -> None:
    """Copy an executed notebook without its widget views and state (tqdm bars): rendered, they
    need require.js and the widget manager from a CDN; their text form stays."""
    import nbformat

    nb = nbformat.read(src, as_version=4)
    nb.metadata.pop("widgets", None)
    for cell in nb.cells:
        for output in cell.get("outputs", []):
            output.get("data", {}).pop("application/vnd.jupyter.widget-view+json", None)
    nbformat.write(nb, dst)


def build_book(out: Path = SITE_DIR, *, executed_dir: Path = EXECUTED_DIR, jupyter_book: Path = JUPYTER_BOOK) -> Path:
    """Build the static site into ``out`` (replaced only once the build succeeded) and return it.
    Sphinx warnings are errors, so a broken cross-reference fails the build."""
    if not Path(jupyter_book).is_file():
        raise FileNotFoundError(f"no jupyter-book at {jupyter_book}; run `make book-env` (or set $JUPYTER_BOOK)")
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix=".book-", dir=out.parent) as tmp:
        stage = stage_book(Path(tmp) / "src", executed_dir)
        built = Path(tmp) / "out"
        result = subprocess.run([str(jupyter_book), "build", str(stage), "--path-output", str(built), "--warningiserror",
                                 "--keep-going"], capture_output=True, text=True)
        if result.returncode != 0:
            raise RuntimeError(f"jupyter-book build failed:\n{result.stdout[-4000:]}\n{result.stderr[-4000:]}")
        for page in (built / "_build" / "html").rglob("*.html"):
            page.write_text(drop_duplicate_scripts(page.read_text(encoding="utf-8")), encoding="utf-8")
        old = out.with_name(f".{out.name}.old")
        if out.exists():
            out.rename(old)
        (built / "_build" / "html").rename(out)
        shutil.rmtree(old, ignore_errors=True)
    return out


def drop_duplicate_scripts(html: str) -> str:
    """Remove repeated identical one-line ``<script>`` tags, keeping the first. With Sphinx 7.4,
    Jupyter Book 1.x writes sphinx-thebe's inline configuration twice, and the second copy fails
    in the browser (``Identifier 'THEBE_JS_URL' has already been declared``)."""
    seen, lines = set(), []
    for line in html.splitlines(keepends=True):
        tag = line.strip()
        if tag.startswith("<script") and tag.endswith("</script>"):
            if tag in seen:
                continue
            seen.add(tag)
        lines.append(line)
    return "".join(lines)


class _Links(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.links: list[str] = []

    def handle_starttag(self, tag, attrs):
        for name, value in attrs:
            if name in ("href", "src") and value:
                self.links.append(value)


def broken_links(site: Path = SITE_DIR) -> list[str]:
    """Internal links (``href``/``src`` to a file of the site) that point at nothing, as
    ``page: link``. External links are not followed (the site must work offline)."""
    site = Path(site)
    broken = []
    pages = (p for p in site.rglob("*.html") if p.relative_to(site).parts[0] not in ("_static", "_sources"))
    for page in sorted(pages):  # _static holds the theme's own templates, not pages
        parser = _Links()
        parser.feed(page.read_text(encoding="utf-8", errors="replace"))
        for link in parser.links:
            parts = urlsplit(link)
            if parts.scheme or parts.netloc or not parts.path:  # external, data:, mailto:, or "#anchor"
                continue
            target = (page.parent / unquote(parts.path)).resolve()
            if target.is_dir():
                target = target / "index.html"
            if not target.exists():
                broken.append(f"{page.relative_to(site)}: {link}")
    return broken
