"""Scale-out: the course's stages on several processes, through Accelerate (``accelerate launch``).

Nothing here is a distributed engine of its own. ``accelerate launch`` starts the processes
(torchrun underneath) and sets ``RANK`` / ``WORLD_SIZE``; TRL's trainers and
``Accelerator.prepare`` wrap the model in DDP (or FSDP / DeepSpeed, by config file), which
averages gradients across processes in the backward pass. This module only does what the
pipeline must know about being one of several processes:

- the *effective* batch stays what the preset says: each process takes ``batch / processes``
  (:func:`per_device_batch`), so a 2-process run follows the same trajectory as one process;
- artifacts are written once: dependencies are built by the main process first while the
  others wait (:func:`main_process_first`), the stage itself runs on every process (they train
  together) and only the main process installs the result (see ``artifacts.write_artifact``).

The same command runs on CPUs (the test: 2 processes, gloo) and on GPUs (nccl), with a different
Accelerate config file from ``configs/accelerate/`` (:func:`launch_command`).
"""

from __future__ import annotations

import contextlib
import os
import subprocess
import sys
from collections.abc import Iterator, Sequence
from pathlib import Path

from .paths import REPO_ROOT

#: Accelerate config files: ``cpu_ddp`` (the test's), ``ddp``, ``fsdp``, ``deepspeed_zero2`` (GPUs).
CONFIGS_DIR = REPO_ROOT / "configs" / "accelerate"


def world() -> tuple[int, int]:
    """``(rank, processes)`` of this process, from the launcher's environment (``(0, 1)`` alone)."""
    return int(os.environ.get("RANK", "0")), int(os.environ.get("WORLD_SIZE", "1"))


def launched() -> bool:
    """Whether this process is one of several started by ``accelerate launch`` / ``torchrun``."""
    return world()[1] > 1


def is_main_process() -> bool:
    return world()[0] == 0


def per_device_batch(batch_size: int, processes: int | None = None) -> int:
    """Each process's share of a batch; the effective batch (share x processes) stays ``batch_size``."""
    processes = processes or world()[1]
    if batch_size % processes:
        raise ValueError(f"a batch of {batch_size} cannot be split evenly over {processes} processes; "
                         f"use a batch size divisible by {processes} (or gradient accumulation)")
    return batch_size // processes


def _state():
    import torch
    from accelerate import PartialState

    return PartialState(cpu=not torch.cuda.is_available())


@contextlib.contextmanager
def main_process_first() -> Iterator[None]:
    """Inside: the main process runs first, the others wait, then run (and find its results).
    Alone, a plain block."""
    if not launched():
        yield
        return
    with _state().main_process_first():
        yield


def wait_for_everyone() -> None:
    """A barrier across the launched processes (nothing when alone)."""
    if launched():
        _state().wait_for_everyone()


def config_file(name: str | Path) -> Path:
    """An Accelerate config: a name from ``configs/accelerate/`` (``"fsdp"``) or a path."""
    path = Path(name)
    if not path.suffix:
        path = CONFIGS_DIR / f"{name}.yaml"
    if not path.is_file():
        known = sorted(p.stem for p in CONFIGS_DIR.glob("*.yaml"))
        raise FileNotFoundError(f"no Accelerate config {name!r}; shipped: {', '.join(known)}")
    return path


def launch_command(args: Sequence[str], *, config: str | Path = "cpu_ddp", processes: int | None = None,
                   port: int | None = None) -> list[str]:
    """``accelerate launch --config_file CONFIG [--num_processes N] -m lfm_helpers ARGS``: the
    course's command line (``run sft --preset tiny``...) on several processes."""
    cmd = [sys.executable, "-m", "accelerate.commands.launch", "--config_file", str(config_file(config))]
    if processes is not None:
        cmd += ["--num_processes", str(processes)]
    if port is not None:
        cmd += ["--main_process_port", str(port)]
    return cmd + ["-m", "lfm_helpers", *args]


def launch(args: Sequence[str], *, config: str | Path = "cpu_ddp", processes: int | None = None,
           port: int | None = None, env: dict[str, str] | None = None) -> str:
    """Run :func:`launch_command` and return its output; a failure raises with the output's tail."""
    cmd = launch_command(args, config=config, processes=processes, port=port)
    done = subprocess.run(cmd, capture_output=True, text=True, cwd=REPO_ROOT, env={**os.environ, **(env or {})})
    output = done.stdout + done.stderr
    if done.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd[2:])} failed (exit {done.returncode}):\n{output[-4000:]}")
    return output


def config_table():
    """The shipped Accelerate configs: each one's distributed type, processes, mixed precision and
    what it changes (the comment at the top of its file)."""
    import pandas as pd
    import yaml

    rows = []
    for path in sorted(CONFIGS_DIR.glob("*.yaml")):
        text = path.read_text()
        config = yaml.safe_load(text)
        comment = " ".join(line.lstrip("# ").strip() for line in text.splitlines() if line.startswith("#"))
        rows.append({"config": path.stem, "distributed_type": config["distributed_type"],
                     "processes": config["num_processes"], "mixed_precision": config.get("mixed_precision", "no"),
                     "what it changes": comment})
    return pd.DataFrame(rows).set_index("config")


def batch_plan(effective_batch: int, devices: int, max_per_device: int) -> dict[str, int]:
    """How to keep an effective batch on ``devices`` devices that each hold at most
    ``max_per_device`` sequences: the per-device batch and the gradient-accumulation steps
    (effective = per device x devices x accumulation, so the optimisation does not change)."""
    if min(effective_batch, devices, max_per_device) < 1:
        raise ValueError("batch sizes and device counts must be >= 1")
    if effective_batch % devices:
        raise ValueError(f"an effective batch of {effective_batch} cannot be split evenly over {devices} devices")
    share = effective_batch // devices
    accumulation = next(a for a in range(1, share + 1) if share % a == 0 and share // a <= max_per_device)
    return {"devices": devices, "per_device": share // accumulation, "accumulation": accumulation,
            "effective": share // accumulation * devices * accumulation}


def run_module(args: Sequence[str], *, env: dict[str, str] | None = None) -> str:
    """``python -m lfm_helpers ARGS`` in one process (the single-process twin of :func:`launch`)."""
    cmd = [sys.executable, "-m", "lfm_helpers", *args]
    done = subprocess.run(cmd, capture_output=True, text=True, cwd=REPO_ROOT, env={**os.environ, **(env or {})})
    output = done.stdout + done.stderr
    if done.returncode != 0:
        raise RuntimeError(f"python -m lfm_helpers {' '.join(args)} failed (exit {done.returncode}):\n{output[-4000:]}")
    return output


def one_and_two_processes(stage: str, settings: Sequence[str], *, runs_dir: Path | str, preset: str = "tiny",
                          processes: int = 2, config: str = "cpu_ddp") -> dict:
    """Build ``stage`` with the preset overrides ``settings`` once in one process and once under
    ``accelerate launch`` on ``processes`` processes, into the artifact store ``runs_dir`` (so the
    short runs never replace the course's artifacts). Returns each run's stage metrics and
    training history, and the launched run's output."""
    import json

    runs_dir = Path(runs_dir)
    args = ["run", stage, "--preset", preset, *[a for item in settings for a in ("--set", item)]]
    env = {"LFM_RUNS_DIR": str(runs_dir), "LFM_PRESET": preset}

    def record() -> dict:
        folder = runs_dir / preset / stage
        return {"metrics": json.loads((folder / "manifest.json").read_text())["metrics"],
                "history": json.loads((folder / "history.json").read_text())}

    run_module([*args, "--force"], env=env)
    one = record()
    output = launch([*args, "--force"], env=env, processes=processes, config=config)
    return {"one": one, "launched": record(), "output": output}


def loss_comparison(one: dict, two: dict):
    """Per-step training loss of two runs of the same stage side by side, with their relative difference."""
    import pandas as pd

    if one["step"] != two["step"]:
        raise ValueError(f"the runs logged different steps: {one['step']} vs {two['step']}")
    rows = [{"step": s, "loss, 1 process": a, "loss, launched": b, "relative difference": abs(a - b) / abs(a)}
            for s, a, b in zip(one["step"], one["loss"], two["loss"], strict=True)]
    return pd.DataFrame(rows).set_index("step")


# --------------------------------------------------------------------------- memory per device
#: Bytes per parameter of mixed-precision AdamW training (the ZeRO paper's accounting): bf16 weights
#: and gradients (2 + 2), and the optimizer's float32 master weights and two moments (4 + 4 + 4).
TRAINING_BYTES = {"weights": 2, "gradients": 2, "optimizer": 12}
#: Which of the three each strategy splits across the devices.
SHARDED = {"ddp": (), "zero1": ("optimizer",), "zero2": ("optimizer", "gradients"),
           "fsdp": ("optimizer", "gradients", "weights")}


def training_memory(params: int, devices: int, strategy: str) -> dict[str, float]:
    """GB per device for the model states of full fine-tuning with AdamW in mixed precision.

    DDP replicates everything (16 bytes a parameter on every device); ZeRO-1 / ZeRO-2 split the
    optimizer state (and the gradients); FSDP (full shard, like ZeRO-3) splits the weights too.
    Activations come on top and depend on batch and sequence length (gradient checkpointing
    trades them for compute); so do the runtime's buffers.
    """
    if strategy not in SHARDED:
        raise ValueError(f"unknown strategy {strategy!r}; strategies: {', '.join(SHARDED)}")
    if devices < 1:
        raise ValueError("devices must be >= 1")
    parts = {k: params * b / (devices if k in SHARDED[strategy] else 1) / 1e9 for k, b in TRAINING_BYTES.items()}
    return {**parts, "total": sum(parts.values())}


def training_memory_table(names: Sequence[str] = ("LFM2-350M", "LFM2-1.2B"), devices: Sequence[int] = (1, 2, 4, 8),
                          strategies: Sequence[str] = ("ddp", "zero2", "fsdp")):
    """Model-state GB per device for each shipped config, device count and strategy."""
    import pandas as pd

    from .memory import count_parameters_meta, load_public_config

    rows = []
    for name in names:
        params = count_parameters_meta(load_public_config(name))
        for strategy in strategies:
            for n in devices:
                rows.append({"model": name, "strategy": strategy, "devices": n,
                             "GB per device": round(training_memory(params, n, strategy)["total"], 2)})
    return pd.DataFrame(rows)
