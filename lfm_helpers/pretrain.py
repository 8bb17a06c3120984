"""Pretraining: causal language modelling of the tiny LFM2 from scratch on the shipped corpus.

A compact training loop, written out rather than hidden in ``transformers.Trainer``, so each
piece the course talks about is visible and testable:

- **packing**: documents are tokenised, wrapped in ``<|startoftext|> ... <|endoftext|>`` and
  concatenated into one stream cut into ``seq_len`` windows, so no compute is spent on padding;
- **schedule**: linear warm-up, then cosine decay to ``min_lr_ratio`` of the peak;
- **AdamW** with weight decay on matrices only (not on norms), and gradient-norm clipping;
- **periodic validation loss** on a fixed held-out set, and tokens/second;
- **resumable checkpoints**: model, optimiser, step, tokens seen and history are saved
  atomically every ``checkpoint_every`` steps; the data order is a pure function of the seed and
  the step, so a resumed run sees exactly the batches the uninterrupted one would have.

Simplified compared with LFM2's pretraining (10-12T tokens, knowledge distillation from a larger
teacher, a difficulty-ordered curriculum): one epoch-shuffled corpus, no distillation, float32.
"""

from __future__ import annotations

import dataclasses
import itertools
import math
import os
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Iterable, Sequence

import numpy as np
import torch
from tqdm.auto import tqdm

from .presets import TrainBudget

CHECKPOINT = "checkpoint.pt"


@dataclass(frozen=True)
class PretrainConfig:
    """Everything that decides what a pretraining run computes (hashed into its artifact)."""

    max_steps: int
    batch_size: int
    seq_len: int
    learning_rate: float
    warmup_steps: int = 0
    min_lr_ratio: float = 0.1
    weight_decay: float = 0.1
    betas: tuple[float, float] = (0.9, 0.95)
    grad_clip: float = 1.0
    eval_every: int = 50
    eval_batches: int = 8
    checkpoint_every: int = 50
    seed: int = 0

    def __post_init__(self) -> None:
        if self.max_steps < 1 or self.batch_size < 1 or self.seq_len < 2:
            raise ValueError("max_steps and batch_size must be >= 1 and seq_len >= 2")
        if not 0 <= self.warmup_steps <= self.max_steps:
            raise ValueError(f"warmup_steps {self.warmup_steps} must be within 0..max_steps ({self.max_steps})")

    @classmethod
    def from_budget(cls, budget: TrainBudget, **overrides) -> "PretrainConfig":
        """The config a preset's ``TrainBudget`` describes, with optional overrides."""
        base = dict(max_steps=budget.max_steps, batch_size=budget.batch_size, seq_len=budget.seq_len,
                    learning_rate=budget.learning_rate, warmup_steps=budget.warmup_steps)
        return cls(**{**base, **overrides})

    @property
    def tokens_per_step(self) -> int:
        return self.batch_size * self.seq_len


# --------------------------------------------------------------------------- data
def document_stream(token_lists: Iterable[Sequence[int]], bos_id: int, eos_id: int) -> np.ndarray:
    """Every document wrapped in bos/eos, concatenated into one int32 stream."""
    pieces = []
    for ids in token_lists:
        pieces.extend(([bos_id], ids, [eos_id]))
    return np.fromiter(itertools.chain.from_iterable(pieces), dtype=np.int32)


def stream_windows(stream: np.ndarray, seq_len: int) -> torch.Tensor:
    """Cut a token stream into ``[n, seq_len]`` windows, dropping the incomplete last one."""
    n = len(stream) // seq_len
    if n == 0:
        raise ValueError(f"{len(stream)} tokens do not fill one window of {seq_len}")
    return torch.from_numpy(stream[: n * seq_len].astype(np.int64)).view(n, seq_len)


def pack_documents(token_lists: Iterable[Sequence[int]], seq_len: int, bos_id: int, eos_id: int) -> torch.Tensor:
    """Wrap each document in bos/eos, concatenate, and cut into ``[n, seq_len]`` windows."""
    return stream_windows(document_stream(token_lists, bos_id, eos_id), seq_len)


def tokenize_texts(tokenizer, texts: Sequence[str], batch_size: int = 2000) -> list[list[int]]:
    """Token ids of each text (no special tokens), in batches through the fast tokenizer."""
    out: list[list[int]] = []
    for i in tqdm(range(0, len(texts), batch_size), desc="tokenising", leave=False, disable=len(texts) < 5000):
        out.extend(tokenizer(list(texts[i:i + batch_size]), add_special_tokens=False)["input_ids"])
    return out


def batch_indices(step: int, n_windows: int, batch_size: int, seed: int) -> torch.Tensor:
    """Window indices of batch ``step``: a fresh seeded shuffle every epoch, a pure function of
    its arguments (which is what makes resuming exact)."""
    start = step * batch_size
    idx = []
    while len(idx) < batch_size:
        epoch, offset = divmod(start + len(idx), n_windows)
        perm = torch.randperm(n_windows, generator=torch.Generator().manual_seed(seed * 100_003 + epoch))
        idx.extend(perm[offset: offset + batch_size - len(idx)].tolist())
    return torch.tensor(idx)


def lr_multiplier(step: int, cfg: PretrainConfig) -> float:
    """Linear warm-up to 1, then cosine decay to ``min_lr_ratio`` at ``max_steps``."""
    if cfg.warmup_steps and step < cfg.warmup_steps:
        return (step + 1) / cfg.warmup_steps
    span = max(1, cfg.max_steps - cfg.warmup_steps)
    progress = min(1.0, (step - cfg.warmup_steps) / span)
    return cfg.min_lr_ratio + (1 - cfg.min_lr_ratio) * 0.5 * (1 + math.cos(math.pi * progress))


def make_optimizer(model: torch.nn.Module, cfg: PretrainConfig) -> torch.optim.AdamW:
    """AdamW with weight decay on matrices only: decaying norm gains and biases hurts small models.
    On a GPU the fused kernel updates every parameter in one launch."""
    decay = [p for p in model.parameters() if p.requires_grad and p.dim() >= 2]
    no_decay = [p for p in model.parameters() if p.requires_grad and p.dim() < 2]
    groups = [{"params": decay, "weight_decay": cfg.weight_decay}, {"params": no_decay, "weight_decay": 0.0}]
    fused = _device_of(model).type == "cuda"
    return torch.optim.AdamW(groups, lr=cfg.learning_rate, betas=cfg.betas, fused=fused or None)


def _device_of(model: torch.nn.Module) -> torch.device:
    """Where the model's weights are: batches stay on the CPU until a step needs them."""
    return next(model.parameters()).device


@torch.no_grad()
def evaluate_loss(model: torch.nn.Module, windows: torch.Tensor, batch_size: int, max_batches: int | None = None) -> float:
    """Mean next-token loss over ``windows`` (in order, so it is comparable between calls)."""
    was_training = model.training
    model.eval()
    losses = []
    for b, i in enumerate(range(0, len(windows), batch_size)):
        if max_batches is not None and b >= max_batches:
            break
        x = windows[i:i + batch_size].to(_device_of(model))
        losses.append(model(input_ids=x, labels=x).loss.item())
    model.train(was_training)
    return sum(losses) / len(losses)


# --------------------------------------------------------------------------- training
@dataclass
class History:
    """What a run logged: per-step training loss and learning rate, periodic validation loss."""

    step: list[int] = field(default_factory=list)
    loss: list[float] = field(default_factory=list)
    lr: list[float] = field(default_factory=list)
    val_step: list[int] = field(default_factory=list)
    val_loss: list[float] = field(default_factory=list)


@dataclass
class TrainResult:
    """The outcome of one call of :func:`train_lm` (which may have resumed an earlier run)."""

    steps: int
    tokens_seen: int
    tokens_this_run: int
    history: History
    train_seconds: float
    resumed_from_step: int

    @property
    def tokens_per_second(self) -> float:
        return self.tokens_this_run / self.train_seconds if self.train_seconds > 0 else float("nan")


def train_step(model: torch.nn.Module, optimizer: torch.optim.Optimizer, windows: torch.Tensor, step: int,
               cfg: PretrainConfig, forward: Callable | None = None,
               shard: tuple[int, int] = (0, 1)) -> tuple[float, float]:
    """One optimiser step on batch ``step``: scheduled learning rate, forward/backward, clipping.

    Returns ``(loss, lr)``. ``forward`` replaces ``model`` for the forward pass (a compiled
    model in the throughput benchmark, the DDP-wrapped model in a multi-process run); the
    parameters updated are always ``model``'s. ``shard = (rank, processes)``: this process takes
    its equal share of the batch; DDP averages the gradients in the backward pass, so the step is
    the one a single process takes on the whole batch, and the returned loss is the batch's mean.
    """
    rank, processes = shard
    lr = cfg.learning_rate * lr_multiplier(step, cfg)
    for group in optimizer.param_groups:
        group["lr"] = lr
    idx = batch_indices(step, len(windows), cfg.batch_size, cfg.seed)
    x = windows[idx.view(processes, -1)[rank]].to(_device_of(model))
    loss = (model if forward is None else forward)(input_ids=x, labels=x).loss
    loss.backward()
    torch.nn.utils.clip_grad_norm_(model.parameters(), cfg.grad_clip)
    optimizer.step()
    optimizer.zero_grad(set_to_none=True)
    value = loss.detach()
    if processes > 1:
        torch.distributed.all_reduce(value)  # a sum (gloo has no average): the batch's mean below
        value = value / processes
    return value.item(), lr


def _save_checkpoint(path: Path, state: dict) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp-{uuid.uuid4().hex[:8]}")
    torch.save(state, tmp)
    os.replace(tmp, path)


def train_lm(
    model: torch.nn.Module,
    train_windows: torch.Tensor,
    val_windows: torch.Tensor,
    cfg: PretrainConfig,
    *,
    checkpoint_dir: Path | None = None,
    on_eval: Callable[[History], None] | None = None,
    stop_after: int | None = None,
    progress: bool = True,
) -> TrainResult:
    """Train ``model`` for ``cfg.max_steps`` steps on packed windows; resume from a checkpoint.

    If ``checkpoint_dir`` holds a checkpoint of the same config, training continues from it.
    ``on_eval`` is called after each validation (the notebook redraws its live plot there).
    ``stop_after`` ends the run after that many steps of *this call*, as an interruption would
    (used by the tests; a checkpoint is written first).
    """
    if train_windows.shape[1] != cfg.seq_len:
        raise ValueError(f"windows have length {train_windows.shape[1]}, config says seq_len {cfg.seq_len}")
    from .distributed import is_main_process, per_device_batch, world

    rank, processes = world()
    per_device_batch(cfg.batch_size, processes)  # refuses a batch that does not split evenly
    optimizer = make_optimizer(model, cfg)
    history, step, tokens = History(), 0, 0
    ckpt = Path(checkpoint_dir) / CHECKPOINT if checkpoint_dir else None
    if ckpt is not None and ckpt.is_file():
        state = torch.load(ckpt, weights_only=False)
        if state["config"] != dataclasses.asdict(cfg):
            raise ValueError(f"checkpoint {ckpt} was written by another config; delete it to start over")
        model.load_state_dict(state["model"])
        optimizer.load_state_dict(state["optimizer"])
        step, tokens, history = state["step"], state["tokens_seen"], History(**state["history"])
    resumed_from = step

    def checkpoint() -> None:
        if ckpt is not None and is_main_process():
            _save_checkpoint(ckpt, {"model": model.state_dict(), "optimizer": optimizer.state_dict(),
                                    "step": step, "tokens_seen": tokens, "config": dataclasses.asdict(cfg),
                                    "history": dataclasses.asdict(history)})

    model.train()
    forward = None
    if processes > 1:  # launched on several processes: Accelerate wraps the model in DDP
        from accelerate import Accelerator

        forward = Accelerator(cpu=not torch.cuda.is_available()).prepare_model(model)
    bar = tqdm(total=cfg.max_steps, initial=step, desc="pretraining", disable=not progress or rank > 0,
               unit="step")
    start = time.perf_counter()
    done_here = 0
    while step < cfg.max_steps:
        loss, lr = train_step(model, optimizer, train_windows, step, cfg, forward=forward, shard=(rank, processes))
        step, tokens, done_here = step + 1, tokens + cfg.tokens_per_step, done_here + 1
        history.step.append(step)
        history.loss.append(loss)
        history.lr.append(lr)
        if step % cfg.eval_every == 0 or step == cfg.max_steps:
            history.val_step.append(step)
            history.val_loss.append(evaluate_loss(model, val_windows, cfg.batch_size, cfg.eval_batches))
            if on_eval is not None:
                on_eval(history)
        elapsed = time.perf_counter() - start
        bar.update(1)
        bar.set_postfix(loss=f"{loss:.3f}", tok_s=f"{done_here * cfg.tokens_per_step / elapsed:.0f}")
        if step % cfg.checkpoint_every == 0 or step == cfg.max_steps or done_here == stop_after:
            checkpoint()
        if done_here == stop_after:
            break
    bar.close()
    return TrainResult(step, tokens, done_here * cfg.tokens_per_step, history, time.perf_counter() - start,
                       resumed_from)


def unigram_entropy(windows: torch.Tensor, vocab_size: int) -> float:
    """Entropy (nats/token) of the corpus' token frequencies: the loss of the best model that
    ignores context. A language model has learned something only once it is clearly below."""
    counts = torch.bincount(windows.flatten(), minlength=vocab_size).double()
    p = counts[counts > 0] / counts.sum()
    return float(-(p * p.log()).sum())
