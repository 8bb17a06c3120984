"""Model merging with mergekit (notebook 08), checked so that a merge cannot silently lose weights.

:class:`MergeSpec` is a small typed description of one merge (method, parents, the method's main
parameter); :func:`merge_models` turns it into a mergekit configuration, runs mergekit's Python
API (``MergeConfiguration`` + ``run_merge``; nothing here re-implements a merge method), writes
the result atomically with the parents' tokenizer, chat template and generation settings, and **verifies** it
(:func:`verify_merge`): every tensor of the first parent is present with the same shape, and the
output loads in transformers without a single missing (that is, freshly initialised) weight.

Why the check: mergekit maps tensors through an architecture definition. For an architecture it
does not know it infers one and drops the tensors it cannot map; transformers then initialises
them at random when the merged model loads, and nothing fails (reference sheet, stack notes: an
``Lfm2MoeForCausalLM`` merge loses its experts). The tests build such a case and expect an error.

Methods (mergekit names): ``linear`` (weighted average), ``slerp`` (spherical interpolation of two
models by ``t``, from ``base``), ``task_arithmetic`` (base + the weighted sum of each model's
difference from the base), ``ties`` (task arithmetic after keeping each difference's largest
``density`` share and resolving sign conflicts), ``dare_linear`` and ``dare_ties`` (random
dropping at ``1 - density``, the rest scaled back up to the difference's original norm, then a
sum or TIES's sign election).
"""

from __future__ import annotations

import json
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Sequence

#: The methods this helper accepts, and which of them need a ``base`` model.
METHODS = ("linear", "slerp", "task_arithmetic", "ties", "dare_linear", "dare_ties")
NEEDS_BASE = {"slerp", "task_arithmetic", "ties", "dare_linear", "dare_ties"}


@dataclass(frozen=True)
class MergeSpec:
    """One merge. ``models`` are checkpoint folders (or hub ids); ``weights`` one per model
    (``linear`` and the task-arithmetic family; default equal); ``base`` the reference model of
    ``slerp`` and the task-arithmetic family; ``t`` SLERP's position from ``base`` (0) to the
    other model (1); ``density`` the share of each difference TIES/DARE keep (1 keeps all);
    ``normalize`` divides by the sum of weights (mergekit's default per method when ``None``)."""

    method: str
    models: tuple[str, ...]
    weights: tuple[float, ...] | None = None
    base: str | None = None
    t: float | None = None
    density: float | None = None
    normalize: bool | None = None
    seed: int = 0
    dtype: str = "float32"

    def __post_init__(self) -> None:
        if self.method not in METHODS:
            raise ValueError(f"unknown merge method {self.method!r}; use one of {', '.join(METHODS)}")
        if not self.models:
            raise ValueError("a merge needs at least one model")
        if self.method in NEEDS_BASE and self.base is None:
            raise ValueError(f"{self.method} needs a base model")
        if self.method == "slerp":
            if self.t is None or not 0 <= self.t <= 1:
                raise ValueError(f"slerp needs t in [0, 1], got {self.t}")
            if len(self.models) != 1:
                raise ValueError("slerp interpolates from base to exactly one other model")
        if self.weights is not None and len(self.weights) != len(self.models):
            raise ValueError(f"{len(self.weights)} weights for {len(self.models)} models")
        if self.density is not None and not 0 < self.density <= 1:
            raise ValueError(f"density must be in (0, 1], got {self.density}")
        if self.density is not None and self.method not in {"ties", "dare_linear", "dare_ties"}:
            raise ValueError(f"{self.method} has no density")

    def config(self) -> dict[str, Any]:
        """The mergekit configuration (the dict a ``mergekit-yaml`` file would hold)."""
        if self.method == "slerp":
            models = [{"model": self.base}, {"model": self.models[0]}]
            return {"merge_method": "slerp", "base_model": self.base, "models": models,
                    "parameters": {"t": self.t}, "dtype": self.dtype}
        weights = self.weights or tuple(1.0 / len(self.models) for _ in self.models)
        models = []
        for model, weight in zip(self.models, weights):
            params: dict[str, Any] = {"weight": weight}
            if self.density is not None:
                params["density"] = self.density
            models.append({"model": model, "parameters": params})
        config: dict[str, Any] = {"merge_method": self.method, "models": models, "dtype": self.dtype}
        if self.base is not None:
            config["base_model"] = self.base
        if self.normalize is not None:
            config["parameters"] = {"normalize": self.normalize}
        return config

    @property
    def parents(self) -> tuple[str, ...]:
        return ((self.base,) if self.base else ()) + tuple(m for m in self.models if m != self.base)


def _tensor_shapes(folder: Path) -> dict[str, tuple[int, ...]]:
    from safetensors import safe_open

    shapes = {}
    files = sorted(Path(folder).glob("*.safetensors"))
    if not files:
        raise FileNotFoundError(f"no .safetensors weights in {folder}")
    for file in files:
        with safe_open(str(file), framework="pt") as f:
            for name in f.keys():
                shapes[name] = tuple(f.get_slice(name).get_shape())
    return shapes


def verify_merge(parent: Path | str, merged: Path | str) -> dict[str, Any]:
    """Check a merged folder against a parent: the same tensor names and shapes, and no weight
    that transformers has to initialise when loading it. Raises ``ValueError`` naming what is
    wrong; returns the tensor count and parameter total when all is well."""
    from transformers import AutoModelForCausalLM

    want, got = _tensor_shapes(Path(parent)), _tensor_shapes(Path(merged))
    missing = sorted(set(want) - set(got))
    extra = sorted(set(got) - set(want))
    reshaped = sorted(n for n in set(want) & set(got) if want[n] != got[n])
    if missing or extra or reshaped:
        raise ValueError(f"the merge at {merged} does not match its parent: {len(missing)} tensors missing "
                         f"{missing[:5]}, {len(extra)} unexpected {extra[:5]}, {len(reshaped)} with another shape "
                         f"{reshaped[:5]} (mergekit may not know this architecture; register a definition)")
    _, info = AutoModelForCausalLM.from_pretrained(str(merged), output_loading_info=True)
    if info.get("missing_keys"):
        raise ValueError(f"loading {merged} initialises {len(info['missing_keys'])} weights it should have merged: "
                         f"{sorted(info['missing_keys'])[:5]}")
    return {"tensors": len(got), "parameters": sum(_numel(s) for s in got.values())}


def _numel(shape: Sequence[int]) -> int:
    n = 1
    for d in shape:
        n *= d
    return n


def merge_models(spec: MergeSpec, out: Path | str, *, overwrite: bool = False) -> dict[str, Any]:
    """Run ``spec`` with mergekit into ``out`` (written in a temporary folder, verified, then
    renamed into place, so an interrupted merge leaves nothing half-written), with the first
    parent's tokenizer and chat template. Returns the verification summary and the config."""
    from mergekit.config import MergeConfiguration
    from mergekit.merge import run_merge
    from mergekit.options import MergeOptions

    from .tokenizer import load_tokenizer, save_tokenizer

    out = Path(out)
    if out.exists() and not overwrite:
        raise FileExistsError(f"{out} exists; pass overwrite=True to replace it")
    config = spec.config()
    out.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=out.parent, prefix=f".{out.name}-") as tmp:
        staging = Path(tmp) / "merged"
        run_merge(MergeConfiguration.model_validate(config), str(staging),
                  options=MergeOptions(copy_tokenizer=False, random_seed=spec.seed, quiet=True, write_model_card=False,
                                       lazy_unpickle=False))
        save_tokenizer(load_tokenizer(spec.parents[0]), staging)
        _copy_generation_config(spec.parents[0], staging)
        summary = verify_merge(spec.parents[0], staging)
        (staging / "merge.json").write_text(json.dumps({"config": config, **summary}, indent=1))
        if out.exists():
            shutil.rmtree(out)
        staging.rename(out)
    return {"config": config, **summary}


def _copy_generation_config(parent: str, out: Path) -> None:
    """mergekit writes no ``generation_config.json``; without it transformers falls back to the
    model config, whose ``use_cache`` a training run may have left ``false``, and the merged
    model then generates without a KV cache (20x slower here). The parent's settings are kept."""
    from transformers import GenerationConfig

    try:
        config = GenerationConfig.from_pretrained(parent)
    except OSError:  # the parent has none: transformers' defaults apply, as they did to the parent
        return
    config.save_pretrained(out)


def tiny_moe_parents(folder: Path | str, *, vocab_texts: Sequence[str] = ("the lamp ships on monday",) * 50) -> tuple[str, str]:
    """Two tiny, differently initialised ``Lfm2MoeForCausalLM`` checkpoints in ``folder``: an
    architecture mergekit 0.1.5 has no definition for, to show (and test) that a merge which
    drops weights is caught."""
    import torch
    from transformers import Lfm2MoeConfig, Lfm2MoeForCausalLM

    from .tokenizer import save_tokenizer, train_tokenizer

    tok = train_tokenizer(list(vocab_texts), vocab_size=300)
    config = Lfm2MoeConfig(vocab_size=len(tok), hidden_size=32, intermediate_size=64, moe_intermediate_size=16,
                           num_hidden_layers=2, num_attention_heads=4, num_key_value_heads=2, num_experts=4,
                           num_experts_per_tok=2, num_dense_layers=0, layer_types=["conv", "full_attention"])
    folders = []
    for seed in (0, 1):
        torch.manual_seed(seed)
        out = Path(folder) / f"lfm2-moe-{seed}"
        Lfm2MoeForCausalLM(config).save_pretrained(out)
        save_tokenizer(tok, out)
        folders.append(str(out))
    return folders[0], folders[1]
