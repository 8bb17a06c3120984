"""Build, save and load LFM2 models: from a preset's config (tiny) or a checkpoint (colab).

The tiny model is a real ``transformers`` LFM2 (``Lfm2Config`` / ``Lfm2ForCausalLM``) with the
real hybrid layout: gated short-convolution blocks interleaved with GQA blocks, SwiGLU MLPs,
RMSNorm and tied embeddings. Only the sizes are small. Two ``Lfm2Config`` defaults would spoil
that, so they are always set here:

- ``layer_types`` must be passed, else every layer becomes full attention;
- ``block_auto_adjust_ff_dim=False`` keeps the FFN at the size we ask for (LFM2's released
  configs take 2/3 of it and round up to a multiple of 256, which would dwarf a tiny model).

A checkpoint (``preset.sources.base_model``: a hub id or a local folder) goes through the same
``from_pretrained`` call whether it is ``LiquidAI/LFM2.5-350M`` or a folder on disk.
"""

from __future__ import annotations

from pathlib import Path

import torch
from transformers import AutoModelForCausalLM, Lfm2Config, Lfm2ForCausalLM, PreTrainedModel

from .paths import resolve_pretrained
from .presets import Preset


def tiny_lfm2_config(preset: Preset, *, vocab_size: int | None = None, pad_token_id: int = 0,
                     bos_token_id: int = 1, eos_token_id: int = 2) -> Lfm2Config:
    """The ``Lfm2Config`` for ``preset.model`` (vocabulary and special ids from the tokenizer)."""
    spec = preset.model
    return Lfm2Config(
        vocab_size=vocab_size or preset.vocab_size,
        hidden_size=spec.hidden_size,
        intermediate_size=spec.intermediate_size,
        num_hidden_layers=spec.num_layers,
        num_attention_heads=spec.num_heads,
        num_key_value_heads=spec.num_kv_heads,
        max_position_embeddings=spec.max_position_embeddings,
        conv_L_cache=spec.conv_kernel,
        layer_types=spec.layer_types,
        block_auto_adjust_ff_dim=False,
        tie_word_embeddings=True,
        pad_token_id=pad_token_id,
        bos_token_id=bos_token_id,
        eos_token_id=eos_token_id,
    )


def build_model(config: Lfm2Config, *, seed: int = 0) -> Lfm2ForCausalLM:
    """A freshly initialised LFM2 (seeded, so the same config gives the same weights)."""
    torch.manual_seed(seed)
    return Lfm2ForCausalLM(config)


def load_model(path_or_id: str | Path, *, dtype: torch.dtype | None = None,
               device: torch.device | str | None = None) -> PreTrainedModel:
    """Load a causal LM with ``from_pretrained``: a hub id or a local folder, the same path.

    A missing or incomplete local folder is reported as such (``paths.resolve_pretrained``),
    instead of transformers mistaking it for a hub id and failing on the network.
    """
    text = resolve_pretrained(path_or_id, "config.json", "model")
    model = AutoModelForCausalLM.from_pretrained(text, dtype=dtype or torch.float32)
    if device is not None:
        model = model.to(device)
    return model


def count_parameters(model: torch.nn.Module) -> dict[str, int]:
    """Parameters by kind: embedding, convolution blocks, attention blocks, MLPs, norms.

    Tied embeddings are counted once. The parts are asserted to add up to the total, so the
    accounting cannot silently drift from the model.
    """
    parts = {"embedding": 0, "conv": 0, "attention": 0, "mlp": 0, "norm": 0}
    for name, p in model.named_parameters():  # named_parameters() skips tied duplicates
        n = p.numel()
        if "embed_tokens" in name or "lm_head" in name:
            parts["embedding"] += n
        elif ".conv." in name:
            parts["conv"] += n
        elif ".self_attn." in name:
            parts["attention"] += n
        elif ".feed_forward." in name:
            parts["mlp"] += n
        elif "norm" in name:
            parts["norm"] += n
        else:
            raise ValueError(f"parameter {name} fits no category")
    total = sum(p.numel() for p in model.parameters())
    assert sum(parts.values()) == total, (parts, total)
    parts["total"] = total
    return parts
