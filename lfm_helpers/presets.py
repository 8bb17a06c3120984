"""Presets: one frozen dataclass that fixes every size and budget of a run.

A notebook reads its preset once (``preset = load_preset()``) and never hard-codes a size, so
the same notebook runs on a laptop CPU (``tiny``), a Colab GPU (``colab``) and a bigger GPU
(``full``). The name comes from the ``LFM_PRESET`` environment variable (default ``tiny``).

- ``tiny``: a ~3M-parameter LFM2 built from a config and trained from scratch on the shipped
  data, offline, each notebook in a few minutes on two CPU cores.
- ``colab``: the real ``LiquidAI/LFM2.5-350M`` checkpoint from the hub and hub datasets on one
  T4/L4-class GPU. Its loading code is the same ``from_pretrained`` path the tests run with a
  local folder in place of the hub id (see ``with_base_model``).
- ``full``: realistic budgets for a bigger GPU; documented, not run in CI.

Budgets that later stages need (SFT, preference optimisation, RL, ...) live in their own small
dataclasses here, so the whole run is visible in one place and hashed into each artifact.
"""

from __future__ import annotations

import contextlib
import dataclasses
import os
from dataclasses import dataclass, field

PRESET_ENV = "LFM_PRESET"
DEFAULT_PRESET = "tiny"


@dataclass(frozen=True)
class ModelSpec:
    """The shape of a model built from a config (ignored when a checkpoint is loaded).

    ``attention_layers`` lists the indices of the GQA blocks; every other layer is a gated short
    convolution, as in LFM2 (LFM2-350M: 16 layers, attention at 2, 5, 8, 10, 12, 14).
    """

    hidden_size: int
    num_layers: int
    attention_layers: tuple[int, ...]
    num_heads: int
    num_kv_heads: int
    intermediate_size: int
    conv_kernel: int = 3  # LFM2's ``conv_L_cache``
    max_position_embeddings: int = 2048

    def __post_init__(self) -> None:
        bad = [i for i in self.attention_layers if not 0 <= i < self.num_layers]
        if bad:
            raise ValueError(f"attention layer indices {bad} are outside 0..{self.num_layers - 1}")
        if len(self.attention_layers) < 2:
            raise ValueError("the hybrid layout needs at least two attention layers")
        if len(set(self.attention_layers)) != len(self.attention_layers):
            raise ValueError(f"attention layer indices repeat: {self.attention_layers}")
        if self.hidden_size % self.num_heads:
            raise ValueError(f"hidden_size {self.hidden_size} is not divisible by {self.num_heads} heads")
        if self.num_heads % self.num_kv_heads:
            raise ValueError(f"{self.num_heads} query heads cannot be grouped over {self.num_kv_heads} kv heads")

    @property
    def layer_types(self) -> list[str]:
        """``Lfm2Config.layer_types``: "conv" or "full_attention" for each layer."""
        return ["full_attention" if i in self.attention_layers else "conv" for i in range(self.num_layers)]


@dataclass(frozen=True)
class TrainBudget:
    """Steps, batch and learning rate of one training stage."""

    max_steps: int
    batch_size: int
    learning_rate: float
    seq_len: int
    warmup_steps: int = 0


@dataclass(frozen=True)
class SFTMix:
    """Which rows SFT trains on: the first ``extraction`` / ``tool_use`` rows of each train split
    (``None``: all of them), and ``val_rows`` rows of each validation split for the loss curve."""

    extraction: int | None = None
    tool_use: int | None = None
    val_rows: int = 32

    def __post_init__(self) -> None:
        if any(v is not None and v < 0 for v in (self.extraction, self.tool_use)) or self.val_rows < 0:
            raise ValueError(f"row counts must be >= 0, got {self}")
        if self.extraction == 0 and self.tool_use == 0:
            raise ValueError("an SFT mixture needs at least one row")


@dataclass(frozen=True)
class ColdStartBudget:
    """Notebook 04's cold-start experiment: SFT runs that differ only in how many tool-use rows
    they see (``tool_use_rows``, e.g. none / a few percent / all), each ``steps`` long, then
    ``samples`` sampled completions at ``temperature`` for each of ``prompts`` tool-use prompts,
    (runs of ``batch_size`` examples a step)
    to measure the reward a preference or RL stage would start from, and its spread."""

    tool_use_rows: tuple[int, ...]
    steps: int
    batch_size: int = 8
    prompts: int = 24
    samples: int = 4
    temperature: float = 1.0

    def __post_init__(self) -> None:
        if len(self.tool_use_rows) < 2 or sorted(self.tool_use_rows) != list(self.tool_use_rows):
            raise ValueError(f"tool_use_rows must be at least two increasing counts, got {self.tool_use_rows}")
        if self.samples < 2:
            raise ValueError("reward variance needs at least 2 samples per prompt")


@dataclass(frozen=True)
class EvalBudget:
    """How many examples an evaluation scores, how it decodes, and how many prompts run at once.

    ``temperature=0`` is greedy: the task metrics measure what the model does by default.
    Sampled evaluations (reward variance, loop rates) pass their own ``Sampling``.
    """

    num_examples: int
    max_new_tokens: int
    temperature: float = 0.0
    batch_size: int = 16


@dataclass(frozen=True)
class PreferenceBudget:
    """Notebook 05's on-policy DPO: each of ``rounds`` rounds samples ``samples`` completions (at
    ``temperature``) plus a greedy one for ``extraction_prompts`` extraction prompts and every
    assistant turn of ``tool_use_rows`` tool-use conversations (fresh train rows each round), keeps
    best-vs-worst pairs whose scores differ by at least ``min_margin``, and trains ``train`` steps.
    ``beta`` scales the summed log-ratios of standard DPO; ``beta_normalised`` the per-token
    log-ratios of the length-normalised loss (so it is larger: about ``beta`` times a typical
    answer's length). ``sft_weight`` adds the chosen side's negative log-likelihood to the loss
    (RPO), which keeps DPO from pushing both sides down on a tiny model."""

    train: TrainBudget
    rounds: int = 2
    extraction_prompts: int = 64
    tool_use_rows: int = 16
    samples: int = 4
    temperature: float = 1.0
    max_new_tokens: int = 96
    min_margin: float = 0.2
    beta: float = 0.1
    beta_normalised: float = 2.0
    sft_weight: float = 1.0

    def __post_init__(self) -> None:
        if self.rounds < 1 or self.samples < 1:
            raise ValueError(f"need at least one round and one sample per prompt, got {self}")
        if not 0 < self.min_margin <= 1:
            raise ValueError(f"min_margin must be in (0, 1] (scores are in [0, 1]), got {self.min_margin}")


@dataclass(frozen=True)
class RLBudget:
    """Notebook 06's GRPO: ``steps`` steps, each playing ``generations`` episodes of each of
    ``prompts_per_step`` tool-use conversations (first user turn, sampled at ``temperature``,
    ``max_new_tokens`` a turn), rewarded by the environment; KL to the starting policy weighted by
    ``beta``. ``cold_steps``: the short run from notebook 04's no-tool-data checkpoint that shows
    RL with no reward signal."""

    steps: int
    learning_rate: float
    prompts_per_step: int = 4
    generations: int = 6
    temperature: float = 1.0
    max_new_tokens: int = 64
    beta: float = 0.04
    cold_steps: int = 6
    row_offset: int = 1000  # train rows from here on (the first ones fed SFT's short runs)

    def __post_init__(self) -> None:
        if self.generations < 2:
            raise ValueError("GRPO compares completions within a group: generations must be >= 2")
        if self.steps < 1 or self.prompts_per_step < 1 or self.cold_steps < 1:
            raise ValueError(f"steps, prompts_per_step and cold_steps must be >= 1, got {self}")


@dataclass(frozen=True)
class LoopBudget:
    """Notebook 07's doom-loop experiments, on extraction prompts with ``max_new_tokens`` each.

    The loop-prone checkpoint: ``prone_steps`` SFT steps (``prone_learning_rate``) from ``sft`` on
    extraction answers of which ``loop_share`` loop (``loops.loop_prone_examples``). Loop rates are
    measured on ``eval_prompts`` held-out prompts at each of ``temperatures`` and
    ``repetition_penalties`` (0.1 is the public-notebook mistake, measured on purpose). The fixes:
    DPO on pairs from ``pair_prompts`` train prompts (``samples`` samples at
    ``sample_temperature`` against the looping greedy answer) for ``dpo_steps`` steps, and GRPO
    for ``rl_steps`` steps (``rl_prompts_per_step`` x ``rl_generations`` at ``rl_temperature``)
    with a reward of the answer's score minus ``ngram_penalty`` x its repeated 4-gram rate.
    """

    loop_share: float = 0.6
    prone_steps: int = 40
    prone_learning_rate: float = 2e-4
    eval_prompts: int = 48
    max_new_tokens: int = 160
    temperatures: tuple[float, ...] = (0.0, 0.3, 0.7, 1.0)
    repetition_penalties: tuple[float, ...] = (1.0, 1.05, 1.3, 0.1)
    pair_prompts: int = 64
    samples: int = 4
    sample_temperature: float = 0.7
    dpo_steps: int = 24
    rl_steps: int = 20
    rl_learning_rate: float = 1e-4
    rl_prompts_per_step: int = 4
    rl_generations: int = 4
    rl_temperature: float = 0.7
    ngram_penalty: float = 1.0
    batch_size: int = 8

    def __post_init__(self) -> None:
        if not 0 <= self.loop_share <= 1:
            raise ValueError(f"loop_share must be in [0, 1], got {self.loop_share}")
        if self.rl_generations < 2 or self.samples < 1:
            raise ValueError("GRPO needs rl_generations >= 2 and pairs need samples >= 1")
        if any(p <= 0 for p in self.repetition_penalties) or any(t < 0 for t in self.temperatures):
            raise ValueError("repetition penalties must be > 0 and temperatures >= 0")


@dataclass(frozen=True)
class MergeBudget:
    """Notebook 08: each specialist trains ``specialist`` (one task, ``steps x batch`` rows of it)
    from the SFT model, the multitask model twice the steps on both; the sweep merges them at
    each of ``weights`` (linear weight of the tool-use specialist, SLERP's ``t``), ``scales``
    (task arithmetic: both task vectors times the scale) and ``densities`` (TIES, DARE); the curriculum runs ``rounds`` rounds of ``curriculum_steps``
    steps per task. Task losses use ``val_rows`` validation conversations per task, the
    generation evaluation ``eval_examples`` test examples per task."""

    specialist: TrainBudget
    weights: tuple[float, ...] = (0.25, 0.5, 0.75)
    scales: tuple[float, ...] = (0.5, 0.75, 1.0)
    densities: tuple[float, ...] = (0.3, 0.6, 1.0)
    rounds: int = 2
    curriculum_steps: int = 12
    val_rows: int = 32
    eval_examples: int = 32
    seed: int = 0

    def __post_init__(self) -> None:
        if self.rounds < 2:
            raise ValueError(f"a curriculum needs at least two rounds, got {self.rounds}")
        if any(not 0 <= w <= 1 for w in self.weights) or any(not 0 < d <= 1 for d in self.densities):
            raise ValueError("weights must be in [0, 1] and densities in (0, 1]")
        if any(s <= 0 for s in self.scales):
            raise ValueError(f"task-arithmetic scales must be > 0, got {self.scales}")


@dataclass(frozen=True)
class DeployBudget:
    """Notebook 09: the ``sft`` model exported in ``formats``, and a randomly initialised model of
    the public config ``reference`` in ``reference_formats``. Task metrics use ``eval_examples``
    test examples per task, logits ``logit_sequences`` test conversations; speed prefills
    ``prompt_tokens`` and decodes ``decode_tokens``, median of ``repeats`` runs after a warm-up."""

    formats: tuple[str, ...] = ("f32", "f16", "q8_0", "q4_k_m")
    reference: str = "LFM2-350M"
    reference_formats: tuple[str, ...] = ("f16", "q8_0", "q4_k_m")
    eval_examples: int = 32
    logit_sequences: int = 16
    prompt_tokens: int = 128
    decode_tokens: int = 32
    repeats: int = 3

    def __post_init__(self) -> None:
        known = ("f32", "f16", "q8_0", "q4_k_m")
        bad = [f for f in (*self.formats, *self.reference_formats) if f not in known]
        if bad or not self.formats or not self.reference_formats:
            raise ValueError(f"formats must be non-empty and among {known}; got {bad or 'nothing'}")
        if min(self.eval_examples, self.logit_sequences, self.prompt_tokens, self.decode_tokens, self.repeats) < 1:
            raise ValueError("deploy counts must be >= 1")


@dataclass(frozen=True)
class CapstoneBudget:
    """Notebook 10's capstone on a learner's task (``lfm_helpers.capstone``): the generated
    split sizes, and the budgets of its stages (SFT, one-task preference rounds, single-turn GRPO,
    the SLERP positions ``merge_t`` tried between the SFT and RL models, the export ``formats``)."""

    sft: TrainBudget
    preference: PreferenceBudget
    rl: RLBudget
    eval: EvalBudget
    train_rows: int = 1000
    val_rows: int = 32
    test_rows: int = 96
    merge_t: tuple[float, ...] = (0.25, 0.5, 0.75)
    formats: tuple[str, ...] = ("f16", "q8_0")

    def __post_init__(self) -> None:
        if min(self.train_rows, self.val_rows, self.test_rows) < 1:
            raise ValueError(f"the capstone's splits need rows, got {self.train_rows}/{self.val_rows}/{self.test_rows}")
        if not self.merge_t or not all(0 < t < 1 for t in self.merge_t):
            raise ValueError(f"merge_t are SLERP positions strictly between the two models, got {self.merge_t}")
        if self.preference.tool_use_rows or not self.preference.extraction_prompts:
            raise ValueError("the capstone's preference rounds use extraction prompts only")
        needed = self.rl.row_offset + self.rl.steps * self.rl.prompts_per_step
        if needed > self.train_rows:
            raise ValueError(f"RL reads train rows {self.rl.row_offset}..{needed}, beyond the {self.train_rows} generated")


@dataclass(frozen=True)
class ProfileBudget:
    """Sizes and repeats of the architecture profile of notebook 01 (``lfm_helpers.profiling``).

    ``model`` is the LFM2 layout; the Gemma 3-style, Qwen3.5-style and full-attention models are
    built at the same width, depth and heads and matched to its parameter count. Each context is
    prefilled ``prefill_warmup`` times untimed, then ``prefill_repeats`` times timed (median);
    then ``decode_tokens`` tokens are decoded one at a time from the last prefill's cache and
    the median step after the first ``decode_warmup`` is the decode latency. ``threads=None``
    uses torch's default (one per physical core); the value used is recorded with the results.
    """

    name: str
    model: ModelSpec
    vocab_size: int
    sliding_window: int  # of the Gemma 3-style local layers (Gemma 3: 512)
    contexts: tuple[int, ...]
    prefill_warmup: int
    prefill_repeats: int
    decode_tokens: int
    decode_warmup: int
    threads: int | None = None

    def __post_init__(self) -> None:
        if not self.contexts or sorted(self.contexts) != list(self.contexts) or self.contexts[0] < 1:
            raise ValueError(f"contexts must be positive and increasing, got {self.contexts}")
        longest = self.contexts[-1] + self.decode_tokens
        if longest > self.model.max_position_embeddings:
            raise ValueError(f"context {self.contexts[-1]} + {self.decode_tokens} decoded tokens exceeds "
                             f"max_position_embeddings={self.model.max_position_embeddings}")
        if self.prefill_repeats < 1 or self.decode_tokens <= self.decode_warmup:
            raise ValueError("need at least one timed prefill and one timed decode step")


@dataclass(frozen=True)
class SweepBudget:
    """The scaling sweep of notebook 03: every hidden size trained at every token budget.

    The models keep the LFM2 layout of ``num_layers`` with attention at ``attention_layers`` and
    grow in width only (``head_dim`` fixed, FFN ``ffn_ratio`` x hidden), so "size" is one knob.
    Each run warms up for 10% of its steps and decays to the end of *its own* budget, as
    Chinchilla's runs did: a run cut short of its schedule would overstate the loss.
    """

    hidden_sizes: tuple[int, ...] = (32, 64, 128)
    token_budgets: tuple[int, ...] = (25_000, 50_000, 100_000)
    num_layers: int = 4
    attention_layers: tuple[int, ...] = (1, 3)
    head_dim: int = 16
    ffn_ratio: float = 2.5
    seq_len: int = 128
    batch_size: int = 8
    learning_rate: float = 1e-2  # better than 3e-3 at every size here (tried on the tiny sweep)

    def __post_init__(self) -> None:
        if len(self.hidden_sizes) < 3 or len(self.token_budgets) < 3:
            raise ValueError("a scaling fit needs at least 3 model sizes and 3 token budgets")
        if any(h % self.head_dim for h in self.hidden_sizes):
            raise ValueError(f"hidden sizes {self.hidden_sizes} must be multiples of head_dim {self.head_dim}")
        if min(self.token_budgets) < self.seq_len * self.batch_size * 10:
            raise ValueError("each token budget must cover at least 10 optimiser steps")


#: A larger sweep for the command line (``python -m lfm_helpers sweep --size large``): about an
#: hour on two CPU cores.
LARGE_SWEEP = SweepBudget(hidden_sizes=(32, 64, 128, 192), token_budgets=(50_000, 100_000, 200_000, 400_000, 800_000))


@dataclass(frozen=True)
class Sources:
    """Where weights and data come from.

    ``base_model`` is ``None`` to build a model from ``Preset.model`` (tiny), or a hub id / local
    folder for ``from_pretrained``. Datasets are ``"shipped"`` (the JSONL files in ``data/``) or
    a hub dataset id; both go through the same formatting code.
    """

    base_model: str | None = None
    tokenizer: str | None = None  # None: train our own; else a hub id / folder with a tokenizer
    pretrain_corpus: str = "shipped"
    general_chat: str = "shipped"
    extraction: str = "shipped"
    tool_use: str = "shipped"


@dataclass(frozen=True)
class Preset:
    """Every size and budget of a run. Frozen: derive variants with ``dataclasses.replace``."""

    name: str
    description: str
    requires_gpu: bool
    vocab_size: int
    model: ModelSpec
    sources: Sources
    pretrain: TrainBudget
    sft: TrainBudget
    eval: EvalBudget
    profile: ProfileBudget
    #: LoRA's budget (usually a higher learning rate than full fine-tuning) and rank.
    sft_lora: TrainBudget
    cold_start: ColdStartBudget
    #: The short SFT run notebook 04 trains live (the ``sft_live`` stage); ``None``: the full budget.
    sft_live: TrainBudget | None = None
    sft_mix: SFTMix = SFTMix()
    lora_rank: int = 16
    #: Whether the ``sft`` / ``sft_lora`` stages take the checkpoints shipped in
    #: ``data/sft/<preset>/`` (made by ``python -m lfm_helpers ship-sft``) instead of training.
    shipped_sft: bool = False
    sweep: SweepBudget = SweepBudget()
    #: The longer pretraining that made the base shipped in ``data/base/<preset>/`` (``None``:
    #: the base is the checkpoint in ``sources.base_model``). See ``lfm_helpers.base``.
    base_pretrain: TrainBudget | None = None
    #: On-policy preference optimisation (notebook 05); ``None``: the preset does not run it.
    preference: PreferenceBudget | None = None
    #: GRPO in the tool environment (notebook 06); ``None``: the preset does not run it.
    rl: RLBudget | None = None
    #: Doom-loop detection and mitigation (notebook 07); ``None``: the preset does not run it.
    loops: LoopBudget | None = None
    #: Specialists, merges and curriculum (notebook 08); ``None``: the preset does not run it.
    merging: MergeBudget | None = None
    #: GGUF export, llama.cpp inference and speed (notebook 09); ``None``: the preset does not run it.
    deploy: DeployBudget | None = None
    #: The capstone on a learner's own task (notebook 10); ``None``: the preset does not run it.
    capstone: CapstoneBudget | None = None
    seed: int = 0
    use_unsloth: bool = False
    notes: tuple[str, ...] = field(default_factory=tuple)
    #: A data folder of the preset's own (the capstone's generated task data): its stages and
    #: evaluations read it wherever they are called from. ``None``: the shipped data (or ``$LFM_DATA_DIR``).
    data_dir: str | None = None

    def to_dict(self) -> dict:
        """A JSON-ready view, used in artifact manifests and config hashes."""
        return dataclasses.asdict(self)

    def with_base_model(self, path_or_id: str) -> "Preset":
        """The same preset loading its checkpoint (and tokenizer) from ``path_or_id``.

        This is how tests run the ``colab`` code path offline: a local folder written by
        ``save_pretrained`` stands in for the hub id.
        """
        src = dataclasses.replace(self.sources, base_model=path_or_id, tokenizer=path_or_id)
        return dataclasses.replace(self, sources=src)


#: Architecture profiles. ``small`` runs in well under a minute on two CPU cores: 8 layers (LFM2's
#: 10 conv : 6 GQA halved to 5 : 3). ``realistic`` is the LFM2-350M layout (hidden 1024,
#: attention at 2, 5, 8, 10, 12, 14 of 16 layers, 65,536 vocabulary) with Gemma 3's real 512-token
#: window; it takes tens of minutes on a laptop CPU (``python -m lfm_helpers profile --size realistic``).
PROFILE_SIZES: dict[str, ProfileBudget] = {
    "small": ProfileBudget(
        name="small",
        model=ModelSpec(hidden_size=256, num_layers=8, attention_layers=(2, 5, 7), num_heads=4,
                        num_kv_heads=2, intermediate_size=768, max_position_embeddings=8192),
        vocab_size=2048,
        sliding_window=128,
        contexts=(128, 512, 2048),
        prefill_warmup=1,
        prefill_repeats=2,
        decode_tokens=16,
        decode_warmup=4,
    ),
    "realistic": ProfileBudget(
        name="realistic",
        model=ModelSpec(hidden_size=1024, num_layers=16, attention_layers=(2, 5, 8, 10, 12, 14), num_heads=16,
                        num_kv_heads=8, intermediate_size=4608, max_position_embeddings=32768),
        vocab_size=65536,
        sliding_window=512,
        contexts=(1024, 4096, 8192, 16384),
        prefill_warmup=0,
        prefill_repeats=1,
        decode_tokens=10,
        decode_warmup=2,
    ),
}

_TINY = Preset(
    name="tiny",
    description="CPU, offline: a ~3M-parameter LFM2 trained from scratch on the shipped data.",
    requires_gpu=False,
    vocab_size=2048,
    model=ModelSpec(
        hidden_size=192,
        num_layers=6,
        attention_layers=(2, 5),
        num_heads=6,
        num_kv_heads=2,
        intermediate_size=512,
        max_position_embeddings=1024,
    ),
    sources=Sources(),
    # The notebook's live pretraining run: about 250k tokens, a couple of minutes on two cores.
    pretrain=TrainBudget(max_steps=120, batch_size=16, learning_rate=3e-3, seq_len=128, warmup_steps=12),
    # The shipped base: about 4M tokens (nearly two passes over the corpus), once, ~25 minutes.
    base_pretrain=TrainBudget(max_steps=1000, batch_size=16, learning_rate=3e-3, seq_len=256, warmup_steps=50),
    # SFT: the tool list makes tool-use conversations up to ~1,160 tokens; nothing is truncated.
    # The base cannot yet copy from its context, and SFT must teach it; that takes ~800 steps
    # (about 30 minutes here), so the result is shipped (``shipped_sft``) and notebook 04 runs
    # the same code live on ``sft_live``'s short budget.
    sft=TrainBudget(max_steps=800, batch_size=16, learning_rate=2e-3, seq_len=1280, warmup_steps=20),
    sft_lora=TrainBudget(max_steps=800, batch_size=16, learning_rate=3e-3, seq_len=1280, warmup_steps=20),
    shipped_sft=True,
    sft_live=TrainBudget(max_steps=40, batch_size=16, learning_rate=2e-3, seq_len=1280, warmup_steps=5),
    cold_start=ColdStartBudget(tool_use_rows=(0, 60, 3000), steps=40, batch_size=8),
    # Per variant two rounds of: sampling (~40 s), 24 DPO steps (~3 s each), the test split (~1 min).
    preference=PreferenceBudget(train=TrainBudget(max_steps=24, batch_size=8, learning_rate=2e-4, seq_len=1280,
                                                  warmup_steps=2), temperature=0.7),
    # ~10 s a step here (24 episodes of one to three turns, then the policy update).
    rl=RLBudget(steps=30, learning_rate=3e-4),
    loops=LoopBudget(),
    # About 45 s (extraction) and 75 s (tool use) per specialist, 2 min the multitask run, 3 min
    # the curriculum, 3 s a merge, 15 s a harness evaluation. From sft_live, 32 one-task steps
    # measurably lower that task's loss (24 did not at lr 2e-3).
    merging=MergeBudget(specialist=TrainBudget(max_steps=32, batch_size=8, learning_rate=1e-3, seq_len=1280,
                                               warmup_steps=2), curriculum_steps=8),
    # About 1 min to export, 2 min to build and export the random LFM2-350M, ~3 min of measurements.
    deploy=DeployBudget(),
    # From the course's SFT model on a new schema; texts are short, so a step is ~0.7 s here. SFT
    # about 3 min (120 steps at 1e-3 reached field EM 0.56, 300 at 2e-3 0.77), one preference
    # round ~25 s (min_margin below one field of six, else samples that differ in one field make
    # no pair), 30 GRPO steps ~75 s, the merge ~10 s.
    capstone=CapstoneBudget(
        sft=TrainBudget(max_steps=240, batch_size=16, learning_rate=2e-3, seq_len=256, warmup_steps=10),
        preference=PreferenceBudget(train=TrainBudget(max_steps=12, batch_size=8, learning_rate=1e-4, seq_len=256,
                                                      warmup_steps=1),
                                    rounds=1, extraction_prompts=48, tool_use_rows=0, max_new_tokens=64,
                                    min_margin=0.15),
        rl=RLBudget(steps=30, learning_rate=1e-4, prompts_per_step=4, generations=6, max_new_tokens=64,
                    row_offset=400),
        eval=EvalBudget(num_examples=96, max_new_tokens=64),
    ),
    eval=EvalBudget(num_examples=64, max_new_tokens=96),
    profile=PROFILE_SIZES["small"],
)

_COLAB = Preset(
    name="colab",
    description="One T4/L4-class GPU: the real LFM2.5-350M checkpoint and hub datasets.",
    requires_gpu=True,
    vocab_size=65536,
    # The shape of LFM2-350M, for reference and for building it from a config; the checkpoint wins.
    model=ModelSpec(
        hidden_size=1024,
        num_layers=16,
        attention_layers=(2, 5, 8, 10, 12, 14),
        num_heads=16,
        num_kv_heads=8,
        intermediate_size=4608,
        max_position_embeddings=128000,
    ),
    sources=Sources(
        base_model="LiquidAI/LFM2.5-350M",
        tokenizer="LiquidAI/LFM2.5-350M",
        pretrain_corpus="HuggingFaceFW/fineweb-edu",
        general_chat="HuggingFaceTB/smoltalk",
    ),
    pretrain=TrainBudget(max_steps=200, batch_size=8, learning_rate=5e-5, seq_len=1024, warmup_steps=20),
    sft=TrainBudget(max_steps=300, batch_size=8, learning_rate=5e-5, seq_len=2048, warmup_steps=20),
    sft_lora=TrainBudget(max_steps=300, batch_size=8, learning_rate=2e-4, seq_len=2048, warmup_steps=20),
    cold_start=ColdStartBudget(tool_use_rows=(0, 60, 3000), steps=100),
    preference=PreferenceBudget(train=TrainBudget(max_steps=100, batch_size=8, learning_rate=5e-7, seq_len=2048,
                                                  warmup_steps=10),
                                extraction_prompts=256, tool_use_rows=64, max_new_tokens=256, beta=0.1,
                                beta_normalised=5.0),
    rl=RLBudget(steps=100, learning_rate=1e-6, prompts_per_step=8, generations=8, max_new_tokens=256),
    loops=LoopBudget(prone_steps=100, prone_learning_rate=2e-5, eval_prompts=200, max_new_tokens=512, pair_prompts=256,
                     dpo_steps=100, rl_steps=100, rl_learning_rate=1e-6, rl_prompts_per_step=8, rl_generations=8,
                     batch_size=16),
    merging=MergeBudget(specialist=TrainBudget(max_steps=100, batch_size=8, learning_rate=2e-5, seq_len=2048,
                                               warmup_steps=10), val_rows=64, eval_examples=100),
    deploy=DeployBudget(formats=("f16", "q8_0", "q4_k_m"), eval_examples=100, prompt_tokens=512, decode_tokens=64),
    capstone=CapstoneBudget(
        sft=TrainBudget(max_steps=200, batch_size=8, learning_rate=5e-5, seq_len=512, warmup_steps=10),
        preference=PreferenceBudget(train=TrainBudget(max_steps=50, batch_size=8, learning_rate=5e-7, seq_len=512,
                                                      warmup_steps=5),
                                    rounds=2, extraction_prompts=128, tool_use_rows=0, max_new_tokens=128,
                                    beta_normalised=5.0),
        rl=RLBudget(steps=50, learning_rate=1e-6, prompts_per_step=8, generations=8, max_new_tokens=128,
                    row_offset=1000),
        eval=EvalBudget(num_examples=200, max_new_tokens=128),
        train_rows=2000, val_rows=64, test_rows=200, formats=("f16", "q8_0", "q4_k_m"),
    ),
    eval=EvalBudget(num_examples=200, max_new_tokens=256),
    # Colab's two CPU cores: the realistic model up to 8k tokens (the full preset goes to 16k).
    profile=dataclasses.replace(PROFILE_SIZES["realistic"], contexts=(1024, 4096, 8192)),
    use_unsloth=True,
    notes=("Unsloth is used when importable, else transformers + peft.",),
)

_FULL = dataclasses.replace(
    _COLAB,
    name="full",
    description="A bigger GPU (40-80 GB): realistic budgets on LFM2.5-350M. Documented, not run in CI.",
    pretrain=TrainBudget(max_steps=5000, batch_size=32, learning_rate=5e-5, seq_len=2048, warmup_steps=200),
    sft=TrainBudget(max_steps=3000, batch_size=32, learning_rate=5e-5, seq_len=2048, warmup_steps=100),
    sft_lora=TrainBudget(max_steps=3000, batch_size=32, learning_rate=2e-4, seq_len=2048, warmup_steps=100),
    eval=EvalBudget(num_examples=1000, max_new_tokens=512),
    profile=PROFILE_SIZES["realistic"],
    use_unsloth=False,
    notes=(),
)

PRESETS: dict[str, Preset] = {p.name: p for p in (_TINY, _COLAB, _FULL)}


def load_preset(name: str | None = None, *, check_device: bool = True) -> Preset:
    """Return the preset called ``name``, or the one named by ``$LFM_PRESET`` (default ``tiny``).

    An unknown name is an error that lists the valid ones. With ``check_device`` a preset that
    needs a GPU fails early on a machine without one, instead of an hour later with an OOM or a
    crawl.
    """
    chosen = (name or os.environ.get(PRESET_ENV) or DEFAULT_PRESET).strip()
    if chosen not in PRESETS:
        raise ValueError(f"unknown preset {chosen!r}; valid presets: {', '.join(sorted(PRESETS))}")
    preset = PRESETS[chosen]
    if check_device and preset.requires_gpu:
        import torch

        if not torch.cuda.is_available():
            raise RuntimeError(
                f"preset {chosen!r} needs a CUDA GPU and none is available here; "
                f"use LFM_PRESET=tiny on a CPU machine"
            )
    return preset


def override(preset: Preset, assignments: list[str] | tuple[str, ...]) -> Preset:
    """The preset with ``field.subfield=value`` assignments applied (the command line's ``--set``):
    ``["sft_live.max_steps=4", "shipped_sft=false", "deploy.formats=f16,q8_0"]``.

    Values are parsed as the type the field holds now (int, float, bool, str, a comma-separated
    tuple; ``none`` empties an optional field, and an empty one takes a number or a string). The preset keeps its name, so its artifacts
    are rebuilt where the change reaches their config, like any other config change.
    """
    for item in assignments:
        key, sep, raw = item.partition("=")
        if not sep or not key:
            raise ValueError(f"--set {item!r}: expected FIELD=VALUE, e.g. sft.max_steps=4")
        preset = _assign(preset, key.split("."), raw, item)
    return preset


def _assign(obj, path: list[str], raw: str, item: str):
    names = [f.name for f in dataclasses.fields(obj)] if dataclasses.is_dataclass(obj) else []
    if path[0] not in names:
        raise ValueError(f"--set {item!r}: {type(obj).__name__} has no field {path[0]!r}; fields: {', '.join(names)}")
    current = getattr(obj, path[0])
    if len(path) > 1:
        if current is None:
            raise ValueError(f"--set {item!r}: {path[0]} is not set in this preset")
        value = _assign(current, path[1:], raw, item)
    else:
        value = _parse_value(raw, current, item)
    return dataclasses.replace(obj, **{path[0]: value})


def _parse_value(raw: str, current, item: str):
    text = raw.strip()
    if text.lower() == "none":
        return None
    try:
        if isinstance(current, bool):
            if text.lower() not in ("true", "false"):
                raise ValueError("expected true or false")
            return text.lower() == "true"
        if isinstance(current, tuple):
            kind = type(current[0]) if current else str
            return tuple(kind(part.strip()) for part in text.split(",") if part.strip())
        if isinstance(current, (int, float, str)):
            return type(current)(text)
        if current is None:  # an empty optional field: a number if it reads as one
            for kind in (int, float):
                with contextlib.suppress(ValueError):
                    return kind(text)
            return text
    except ValueError as err:
        raise ValueError(f"--set {item!r}: {err}") from None
    raise ValueError(f"--set {item!r}: cannot set a {type(current).__name__} from the command line")
