"""The base model every post-training stage starts from, and the longer-trained one we ship.

A notebook's time budget buys the tiny model a couple of minutes of pretraining: enough to see
the loss fall, not enough for a base that later stages can post-train into something useful.
So the package's own pretraining command was run once for longer (the preset's
``base_pretrain`` budget) and its result is shipped in ``data/base/<preset>/`` with a manifest
holding the exact command, the corpus and tokenizer it was trained with, and the losses of its
first steps. A test re-runs those first steps and checks they reproduce, so the shipped weights
are provably what the package makes.

- ``python -m lfm_helpers ship-base --preset tiny`` rebuilds and re-ships it (about 25 minutes);
- the ``base`` stage hands the shipped weights to later stages, after checking they match the
  current corpus and tokenizer (a stale base is an error, never silently used). On presets with
  a hub checkpoint (``colab``), the base is that checkpoint.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import shutil
import uuid
from pathlib import Path
from typing import Any

import torch

from .artifacts import ArtifactError, atomic_write_text, install_folder
from .paths import data_dir
from .presets import Preset

BASE_MANIFEST = "base_manifest.json"
#: How many per-step losses the manifest keeps for the reproduction test.
LOGGED_STEPS = 10


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def shipped_base_dir(preset: Preset) -> Path:
    return data_dir() / "base" / preset.name


def base_training_preset(preset: Preset) -> Preset:
    """The preset variant whose ``pretrain`` stage is the long base run (stored apart, in
    ``runs/<preset>-base/``, so it never replaces the notebook's short run)."""
    if preset.base_pretrain is None:
        raise ValueError(f"preset {preset.name!r} has no base_pretrain budget: its base is {preset.sources.base_model}")
    return dataclasses.replace(preset, name=f"{preset.name}-base", pretrain=preset.base_pretrain)


#: Shipped weights are stored in bfloat16 (half the bytes of float32; ``load_model`` reads them
#: back as float32). The manifest records the validation loss of the stored weights too.
SHIPPED_DTYPE = torch.bfloat16
_WEIGHT_FILES = ("model.safetensors", "config.json", "generation_config.json")


def copy_checkpoint(source: Path, target: Path, *, skip: tuple[str, ...] = ("manifest.json",)) -> None:
    """Copy a saved model folder, re-saving its weights in :data:`SHIPPED_DTYPE`."""
    from .models import load_model

    load_model(source).to(SHIPPED_DTYPE).save_pretrained(target)
    for f in sorted(source.iterdir()):
        if f.is_file() and f.name not in skip + _WEIGHT_FILES:
            shutil.copy2(f, target / f.name)


def ship_base(preset: Preset, *, command: str, log=print) -> Path:
    """Run the long pretraining (or reuse it) and copy its result into ``data/base/<preset>/``."""
    from .models import load_model
    from .pipeline import VAL_WINDOWS, data_fingerprint, packed_corpus, run_stage
    from .pretrain import evaluate_loss

    training = base_training_preset(preset)
    art = run_stage("pretrain", training, log=log)
    tokenizer = run_stage("tokenizer", preset, log=log)
    history = json.loads((art.path / "history.json").read_text())
    target = shipped_base_dir(preset)
    tmp = target.parent / f".{target.name}.tmp-{uuid.uuid4().hex[:8]}"
    tmp.mkdir(parents=True)
    try:
        copy_checkpoint(art.path, tmp, skip=("manifest.json", "history.json"))
        (tmp / "history.json").write_text(json.dumps(history))
        _, val = packed_corpus(training, training.pretrain.seq_len, log=log)
        cfg = art.manifest["config"]["config"]["train"]
        stored_loss = evaluate_loss(load_model(tmp), val[:VAL_WINDOWS], cfg["batch_size"], cfg["eval_batches"])
        manifest = {
            "command": command,
            "preset": preset.name,
            "pretrain": art.manifest["config"]["config"]["train"],
            "corpus_sha256": data_fingerprint("corpus/train.jsonl"),
            "tokenizer_sha256": _sha256(tokenizer.path / "tokenizer.json"),
            "first_losses": history["loss"][:LOGGED_STEPS],
            "metrics": {**art.metrics, "stored_dtype": str(SHIPPED_DTYPE).removeprefix("torch."),
                        "stored_val_loss": round(stored_loss, 4)},
            "versions": art.manifest["versions"],
            "threads": torch.get_num_threads(),
            "files": {f.name: _sha256(f) for f in sorted(tmp.iterdir())},
        }
        atomic_write_text(tmp / BASE_MANIFEST, json.dumps(manifest, indent=2) + "\n")
        install_folder(tmp, target)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return target


def read_shipped_base(preset: Preset) -> dict[str, Any]:
    """The shipped base's manifest, after checking every file against its recorded sha256."""
    folder = shipped_base_dir(preset)
    path = folder / BASE_MANIFEST
    if not path.is_file():
        raise ArtifactError(f"no shipped base in {folder}; build it with `python -m lfm_helpers ship-base "
                            f"--preset {preset.name}` (about 25 minutes on two cores)")
    manifest = json.loads(path.read_text())
    for name, sha in manifest["files"].items():
        f = folder / name
        if not f.is_file() or _sha256(f) != sha:
            raise ArtifactError(f"shipped base file {f} is missing or altered; restore it from git "
                                f"(`git checkout -- {folder}`) or rebuild with `python -m lfm_helpers ship-base`")
    return manifest


def check_base_matches(manifest: dict[str, Any], corpus_sha256: str, tokenizer_json: Path) -> None:
    """Refuse a shipped base made from another corpus or tokenizer than the current ones."""
    if manifest["corpus_sha256"] != corpus_sha256:
        raise ArtifactError("the shipped base was trained on another version of data/corpus/train.jsonl; "
                            "rebuild it with `python -m lfm_helpers ship-base`")
    if manifest["tokenizer_sha256"] != _sha256(tokenizer_json):
        raise ArtifactError("the shipped base was trained with another tokenizer than the `tokenizer` stage "
                            "makes now; rebuild it with `python -m lfm_helpers ship-base`")
