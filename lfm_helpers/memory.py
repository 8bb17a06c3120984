"""Memory arithmetic for on-device models: weights, KV cache and convolution state.

On a phone the question is not "how many FLOPs" but "does it fit, and how fast can the weights
be streamed through memory". This module answers the first half from a model's config alone:

- parameters are counted exactly by building the model on PyTorch's ``meta`` device (shapes, no
  storage), so a 1.2B-parameter config costs nothing to inspect;
- weights take ``params * bits / 8`` bytes. Quantised file formats store a scale per block of
  weights, so they cost a little more than their nominal width: GGUF's ``q8_0`` keeps 32 int8
  weights and one fp16 scale in 34 bytes (8.5 bits per weight) and ``q4_0`` 32 4-bit weights and
  one fp16 scale in 18 bytes (4.5 bits per weight);
- attention layers keep a KV cache that grows with the context (sliding-window layers only up to
  their window); LFM2's convolution layers keep a constant state of ``hidden_size x conv_L_cache``
  values, and gated DeltaNet layers a constant matrix per head (:func:`decode_state_bytes`).

Simplified: activations, the runtime's own buffers and the OS are left out, so real usage is
somewhat higher than these figures.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import torch
from transformers import AutoConfig, AutoModelForCausalLM, PretrainedConfig

from .paths import data_dir

#: Bits per weight of each precision the course compares (block formats include their scales).
PRECISION_BITS: dict[str, float] = {"bf16": 16.0, "int8": 8.0, "q8_0": 8.5, "int4": 4.0, "q4_0": 4.5}

GB = 1e9  # the "1 GB" of a device budget is a decimal gigabyte


def load_public_config(name: str, folder: Path | None = None) -> PretrainedConfig:
    """A shipped public config (``data/configs/<name>.json``, e.g. ``LFM2-350M``) as a transformers config."""
    folder = Path(folder or data_dir() / "configs")
    path = folder / f"{name}.json"
    if not path.is_file():
        known = sorted(p.stem for p in folder.glob("*.json"))
        raise FileNotFoundError(f"no config {name!r} in {folder}; available: {', '.join(known)}")
    fields = json.loads(path.read_text())
    return AutoConfig.for_model(fields.pop("model_type"), **fields)


def count_parameters_meta(config: PretrainedConfig) -> int:
    """Exact parameter count of the model ``config`` describes, without allocating its weights.

    Tied input/output embeddings are counted once, as model cards do.
    """
    with torch.device("meta"):
        model = AutoModelForCausalLM.from_config(config)
    return sum(p.numel() for p in model.parameters())


def weight_bytes(n_params: int, precision: str) -> float:
    """Bytes the weights take at ``precision`` (one of :data:`PRECISION_BITS`)."""
    if precision not in PRECISION_BITS:
        raise ValueError(f"unknown precision {precision!r}; choose from {', '.join(PRECISION_BITS)}")
    return n_params * PRECISION_BITS[precision] / 8


def layer_types_of(config: PretrainedConfig) -> list[str]:
    """Each layer's type (``"conv"``, ``"full_attention"``, ``"sliding_attention"``, ...); configs
    without ``layer_types`` are all full attention."""
    return list(getattr(config, "layer_types", None) or ["full_attention"] * config.num_hidden_layers)


def head_dim_of(config: PretrainedConfig) -> int:
    """The attention head width (explicit in Gemma 3 and Qwen3 configs, else hidden / heads)."""
    return getattr(config, "head_dim", None) or config.hidden_size // config.num_attention_heads


def deltanet_dims(config: PretrainedConfig) -> tuple[int, int, int, int, int]:
    """(value heads, key head dim, value head dim, conv channels, conv kernel) of a gated DeltaNet layer."""
    key_dim = config.linear_num_key_heads * config.linear_key_head_dim
    value_dim = config.linear_num_value_heads * config.linear_value_head_dim
    return (config.linear_num_value_heads, config.linear_key_head_dim, config.linear_value_head_dim,
            2 * key_dim + value_dim, config.linear_conv_kernel_dim)


def decode_state_bytes(config: PretrainedConfig, context: int, *, batch: int = 1,
                       bytes_per_value: int = 4) -> dict[str, int]:
    """What a model must keep to decode the next token after ``context`` tokens, by kind.

    - ``kv``: attention keys and values, ``2 x kv_heads x head_dim`` values per token and layer.
      A global layer keeps every token; a sliding-window layer at most ``window - 1`` of them
      (transformers keeps ``window - 1``: with the new token that makes a window);
    - ``conv``: a convolution's last inputs, ``channels x kernel`` per layer, constant. LFM2's
      conv layers have ``hidden x 3``; DeltaNet layers convolve q, k and v with a kernel of 4;
    - ``recurrent``: gated DeltaNet's state, a ``key_dim x value_dim`` matrix per head, constant.

    ``bytes_per_value`` is 4 for float32 (what the profile runs) and 2 for bf16.
    """
    parts = {"kv": 0, "conv": 0, "recurrent": 0}
    kv_per_token = 2 * config.num_key_value_heads * head_dim_of(config)
    for kind in layer_types_of(config):
        if kind == "full_attention":
            parts["kv"] += kv_per_token * context
        elif kind == "sliding_attention":
            parts["kv"] += kv_per_token * min(context, config.sliding_window - 1)
        elif kind == "conv":
            parts["conv"] += config.hidden_size * config.conv_L_cache
        elif kind == "linear_attention":
            heads, dk, dv, channels, kernel = deltanet_dims(config)
            parts["conv"] += channels * kernel
            parts["recurrent"] += heads * dk * dv
        else:
            raise ValueError(f"no state formula for layer type {kind!r}")
    return {k: v * batch * bytes_per_value for k, v in parts.items()}


def kv_cache_bytes(config: PretrainedConfig, context: int, *, batch: int = 1, bytes_per_value: int = 2) -> int:
    """Attention keys and values after ``context`` tokens (bf16 by default): the part that grows."""
    return decode_state_bytes(config, context, batch=batch, bytes_per_value=bytes_per_value)["kv"]


def conv_state_bytes(config: PretrainedConfig, *, batch: int = 1, bytes_per_value: int = 2) -> int:
    """Convolution and recurrent state (bf16 by default): constant, whatever the context.

    For LFM2 that is ``hidden x conv_L_cache`` per short-convolution layer."""
    state = decode_state_bytes(config, 1, batch=batch, bytes_per_value=bytes_per_value)
    return state["conv"] + state["recurrent"]


@dataclass(frozen=True)
class MemoryRow:
    """One model at one precision: where its memory goes, and whether it fits the budget."""

    model: str
    params: int
    precision: str
    weights_gb: float
    kv_cache_gb: float
    conv_state_gb: float
    budget_gb: float

    @property
    def total_gb(self) -> float:
        return self.weights_gb + self.kv_cache_gb + self.conv_state_gb

    @property
    def fits(self) -> bool:
        return self.total_gb <= self.budget_gb


def memory_table(names: list[str], precisions: list[str], *, context: int = 4096,
                 budget_gb: float = 1.0) -> list[MemoryRow]:
    """Weights + caches of each shipped config at each precision (caches in bf16) for one sequence."""
    rows = []
    for name in names:
        config = load_public_config(name)
        n = count_parameters_meta(config)
        kv = kv_cache_bytes(config, context) / GB
        conv = conv_state_bytes(config) / GB
        for precision in precisions:
            rows.append(MemoryRow(name, n, precision, weight_bytes(n, precision) / GB, kv, conv, budget_gb))
    return rows


def format_memory_table(rows: list[MemoryRow]) -> str:
    """A plain-text table of :func:`memory_table` rows."""
    head = f"{'model':<10} {'params':>13} {'precision':<9} {'weights':>8} {'KV cache':>9} {'conv':>7} {'total':>7}  fits {rows[0].budget_gb:g} GB?"
    lines = [head, "-" * len(head)]
    for r in rows:
        lines.append(
            f"{r.model:<10} {r.params:>13,} {r.precision:<9} {r.weights_gb:>6.3f}GB {r.kv_cache_gb:>7.3f}GB "
            f"{r.conv_state_gb * 1e6:>5.0f}kB {r.total_gb:>5.2f}GB  {'yes' if r.fits else 'no'}"
        )
    return "\n".join(lines)


def decode_speed_bound(bytes_per_token: float, bandwidth_gb_s: float) -> float:
    """Upper bound on decode tokens/s when every token must stream ``bytes_per_token`` from memory.

    At batch size 1, each new token reads every weight once (plus the cache), so a device with
    ``bandwidth_gb_s`` GB/s of memory bandwidth cannot decode faster than bandwidth / bytes.
    This is why small models are *memory-bound*, and why quantisation speeds decoding up.
    """
    if bytes_per_token <= 0 or bandwidth_gb_s <= 0:
        raise ValueError("bytes_per_token and bandwidth_gb_s must be positive")
    return bandwidth_gb_s * GB / bytes_per_token
