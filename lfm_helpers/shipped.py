"""Fine-tuned checkpoints shipped with the course, so later notebooks start from a model that
really does the tasks.

The tiny base cannot copy from its context when SFT starts (its corpus is about one small,
memorisable world, so pretraining never needed to), and SFT has to teach it: about 800 steps,
roughly 30 minutes on two CPU cores, too long for a notebook or for CI. As with the base
(``lfm_helpers.base``), the package's own stages were run once at the preset's full budget and
their results are shipped in ``data/sft/<preset>/<stage>/`` with a manifest: the command, the
exact training config (including the hash of the base it started from), the metrics and the
sha256 of every file. Notebook 04 trains the same way live on a short budget, and
``python -m lfm_helpers ship-sft --preset tiny`` rebuilds what is shipped.

- ``sft``: the fully fine-tuned weights, in bfloat16 (5.9 MB);
- ``sft_lora``: only the LoRA adapters (about 1 MB); the stage merges them into the base.

A shipped checkpoint made from another base, other data or another budget than the current
preset's is refused with the command that rebuilds it, never used silently.
"""

from __future__ import annotations

import dataclasses
import json
import shutil
import uuid
from pathlib import Path
from typing import Any

from .artifacts import Artifact, ArtifactError, atomic_write_text, canonical_json, install_folder
from .paths import data_dir
from .presets import Preset

SHIPPED_STAGES = ("sft", "sft_lora")
SHIPPED_MANIFEST = "shipped_manifest.json"


def shipped_dir(preset: Preset, stage: str) -> Path:
    if stage not in SHIPPED_STAGES:
        raise ValueError(f"no shipped checkpoints for stage {stage!r}; shipped stages: {', '.join(SHIPPED_STAGES)}")
    return data_dir() / "sft" / preset.name / stage


def training_preset(preset: Preset) -> Preset:
    """The preset variant whose SFT stages train instead of reading what is shipped."""
    return dataclasses.replace(preset, shipped_sft=False)


def ship(preset: Preset, *, command: str, log=print) -> list[Path]:
    """Train (or reuse) the preset's ``sft`` and ``sft_lora`` stages and ship their results."""
    from .base import _sha256, copy_checkpoint
    from .pipeline import run_stage

    targets = []
    for stage in SHIPPED_STAGES:
        art = run_stage(stage, training_preset(preset), log=log)
        target = shipped_dir(preset, stage)
        tmp = target.parent / f".{target.name}.tmp-{uuid.uuid4().hex[:8]}"
        tmp.mkdir(parents=True)
        try:
            if stage == "sft":
                copy_checkpoint(art.path, tmp)
            else:
                for f in sorted((art.path / "adapter").iterdir()):
                    shutil.copy2(f, tmp / f.name)
                shutil.copy2(art.path / "history.json", tmp / "history.json")
            manifest = {
                "command": command,
                "stage": stage,
                "preset": preset.name,
                "training": art.manifest["config"],
                "metrics": art.metrics,
                "versions": art.manifest["versions"],
                "files": {f.name: _sha256(f) for f in sorted(tmp.iterdir())},
            }
            atomic_write_text(tmp / SHIPPED_MANIFEST, json.dumps(manifest, indent=2) + "\n")
            install_folder(tmp, target)
        except BaseException:
            shutil.rmtree(tmp, ignore_errors=True)
            raise
        targets.append(target)
    return targets


def _rebuild_hint(preset: Preset) -> str:
    return f"rebuild it with `python -m lfm_helpers ship-sft --preset {preset.name}` (about an hour on two cores: two runs of ~30 minutes)"


def read_shipped(preset: Preset, stage: str) -> str:
    """The shipped manifest (as canonical JSON, for the stage's config hash), after checking every
    file's sha256 and that it was trained with the preset's current SFT config and data."""
    from .base import _sha256
    from .sft import sft_training_config

    folder = shipped_dir(preset, stage)
    path = folder / SHIPPED_MANIFEST
    if not path.is_file():
        raise ArtifactError(f"no shipped {stage} checkpoint in {folder}; {_rebuild_hint(preset)}")
    manifest = json.loads(path.read_text())
    for name, sha in manifest["files"].items():
        if not (folder / name).is_file() or _sha256(folder / name) != sha:
            raise ArtifactError(f"shipped file {folder / name} is missing or altered; restore it with "
                                f"`git checkout -- {folder}` or {_rebuild_hint(preset)}")
    wanted = sft_training_config(training_preset(preset), lora=stage == "sft_lora")
    if canonical_json(manifest["training"]["config"]) != canonical_json(wanted):
        raise ArtifactError(f"the shipped {stage} checkpoint was trained with another budget, mixture or data "
                            f"than preset {preset.name!r} describes now; {_rebuild_hint(preset)}")
    return canonical_json(manifest)


def install_shipped(preset: Preset, stage: str, base: Artifact, out: Path) -> dict[str, Any]:
    """Write the shipped checkpoint into the stage's folder ``out`` (LoRA adapters merged into the
    base), after checking it was trained from exactly this base."""
    from .models import load_model
    from .tokenizer import load_tokenizer, save_tokenizer

    manifest = json.loads(read_shipped(preset, stage))
    if manifest["training"]["deps"]["base"] != base.config_hash:
        raise ArtifactError(f"the shipped {stage} checkpoint was trained from another base than the current "
                            f"`base` stage; {_rebuild_hint(preset)}")
    folder = shipped_dir(preset, stage)
    if stage == "sft":
        for f in sorted(folder.iterdir()):
            if f.name != SHIPPED_MANIFEST:
                shutil.copy2(f, out / f.name)
    else:
        from peft import PeftModel

        model = PeftModel.from_pretrained(load_model(base.path), folder)
        model.merge_and_unload().save_pretrained(out)
        save_tokenizer(load_tokenizer(base.path), out)
        (out / "adapter").mkdir()
        for f in sorted(folder.iterdir()):
            if f.name.startswith("adapter_"):
                shutil.copy2(f, out / "adapter" / f.name)
        shutil.copy2(folder / "history.json", out / "history.json")
    return {**manifest["metrics"], "source": "shipped"}
