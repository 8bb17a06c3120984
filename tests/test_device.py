import pytest
import torch

from lfm_helpers.device import pick_device


def _fake(monkeypatch, cuda=False, bf16=False, mps=False):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: cuda)
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda *a, **k: bf16)
    monkeypatch.setattr(torch.backends.mps, "is_available", lambda: mps)


def test_cpu_gets_float32(monkeypatch):
    _fake(monkeypatch)
    choice = pick_device()
    assert choice.kind == "cpu" and choice.dtype == torch.float32


def test_cuda_first_with_bf16_when_supported(monkeypatch):
    _fake(monkeypatch, cuda=True, bf16=True, mps=True)
    choice = pick_device()
    assert choice.kind == "cuda" and choice.dtype == torch.bfloat16


def test_old_cuda_gets_float16(monkeypatch):
    _fake(monkeypatch, cuda=True, bf16=False)
    assert pick_device().dtype == torch.float16


def test_mps_before_cpu(monkeypatch):
    _fake(monkeypatch, mps=True)
    choice = pick_device()
    assert choice.kind == "mps" and choice.dtype == torch.float16


def test_forcing_cpu_on_a_gpu_machine(monkeypatch):
    _fake(monkeypatch, cuda=True, bf16=True)
    assert pick_device("cpu").kind == "cpu"


def test_missing_device_is_an_error_not_a_fallback(monkeypatch):
    _fake(monkeypatch)
    with pytest.raises(RuntimeError, match="cuda"):
        pick_device("cuda")
    with pytest.raises(ValueError, match="unknown device"):
        pick_device("tpu")
