"""Embedding budgets: where a small model's parameters go, and what its vocabulary costs.

A 270M-parameter model with a 262,144-token vocabulary (Gemma 3 270M) spends about 63% of its
parameters on the embedding matrix, because the vocabulary was inherited from much larger
teachers; LFM2 keeps 65,536 tokens so that more of a small budget does the reasoning. This module
makes that argument with exact numbers:

- :func:`parameter_budget` splits a transformers config's parameters into the embedding, the
  output head, attention, LFM2's short convolutions, gated DeltaNet (linear attention), the MLPs
  and the norms. The model is built on PyTorch's ``meta`` device (shapes, no storage), every
  parameter is classified by its name with rules written per architecture, and the parts are
  checked against :func:`lfm_helpers.memory.count_parameters_meta`. An architecture without
  rules, or a parameter name the rules do not know (transformers renamed something), is an
  error, never a silently wrong number;
- :func:`shrink_vocabulary` prices a smaller (or larger) vocabulary in layers: how many more of
  the model's average layer fit in the same budget;
- :func:`vocabulary_sweep` and :func:`vocabulary_costs` train byte-level BPE tokenizers at
  several sizes and set what each buys (fewer tokens per document) against what it costs
  (embedding parameters, and output-head work per decoded token) inside a given model;
- :func:`design_model` (and its widget, :func:`designer_panel`) sizes an LFM2-style model from
  a few knobs and says whether it fits a device budget.

Simplified: a decoded token's cost is counted as one multiply-add per weight of the layers and
of the output head (the input embedding is a row look-up); attention over the context,
activations and the runtime's own memory are left out, as in :mod:`lfm_helpers.memory`.
"""

from __future__ import annotations

import json
import math
import re
import time
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd
import torch
from transformers import AutoConfig, AutoModelForCausalLM, Lfm2Config, PretrainedConfig

from .memory import GB, PRECISION_BITS, count_parameters_meta, decode_state_bytes, load_public_config, weight_bytes
from .tokenizer import train_tokenizer

#: The parts of a parameter budget, in the order tables show them.
PARTS: tuple[str, ...] = ("embedding", "output_head", "attention", "convolution", "linear_attention", "mlp",
                          "norms")

#: The public configs shipped in ``data/configs/`` that notebook 02 compares, smallest first per family.
SHIPPED_MODELS: tuple[str, ...] = ("Gemma-3-270M", "Gemma-3-1B", "Qwen3-0.6B", "SmolLM2-135M", "SmolLM2-360M",
                                   "LFM2-350M", "LFM2-700M", "LFM2-1.2B", "LFM2-2.6B")

#: Vocabulary sizes the tokenizer sweep trains by default (a notebook adds its preset's own).
SWEEP_VOCAB_SIZES: tuple[int, ...] = (512, 1024, 2048, 4096, 8192)

#: How much of the corpus the sweep trains each tokenizer on by default: the leading documents up
#: to this many characters (about a fifth of the shipped corpus; each tokenizer trains in a second or two).
SWEEP_TRAIN_CHARS = 2_000_000

# Parameter names as transformers 5 spells them (``model.layers.<i>.<rest>``), one pattern per part.
_LAYER = r"model\.layers\.\d+\."
_NORMS = (rf"model\.norm\.weight|{_LAYER}(input_layernorm|post_attention_layernorm|pre_feedforward_layernorm"
          rf"|post_feedforward_layernorm|self_attn\.[qk]_norm|linear_attn\.norm)\.weight")
_TRANSFORMER_RULES: tuple[tuple[str, str], ...] = (
    ("embedding", r"model\.embed_tokens\.weight"),
    ("output_head", r"lm_head\.weight"),
    ("norms", _NORMS),
    ("attention", rf"{_LAYER}self_attn\.[qkvo]_proj\.(weight|bias)"),
    ("mlp", rf"{_LAYER}mlp\.(gate_proj|up_proj|down_proj)\.weight"),
)
# Gated DeltaNet layers (Qwen3.5, Qwen3-Next): projections, the 4-tap causal conv over q/k/v, the
# decay parameters. Its gated output norm is counted with the norms.
_DELTANET_RULE = ("linear_attention", rf"{_LAYER}linear_attn\.(A_log|dt_bias|conv1d\.weight|in_proj_\w+\.weight"
                                      rf"|out_proj\.weight)")
# Qwen3-Next's mixture of experts: routed experts, the router, the shared expert and its gate.
_MOE_RULE = ("mlp", rf"{_LAYER}mlp\.(experts\.(gate_up_proj|down_proj)|gate\.weight"
                    rf"|shared_expert\.(gate_proj|up_proj|down_proj)\.weight|shared_expert_gate\.weight)")

#: Per ``model_type``: ``(part, regular expression)`` rules, matched in order against full parameter names.
ACCOUNTING_RULES: dict[str, tuple[tuple[str, str], ...]] = {
    "lfm2": (
        ("embedding", r"model\.embed_tokens\.weight"),
        ("output_head", r"lm_head\.weight"),
        # LFM2 calls its final norm ``embedding_norm``; q/k_layernorm are its QK-norms.
        ("norms", rf"model\.embedding_norm\.weight|{_LAYER}(operator_norm|ffn_norm|self_attn\.[qk]_layernorm)\.weight"),
        ("attention", rf"{_LAYER}self_attn\.(q_proj|k_proj|v_proj|out_proj)\.weight"),
        ("convolution", rf"{_LAYER}conv\.(in_proj|conv|out_proj)\.(weight|bias)"),
        ("mlp", rf"{_LAYER}feed_forward\.w[123]\.weight"),
    ),
    "llama": _TRANSFORMER_RULES,
    "mistral": _TRANSFORMER_RULES,
    "qwen2": _TRANSFORMER_RULES,
    "qwen3": _TRANSFORMER_RULES,
    "gemma3_text": _TRANSFORMER_RULES,
    "qwen3_5_text": _TRANSFORMER_RULES + (_DELTANET_RULE,),
    "qwen3_next": _TRANSFORMER_RULES + (_DELTANET_RULE, _MOE_RULE),
}

ConfigLike = PretrainedConfig | Mapping[str, Any] | str | Path


def _unknown_architecture(model_type: str | None) -> ValueError:
    hint = " (a multimodal config: pass its text_config)" if model_type in ("gemma3", "qwen3_5", "qwen3_5_moe") else ""
    return ValueError(f"no parameter accounting for model_type {model_type!r}{hint}; "
                      f"known: {', '.join(sorted(ACCOUNTING_RULES))}")


def as_config(config: ConfigLike) -> PretrainedConfig:
    """A transformers config from a config object, a ``config.json``-style dict, or a path to one.

    The dict (or file) must name its ``model_type``; an architecture this module has no rules for
    is rejected here, before transformers is asked to build anything.
    """
    if isinstance(config, PretrainedConfig):
        if config.model_type not in ACCOUNTING_RULES:
            raise _unknown_architecture(config.model_type)
        return config
    if isinstance(config, (str, Path)):
        path = Path(config)
        if not path.is_file():
            raise FileNotFoundError(f"{path} is not a config.json file (a shipped config by name: "
                                    f"lfm_helpers.memory.load_public_config)")
        config = json.loads(path.read_text())
    if not isinstance(config, Mapping):
        raise TypeError(f"expected a transformers config, a dict or a path, got {type(config).__name__}")
    fields = dict(config)
    model_type = fields.pop("model_type", None)
    if model_type is None:
        raise ValueError("the config has no model_type, so its architecture is unknown")
    if model_type not in ACCOUNTING_RULES:
        raise _unknown_architecture(model_type)
    return AutoConfig.for_model(model_type, **fields)


def _default_name(config: ConfigLike, built: PretrainedConfig) -> str:
    if isinstance(config, (str, Path)):
        path = Path(config)
        return path.parent.name if path.stem == "config" else path.stem
    architectures = getattr(built, "architectures", None)
    return architectures[0] if architectures else built.model_type


@dataclass(frozen=True)
class ParameterBudget:
    """Where one model's parameters go. ``parts`` follows :data:`PARTS`; tied weights count once.

    With tied embeddings the output head *is* the embedding matrix, so ``parts["output_head"]`` is
    0 and ``tied`` is true; untied, the head is a second ``vocab x hidden`` matrix.
    """

    name: str
    model_type: str
    vocab_size: int
    hidden_size: int
    num_layers: int
    tied: bool
    parts: dict[str, int]
    layer_params: tuple[int, ...]  # parameters of each decoder layer, in order

    @property
    def total(self) -> int:
        return sum(self.parts.values())

    @property
    def vocab_params(self) -> int:
        """Parameters whose number grows with the vocabulary: the embedding and an untied head."""
        return self.parts["embedding"] + self.parts["output_head"]

    @property
    def embedding_share(self) -> float:
        """:attr:`vocab_params` as a fraction of the total (what "spends 63% on the embedding" means)."""
        return self.vocab_params / self.total

    @property
    def mean_layer_params(self) -> float:
        """The average decoder layer; in a hybrid, the average of its mix of layer types."""
        return sum(self.layer_params) / len(self.layer_params)

    def row(self) -> dict[str, Any]:
        """One table row: shape, the parts, the total and the embedding share in percent."""
        return {"model": self.name, "vocab": self.vocab_size, "hidden": self.hidden_size, "layers": self.num_layers,
                "tied": self.tied, **self.parts, "total": self.total,
                "embedding_pct": round(100 * self.embedding_share, 1)}


def parameter_budget(config: ConfigLike, name: str | None = None) -> ParameterBudget:
    """Split a model's parameters into :data:`PARTS`, exactly, without allocating any weights.

    ``config`` is a transformers config, a ``config.json``-style dict (with ``model_type``) or a
    path to a ``config.json``. The model is instantiated on the ``meta`` device and each parameter
    is classified by its name with the rules of :data:`ACCOUNTING_RULES`; the parts are then
    checked against the model's total, so the accounting cannot drift from the model.

    Raises ``ValueError`` for an architecture without rules, and ``RuntimeError`` for a parameter
    no rule matches (the rules must be updated, not guessed around).
    """
    built = as_config(config)
    rules = [(part, re.compile(pattern)) for part, pattern in ACCOUNTING_RULES[built.model_type]]
    with torch.device("meta"):
        model = AutoModelForCausalLM.from_config(built)
    parts = dict.fromkeys(PARTS, 0)
    per_layer = [0] * built.num_hidden_layers
    for param_name, param in model.named_parameters():  # tied parameters appear once
        part = next((part for part, rule in rules if rule.fullmatch(param_name)), None)
        if part is None:
            raise RuntimeError(f"{built.model_type}: no accounting rule matches parameter {param_name!r}; "
                               f"update ACCOUNTING_RULES for this transformers version")
        parts[part] += param.numel()
        layer = re.match(r"model\.layers\.(\d+)\.", param_name)
        if layer:
            per_layer[int(layer.group(1))] += param.numel()
    total = count_parameters_meta(built)
    if sum(parts.values()) != total:  # not ``assert``: this check must survive ``python -O``
        raise AssertionError(f"parts add up to {sum(parts.values()):,}, the model has {total:,} parameters")
    head, embedding = model.get_output_embeddings(), model.get_input_embeddings()
    return ParameterBudget(
        name=name or _default_name(config, built),
        model_type=built.model_type,
        vocab_size=built.vocab_size,
        hidden_size=built.hidden_size,
        num_layers=built.num_hidden_layers,
        tied=head is not None and head.weight is embedding.weight,
        parts=parts,
        layer_params=tuple(per_layer),
    )


def shipped_budgets(names: Sequence[str] = SHIPPED_MODELS) -> dict[str, ParameterBudget]:
    """:func:`parameter_budget` of shipped configs (``data/configs/<name>.json``), by name."""
    return {name: parameter_budget(load_public_config(name), name=name) for name in names}


def budget_table(budgets: Iterable[ParameterBudget]) -> pd.DataFrame:
    """One row per budget (:meth:`ParameterBudget.row`): shape, parts, total, embedding share."""
    return pd.DataFrame([b.row() for b in budgets])


# --------------------------------------------------------------------------- vocabulary in layers
@dataclass(frozen=True)
class VocabularyTrade:
    """A model's budget with a different vocabulary: what is freed, and how many layers it buys."""

    model: str
    vocab_size: int
    new_vocab_size: int
    freed_params: int  # negative when the vocabulary grows
    mean_layer_params: float
    extra_layers: int  # negative: layers that must go to stay within the budget
    layers: int
    total_after: int
    embedding_share_after: float


def shrink_vocabulary(budget: ParameterBudget, new_vocab_size: int) -> VocabularyTrade:
    """What the same parameter budget buys with ``new_vocab_size`` tokens instead of the model's own.

    Each token costs ``hidden`` parameters in the embedding (twice with an untied head). The freed
    parameters are spent on whole copies of the model's average layer, rounded down, so the new
    model is never larger than the old one; a larger vocabulary gives a negative count, the layers
    that must go (an error if not even one layer would be left). For a model whose layers are all
    alike (Gemma 3, Qwen3, SmolLM2) this is exact; for a hybrid it adds layers of the average mix.
    """
    if new_vocab_size < 1:
        raise ValueError(f"new_vocab_size must be positive, got {new_vocab_size}")
    matrices = 1 if budget.tied else 2
    freed = (budget.vocab_size - new_vocab_size) * budget.hidden_size * matrices
    extra = math.floor(freed / budget.mean_layer_params)
    if budget.num_layers + extra < 1:
        raise ValueError(f"{budget.name}: a {new_vocab_size:,}-token vocabulary leaves no room for a single layer "
                         f"in {budget.total:,} parameters")
    total_after = round(budget.total - freed + extra * budget.mean_layer_params)
    return VocabularyTrade(
        model=budget.name,
        vocab_size=budget.vocab_size,
        new_vocab_size=new_vocab_size,
        freed_params=freed,
        mean_layer_params=budget.mean_layer_params,
        extra_layers=extra,
        layers=budget.num_layers + extra,
        total_after=total_after,
        embedding_share_after=new_vocab_size * budget.hidden_size * matrices / total_after,
    )


def vocabulary_trades(budgets: Iterable[ParameterBudget], new_vocab_sizes: Sequence[int]) -> pd.DataFrame:
    """:func:`shrink_vocabulary` of every budget at every vocabulary size, one row each (the
    model's own size is skipped)."""
    rows = []
    for budget in budgets:
        for size in new_vocab_sizes:
            if size != budget.vocab_size:
                trade = shrink_vocabulary(budget, size)
                rows.append({"model": trade.model, "vocab": trade.vocab_size, "new_vocab": size,
                             "freed_params": trade.freed_params,
                             "freed_pct": round(100 * trade.freed_params / budget.total, 1),
                             "layers": budget.num_layers, "extra_layers": trade.extra_layers,
                             "layers_after": trade.layers,
                             "embedding_pct_after": round(100 * trade.embedding_share_after, 1)})
    return pd.DataFrame(rows)


# --------------------------------------------------------------------------- tokenizer sweep
def leading_texts(texts: Iterable[str], max_chars: int) -> list[str]:
    """The first documents of ``texts`` whose lengths add up to at most ``max_chars`` (at least one)."""
    chosen, size = [], 0
    for text in texts:
        if chosen and size + len(text) > max_chars:
            break
        chosen.append(text)
        size += len(text)
    return chosen


def vocabulary_sweep(train_texts: Sequence[str], val_texts: Sequence[str], vocab_sizes: Iterable[int], *,
                     max_train_chars: int | None = SWEEP_TRAIN_CHARS, min_frequency: int = 2) -> pd.DataFrame:
    """Train one byte-level BPE tokenizer per vocabulary size and measure it on held-out documents.

    Each is trained on the leading documents of ``train_texts`` up to ``max_train_chars``
    characters (``None``: all of them), with :func:`lfm_helpers.tokenizer.train_tokenizer`.
    ``vocab_size`` is what it really got: a corpus runs out of pairs seen ``min_frequency`` times,
    so a large request can stop short. Compression is measured on ``val_texts``:
    ``bytes_per_token`` (UTF-8 bytes over tokens: higher packs more text into each token) and
    ``tokens_per_doc`` (the mean tokens a held-out document costs).
    """
    val_texts = list(val_texts)
    if not val_texts:
        raise ValueError("vocabulary_sweep needs held-out texts to measure compression on")
    corpus = list(train_texts) if max_train_chars is None else leading_texts(train_texts, max_train_chars)
    val_bytes = sum(len(text.encode("utf-8")) for text in val_texts)
    rows = []
    for requested in sorted(set(vocab_sizes)):
        start = time.perf_counter()
        tok = train_tokenizer(corpus, requested, min_frequency=min_frequency)
        train_s = time.perf_counter() - start
        n_tokens = sum(len(ids) for ids in tok(val_texts, add_special_tokens=False)["input_ids"])
        rows.append({"requested": requested, "vocab_size": len(tok), "bytes_per_token": val_bytes / n_tokens,
                     "tokens_per_doc": n_tokens / len(val_texts), "train_s": round(train_s, 2)})
    return pd.DataFrame(rows)


def decode_macs_per_token(budget: ParameterBudget, vocab_size: int | None = None) -> int:
    """Multiply-adds to decode one token: every layer weight once, plus the output head's
    ``vocab x hidden`` (the input embedding is only a row look-up). ``vocab_size`` swaps in a
    different vocabulary (default: the model's own)."""
    vocab = budget.vocab_size if vocab_size is None else vocab_size
    return budget.total - budget.vocab_params + vocab * budget.hidden_size


def break_even_token_ratio(budget: ParameterBudget, vocab_size: int) -> float:
    """How many tokens a document may take with a ``vocab_size``-token vocabulary, relative to
    the model's own, before decoding it costs more work.

    A smaller vocabulary makes every token cheaper (a smaller output head) but splits text into
    more tokens. Gemma 3 270M with 65,536 tokens instead of 262,144: its tokens get about 1.9 times
    cheaper, so the smaller vocabulary wins unless it needs about 1.9 times as many tokens.
    """
    if vocab_size < 1:
        raise ValueError(f"vocab_size must be positive, got {vocab_size}")
    return decode_macs_per_token(budget) / decode_macs_per_token(budget, vocab_size)


def vocabulary_costs(sweep: pd.DataFrame, budgets: Mapping[str, ParameterBudget]) -> pd.DataFrame:
    """Put each tokenizer of a :func:`vocabulary_sweep` inside each model of ``budgets``.

    The model keeps its layers (``total - vocab_params``) and takes the tokenizer's vocabulary:
    ``embedding_params = vocab x hidden`` (twice untied). Per decoded token it multiplies through
    every layer weight and the whole output head, ``macs_per_token = layers + vocab x hidden``;
    per held-out document that is ``macs_per_doc = tokens_per_doc x macs_per_token``.
    ``relative_cost`` divides by the cheapest vocabulary for that model: where it bottoms out,
    a larger vocabulary stops paying for itself in decode work, whatever it costs in memory.
    Requests that reached the same real vocabulary (a saturated corpus) appear once.
    """
    frames = []
    measured = sweep.drop_duplicates("vocab_size")[["vocab_size", "bytes_per_token", "tokens_per_doc"]]
    for label, budget in budgets.items():
        body = budget.total - budget.vocab_params
        matrices = 1 if budget.tied else 2
        frame = measured.copy()
        frame.insert(0, "model", label)
        frame["hidden"] = budget.hidden_size
        frame["embedding_params"] = frame["vocab_size"] * budget.hidden_size * matrices
        frame["total_params"] = body + frame["embedding_params"]
        frame["embedding_pct"] = 100 * frame["embedding_params"] / frame["total_params"]
        frame["macs_per_token"] = [decode_macs_per_token(budget, int(v)) for v in frame["vocab_size"]]
        frame["macs_per_doc"] = frame["tokens_per_doc"] * frame["macs_per_token"]
        frame["relative_cost"] = frame["macs_per_doc"] / frame["macs_per_doc"].min()
        frames.append(frame)
    return pd.concat(frames, ignore_index=True)


def cheapest_vocabulary(costs: pd.DataFrame) -> dict[str, int]:
    """For each model of :func:`vocabulary_costs`, the vocabulary size with the least decode work per document."""
    return {model: int(rows.loc[rows["macs_per_doc"].idxmin(), "vocab_size"])
            for model, rows in costs.groupby("model", sort=False)}


# --------------------------------------------------------------------------- the designer
#: Weight precisions the designer always reports (the chosen one decides whether it fits).
DESIGN_PRECISIONS: tuple[str, ...] = ("bf16", "int8", "int4")


def hybrid_layer_types(num_layers: int, attention_share: float) -> list[str]:
    """An LFM2-style layout: ``round(attention_share x num_layers)`` GQA layers spread evenly among
    short-convolution layers (positions do not change parameters or cache size, only counts do)."""
    if num_layers < 1:
        raise ValueError(f"num_layers must be at least 1, got {num_layers}")
    if not 0.0 <= attention_share <= 1.0:
        raise ValueError(f"attention_share must be between 0 and 1, got {attention_share}")
    n_attention = round(attention_share * num_layers)
    positions = {(i + 1) * num_layers // n_attention - 1 for i in range(n_attention)} if n_attention else set()
    return ["full_attention" if i in positions else "conv" for i in range(num_layers)]


@dataclass(frozen=True)
class Design:
    """An LFM2-style model sized by :func:`design_model`, and what it needs on a device."""

    vocab_size: int
    hidden_size: int
    num_layers: int
    attention_layers: int
    num_heads: int
    num_kv_heads: int
    ffn_size: int
    tied: bool
    precision: str
    context: int
    budget_gb: float
    params: int
    embedding_share: float
    weights_gb: dict[str, float]  # at each of DESIGN_PRECISIONS and the chosen precision
    cache_gb: float  # KV cache + conv state for one sequence at ``context``, bf16

    @property
    def total_gb(self) -> float:
        return self.weights_gb[self.precision] + self.cache_gb

    @property
    def fits(self) -> bool:
        return self.total_gb <= self.budget_gb

    def summary(self) -> str:
        """The design as plain text (what the widget shows, and what a notebook prints)."""
        weights = ", ".join(f"{p} {self.weights_gb[p]:.3f} GB" for p in DESIGN_PRECISIONS)
        verdict = "fits" if self.fits else "does NOT fit"
        return "\n".join([
            f"{self.num_layers} layers ({self.attention_layers} GQA + {self.num_layers - self.attention_layers} short conv), "
            f"hidden {self.hidden_size}, FFN {self.ffn_size}, {self.num_heads} heads / {self.num_kv_heads} KV heads, "
            f"vocabulary {self.vocab_size:,} ({'tied' if self.tied else 'untied'})",
            f"parameters        {self.params:,}  (embedding share {100 * self.embedding_share:.1f}%)",
            f"weights           {weights}",
            f"decode cache      {self.cache_gb:.3f} GB at {self.context:,} tokens (bf16)",
            f"at {self.precision}: {self.total_gb:.3f} GB -> {verdict} in {self.budget_gb:g} GB",
        ])


def design_model(vocab_size: int = 65_536, hidden_size: int = 1024, num_layers: int = 16,
                 attention_share: float = 0.375, ffn_size: int = 4608, tied: bool = True,
                 precision: str = "bf16", context: int = 4096, *, head_dim: int = 64, max_kv_heads: int = 8,
                 budget_gb: float = 1.0) -> Design:
    """Size an LFM2-style hybrid from a few knobs; the defaults are LFM2-350M.

    The model is a real ``Lfm2Config`` (FFN size used as given, heads of ``head_dim``, as many KV
    heads as divide the query heads up to ``max_kv_heads``), counted exactly with
    :func:`parameter_budget`. Weights are priced at bf16, int8 and int4; the decode cache (KV of
    the attention layers plus the constant conv state, bf16) at ``context`` tokens; the design
    fits when weights at ``precision`` plus that cache stay within ``budget_gb``.
    """
    if hidden_size % head_dim:
        raise ValueError(f"hidden_size {hidden_size} is not a multiple of head_dim {head_dim}")
    if precision not in PRECISION_BITS:
        raise ValueError(f"unknown precision {precision!r}; choose from {', '.join(PRECISION_BITS)}")
    if context < 1:
        raise ValueError(f"context must be at least 1 token, got {context}")
    heads = hidden_size // head_dim
    kv_heads = max(d for d in range(1, min(heads, max_kv_heads) + 1) if heads % d == 0)
    layer_types = hybrid_layer_types(num_layers, attention_share)
    config = Lfm2Config(vocab_size=vocab_size, hidden_size=hidden_size, intermediate_size=ffn_size,
                        num_hidden_layers=num_layers, num_attention_heads=heads, num_key_value_heads=kv_heads,
                        layer_types=layer_types, block_auto_adjust_ff_dim=False, tie_word_embeddings=tied)
    budget = parameter_budget(config, name="design")
    state = decode_state_bytes(config, context, bytes_per_value=2)
    return Design(
        vocab_size=vocab_size, hidden_size=hidden_size, num_layers=num_layers,
        attention_layers=layer_types.count("full_attention"), num_heads=heads, num_kv_heads=kv_heads,
        ffn_size=ffn_size, tied=tied, precision=precision, context=context, budget_gb=budget_gb,
        params=budget.total, embedding_share=budget.embedding_share,
        weights_gb={p: weight_bytes(budget.total, p) / GB for p in dict.fromkeys((*DESIGN_PRECISIONS, precision))},
        cache_gb=sum(state.values()) / GB,
    )


def _powers_of_two(low: int, high: int, *extra: int) -> list[int]:
    return sorted({2**k for k in range(low.bit_length() - 1, high.bit_length())} | set(extra))


def designer_panel(**defaults: Any):
    """An ipywidgets panel over :func:`design_model`: sliders for vocabulary, hidden size, layers,
    attention share, FFN size, tied embeddings, precision and context, and the design's summary,
    redrawn on every change. ``defaults`` override :func:`design_model`'s (LFM2-350M).

    It needs a live kernel to react; the executed book shows :func:`design_model`'s printed
    output instead. A combination the model cannot have is shown as the error it raises.
    """
    import ipywidgets as widgets

    start = {"vocab_size": 65_536, "hidden_size": 1024, "num_layers": 16, "attention_share": 0.375,
             "ffn_size": 4608, "tied": True, "precision": "bf16", "context": 4096, **defaults}
    style = {"description_width": "110px"}
    layout = widgets.Layout(width="460px")
    controls = {
        "vocab_size": widgets.SelectionSlider(options=_powers_of_two(1024, 262_144, start["vocab_size"]),
                                              value=start["vocab_size"], description="vocabulary"),
        "hidden_size": widgets.IntSlider(value=start["hidden_size"], min=128, max=4096, step=64, description="hidden size"),
        "num_layers": widgets.IntSlider(value=start["num_layers"], min=1, max=64, description="layers"),
        "attention_share": widgets.FloatSlider(value=start["attention_share"], min=0.0, max=1.0, step=1 / 32,
                                               readout_format=".3f", description="attention share"),
        "ffn_size": widgets.IntSlider(value=start["ffn_size"], min=256, max=16384, step=256, description="FFN size"),
        "tied": widgets.Checkbox(value=start["tied"], description="tied embeddings"),
        "precision": widgets.ToggleButtons(options=list(DESIGN_PRECISIONS), value=start["precision"],
                                           description="precision"),
        "context": widgets.SelectionSlider(options=_powers_of_two(512, 131_072, start["context"]),
                                           value=start["context"], description="context"),
    }
    fixed = {key: value for key, value in start.items() if key not in controls}  # e.g. budget_gb
    for control in controls.values():
        control.style, control.layout = style, layout
    output = widgets.HTML()

    def redraw(_change: object = None) -> None:
        try:
            text = design_model(**fixed, **{key: control.value for key, control in controls.items()}).summary()
        except ValueError as exc:
            text = f"not a valid model: {exc}"
        output.value = f"<pre>{text}</pre>"

    for control in controls.values():
        control.observe(redraw, names="value")
    redraw()
    return widgets.VBox([*controls.values(), output])
