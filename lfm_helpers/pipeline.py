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

import contextlib
import dataclasses
import json
import os
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Mapping

from .artifacts import Artifact, artifact_dir, config_hash, ensure_artifact, load_artifact
from .paths import data_dir, preset_data
from .presets import Preset, load_preset

@dataclass(frozen=True)
class StageContext:
    """What a stage's build function gets.

    ``out`` is the temporary folder to write the result into (renamed into place on success);
    ``scratch`` is a folder that survives an interrupted build (for resumable checkpoints) and
    is removed once the artifact is written; ``deps`` are the artifacts the stage needs.
    """

    preset: Preset
    out: Path
    scratch: Path
    deps: Mapping[str, Artifact]


BuildFn = Callable[[StageContext], Mapping[str, Any] | None]


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
    from .distributed import is_main_process, launched, main_process_first, wait_for_everyone

    preset = _resolve_preset(preset)
    stage = STAGES[name]
    # Launched on several processes, the outermost call coordinates them: the main process builds
    # whatever dependency is missing while the others wait, then they reuse it; the stage itself is
    # built by all of them together (they train as one), and only the main process writes it.
    coordinate = launched() and not _NESTED
    _NESTED.append(name)
    try:
        with preset_data(preset):  # a preset with a data folder of its own reads it in every stage
            with main_process_first() if coordinate else contextlib.nullcontext():
                deps = {d: run_stage(d, preset, root=root, log=log) for d in stage.deps}
            config = {
                "stage": name,
                "preset": preset.name,
                "config": stage.config(preset),
                "deps": {d: art.config_hash for d, art in deps.items()},
            }
            path = artifact_dir(preset.name, name, root)
            scratch = path.parent / ".scratch" / f"{name}-{config_hash(config)}"
            art = ensure_artifact(
                path,
                lambda out: stage.build(StageContext(preset, out, scratch, deps)),
                stage=name,
                preset=preset.name,
                config=config,
                force=force,
                log=log,
            )
    finally:
        _NESTED.pop()
    if coordinate:  # every process built the stage together; the main one wrote it
        wait_for_everyone()
        if not is_main_process():
            art = load_artifact(path, config_hash(config))
    if is_main_process():
        shutil.rmtree(scratch, ignore_errors=True)  # the artifact is complete: checkpoints are done
    return art


_NESTED: list[str] = []  # the stages being built in this process, outermost first



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


def _build_tokenizer(ctx: StageContext) -> dict[str, Any]:
    from .data import load_split
    from .tokenizer import compression, load_tokenizer, save_tokenizer, train_tokenizer

    preset = ctx.preset
    if preset.sources.tokenizer is None:
        texts = [row["text"] for row in load_split("corpus", "train")]
        tok = train_tokenizer(texts, preset.vocab_size, model_max_length=preset.model.max_position_embeddings)
    else:
        tok = load_tokenizer(preset.sources.tokenizer)
    save_tokenizer(tok, ctx.out)
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


def _build_init(ctx: StageContext) -> dict[str, Any]:
    from .models import build_model, count_parameters, load_model, tiny_lfm2_config
    from .tokenizer import load_tokenizer, save_tokenizer

    preset = ctx.preset
    tok = load_tokenizer(ctx.deps["tokenizer"].path)
    if preset.sources.base_model is None:
        config = tiny_lfm2_config(preset, vocab_size=len(tok), pad_token_id=tok.pad_token_id,
                                  bos_token_id=tok.bos_token_id, eos_token_id=tok.eos_token_id)
        model = build_model(config, seed=preset.seed)
    else:
        model = load_model(preset.sources.base_model)
    model.save_pretrained(ctx.out)
    save_tokenizer(tok, ctx.out)
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


# --------------------------------------------------------------------------- pretrain stage
#: Validation windows scored at each evaluation (a fixed slice, so curves are comparable).
VAL_WINDOWS = 64


def pretrain_config(preset: Preset):
    """The :class:`~lfm_helpers.pretrain.PretrainConfig` a preset's pretraining budget describes."""
    from .pretrain import PretrainConfig

    b = preset.pretrain
    return PretrainConfig.from_budget(b, eval_every=max(1, b.max_steps // 20),
                                      checkpoint_every=max(1, b.max_steps // 10), seed=preset.seed)


def _pretrain_stage_config(preset: Preset) -> dict[str, Any]:
    return {"train": dataclasses.asdict(pretrain_config(preset)), "val_windows": VAL_WINDOWS,
            "corpus": preset.sources.pretrain_corpus,
            "corpus_sha256": data_fingerprint("corpus/train.jsonl")}


def _tokens_config(preset: Preset) -> dict[str, Any]:
    return {"corpus": preset.sources.pretrain_corpus,
            "sha256": {split: data_fingerprint(f"corpus/{split}.jsonl") for split in ("train", "val")}}


def _build_tokens(ctx: StageContext) -> dict[str, Any]:
    import numpy as np

    from .data import load_split
    from .pretrain import document_stream, tokenize_texts
    from .tokenizer import load_tokenizer

    tok = load_tokenizer(ctx.deps["tokenizer"].path)
    sizes = {}
    for split in ("train", "val"):
        texts = [row["text"] for row in load_split("corpus", split)]
        stream = document_stream(tokenize_texts(tok, texts), tok.bos_token_id, tok.eos_token_id)
        np.save(ctx.out / f"{split}.npy", stream)
        sizes[f"{split}_tokens"] = int(len(stream))
    return sizes


register(Stage(
    name="tokens",
    description="The corpus tokenised once: each document in bos/eos, one stream per split.",
    deps=("tokenizer",),
    config=_tokens_config,
    build=_build_tokens,
))


def packed_corpus(preset: Preset, seq_len: int, *, log: Callable[[str], None] = print):
    """Train and validation windows of the corpus (the ``tokens`` stage, cut to ``seq_len``)."""
    import numpy as np

    from .pretrain import stream_windows

    art = run_stage("tokens", preset, log=log)
    train = stream_windows(np.load(art.path / "train.npy"), seq_len)
    val = stream_windows(np.load(art.path / "val.npy"), seq_len)
    return train, val[:VAL_WINDOWS]


def _build_pretrain(ctx: StageContext) -> dict[str, Any]:
    from .liveplot import LivePlot, in_notebook
    from .models import load_model
    from .pretrain import evaluate_loss, train_lm
    from .tokenizer import load_tokenizer, save_tokenizer

    from .device import pick_device

    cfg = pretrain_config(ctx.preset)
    init = ctx.deps["init"].path
    model, tok = load_model(init, device=pick_device().device), load_tokenizer(init)
    train, val = packed_corpus(ctx.preset, cfg.seq_len)
    initial_val = evaluate_loss(model, val, cfg.batch_size, cfg.eval_batches)
    plot = LivePlot("pretraining", "step", "loss") if in_notebook() else None

    def redraw(h):
        plot.update({"train": (h.step, h.loss), "validation": (h.val_step, h.val_loss)})

    result = train_lm(model, train, val, cfg, checkpoint_dir=ctx.scratch, on_eval=redraw if plot else None)
    model.save_pretrained(ctx.out)
    save_tokenizer(tok, ctx.out)
    (ctx.out / "history.json").write_text(json.dumps(dataclasses.asdict(result.history)))
    return {"initial_val_loss": round(initial_val, 4), "final_val_loss": round(result.history.val_loss[-1], 4),
            "final_train_loss": round(result.history.loss[-1], 4), "steps": result.steps,
            "tokens_seen": result.tokens_seen, "train_windows": len(train),
            "tokens_per_second": round(result.tokens_per_second, 1), "resumed_from_step": result.resumed_from_step}


register(Stage(
    name="pretrain",
    description="Causal-LM pretraining on the corpus: packing, warm-up + cosine, resumable checkpoints.",
    deps=("init", "tokens"),
    config=_pretrain_stage_config,
    build=_build_pretrain,
))


# --------------------------------------------------------------------------- base stage
def _base_config(preset: Preset) -> dict[str, Any]:
    from .base import BASE_MANIFEST, read_shipped_base, shipped_base_dir

    if preset.base_pretrain is None:
        return {"source": preset.sources.base_model}
    read_shipped_base(preset)  # fails clearly when it is missing or altered
    return {"source": "shipped", "manifest": (shipped_base_dir(preset) / BASE_MANIFEST).read_text()}


def _link_or_copy(src: Path, dst: Path) -> None:
    try:
        os.link(src, dst)  # checkpoints can be large: share the bytes when the filesystem allows
    except OSError:
        shutil.copy2(src, dst)


def _build_base(ctx: StageContext) -> dict[str, Any]:
    from .base import BASE_MANIFEST, check_base_matches, read_shipped_base, shipped_base_dir

    if ctx.preset.base_pretrain is None:
        source = ctx.deps["init"].path
        metrics: dict[str, Any] = {"source": ctx.preset.sources.base_model}
    else:
        manifest = read_shipped_base(ctx.preset)
        check_base_matches(manifest, data_fingerprint("corpus/train.jsonl"),
                           ctx.deps["tokenizer"].path / "tokenizer.json")
        source = shipped_base_dir(ctx.preset)
        metrics = {"source": "shipped", **manifest["metrics"]}
    for f in sorted(source.iterdir()):
        if f.is_file() and f.name not in ("manifest.json", BASE_MANIFEST):
            _link_or_copy(f, ctx.out / f.name)
    return metrics


register(Stage(
    name="base",
    description="The base model post-training starts from: the shipped long-pretrained tiny base, or the checkpoint.",
    deps=("tokenizer", "init"),
    config=_base_config,
    build=_build_base,
))


# --------------------------------------------------------------------------- later stages
# Each post-training module registers its own stages when imported; importing them here makes
# ``run_stage("sft")`` work from any notebook or the command line. ``sft`` in turn imports the
# modules whose stages depend on its own (a stage can only be registered after its dependencies),
# so the registration order holds whichever module is imported first.
from . import sft as _sft  # noqa: E402,F401
