"""Pick the best device on this machine and the dtype that fits it.

Order: CUDA, then Apple MPS, then CPU. The dtype follows what each backend runs well:

- CUDA: bfloat16 where the card supports it (Ampere and newer), else float16 (T4, V100);
- MPS: float16, which Apple GPUs run natively;
- CPU: float32. CPU bf16 autocast exists but is many times slower on most laptops (TRL on this
  course's CI machine ran ~17x slower with it), and tiny models do not need the memory saving.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch


@dataclass(frozen=True)
class DeviceChoice:
    device: torch.device
    dtype: torch.dtype
    reason: str

    @property
    def kind(self) -> str:
        return self.device.type


def pick_device(prefer: str | None = None) -> DeviceChoice:
    """Choose a device (and its dtype). ``prefer`` ("cuda", "mps", "cpu") forces one, and fails
    clearly when it is not available rather than falling back silently."""
    has_cuda = torch.cuda.is_available()
    has_mps = bool(getattr(torch.backends, "mps", None)) and torch.backends.mps.is_available()
    if prefer is not None and prefer not in ("cuda", "mps", "cpu"):
        raise ValueError(f"unknown device {prefer!r}; choose 'cuda', 'mps' or 'cpu'")
    if prefer == "cuda" and not has_cuda:
        raise RuntimeError("device 'cuda' was asked for but torch.cuda.is_available() is False")
    if prefer == "mps" and not has_mps:
        raise RuntimeError("device 'mps' was asked for but torch.backends.mps.is_available() is False")

    if prefer in (None, "cuda") and has_cuda:
        if torch.cuda.is_bf16_supported():
            return DeviceChoice(torch.device("cuda"), torch.bfloat16, "CUDA GPU with bfloat16 support")
        return DeviceChoice(torch.device("cuda"), torch.float16, "CUDA GPU without bfloat16: float16")
    if prefer in (None, "mps") and has_mps:
        return DeviceChoice(torch.device("mps"), torch.float16, "Apple GPU (MPS): float16")
    return DeviceChoice(torch.device("cpu"), torch.float32, "CPU: float32")


def device_name() -> str:
    """The GPU's name, or the CPU with its thread count: what a shipped measurement ran on."""
    if torch.cuda.is_available():
        return torch.cuda.get_device_name(0)
    return f"CPU ({torch.get_num_threads()} threads)"
