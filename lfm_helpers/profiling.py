"""Profile four sequence-mixing designs at matched size: latency, cache bytes and memory, as context grows.

The talk's architecture claim is that LFM2's gated short convolutions plus a few GQA blocks beat
sliding-window attention (Gemma 3) and gated DeltaNet (Qwen3.5) on on-device latency and memory.
This module lets a learner test it on their own CPU:

- :func:`matched_configs` builds four ``transformers`` configs of the same width, depth, heads and
  vocabulary: the LFM2 hybrid, a Gemma 3-style model (sliding-window layers with a global layer
  every 6th), a Qwen3.5-style model (gated DeltaNet with a full-attention layer every 4th; dense)
  and a full-attention GQA baseline (Qwen3). Only the MLP width differs, solved so that every
  model has the LFM2 model's parameter count (within 5%, asserted).
- :func:`profile_architectures` measures prefill latency, per-token decode latency (medians
  after warm-up), the bytes of the decode cache read from the cache object the model returns,
  and the peak resident memory of the process.
- :func:`decode_state_bytes`, :func:`analytical_decode_flops` and :func:`analytical_decode_bytes`
  are the analytical model: what each design *must* store and compute per decoded token,
  independent of how well a kernel implements it. The measured cache bytes are checked against
  :func:`decode_state_bytes`.

What is inherent and what is an artifact: cache growth and FLOPs per token follow from the
architecture. Wall-clock times also depend on the implementation: on a CPU without the optional
``causal-conv1d`` and ``flash-linear-attention`` packages, transformers runs reference PyTorch
code for the convolution and for gated DeltaNet (:func:`kernel_paths` reports which ran), and at
small sizes Python overhead per layer dominates. Simplified: batch size 1, float32, random
weights, one process; real devices run quantised weights in a dedicated runtime (notebook 09).
"""

from __future__ import annotations

import ctypes
import dataclasses
import functools
import gc
import importlib
import inspect
import json
import os
import platform
import re
import statistics
import sys
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

import pandas as pd
import psutil
import torch
from transformers import AutoConfig, AutoModelForCausalLM, PretrainedConfig

from .memory import (
    GB,
    count_parameters_meta,
    decode_state_bytes,
    deltanet_dims,
    head_dim_of,
    layer_types_of,
    load_public_config,
    weight_bytes,
)
from .presets import PROFILE_SIZES, Preset, ProfileBudget, load_preset

#: The four designs, in the order tables and plots show them.
ARCHITECTURES: dict[str, str] = {
    "lfm2": "LFM2: gated short conv + GQA",
    "gemma3": "Gemma 3 style: sliding window + global",
    "qwen3_5": "Qwen3.5 style: gated DeltaNet + attention",
    "gqa": "full attention (GQA)",
}

#: transformers' name for each kind of layer, as the tables print it.
LAYER_NAMES = {"conv": "conv", "full_attention": "global attn", "sliding_attention": "sliding attn",
               "linear_attention": "DeltaNet"}

MATCH_TOLERANCE = 0.05  # parameter counts must be within 5% of the LFM2 model's
_MLP_STEP = 32  # MLP widths are rounded to a multiple of this


# --------------------------------------------------------------------------- the four configs
def architecture_config(arch: str, budget: ProfileBudget, intermediate_size: int | None = None) -> PretrainedConfig:
    """The transformers config of ``arch`` (a key of :data:`ARCHITECTURES`) at the budget's size.

    Every design shares the LFM2 model's hidden size, depth, query/KV heads, head dimension and
    vocabulary, with tied embeddings. The layer patterns are each family's own: LFM2 takes
    ``budget.model.attention_layers``; Gemma 3 and Qwen3.5 keep their configs' default patterns
    (a global layer every 6th layer; a full-attention layer every 4th). Qwen3.5's DeltaNet heads
    keep the library default of 128 dimensions for keys and values, with ``hidden / 128`` heads so
    that they are as wide as the model. ``intermediate_size`` (the MLP width) defaults to LFM2's.
    """
    from transformers import Gemma3TextConfig, Lfm2Config, Qwen3_5TextConfig, Qwen3Config

    spec = budget.model
    head_dim = spec.hidden_size // spec.num_heads
    common = dict(
        vocab_size=budget.vocab_size,
        hidden_size=spec.hidden_size,
        intermediate_size=intermediate_size or spec.intermediate_size,
        num_hidden_layers=spec.num_layers,
        num_attention_heads=spec.num_heads,
        num_key_value_heads=spec.num_kv_heads,
        max_position_embeddings=spec.max_position_embeddings,
        tie_word_embeddings=True,
    )
    if arch == "lfm2":
        return Lfm2Config(**common, layer_types=spec.layer_types, conv_L_cache=spec.conv_kernel,
                          block_auto_adjust_ff_dim=False)
    if arch == "gemma3":
        return Gemma3TextConfig(**common, head_dim=head_dim, query_pre_attn_scalar=head_dim,
                                sliding_window=budget.sliding_window)
    if arch == "qwen3_5":
        linear_head_dim = 128
        if spec.hidden_size % linear_head_dim:
            raise ValueError(f"hidden size {spec.hidden_size} is not a multiple of the DeltaNet head size 128")
        heads = spec.hidden_size // linear_head_dim
        return Qwen3_5TextConfig(**common, head_dim=head_dim, linear_num_key_heads=heads,
                                 linear_num_value_heads=heads, linear_key_head_dim=linear_head_dim,
                                 linear_value_head_dim=linear_head_dim)
    if arch == "gqa":
        return Qwen3Config(**common, head_dim=head_dim)
    raise ValueError(f"unknown architecture {arch!r}; choose from {', '.join(ARCHITECTURES)}")


def matched_configs(budget: ProfileBudget, architectures: tuple[str, ...] | None = None) -> dict[str, PretrainedConfig]:
    """The configs of :func:`architecture_config`, each MLP width solved to match LFM2's parameter count.

    Parameters grow linearly with the MLP width (three ``hidden x width`` matrices per layer), so
    two counts on the meta device give the exact slope; the width is rounded to a multiple of 32.
    Raises if any model ends up more than 5% away from the LFM2 model.
    """
    architectures = tuple(architectures or ARCHITECTURES)
    target = count_parameters_meta(architecture_config("lfm2", budget))
    configs = {}
    for arch in architectures:
        if arch == "lfm2":
            configs[arch] = architecture_config(arch, budget)
            continue
        width = budget.model.intermediate_size
        at_width = count_parameters_meta(architecture_config(arch, budget, width))
        slope = (count_parameters_meta(architecture_config(arch, budget, width + _MLP_STEP)) - at_width) / _MLP_STEP
        solved = max(_MLP_STEP, round((width + (target - at_width) / slope) / _MLP_STEP) * _MLP_STEP)
        configs[arch] = architecture_config(arch, budget, solved)
        n = count_parameters_meta(configs[arch])
        if abs(n - target) > MATCH_TOLERANCE * target:
            raise ValueError(f"{arch}: {n:,} parameters is more than {MATCH_TOLERANCE:.0%} away from LFM2's {target:,}")
    return configs


def layer_pattern(config: PretrainedConfig) -> str:
    """A readable summary of a config's layers, e.g. ``"5 conv + 3 global attn"``."""
    types = layer_types_of(config)
    counts = {name: types.count(name) for name in dict.fromkeys(types)}
    return " + ".join(f"{n} {LAYER_NAMES.get(name, name)}" for name, n in counts.items())


def architecture_table(configs: dict[str, PretrainedConfig]) -> pd.DataFrame:
    """One row per architecture: design, layer pattern, MLP width, parameters, and the gap to LFM2 in percent."""
    params = {arch: count_parameters_meta(cfg) for arch, cfg in configs.items()}
    reference = params.get("lfm2", next(iter(params.values())))
    return pd.DataFrame([
        {"architecture": arch, "design": ARCHITECTURES.get(arch, arch), "layers": layer_pattern(cfg),
         "mlp_width": cfg.intermediate_size,
         "params": params[arch], "vs_lfm2_pct": round(100 * (params[arch] / reference - 1), 2)}
        for arch, cfg in configs.items()
    ])


# --------------------------------------------------------------------------- the analytical model
def measured_cache_bytes(cache: Any) -> dict[str, int]:
    """The bytes held by a transformers ``Cache`` object, read tensor by tensor, by the kinds of
    :func:`decode_state_bytes`: key/value tensors, convolution states, recurrent states.

    Counts ``numel x element size`` of each tensor the cache holds (the logical size). Right after
    a prefill, a sliding-window layer's keys are a view into the prefill's full key tensor, so
    memory briefly holds more until the first decoded token; the peak-memory column sees that.
    """
    if not hasattr(cache, "layers"):
        raise TypeError(f"cannot read {type(cache).__name__}: expected a transformers 5 Cache with .layers")
    parts = {"kv": 0, "conv": 0, "recurrent": 0}

    def size(t: torch.Tensor | None) -> int:
        return 0 if t is None else t.numel() * t.element_size()

    for layer in cache.layers:
        parts["kv"] += size(getattr(layer, "keys", None)) + size(getattr(layer, "values", None))
        parts["conv"] += sum(size(t) for t in getattr(layer, "conv_states", {}).values())
        parts["recurrent"] += sum(size(t) for t in getattr(layer, "recurrent_states", {}).values())
    return parts


@functools.lru_cache(maxsize=64)
def _meta_sizes(config_json: str) -> tuple[int, int]:
    """(parameters, multiply-adds of every ``nn.Linear`` for one token, LM head included), counted
    on the meta device. Cached by the config's JSON: profiles ask for the same config many times."""
    fields = json.loads(config_json)
    config = AutoConfig.for_model(fields.pop("model_type"), **fields)
    with torch.device("meta"):
        model = AutoModelForCausalLM.from_config(config)
    macs = sum(m.in_features * m.out_features for m in model.modules() if isinstance(m, torch.nn.Linear))
    return sum(p.numel() for p in model.parameters()), macs


def _sizes(config: PretrainedConfig) -> tuple[int, int]:
    return _meta_sizes(config.to_json_string(use_diff=False))


def analytical_decode_flops(config: PretrainedConfig, context: int) -> dict[str, int]:
    """FLOPs to decode one token after ``context`` tokens (a multiply-add counts 2).

    - ``matmul``: every projection, MLP and the LM head: about 2 x parameters, the same for
      every design at matched size;
    - ``mixing``: what each layer does with its state. Attention reads every cached token
      (``4 x heads x head_dim`` per token: scores and weighted values), so it grows with the
      context; a sliding window stops growing at the window; a short conv is ``2 x hidden x 3``
      plus two gates; gated DeltaNet decays, reads, corrects and queries its state (about
      ``7 x key_dim x value_dim`` per head) after a 4-tap conv. Norms, activations and softmax
      are left out.
    """
    mixing = 0
    heads, hd = config.num_attention_heads, head_dim_of(config)
    for kind in layer_types_of(config):
        if kind == "full_attention":
            mixing += 4 * heads * hd * context
        elif kind == "sliding_attention":
            mixing += 4 * heads * hd * min(context, config.sliding_window)
        elif kind == "conv":
            mixing += 2 * config.hidden_size * config.conv_L_cache + 2 * config.hidden_size
        elif kind == "linear_attention":
            v_heads, dk, dv, channels, kernel = deltanet_dims(config)
            mixing += 7 * v_heads * dk * dv + 2 * channels * kernel
        else:
            raise ValueError(f"no FLOP formula for layer type {kind!r}")
    matmul = 2 * _sizes(config)[1]
    return {"matmul": matmul, "mixing": mixing, "total": matmul + mixing}


def analytical_decode_bytes(config: PretrainedConfig, context: int, *, bytes_per_value: int = 4) -> dict[str, int]:
    """Bytes read from memory to decode one token: every weight once, plus the whole decode state.

    With tied embeddings the LM head reads the embedding matrix, so all parameters count; an
    untied input embedding is only looked up (one row) and is left out. Writes (one new KV row,
    the updated states) are small and left out. At batch size 1 this, divided by the memory
    bandwidth, bounds the decode speed (:func:`lfm_helpers.memory.decode_speed_bound`).
    """
    n = _sizes(config)[0]
    if not getattr(config, "tie_word_embeddings", False):
        n -= config.vocab_size * config.hidden_size
    weights = n * bytes_per_value
    state = sum(decode_state_bytes(config, context, bytes_per_value=bytes_per_value).values())
    return {"weights": weights, "state": state, "total": weights + state}


def analytical_table(configs: dict[str, PretrainedConfig], contexts: tuple[int, ...], *,
                     bytes_per_value: int = 4) -> pd.DataFrame:
    """The analytical model of each architecture at each context: decode state, FLOPs and bytes
    read per decoded token. Cheap (no weights), so it can run at contexts no laptop would profile."""
    rows = []
    for arch, config in configs.items():
        for context in contexts:
            state = decode_state_bytes(config, context, bytes_per_value=bytes_per_value)
            rows.append({"architecture": arch, "context": context, "state_bytes": sum(state.values()),
                         "decode_gflop": analytical_decode_flops(config, context)["total"] / 1e9,
                         "decode_mb_read": analytical_decode_bytes(config, context,
                                                                   bytes_per_value=bytes_per_value)["total"] / 1e6})
    return pd.DataFrame(rows)


# --------------------------------------------------------------------------- which kernels ran
def kernel_paths() -> dict[str, str]:
    """Which implementation transformers uses for each operator here, detected the way it does.

    transformers imports ``causal_conv1d`` (LFM2's conv, and the conv inside DeltaNet) and ``fla``
    (flash-linear-attention: gated DeltaNet) when they import, and otherwise falls back to
    reference PyTorch code: correct, but a Python loop over chunks (prefill) or a chain of small
    ops (decode) instead of one fused kernel. Attention uses PyTorch's SDPA in every case.
    """
    def importable(module: str) -> bool:
        try:
            importlib.import_module(module)
            return True
        except Exception:  # ImportError, or a CUDA-only build failing to load on a CPU machine
            return False

    conv = "causal-conv1d kernel" if importable("causal_conv1d") else "reference PyTorch (F.conv1d)"
    delta = ("flash-linear-attention kernels" if importable("fla")
             else "reference PyTorch (chunked loop for prefill, recurrent step for decode)")
    return {"short conv": conv, "gated DeltaNet": delta, "attention": "PyTorch SDPA",
            "device": "cpu", "torch": torch.__version__}


def cpu_name() -> str:
    """The CPU's model name where the OS says it (Linux ``/proc/cpuinfo``), else the platform's guess."""
    try:
        match = re.search(r"^model name\s*:\s*(.+)$", Path("/proc/cpuinfo").read_text(), re.M)
    except OSError:
        match = None
    return match.group(1).strip() if match else (platform.processor() or platform.machine())


# --------------------------------------------------------------------------- memory measurement
def trim_allocator() -> None:
    """Hand the allocator's free pages back to the OS (glibc only; elsewhere a no-op).

    Without this, RSS before a measurement includes memory freed by earlier ones but kept by the
    allocator, and the next measurement's increase would hide in it.
    """
    if sys.platform.startswith("linux"):
        try:
            ctypes.CDLL("libc.so.6").malloc_trim(0)
        except (OSError, AttributeError):  # not glibc (e.g. musl): nothing to trim
            pass


def release_free_memory() -> None:
    """Collect garbage (a freed model can sit in reference cycles), then :func:`trim_allocator`.

    A full collection takes a fraction of a second with transformers loaded, so the profile runs
    it once per model; tensors of one measurement are freed by reference counting anyway.
    """
    gc.collect()
    trim_allocator()


class PeakRSS:
    """Peak resident set size (RSS) of this process during a ``with`` block.

    RSS is the physical memory the process holds: weights, activations, caches, the allocator's
    reserve and the Python/torch runtime; not memory swapped out or merely reserved. On Linux the
    kernel's own high-water mark (``VmHWM``) is reset on entry through ``/proc/self/clear_refs``,
    so even a peak that lasts a millisecond is caught. Elsewhere a thread samples RSS every 5 ms
    with psutil, which can miss short peaks. ``method`` says which ran.
    """

    def __init__(self) -> None:
        self.baseline = self.peak = 0
        self.method = ""
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def __enter__(self) -> "PeakRSS":
        trim_allocator()
        process = psutil.Process()
        self.baseline = process.memory_info().rss
        try:
            with open("/proc/self/clear_refs", "w") as fh:
                fh.write("5")
            self.method = "VmHWM (kernel high-water mark)"
        except OSError:
            self.method = "psutil RSS sampled every 5 ms"
            self.peak = self.baseline

            def sample() -> None:
                while not self._stop.wait(0.005):
                    self.peak = max(self.peak, process.memory_info().rss)

            self._thread = threading.Thread(target=sample, daemon=True)
            self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        if self._thread is None:
            status = Path("/proc/self/status").read_text()
            self.peak = int(re.search(r"VmHWM:\s+(\d+) kB", status).group(1)) * 1024
        else:
            self._stop.set()
            self._thread.join()
            self.peak = max(self.peak, psutil.Process().memory_info().rss)


# --------------------------------------------------------------------------- the profile
def cache_argument(model: torch.nn.Module) -> str:
    """The name of the cache argument: ``cache`` in transformers >= 5.24, ``past_key_values`` before."""
    return "cache" if "cache" in inspect.signature(model.forward).parameters else "past_key_values"


def returned_cache(output: Any) -> Any:
    return output.cache if getattr(output, "cache", None) is not None else output.past_key_values


def _profile_one(model: torch.nn.Module, config: PretrainedConfig, context: int, budget: ProfileBudget,
                 generator: torch.Generator) -> dict[str, Any]:
    """Prefill ``context`` random tokens, then decode; time both, read the cache, track peak RSS."""
    cache_arg = cache_argument(model)
    prompt = torch.randint(0, config.vocab_size, (1, context), generator=generator)
    next_tokens = torch.randint(0, config.vocab_size, (1, budget.decode_tokens), generator=generator)
    with PeakRSS() as memory, torch.inference_mode():
        prefill_times = []
        for i in range(budget.prefill_warmup + budget.prefill_repeats):
            out = None  # free the previous prefill's cache before the next prefill is measured
            start = time.perf_counter()
            # logits_to_keep=1: only the last position's logits, as generation does; the full
            # [context x vocab] logits would dwarf everything else being measured.
            out = model(input_ids=prompt, use_cache=True, logits_to_keep=1)
            if i >= budget.prefill_warmup:
                prefill_times.append(time.perf_counter() - start)
        cache = returned_cache(out)
        measured = measured_cache_bytes(cache)
        decode_times = []
        for t in range(budget.decode_tokens):
            start = time.perf_counter()
            out = model(input_ids=next_tokens[:, t:t + 1], use_cache=True, **{cache_arg: cache})
            decode_times.append(time.perf_counter() - start)
            cache = returned_cache(out)
        del out, cache
    formula = decode_state_bytes(config, context)
    prefill_s = statistics.median(prefill_times)
    decode_s = statistics.median(decode_times[budget.decode_warmup:])
    flops = analytical_decode_flops(config, context)
    traffic = analytical_decode_bytes(config, context)
    return {
        "context": context,
        "prefill_s": prefill_s,
        "prefill_tok_s": context / prefill_s,
        "decode_ms": 1e3 * decode_s,
        "decode_tok_s": 1 / decode_s,
        "cache_bytes": sum(measured.values()),
        "kv_bytes": measured["kv"],
        "conv_bytes": measured["conv"],
        "recurrent_bytes": measured["recurrent"],
        "cache_bytes_formula": sum(formula.values()),
        "decode_gflop": flops["total"] / 1e9,
        "decode_mb_read": traffic["total"] / 1e6,
        "achieved_gflop_s": flops["total"] / 1e9 / decode_s,
        "achieved_gb_s": traffic["total"] / GB / decode_s,
        "peak_rss_mb": memory.peak / 1e6,
        "rss_increase_mb": (memory.peak - memory.baseline) / 1e6,
        "memory_method": memory.method,
    }


def resolve_threads(budget: ProfileBudget) -> int:
    """The torch thread count a profile runs with: the budget's, or torch's default (one per physical core)."""
    return budget.threads or torch.get_num_threads()


def profile_architectures(budget: ProfileBudget, *, architectures: tuple[str, ...] | None = None,
                          progress: bool = True, seed: int = 0) -> pd.DataFrame:
    """Profile each architecture of :func:`matched_configs` at each of ``budget.contexts`` on the CPU.

    Returns a tidy table, one row per (architecture, context), with prefill and decode latency,
    the decode cache measured from the model's cache object next to :func:`decode_state_bytes`,
    the analytical FLOPs and bytes per decoded token with the rates they imply, and peak RSS.
    Torch's thread count is set to :func:`resolve_threads` for the run (and restored after) and
    recorded in the ``threads`` column. Models are built one at a time (seeded random weights,
    float32) and freed before the next, so each one's memory is measured alone.
    """
    from tqdm.auto import tqdm

    configs = matched_configs(budget, architectures)
    threads = resolve_threads(budget)
    previous = torch.get_num_threads()
    torch.set_num_threads(threads)
    rows = []
    bar = tqdm(total=len(configs) * len(budget.contexts), desc="profile", disable=not progress)
    try:
        for arch, config in configs.items():
            release_free_memory()
            torch.manual_seed(seed)
            model = AutoModelForCausalLM.from_config(config).eval()
            params = sum(p.numel() for p in model.parameters())
            generator = torch.Generator().manual_seed(seed)
            with torch.inference_mode():  # warm-up: first calls allocate buffers and pick kernels
                warm = torch.randint(0, config.vocab_size, (1, 32), generator=generator)
                model(input_ids=warm, use_cache=True, logits_to_keep=1)
            for context in budget.contexts:
                bar.set_postfix_str(f"{arch} @ {context} tokens")
                row = {"architecture": arch, "params": params, "threads": threads}
                row.update(_profile_one(model, config, context, budget, generator))
                rows.append(row)
                bar.update()
            del model
    finally:
        bar.close()
        torch.set_num_threads(previous)
    return pd.DataFrame(rows)


@dataclass(frozen=True)
class ProfileRun:
    """A profile table and where it is stored (``runs/<preset>/profile/<size>/profile.csv``)."""

    table: pd.DataFrame
    path: Path
    reused: bool
    metrics: dict[str, Any]


def run_profile(preset: Preset | str | None = None, *, size: str | None = None,
                contexts: tuple[int, ...] | None = None, architectures: tuple[str, ...] | None = None,
                force: bool = False, root: Path | None = None, log: Callable[[str], None] = print,
                progress: bool = True) -> ProfileRun:
    """Profile once and keep the table as an artifact; later calls with the same budget reuse it.

    ``size`` picks a budget from :data:`lfm_helpers.presets.PROFILE_SIZES` (``small``,
    ``realistic``) instead of the preset's own; ``contexts`` replaces its context lengths.
    The artifact's config covers the budget, the thread count, the torch and transformers
    versions and the kernel paths, so a change to any of them re-profiles. ``force`` re-profiles
    anyway: timings are this machine's, and a busy machine gives slower ones.
    """
    from .artifacts import artifact_dir, ensure_artifact

    preset = preset if isinstance(preset, Preset) else load_preset(preset, check_device=False)
    if size is not None and size not in PROFILE_SIZES:
        raise ValueError(f"unknown profile size {size!r}; choose from {', '.join(PROFILE_SIZES)}")
    budget = PROFILE_SIZES[size] if size else preset.profile
    if contexts:
        budget = dataclasses.replace(budget, contexts=tuple(sorted(contexts)))
    archs = tuple(architectures or ARCHITECTURES)
    unknown = [a for a in archs if a not in ARCHITECTURES]
    if unknown:
        raise ValueError(f"unknown architectures {unknown}; choose from {', '.join(ARCHITECTURES)}")
    import transformers

    config = {
        "budget": dataclasses.asdict(budget),
        "architectures": list(archs),
        "threads": resolve_threads(budget),
        "kernels": kernel_paths(),
        "transformers": transformers.__version__,
    }

    def build(out: Path) -> dict[str, Any]:
        table = profile_architectures(budget, architectures=archs, progress=progress, seed=preset.seed)
        table.to_csv(out / "profile.csv", index=False)
        return {"threads": config["threads"], "kernels": config["kernels"], "rows": len(table),
                "cpu": cpu_name(), "cpu_count": os.cpu_count(),
                "memory_method": table["memory_method"].iloc[0],
                "cache_matches_formula": bool((table["cache_bytes"] == table["cache_bytes_formula"]).all())}

    art = ensure_artifact(artifact_dir(preset.name, "profile", root) / budget.name, build, stage="profile",
                          preset=preset.name, config=config, force=force, log=log)
    return ProfileRun(pd.read_csv(art.path / "profile.csv"), art.path, art.reused, art.metrics)


def stored_profile(preset: Preset | str | None = None, size: str = "realistic", *,
                   root: Path | None = None) -> pd.DataFrame | None:
    """A profile table stored earlier under ``runs/<preset>/profile/<size>/`` (for example by
    ``python -m lfm_helpers profile --size realistic``), or ``None`` if there is no complete one."""
    from .artifacts import artifact_dir, check_artifact

    name = preset.name if isinstance(preset, Preset) else load_preset(preset, check_device=False).name
    path = artifact_dir(name, "profile", root) / size
    ok, _ = check_artifact(path)
    return pd.read_csv(path / "profile.csv") if ok else None


def format_profile_table(table: pd.DataFrame) -> str:
    """The columns a reader compares, rounded: latency, tokens/s, cache (MB, measured) and peak RSS."""
    view = table[["architecture", "context", "prefill_s", "decode_ms", "decode_tok_s", "cache_bytes",
                  "peak_rss_mb"]].copy()
    view["cache_mb"] = view.pop("cache_bytes") / 1e6
    view["peak_rss_mb"] = view.pop("peak_rss_mb")
    return view.to_string(index=False, float_format=lambda x: f"{x:,.3f}" if abs(x) < 10 else f"{x:,.1f}")


def relative_to_lfm2(table: pd.DataFrame, context: int | None = None) -> pd.DataFrame:
    """Each architecture against LFM2 at one context (default: the longest), as ratios.

    The analytical columns (state, FLOPs and bytes per decoded token) are what the design
    implies; the measured columns (prefill and decode time, peak RSS increase) are what this
    machine and these kernels delivered. Where the two disagree, the implementation, not the
    architecture, is speaking.
    """
    context = context or int(table["context"].max())
    at = table[table["context"] == context].set_index("architecture")
    ratios = pd.DataFrame({
        "state": at["cache_bytes_formula"] / at.loc["lfm2", "cache_bytes_formula"],
        "flops_per_token": at["decode_gflop"] / at.loc["lfm2", "decode_gflop"],
        "bytes_per_token": at["decode_mb_read"] / at.loc["lfm2", "decode_mb_read"],
        "prefill_time": at["prefill_s"] / at.loc["lfm2", "prefill_s"],
        "decode_time": at["decode_ms"] / at.loc["lfm2", "decode_ms"],
        "rss_increase": at["rss_increase_mb"] / at.loc["lfm2", "rss_increase_mb"],
    })
    ratios.columns = pd.MultiIndex.from_tuples(
        [("analytical", c) for c in ratios.columns[:3]] + [("measured", c) for c in ratios.columns[3:]])
    return ratios.round(2)


# --------------------------------------------------------------------------- real scale
def cache_at_scale(names: tuple[str, ...] = ("LFM2-350M", "Gemma-3-270M", "Qwen3-0.6B"),
                   contexts: tuple[int, ...] = (4096, 32768), *, precision: str = "bf16",
                   budget_gb: float = 1.0) -> pd.DataFrame:
    """Weights and decode state of shipped public configs at each context, against a memory budget.

    Parameters are counted exactly on the meta device; weights are priced at ``precision`` and
    caches in bf16 (2 bytes a value), one sequence. Columns in GB (decimal).
    """
    rows = []
    for name in names:
        config = load_public_config(name)
        n = count_parameters_meta(config)
        weights = weight_bytes(n, precision) / GB
        for context in contexts:
            state = decode_state_bytes(config, context, bytes_per_value=2)
            total = weights + sum(state.values()) / GB
            rows.append({"model": name, "params": n, "layers": layer_pattern(config), "context": context,
                         "precision": precision, "weights_gb": weights, "kv_gb": state["kv"] / GB, "conv_gb": state["conv"] / GB,
                         "recurrent_gb": state["recurrent"] / GB, "total_gb": total, "fits": total <= budget_gb})
    return pd.DataFrame(rows)


def profile_summary(table: pd.DataFrame) -> dict[str, Any]:
    """Key results of a profile, for ``report_metrics``: cache bytes at the longest context per
    architecture, whether every measured cache equals the formula, and the decode latency ranking."""
    longest = table[table["context"] == table["context"].max()].set_index("architecture")
    return {
        "longest_context": int(longest["context"].iloc[0]),
        "cache_bytes_at_longest": {a: int(v) for a, v in longest["cache_bytes"].items()},
        "cache_matches_formula": bool((table["cache_bytes"] == table["cache_bytes_formula"]).all()),
        "decode_ms_at_longest": {a: round(float(v), 3) for a, v in longest["decode_ms"].items()},
        "threads": int(table["threads"].iloc[0]),
    }
