"""Load a model for fine-tuning: Unsloth on a CUDA GPU where it is importable, else transformers + peft.

The ``colab`` preset wants Unsloth's ``FastLanguageModel`` (its fused kernels roughly halve the
memory and time of a LoRA run on a T4/L4); a laptop or CI machine has no GPU and usually no
Unsloth. ``load_for_finetuning`` hides that choice behind one call that returns the model, its
tokenizer and the backend it actually used, so a notebook's training cell is the same everywhere:

- ``backend="auto"``: Unsloth when ``unsloth_available()`` (a CUDA GPU *and* ``import unsloth``
  works), else transformers + peft, after printing one line that says why Unsloth was not used;
- ``backend="unsloth"``: Unsloth even without a GPU (its CPU fallback runs text LoRA / full
  fine-tuning with TRL's ``SFTTrainer``; the test suite uses this in its own environment,
  ``.venv-unsloth``); a clear error when Unsloth is not importable;
- ``backend="transformers"``: ``AutoModelForCausalLM`` + ``peft.get_peft_model``.

``lora=None`` means full fine-tuning (every weight trainable); a ``LoraSpec`` adds LoRA adapters
to the modules it names and freezes the rest. LFM2's trainable projections are the attention
``q_proj`` / ``k_proj`` / ``v_proj`` / ``out_proj``, the short-convolution block's ``in_proj`` and
``out_proj`` (the gates and values around the depthwise conv) and the SwiGLU ``w1`` / ``w2`` /
``w3`` (``LFM2_LORA_TARGETS``). The depthwise ``conv`` itself (3 weights per channel) and the tied
embedding are left alone, as in Liquid's and Unsloth's LFM2 fine-tuning recipes.

Why the imports are lazy
------------------------
Unsloth patches transformers, peft and TRL when it is imported and asks to be imported before
them; importing it also prints a banner and, on a machine without a GPU, switches TRL's trainers
to CPU defaults. So this module imports nothing heavier than torch at import time, never imports
Unsloth unless a GPU is present or ``backend="unsloth"`` forces it, and probes first with
``importlib.util.find_spec`` (which finds the package without running it).

The same file runs under the main environment (transformers 5.24, trl 1.16) and the Unsloth
environment (which pins transformers 5.17, trl 1.15): it only uses APIs both have
(``AutoModelForCausalLM.from_pretrained(dtype=...)``, ``peft.LoraConfig`` / ``get_peft_model``).
"""

from __future__ import annotations

import importlib
import importlib.util
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from .paths import resolve_pretrained

#: The LFM2 linear layers LoRA adapts (checked against ``Lfm2ForCausalLM``'s module names).
#: ``out_proj`` names both the attention output and the short-convolution block's output.
LFM2_LORA_TARGETS: tuple[str, ...] = ("q_proj", "k_proj", "v_proj", "out_proj", "in_proj", "w1", "w2", "w3")

#: What ``load_for_finetuning(backend=...)`` accepts.
BACKENDS: tuple[str, ...] = ("auto", "unsloth", "transformers")


@dataclass(frozen=True)
class LoraSpec:
    """A LoRA adapter: rank ``r``, scale ``alpha / r``, dropout and the modules it wraps.

    Each wrapped ``Linear(in, out)`` gains ``A`` (r x in) and ``B`` (out x r), so ``r * (in + out)``
    trainable parameters, and computes ``W x + (alpha / r) * B A x``. ``B`` starts at zero, so the
    adapted model starts exactly equal to the base. ``alpha = 2 r`` is the usual starting point.
    """

    r: int = 16
    alpha: int = 32
    dropout: float = 0.0
    target_modules: tuple[str, ...] = LFM2_LORA_TARGETS

    def __post_init__(self) -> None:
        if isinstance(self.target_modules, str):
            raise TypeError("target_modules must be a tuple of module names, not one string")
        object.__setattr__(self, "target_modules", tuple(self.target_modules))  # lists hash too
        if self.r < 1:
            raise ValueError(f"LoRA rank r must be at least 1, got {self.r}")
        if self.alpha <= 0:
            raise ValueError(f"LoRA alpha must be positive, got {self.alpha}")
        if not 0.0 <= self.dropout < 1.0:
            raise ValueError(f"LoRA dropout must be in [0, 1), got {self.dropout}")
        if not self.target_modules:
            raise ValueError("target_modules is empty: name at least one module to adapt")


def backend_for(preset: Any) -> str:
    """The backend a preset asks for: ``"auto"`` where it opts into Unsloth (``colab``), else
    ``"transformers"`` (``tiny`` never tries Unsloth, so CPU runs print no fallback message)."""
    return "auto" if getattr(preset, "use_unsloth", False) else "transformers"


def _unsloth_installed() -> bool:
    """Is the ``unsloth`` package on the path? ``find_spec`` locates it without running it."""
    return importlib.util.find_spec("unsloth") is not None


def _import_unsloth() -> Any:
    return importlib.import_module("unsloth")


def _unsloth_status(*, force: bool = False) -> tuple[bool, str]:
    """(usable, why not): the checks behind ``unsloth_available``, cheapest first.

    ``import unsloth`` runs only when the package is installed and a GPU is present (or
    ``force``), because the import itself patches libraries and prints a banner.
    """
    if not force and not torch.cuda.is_available():
        return False, "no CUDA GPU here (torch.cuda.is_available() is False)"
    if not _unsloth_installed():
        return False, "unsloth is not installed (pip install unsloth)"
    try:
        _import_unsloth()
    except Exception as exc:  # a broken install raises anything (ImportError, RuntimeError, ...)
        return False, f"import unsloth failed: {type(exc).__name__}: {exc}"
    return True, ""


def unsloth_available() -> bool:
    """True when Unsloth can train here: a CUDA GPU is present and ``import unsloth`` works.

    On a CPU-only machine this is False even with Unsloth installed: its CPU fallback runs stock
    transformers + peft + TRL underneath, so it would bring its import-time patches and no
    speed-up. Unsloth is then not imported at all.
    """
    return _unsloth_status()[0]


def load_for_finetuning(path: str | Path, *, lora: LoraSpec | None, max_seq_length: int,
                        backend: str = "auto") -> tuple[Any, Any, str]:
    """Load the checkpoint at ``path`` (a local folder or a hub id) ready to fine-tune.

    Returns ``(model, tokenizer, backend_used)`` with ``backend_used`` ``"unsloth"`` or
    ``"transformers"``. With ``lora`` the model is a ``peft.PeftModel`` whose only trainable
    weights are the adapters; with ``lora=None`` every weight is trainable (full fine-tuning).
    ``max_seq_length`` is the longest training sequence (Unsloth sizes its kernels and the
    tokenizer's ``model_max_length`` by it). Weights load in float32 on CPU; on a GPU Unsloth
    picks bf16/fp16 itself, and the transformers path uses bf16 where the card supports it.
    """
    if backend not in BACKENDS:
        raise ValueError(f"unknown backend {backend!r}; valid backends: {', '.join(BACKENDS)}")
    if max_seq_length < 1:
        raise ValueError(f"max_seq_length must be at least 1, got {max_seq_length}")
    if lora is not None and not isinstance(lora, LoraSpec):
        raise TypeError(f"lora must be a LoraSpec or None, got {type(lora).__name__}")
    source = resolve_pretrained(path, "config.json", "model")

    if backend == "auto":
        usable, why = _unsloth_status()
        if usable:
            backend = "unsloth"
        else:
            print(f"Unsloth not used: {why}. Loading with transformers + peft instead.")
            backend = "transformers"
    elif backend == "unsloth":
        usable, why = _unsloth_status(force=True)
        if not usable:
            raise RuntimeError(f"backend='unsloth' was asked for but Unsloth cannot be used: {why}. "
                               "Use backend='auto' to fall back to transformers + peft.")

    if backend == "unsloth":
        model, tokenizer = _load_unsloth(source, lora, max_seq_length)
    else:
        model, tokenizer = _load_transformers(source, lora, max_seq_length)
    return model, tokenizer, backend


def _check_targets(model: torch.nn.Module, lora: LoraSpec) -> None:
    """Every target name must match some module: peft would silently adapt only those that do
    (a spec written for another architecture would train far fewer weights than intended)."""
    leaf_names = {name.rsplit(".", 1)[-1] for name, _ in model.named_modules()}
    missing = [t for t in lora.target_modules if t not in leaf_names]
    if missing:
        raise ValueError(f"LoRA target modules {missing} match no module of {type(model).__name__}; "
                         f"its module names include {sorted(n for n in leaf_names if not n.isdigit())[:20]}")


def _load_transformers(source: str, lora: LoraSpec | None, max_seq_length: int):
    from .models import load_model

    on_gpu = torch.cuda.is_available()
    dtype = torch.bfloat16 if on_gpu and torch.cuda.is_bf16_supported() else torch.float32
    model = load_model(source, dtype=dtype)
    tokenizer = _load_tokenizer(source, max_seq_length)
    if lora is not None:
        from peft import LoraConfig, get_peft_model

        _check_targets(model, lora)
        config = LoraConfig(task_type="CAUSAL_LM", r=lora.r, lora_alpha=lora.alpha,
                            lora_dropout=lora.dropout, target_modules=list(lora.target_modules), bias="none")
        model = get_peft_model(model, config)
    else:
        model.requires_grad_(True)
    return model, tokenizer


def _load_tokenizer(source: str, max_seq_length: int):
    """The course's tokenizer loader (clear errors for a bad folder) where the folder has a
    ``tokenizer.json``, else ``AutoTokenizer`` (a checkpoint with only a slow tokenizer)."""
    from transformers import AutoTokenizer

    from .tokenizer import load_tokenizer

    try:
        tokenizer = load_tokenizer(source)
    except FileNotFoundError:
        tokenizer = AutoTokenizer.from_pretrained(source)
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    tokenizer.model_max_length = max_seq_length
    return tokenizer


def _load_unsloth(source: str, lora: LoraSpec | None, max_seq_length: int):
    """``FastLanguageModel.from_pretrained`` + ``get_peft_model``; Unsloth's own tokenizer.

    Unsloth loads (and on a GPU may patch) the tokenizer from the same folder, so that one is
    returned. 4-bit loading stays off: the course compares LoRA against full fine-tuning at the
    same precision, and a T4 holds LFM2.5-350M in 16 bits easily. Gradient checkpointing
    (Unsloth's offloaded variant) is on for a GPU, where it saves memory; on a CPU it would only
    recompute activations and slow training down, so it is off there.
    """
    from unsloth import FastLanguageModel  # importable: checked by _unsloth_status

    on_gpu = torch.cuda.is_available()
    checkpointing = "unsloth" if on_gpu else False
    model, tokenizer = FastLanguageModel.from_pretrained(
        model_name=source,
        max_seq_length=max_seq_length,
        dtype=None if on_gpu else torch.float32,  # None: Unsloth picks bf16 or fp16 for the card
        load_in_4bit=False,
        full_finetuning=lora is None,
        use_gradient_checkpointing=checkpointing,
    )
    if lora is not None:
        _check_targets(model, lora)
        model = FastLanguageModel.get_peft_model(
            model, r=lora.r, lora_alpha=lora.alpha, lora_dropout=lora.dropout,
            target_modules=list(lora.target_modules), bias="none",
            use_gradient_checkpointing=checkpointing, random_state=0, max_seq_length=max_seq_length,
        )
    return model, tokenizer


def lora_modules(model: torch.nn.Module) -> list[str]:
    """Names of the modules that carry a LoRA adapter (those with a ``lora_A`` sub-module)."""
    return [name for name, module in model.named_modules()
            if isinstance(getattr(module, "lora_A", None), torch.nn.ModuleDict) and len(module.lora_A)]


def trainable_parameters(model: torch.nn.Module) -> dict[str, int | float]:
    """Trainable and total parameter counts, and the trainable fraction (LoRA versus full)."""
    total = sum(p.numel() for p in model.parameters())
    trainable = sum(p.numel() for p in model.parameters() if p.requires_grad)
    return {"trainable": trainable, "total": total, "fraction": trainable / total if total else 0.0}
