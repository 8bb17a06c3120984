"""The artifact store: ``runs/<preset>/<stage>/``, written atomically, reused only when valid.

Every stage of the course (tokenizer, pretraining, SFT, ...) writes its result into a folder
with a ``manifest.json`` recording the stage's config, a hash of that config, metrics, wall time,
library versions and the size of every file. A notebook that needs an earlier stage calls
:func:`ensure_artifact`, which

- **reuses** the folder when its manifest is readable, its config hash equals the one asked for
  and every listed file is present with its recorded size;
- **rebuilds** it when it is missing, partial (a file missing or truncated, no manifest) or stale
  (the config hash differs), and says why: a wrong artifact is never used silently.

Writes are atomic: the stage builds into a hidden temporary folder beside the target, the
manifest is written last, and only then is the folder renamed into place. An interrupted run
leaves at worst a ``.<stage>.tmp-*`` folder, which is never taken for a result and is cleaned
up by the next write.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import time
import uuid
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Callable, Mapping

from .paths import runs_dir
from .versions import library_versions

MANIFEST = "manifest.json"


class ArtifactError(RuntimeError):
    """An artifact is missing, partial or stale where a valid one was required."""


def canonical_json(obj: Any) -> str:
    """JSON with sorted keys and no whitespace variation: the input of :func:`config_hash`."""
    return json.dumps(obj, sort_keys=True, separators=(",", ":"), ensure_ascii=True, default=str)


def config_hash(config: Mapping[str, Any]) -> str:
    """A short, stable hash of a stage config (16 hex digits of its canonical JSON's sha256)."""
    return hashlib.sha256(canonical_json(config).encode()).hexdigest()[:16]


def atomic_write_text(path: Path, text: str) -> None:
    """Write a text file so that readers see either the old content or the new, never half."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp-{uuid.uuid4().hex[:8]}")
    with open(tmp, "w", encoding="utf-8") as fh:
        fh.write(text)
        fh.flush()
        os.fsync(fh.fileno())
    os.replace(tmp, path)


def install_folder(tmp: Path, target: Path) -> None:
    """Put the fully written folder ``tmp`` at ``target`` by renames, replacing what was there.

    The old folder is moved aside first and removed only after the new one is in place, so at
    every moment ``target`` is either the old complete folder or the new one.
    """
    old = None
    if target.exists():
        old = target.parent / f".{target.name}.old-{uuid.uuid4().hex[:8]}"
        os.replace(target, old)
    os.replace(tmp, target)
    if old is not None:
        shutil.rmtree(old, ignore_errors=True)


def artifact_dir(preset: str, stage: str, root: Path | None = None) -> Path:
    """Where ``stage`` of ``preset`` lives: ``<root>/<preset>/<stage>`` (root: ``runs_dir()``)."""
    return Path(root or runs_dir()) / preset / stage


@dataclass(frozen=True)
class Artifact:
    """A valid artifact folder and its manifest."""

    path: Path
    manifest: dict[str, Any]
    reused: bool

    @property
    def metrics(self) -> dict[str, Any]:
        return self.manifest["metrics"]

    @property
    def config_hash(self) -> str:
        return self.manifest["config_hash"]


def _file_sizes(folder: Path) -> dict[str, int]:
    return {
        p.relative_to(folder).as_posix(): p.stat().st_size
        for p in sorted(folder.rglob("*"))
        if p.is_file() and p.name != MANIFEST
    }


def check_artifact(path: Path, expected_hash: str | None = None) -> tuple[bool, str]:
    """Is ``path`` a complete artifact (and, if given, one made from ``expected_hash``)?

    Returns ``(ok, reason)``; the reason says what is wrong, for the log line that explains a
    rebuild.
    """
    path = Path(path)
    if not path.is_dir():
        return False, "missing"
    manifest_path = path / MANIFEST
    if not manifest_path.is_file():
        return False, "partial: no manifest.json"
    try:
        manifest = json.loads(manifest_path.read_text(encoding="utf-8"))
        files = manifest["files"]
        found_hash = manifest["config_hash"]
    except (json.JSONDecodeError, KeyError, TypeError) as exc:
        return False, f"partial: unreadable manifest ({exc})"
    for name, size in files.items():
        f = path / name
        if not f.is_file():
            return False, f"partial: {name} is missing"
        if f.stat().st_size != size:
            return False, f"partial: {name} has {f.stat().st_size} bytes, manifest says {size}"
    if expected_hash is not None and found_hash != expected_hash:
        return False, f"stale: config hash {found_hash} != {expected_hash}"
    return True, "valid"


def write_artifact(
    path: Path,
    build: Callable[[Path], Mapping[str, Any] | None],
    *,
    stage: str,
    preset: str,
    config: Mapping[str, Any],
) -> Artifact:
    """Run ``build(tmp_dir)`` and atomically install its output at ``path`` with a manifest.

    ``build`` writes its files into the folder it is given and returns a dict of metrics (or
    None). If it raises, the temporary folder is removed and whatever was at ``path`` before is
    left untouched. In a multi-process launch only the main process installs the result (the
    others build alongside it, into folders of their own that are then removed).
    """
    from .distributed import is_main_process

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    main = is_main_process()
    if main:
        for leftover in path.parent.glob(f".{path.name}.tmp-*"):
            shutil.rmtree(leftover, ignore_errors=True)  # debris of an earlier interrupted write
    tmp = path.parent / f".{path.name}.tmp-{uuid.uuid4().hex[:8]}"
    tmp.mkdir()
    start = time.perf_counter()
    try:
        metrics = dict(build(tmp) or {})
        manifest = {
            "stage": stage,
            "preset": preset,
            "config": json.loads(canonical_json(config)),
            "config_hash": config_hash(config),
            "metrics": metrics,
            "wall_time_s": round(time.perf_counter() - start, 3),
            "versions": library_versions(),
            "created_at": datetime.now(timezone.utc).isoformat(timespec="seconds"),
            "files": _file_sizes(tmp),
        }
        if not main:  # one of several launched processes: it trained alongside, the main one writes
            shutil.rmtree(tmp, ignore_errors=True)
            return Artifact(path=path, manifest=manifest, reused=False)
        atomic_write_text(tmp / MANIFEST, json.dumps(manifest, indent=2, sort_keys=True) + "\n")
        install_folder(tmp, path)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return Artifact(path=path, manifest=manifest, reused=False)


def load_artifact(path: Path, expected_hash: str | None = None) -> Artifact:
    """Open a valid artifact or raise :class:`ArtifactError` saying what is wrong and what to run."""
    ok, reason = check_artifact(path, expected_hash)
    if not ok:
        raise ArtifactError(
            f"artifact {path} is not usable ({reason}); rebuild it with "
            f"`python -m lfm_helpers run {Path(path).name} --preset {Path(path).parent.name}`"
        )
    manifest = json.loads((Path(path) / MANIFEST).read_text(encoding="utf-8"))
    return Artifact(path=Path(path), manifest=manifest, reused=True)


def ensure_artifact(
    path: Path,
    build: Callable[[Path], Mapping[str, Any] | None],
    *,
    stage: str,
    preset: str,
    config: Mapping[str, Any],
    force: bool = False,
    log: Callable[[str], None] = print,
) -> Artifact:
    """Reuse the artifact at ``path`` if it is valid for ``config``; otherwise (re)build it."""
    expected = config_hash(config)
    ok, reason = check_artifact(path, expected)
    if ok and not force:
        log(f"[{preset}/{stage}] reusing {path} (config {expected})")
        return load_artifact(path, expected)
    why = "forced" if ok else reason
    log(f"[{preset}/{stage}] building ({why}) -> {path}")
    art = write_artifact(path, build, stage=stage, preset=preset, config=config)
    log(f"[{preset}/{stage}] done in {art.manifest['wall_time_s']:.1f} s")
    return art
