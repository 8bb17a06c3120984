"""Pretraining throughput: the course's loop against a plain ``transformers.Trainer``.

Same model, same packed windows, same batch size, optimiser settings and schedule; only the
loop differs. Tokens/second is measured after a few warm-up steps (so one-off costs such as
``torch.compile``'s compilation are reported separately, not hidden in the average).

What the course's loop does differently, each a knob here so its effect can be measured:

- ``threads``: the number of intra-op CPU threads. A tiny model's matrices are too small to
  split well, and on a busy machine threads spin-waiting for each other cost far more than
  they save; one thread per process is often fastest for models of a few million parameters;
- ``compile``: ``torch.compile`` fuses the many small elementwise ops (RMSNorm, SwiGLU, the
  convolution gates) that dominate at this size;
- a fused AdamW step and no per-step Python bookkeeping beyond the loss;
- on a GPU, the packed windows live on the device (no copy per step).

On a GPU a model of a few million parameters is bound by kernel launches and Python, not by
arithmetic, so fusing (``torch.compile``) and removing per-step overhead pay off there; on a CPU
the step is bound by the matrix multiplications themselves (see notebook 03), and the loop can
only remove the Trainer's few percent of overhead.
"""

from __future__ import annotations

import tempfile
import time
from dataclasses import dataclass
from typing import Callable

import torch

from .pretrain import PretrainConfig, make_optimizer, train_step


@dataclass(frozen=True)
class ThroughputResult:
    name: str
    tokens_per_second: float
    measured_steps: int
    warmup_seconds: float
    threads: int


def _timed_steps(step_fn, steps: int, warmup: int) -> tuple[float, float]:
    """Run ``step_fn(i)`` for ``warmup + steps`` steps; return (warm-up seconds, measured seconds)."""
    start = time.perf_counter()
    for i in range(warmup):
        step_fn(i)
    mid = time.perf_counter()
    for i in range(warmup, warmup + steps):
        step_fn(i)
    return mid - start, time.perf_counter() - mid


def loop_throughput(model, windows: torch.Tensor, cfg: PretrainConfig, *, steps: int = 20, warmup: int = 3,
                    threads: int | None = None, compile: bool = False,
                    device: torch.device | str = "cpu") -> ThroughputResult:
    """Tokens/s of the course's training step (:func:`~lfm_helpers.pretrain.train_step`, as ``train_lm`` runs it)."""
    device = torch.device(device)
    old_threads = torch.get_num_threads()
    if threads:
        torch.set_num_threads(threads)
    try:
        model.to(device).train()
        windows = windows.to(device)
        optimizer = make_optimizer(model, cfg)  # fused on a GPU
        forward = torch.compile(model) if compile else model

        warm_s, run_s = _timed_steps(lambda i: train_step(model, optimizer, windows, i, cfg, forward), steps, warmup)
        where = "GPU" if device.type == "cuda" else \
            f"{torch.get_num_threads()} thread{'s' if torch.get_num_threads() > 1 else ''}"
        name = f"course loop ({where}{', torch.compile' if compile else ''})"
        return ThroughputResult(name, steps * cfg.tokens_per_step / run_s, steps, warm_s, torch.get_num_threads())
    finally:
        torch.set_num_threads(old_threads)


class _Windows(torch.utils.data.Dataset):
    def __init__(self, windows: torch.Tensor):
        self.windows = windows

    def __len__(self) -> int:
        return len(self.windows)

    def __getitem__(self, i: int) -> dict[str, torch.Tensor]:
        return {"input_ids": self.windows[i], "labels": self.windows[i]}


def trainer_throughput(model, windows: torch.Tensor, cfg: PretrainConfig, *, steps: int = 20,
                       warmup: int = 3, device: torch.device | str = "cpu") -> ThroughputResult:
    """Tokens/s of ``transformers.Trainer`` on the same model, data and settings (float32; its
    default optimiser, which is AdamW, fused where the device allows)."""
    from transformers import Trainer, TrainerCallback, TrainingArguments

    device = torch.device(device)
    times: dict[str, float] = {}

    def now() -> float:
        if device.type == "cuda":  # kernels run asynchronously: wait for the queued steps
            torch.cuda.synchronize()
        return time.perf_counter()

    class Clock(TrainerCallback):
        def on_train_begin(self, args, state, control, **kw):
            times["begin"] = now()

        def on_step_end(self, args, state, control, **kw):
            if state.global_step == warmup:
                times["mid"] = now()

        def on_train_end(self, args, state, control, **kw):
            times["end"] = now()

    with tempfile.TemporaryDirectory() as out:
        args = TrainingArguments(
            output_dir=out, max_steps=warmup + steps, per_device_train_batch_size=cfg.batch_size,
            learning_rate=cfg.learning_rate, weight_decay=cfg.weight_decay, adam_beta1=cfg.betas[0],
            adam_beta2=cfg.betas[1], max_grad_norm=cfg.grad_clip, lr_scheduler_type="cosine",
            warmup_steps=cfg.warmup_steps, use_cpu=device.type == "cpu", bf16=False, report_to="none",
            save_strategy="no", logging_strategy="no", disable_tqdm=True, dataloader_num_workers=0, seed=cfg.seed,
        )
        Trainer(model=model, args=args, train_dataset=_Windows(windows), callbacks=[Clock()]).train()
    run_s = times["end"] - times["mid"]
    optimizer = getattr(args.optim, "value", args.optim)  # an enum in transformers 5
    return ThroughputResult(f"transformers.Trainer ({optimizer})", steps * cfg.tokens_per_step / run_s, steps,
                            times["mid"] - times["begin"], torch.get_num_threads())


def benchmark_pretraining(preset, *, steps: int = 20, warmup: int = 3, compile: bool = True,
                          device: str | None = "cpu",
                          log: Callable[[ThroughputResult], None] | None = None) -> list[ThroughputResult]:
    """Tokens/s of ``transformers.Trainer`` and of the course loop's settings, on the preset's
    untrained model, its pretraining batch and the shipped corpus. The first row is the baseline.

    ``device``: "cpu" (the default: the device the tiny preset trains on), "cuda", or ``None`` for
    the best one here (:func:`~lfm_helpers.device.pick_device`). On a CPU the loop is also timed
    with one thread; on a GPU thread settings do not apply. ``log`` sees each row as it is measured.
    """
    from .device import pick_device
    from .models import load_model
    from .pipeline import packed_corpus, pretrain_config, run_stage

    dev = pick_device(device).device
    cfg = pretrain_config(preset)
    init = run_stage("init", preset).path
    windows, _ = packed_corpus(preset, cfg.seq_len)
    kw = dict(steps=steps, warmup=warmup, device=dev)
    threads = 1 if dev.type == "cpu" else None
    runs = [lambda: trainer_throughput(load_model(init), windows, cfg, **kw),
            lambda: loop_throughput(load_model(init), windows, cfg, **kw)]
    if threads:
        runs.append(lambda: loop_throughput(load_model(init), windows, cfg, threads=threads, **kw))
    if compile:
        runs.append(lambda: loop_throughput(load_model(init), windows, cfg, threads=threads, compile=True, **kw))
    results = []
    for run in runs:
        results.append(run())
        if log is not None:
            log(results[-1])
    return results


def format_benchmark(results: list[ThroughputResult]) -> str:
    """A table of tokens/s with the speed-up over the first row (the baseline)."""
    base = results[0].tokens_per_second
    lines = [f"{'loop':<40} {'tokens/s':>9} {'speed-up':>8} {'warm-up s':>9}"]
    for r in results:
        lines.append(f"{r.name:<40} {r.tokens_per_second:>9.0f} {r.tokens_per_second / base:>7.2f}x "
                     f"{r.warmup_seconds:>9.1f}")
    return "\n".join(lines)


def save_benchmark(results: list[ThroughputResult], path, *, command: str, device: str,
                   versions: dict[str, str]) -> None:
    """Write a benchmark's rows (with the command, device and library versions) atomically as JSON."""
    import json
    from dataclasses import asdict

    from .artifacts import atomic_write_text

    payload = {"command": command, "device": device, "versions": versions,
               "results": [asdict(r) for r in results]}
    atomic_write_text(path, json.dumps(payload, indent=1) + "\n")


def load_benchmark(path) -> tuple[dict, list[ThroughputResult]]:
    """A saved benchmark: its header (command, device, versions) and its rows, baseline first."""
    import json
    from pathlib import Path

    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"no benchmark results at {path}; run `python -m lfm_helpers benchmark --out {path}`")
    payload = json.loads(path.read_text())
    return {k: v for k, v in payload.items() if k != "results"}, [ThroughputResult(**r) for r in payload["results"]]
