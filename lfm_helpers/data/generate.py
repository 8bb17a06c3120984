"""Regenerate, check and load the shipped ``data/`` folder.

The course ships its data in git so that every learner trains on exactly the same bytes, and
ships this generator so that anyone can see how the data was made and rebuild it. The two must
agree: :func:`check_data` regenerates into a temporary folder and lists every file that differs,
and a test runs it. That only works if generation is **byte-identical** across runs, processes
and machines, hence the rules followed throughout ``lfm_helpers.data``:

- randomness only from ``random.Random`` seeded with strings (never the global generator,
  never ``hash()``, whose value changes per process);
- iteration only over tuples, lists and insertion-ordered dicts built in a fixed order (never
  over sets);
- JSON written with ``ensure_ascii=False`` as UTF-8 bytes with ``\\n`` line ends (no platform
  newline translation), keys in the order the code builds them.

``data/MANIFEST.json`` is ``{"files": {relative path: {"bytes", "sha256"}}}`` sorted by path: a
changed file shows up in a diff even when its content is too large to read, and pipeline stages
hash the entries into their configs so regenerated data makes their artifacts stale.

Layout (relative to the data folder)::

    world/{cities,people,products,venues}.json
    corpus/{train,val}.jsonl                    {"kind", "text"}
    extraction/schemas.json                     {record_type: JSON Schema}
    extraction/{train,val,test}.jsonl           {"id", "record_type", "family", "text", "target"}
    tool_use/{train,val,test}.jsonl             {"id", "family", "tools", "messages",
                                                 "expected_calls", "final_answers"}
    loops/labelled.jsonl                        {"id", "kind", "label", "period", "text"} (notebook 07)
    MANIFEST.json
"""

from __future__ import annotations

import argparse
import hashlib
import json
import tempfile
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

from lfm_helpers.data import corpus, extraction, tool_use
from lfm_helpers.data.world import World, build_world, record_dict
from lfm_helpers.loops import labelled_examples

MANIFEST = "MANIFEST.json"
REGENERATE_HINT = "run `python -m lfm_helpers data` to generate it"

SPLITS: dict[str, tuple[str, ...]] = {
    "corpus": ("train", "val"),
    "extraction": ("train", "val", "test"),
    "tool_use": ("train", "val", "test"),
}
"""Every task and its splits, as :func:`load_split` accepts them."""


def _json_bytes(obj: Any) -> bytes:
    return (json.dumps(obj, ensure_ascii=False, indent=2) + "\n").encode("utf-8")


def _jsonl_bytes(rows: Iterable[Mapping[str, Any]]) -> bytes:
    return "".join(json.dumps(row, ensure_ascii=False) + "\n" for row in rows).encode("utf-8")


def _steps(world: World, seed: int, train_rows: int | None = None,
           date_styles: Mapping[str, str] | None = None) -> list[tuple[str, Callable[[], bytes]]]:
    """``(relative path, producer)`` for every file, in a fixed order. Extraction val excludes
    train texts, so train is built first and reused. ``train_rows`` overrides the size of
    both tasks' train splits; ``date_styles`` restyles tool-use train families' dates."""
    extraction_train: list[dict[str, Any]] = []

    def size(split: str) -> int | None:
        return train_rows if split == "train" else None

    def extraction_split(split: str) -> Callable[[], bytes]:
        def produce() -> bytes:
            exclude = frozenset(row["text"] for row in extraction_train)
            rows = extraction.build_split(world, split, seed, exclude_texts=exclude, size=size(split))
            if split == "train":
                extraction_train.extend(rows)
            return _jsonl_bytes(rows)

        return produce

    steps: list[tuple[str, Callable[[], bytes]]] = [
        ("world/cities.json", lambda: _json_bytes(world.city_rows())),
        ("world/people.json", lambda: _json_bytes([record_dict(p) for p in world.people])),
        ("world/products.json", lambda: _json_bytes([record_dict(p) for p in world.products])),
        ("world/venues.json", lambda: _json_bytes([record_dict(v) for v in world.venues])),
        ("extraction/schemas.json", lambda: _json_bytes(extraction.SCHEMAS)),
    ]
    steps += [(f"extraction/{s}.jsonl", extraction_split(s)) for s in SPLITS["extraction"]]
    steps += [
        (f"tool_use/{s}.jsonl", (lambda s=s: _jsonl_bytes(tool_use.build_split(world, s, seed, size(s), date_styles))))
        for s in SPLITS["tool_use"]
    ]
    steps.append(("loops/labelled.jsonl", lambda: _jsonl_bytes(labelled_examples())))
    steps += [
        (f"corpus/{s}.jsonl", (lambda s=s: _jsonl_bytes(corpus.build_split(world, s, seed))))
        for s in SPLITS["corpus"]
    ]
    return steps


def generate_all(out_dir: Path, seed: int = 0, progress: bool = False, train_rows: int | None = None,
                 date_styles: Mapping[str, str] | None = None) -> dict[str, str]:
    """Write every data file under ``out_dir`` plus ``MANIFEST.json``.

    Returns ``{relative path: sha256 hex}`` for the data files (not the manifest). With
    ``progress``, shows a tqdm bar on stderr. ``train_rows`` makes the two tasks' train splits
    that long instead of the shipped size (notebook 04's preset search: more distinct SFT data);
    ``date_styles`` (``{tool-use train family: style}``) writes those families' dates in another
    style (the search's date-style variants). The test splits do not change with either.
    """
    out_dir = Path(out_dir)
    world = build_world(seed)
    steps = _steps(world, seed, train_rows, date_styles)
    iterator: Iterable[tuple[str, Callable[[], bytes]]] = steps
    if progress:
        from tqdm import tqdm

        iterator = tqdm(steps, desc="generating data", unit="file")
    manifest: dict[str, dict[str, Any]] = {}
    for relative, produce in iterator:
        content = produce()
        path = out_dir / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(content)
        manifest[relative] = {"bytes": len(content), "sha256": hashlib.sha256(content).hexdigest()}
    manifest = dict(sorted(manifest.items()))
    (out_dir / MANIFEST).write_bytes(_json_bytes({"files": manifest}))
    return {relative: entry["sha256"] for relative, entry in manifest.items()}


def check_data(data_dir: Path | None = None, seed: int = 0) -> list[str]:
    """Regenerate into a temporary folder and list the files of ``data_dir`` (default: the
    shipped data) that differ or are missing, sorted. An empty list means identical."""
    from lfm_helpers.paths import data_dir as default_data_dir

    data_dir = Path(default_data_dir() if data_dir is None else data_dir)
    with tempfile.TemporaryDirectory(prefix="lfm-data-check-") as tmp:
        fresh = Path(tmp)
        expected = list(generate_all(fresh, seed)) + [MANIFEST]
        differing = []
        for relative in expected:
            shipped = data_dir / relative
            if not shipped.is_file() or shipped.read_bytes() != (fresh / relative).read_bytes():
                differing.append(relative)
    return sorted(differing)


# --------------------------------------------------------------------------------------------
# Loading with validation
# --------------------------------------------------------------------------------------------


def _numbered_rows(path: Path) -> list[tuple[int, dict[str, Any]]]:
    """``(line number, row)`` for every non-blank line of a JSON-lines file."""
    if not path.is_file():
        raise FileNotFoundError(f"{path} does not exist; {REGENERATE_HINT}")
    rows = []
    with path.open(encoding="utf-8") as handle:
        for lineno, line in enumerate(handle, start=1):
            if not line.strip():
                continue
            try:
                row = json.loads(line)
            except json.JSONDecodeError as exc:
                raise ValueError(f"{path}:{lineno}: invalid JSON ({exc.msg} at column {exc.colno})") from None
            if not isinstance(row, dict):
                raise ValueError(f"{path}:{lineno}: expected a JSON object, got {type(row).__name__}")
            rows.append((lineno, row))
    return rows


def load_jsonl(path: Path | str) -> list[dict[str, Any]]:
    """Rows of a JSON-lines file (blank lines skipped).

    Raises ``FileNotFoundError`` with a regeneration hint when the file is missing, and
    ``ValueError`` naming the file and line for a line that is not a JSON object.
    """
    return [row for _, row in _numbered_rows(Path(path))]


_ROW_KEYS: dict[str, dict[str, type]] = {
    "corpus": {"kind": str, "text": str},
    "extraction": {"id": str, "record_type": str, "family": str, "text": str, "target": dict},
    "tool_use": {
        "id": str,
        "family": str,
        "tools": list,
        "messages": list,
        "expected_calls": list,
        "final_answers": list,
    },
}
_ROLES = ("system", "user", "assistant", "tool")


def _row_problem(task: str, row: Mapping[str, Any], record_types: Iterable[str] = extraction.RECORD_TYPES) -> str | None:
    """What is wrong with a row, or ``None``. Checks keys and types, and nested shapes;
    ``record_types`` are the extraction record types the data folder's schemas define."""
    for key, kind in _ROW_KEYS[task].items():
        if key not in row:
            return f"missing key {key!r}"
        if not isinstance(row[key], kind):
            return f"key {key!r} should be {kind.__name__}, got {type(row[key]).__name__}"
    extra = sorted(set(row) - set(_ROW_KEYS[task]))
    if extra:
        return f"unexpected key(s) {', '.join(map(repr, extra))}"
    if task == "extraction" and row["record_type"] not in record_types:
        return f"unknown record_type {row['record_type']!r} (schemas.json defines {', '.join(sorted(record_types))})"
    if task == "tool_use":
        if not all(isinstance(t, str) for t in row["tools"]):
            return "'tools' should be a list of strings"
        for i, message in enumerate(row["messages"]):
            if (
                not isinstance(message, dict)
                or message.get("role") not in _ROLES
                or not isinstance(message.get("content"), str)
            ):
                return f"messages[{i}] should be {{'role': one of {_ROLES}, 'content': str}}"
        for i, turn in enumerate(row["expected_calls"]):
            if not isinstance(turn, list) or not all(
                isinstance(c, dict)
                and isinstance(c.get("name"), str)
                and isinstance(c.get("arguments"), dict)
                for c in turn
            ):
                return f"expected_calls[{i}] should be a list of {{'name': str, 'arguments': dict}}"
        if not all(isinstance(a, str) for a in row["final_answers"]):
            return "'final_answers' should be a list of strings"
    return None


def load_split(task: str, split: str, data_dir: Path | str | None = None) -> list[dict[str, Any]]:
    """Rows of ``<data_dir>/<task>/<split>.jsonl``, each validated.

    ``task`` is ``corpus``, ``extraction`` or ``tool_use``; splits as in :data:`SPLITS`.
    Raises ``ValueError`` (unknown task/split, or ``file:line: problem`` for a malformed row)
    and ``FileNotFoundError`` (with a hint to regenerate) for a missing file.
    """
    if task not in SPLITS:
        raise ValueError(f"unknown task {task!r}; valid tasks: {', '.join(SPLITS)}")
    if split not in SPLITS[task]:
        raise ValueError(f"unknown split {split!r} for {task}; valid splits: {', '.join(SPLITS[task])}")
    if data_dir is None:
        from lfm_helpers.paths import data_dir as default_data_dir

        data_dir = default_data_dir()
    path = Path(data_dir) / task / f"{split}.jsonl"
    # a data folder may define its own record types (the capstone's); the shipped ones otherwise
    schemas = Path(data_dir) / "extraction" / "schemas.json"
    record_types = (set(json.loads(schemas.read_text(encoding="utf-8"))) if task == "extraction" and schemas.is_file()
                    else set(extraction.RECORD_TYPES))
    rows = []
    for lineno, row in _numbered_rows(path):
        problem = _row_problem(task, row, record_types)
        if problem:
            raise ValueError(f"{path}:{lineno}: {problem}")
        rows.append(row)
    return rows


# --------------------------------------------------------------------------------------------
# Command line
# --------------------------------------------------------------------------------------------


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m lfm_helpers data [--out DIR] [--seed N] [--check]``.

    Regenerates the data folder (default ``lfm_helpers.paths.data_dir()``), or with
    ``--check`` compares it with a fresh generation and exits 1 listing the differing files.
    """
    from lfm_helpers.paths import data_dir

    parser = argparse.ArgumentParser(prog="python -m lfm_helpers data", description=main.__doc__)
    parser.add_argument("--out", type=Path, default=None, help="data folder (default: the shipped data/)")
    parser.add_argument(
        "--seed", type=int, default=0, help="world and sampling seed (default 0, the shipped data)"
    )
    parser.add_argument("--check", action="store_true", help="only compare with a fresh generation")
    args = parser.parse_args(argv)
    out = args.out if args.out is not None else data_dir()
    started = time.perf_counter()
    if args.check:
        differing = check_data(out, args.seed)
        if differing:
            print(f"{len(differing)} file(s) in {out} differ from a fresh generation:")
            for relative in differing:
                print(f"  {relative}")
            return 1
        print(f"{out} matches a fresh generation ({time.perf_counter() - started:.1f} s)")
        return 0
    hashes = generate_all(out, args.seed, progress=True)
    total = sum((out / relative).stat().st_size for relative in hashes)
    print(
        f"wrote {len(hashes)} files, {total / 1e6:.1f} MB, to {out} in {time.perf_counter() - started:.1f} s"
    )
    return 0
