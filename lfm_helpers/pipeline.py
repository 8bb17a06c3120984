"""The course pipeline: named stages, each a function of the preset, stored as artifacts.

``tokenizer -> init -> pretrain -> sft -> preference -> rl -> merge -> export``. This module
holds the registry and the first two stages; later stages register themselves the same way.
A stage's config hash covers its own config **and** the hashes of the stages it depends on, so
changing the tokenizer's vocabulary makes every downstream artifact stale and it is rebuilt
rather than reused with the wrong embedding size.

Use it from a notebook (``art = run_stage("init")``) or the command line
(``python -m lfm_helpers run init --preset tiny``).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Mapping

from .artifacts import Artifact, artifact_dir, ensure_artifact
from .paths import data_dir
from .presets import Preset, load_preset

BuildFn = Callable[[Preset, Path, Mapping[str, Artifact]], Mapping[str, Any] | None]


@dataclass(frozen=True)
class Stage:
    """One step of the recipe: what it depends on, what config it hashes, how it builds."""

    name: str
    description: str
    deps: tuple[str, ...]
    config: Callable[[Preset], dict[str, Any]]
    build: BuildFn


STAGES: dict[str, Stage] = {}


def register(stage: Stage) -> Stage:
    """Add a stage to the registry (a later module can register ``pretrain``, ``sft``, ...)."""
    unknown = [d for d in stage.deps if d not in STAGES]
    if unknown:
        raise ValueError(f"stage {stage.name!r} depends on unregistered stages {unknown}")
    STAGES[stage.name] = stage
    return stage


def _resolve_preset(preset: Preset | str | None) -> Preset:
    return preset if isinstance(preset, Preset) else load_preset(preset, check_device=False)


def run_stage(name: str, preset: Preset | str | None = None, *, force: bool = False,
              root: Path | None = None, log: Callable[[str], None] = print) -> Artifact:
    """Return a valid artifact for stage ``name``, building it (and its dependencies) if needed.

    ``force`` rebuilds this stage only; dependencies are still reused when valid.
    """
    if name not in STAGES:
        raise ValueError(f"unknown stage {name!r}; stages: {', '.join(STAGES)}")
    preset = _resolve_preset(preset)
    stage = STAGES[name]
    deps = {d: run_stage(d, preset, root=root, log=log) for d in stage.deps}
    config = {
        "stage": name,
        "preset": preset.name,
        "config": stage.config(preset),
        "deps": {d: art.config_hash for d, art in deps.items()},
    }
    return ensure_artifact(
        artifact_dir(preset.name, name, root),
        lambda out: stage.build(preset, out, deps),
        stage=name,
        preset=preset.name,
        config=config,
        force=force,
        log=log,
    )


# --------------------------------------------------------------------------- data fingerprint
def data_fingerprint(relative_path: str) -> str:
    """The sha256 of a shipped data file, from ``data/MANIFEST.json``.

    Stages hash this into their config, so regenerated data makes their artifacts stale.
    """
    manifest_path = data_dir() / "MANIFEST.json"
    if not manifest_path.is_file():
        raise FileNotFoundError(f"{manifest_path} is missing; run `python -m lfm_helpers data`")
    files = json.loads(manifest_path.read_text())["files"]
    if relative_path not in files:
        raise KeyError(f"{relative_path} is not listed in {manifest_path}")
    return files[relative_path]["sha256"]


# --------------------------------------------------------------------------- tokenizer stage
def _tokenizer_config(preset: Preset) -> dict[str, Any]:
    if preset.sources.tokenizer is not None:
        return {"source": preset.sources.tokenizer}
    return {"source": None, "vocab_size": preset.vocab_size,
            "corpus_sha256": data_fingerprint("corpus/train.jsonl")}


def _build_tokenizer(preset: Preset, out: Path, deps: Mapping[str, Artifact]) -> dict[str, Any]:
    from .data import load_split
    from .tokenizer import compression, load_tokenizer, save_tokenizer, train_tokenizer

    if preset.sources.tokenizer is None:
        texts = [row["text"] for row in load_split("corpus", "train")]
        tok = train_tokenizer(texts, preset.vocab_size, model_max_length=preset.model.max_position_embeddings)
    else:
        tok = load_tokenizer(preset.sources.tokenizer)
    save_tokenizer(tok, out)
    val = [row["text"] for row in load_split("corpus", "val")]
    return {"vocab_size": len(tok), "chars_per_token_val": round(compression(tok, val), 4)}


register(Stage(
    name="tokenizer",
    description="Train a byte-level BPE tokenizer on the shipped corpus (or copy the checkpoint's).",
    deps=(),
    config=_tokenizer_config,
    build=_build_tokenizer,
))


# --------------------------------------------------------------------------- init stage
def _init_config(preset: Preset) -> dict[str, Any]:
    if preset.sources.base_model is not None:
        return {"source": preset.sources.base_model}
    return {"source": None, "model": preset.to_dict()["model"], "seed": preset.seed}


def _build_init(preset: Preset, out: Path, deps: Mapping[str, Artifact]) -> dict[str, Any]:
    from .models import build_model, count_parameters, load_model, tiny_lfm2_config
    from .tokenizer import load_tokenizer, save_tokenizer

    tok = load_tokenizer(deps["tokenizer"].path)
    if preset.sources.base_model is None:
        config = tiny_lfm2_config(preset, vocab_size=len(tok), pad_token_id=tok.pad_token_id,
                                  bos_token_id=tok.bos_token_id, eos_token_id=tok.eos_token_id)
        model = build_model(config, seed=preset.seed)
    else:
        model = load_model(preset.sources.base_model)
    model.save_pretrained(out)
    save_tokenizer(tok, out)
    return {"parameters": count_parameters(model)}


register(Stage(
    name="init",
    description="The base model before training: built from the preset's config, or a checkpoint.",
    deps=("tokenizer",),
    config=_init_config,
    build=_build_init,
))


def load_stage(name: str, preset: Preset | str | None = None, **kwargs: Any):
    """``(model, tokenizer, artifact)`` of a stage that saved a model, built first if needed."""
    from .models import load_model
    from .tokenizer import load_tokenizer

    art = run_stage(name, preset, **kwargs)
    return load_model(art.path), load_tokenizer(art.path), art
