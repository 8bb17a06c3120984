"""load_for_finetuning: LoRA on exactly LFM2's projections, full fine-tuning, backend choice."""

from __future__ import annotations

import dataclasses

import pytest
import torch
from peft import PeftModel
from transformers import Lfm2ForCausalLM

from conftest import SENTENCES, SMALL
from lfm_helpers import finetune
from lfm_helpers.finetune import (
    BACKENDS,
    LFM2_LORA_TARGETS,
    LoraSpec,
    backend_for,
    load_for_finetuning,
    lora_modules,
    trainable_parameters,
    unsloth_available,
)
from lfm_helpers.models import build_model, load_model, tiny_lfm2_config
from lfm_helpers.presets import PRESETS
from lfm_helpers.tokenizer import CHAT_TEMPLATE, save_tokenizer, train_tokenizer


@pytest.fixture(scope="module")
def tiny_folder(tmp_path_factory):
    """A tiny LFM2 (SMALL: 2 conv + 2 attention layers) and its tokenizer, saved like a stage."""
    folder = tmp_path_factory.mktemp("tiny_lfm2")
    tok = train_tokenizer(SENTENCES * 3, vocab_size=SMALL.vocab_size, model_max_length=128)
    config = tiny_lfm2_config(SMALL, vocab_size=len(tok), pad_token_id=tok.pad_token_id,
                              bos_token_id=tok.bos_token_id, eos_token_id=tok.eos_token_id)
    build_model(config, seed=0).save_pretrained(folder)
    save_tokenizer(tok, folder)
    return folder


@pytest.fixture(autouse=True)
def no_gpu_no_unsloth(monkeypatch):
    """Every test sees a CPU-only machine without Unsloth, whatever this machine has."""
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    monkeypatch.setattr(finetune, "_unsloth_installed", lambda: False)


def _targeted_linears(model, targets):
    return {name: module for name, module in model.named_modules()
            if isinstance(module, torch.nn.Linear) and name.rsplit(".", 1)[-1] in targets}


def test_targets_are_every_lfm2_projection_but_the_head(tiny_folder):
    model = load_model(tiny_folder)
    linears = {name for name, m in model.named_modules() if isinstance(m, torch.nn.Linear)}
    leaf_names = {name.rsplit(".", 1)[-1] for name in linears}
    assert set(LFM2_LORA_TARGETS) <= leaf_names
    assert linears - set(_targeted_linears(model, LFM2_LORA_TARGETS)) == {"lm_head"}  # tied to the embedding


def test_lora_wraps_exactly_the_targets_and_freezes_the_base(tiny_folder):
    base = load_model(tiny_folder)
    expected = _targeted_linears(base, LFM2_LORA_TARGETS)
    # SMALL: 2 conv layers x (in_proj, out_proj, w1, w2, w3) + 2 attention layers x (q, k, v, out, w1, w2, w3)
    assert len(expected) == 2 * 5 + 2 * 7

    spec = LoraSpec(r=4, alpha=8)
    model, tok, used = load_for_finetuning(tiny_folder, lora=spec, max_seq_length=64, backend="transformers")
    assert used == "transformers" and isinstance(model, PeftModel)
    assert isinstance(model.get_base_model(), Lfm2ForCausalLM)
    wrapped = lora_modules(model)
    assert len(wrapped) == len(expected)
    assert {name.removeprefix("base_model.model.") for name in wrapped} == set(expected)

    trainable = {n for n, p in model.named_parameters() if p.requires_grad}
    assert trainable and all("lora_A" in n or "lora_B" in n for n in trainable)  # base weights frozen
    analytic = sum(spec.r * (m.in_features + m.out_features) for m in expected.values())
    counts = trainable_parameters(model)
    assert counts["trainable"] == analytic
    assert counts["total"] == sum(p.numel() for p in base.parameters()) + analytic
    assert tok.chat_template == CHAT_TEMPLATE and tok.model_max_length == 64


def test_lora_starts_as_the_base_model(tiny_folder):
    base = load_model(tiny_folder).eval()
    model, _, _ = load_for_finetuning(tiny_folder, lora=LoraSpec(r=4), max_seq_length=64, backend="transformers")
    ids = torch.tensor([[1, 5, 9, 40, 7]])
    with torch.no_grad():  # B starts at zero, so the adapters add nothing yet
        assert torch.allclose(model.eval()(ids).logits, base(ids).logits)


def test_full_finetuning_trains_every_weight(tiny_folder):
    model, _, used = load_for_finetuning(tiny_folder, lora=None, max_seq_length=64, backend="transformers")
    assert used == "transformers" and isinstance(model, Lfm2ForCausalLM)
    assert all(p.requires_grad for p in model.parameters())
    assert lora_modules(model) == []
    assert trainable_parameters(model)["fraction"] == 1.0


def test_auto_on_cpu_falls_back_with_one_message(tiny_folder, capsys, monkeypatch):
    monkeypatch.setattr(finetune, "_unsloth_installed", lambda: True)  # installed, but no GPU
    monkeypatch.setattr(finetune, "_import_unsloth", lambda: pytest.fail("must not import unsloth without a GPU"))
    assert not unsloth_available()
    model, _, used = load_for_finetuning(tiny_folder, lora=LoraSpec(r=2), max_seq_length=64)
    assert used == "transformers" and isinstance(model, PeftModel)
    out = capsys.readouterr().out
    assert out.count("Unsloth not used") == 1
    assert "no CUDA GPU" in out and "transformers + peft" in out


def test_auto_with_a_gpu_but_no_unsloth_says_so(tiny_folder, capsys, monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda *a, **k: False)  # keeps float32 here
    assert not unsloth_available()
    _, _, used = load_for_finetuning(tiny_folder, lora=LoraSpec(r=2), max_seq_length=64)
    assert used == "transformers"
    out = capsys.readouterr().out
    assert out.count("Unsloth not used") == 1 and "not installed" in out


def test_forcing_unsloth_without_it_is_a_clear_error(tiny_folder, monkeypatch):
    with pytest.raises(RuntimeError, match="backend='unsloth'.*not installed.*backend='auto'"):
        load_for_finetuning(tiny_folder, lora=LoraSpec(), max_seq_length=64, backend="unsloth")

    def broken():
        raise ImportError("torchvision CUDA build cannot load")

    monkeypatch.setattr(finetune, "_unsloth_installed", lambda: True)
    monkeypatch.setattr(finetune, "_import_unsloth", broken)
    with pytest.raises(RuntimeError, match="import unsloth failed: ImportError: torchvision"):
        load_for_finetuning(tiny_folder, lora=LoraSpec(), max_seq_length=64, backend="unsloth")


def test_unknown_backend_lists_the_valid_ones(tiny_folder):
    with pytest.raises(ValueError, match="'fast'.*auto, unsloth, transformers"):
        load_for_finetuning(tiny_folder, lora=None, max_seq_length=64, backend="fast")
    assert BACKENDS == ("auto", "unsloth", "transformers")


def test_bad_inputs_are_clear_errors(tiny_folder, tmp_path):
    with pytest.raises(FileNotFoundError, match="does not exist"):
        load_for_finetuning(tmp_path / "nowhere", lora=None, max_seq_length=64, backend="transformers")
    with pytest.raises(ValueError, match=r"\['gate_proj'\] match no module"):
        load_for_finetuning(tiny_folder, lora=LoraSpec(target_modules=("q_proj", "gate_proj")),
                            max_seq_length=64, backend="transformers")
    with pytest.raises(ValueError, match="max_seq_length"):
        load_for_finetuning(tiny_folder, lora=None, max_seq_length=0)


def test_lora_spec_validates_and_hashes():
    assert LoraSpec().r == 16 and LoraSpec().alpha == 32 and LoraSpec().target_modules == LFM2_LORA_TARGETS
    spec = LoraSpec(target_modules=["q_proj", "v_proj"])
    assert spec.target_modules == ("q_proj", "v_proj")
    assert hash(spec) == hash(LoraSpec(target_modules=("q_proj", "v_proj")))
    for bad in (dict(r=0), dict(alpha=0), dict(dropout=1.0), dict(target_modules=())):
        with pytest.raises(ValueError):
            LoraSpec(**bad)
    with pytest.raises(TypeError):
        LoraSpec(target_modules="q_proj")
    with pytest.raises(dataclasses.FrozenInstanceError):
        spec.r = 4


def test_presets_choose_their_backend():
    assert backend_for(PRESETS["colab"]) == "auto"
    assert backend_for(PRESETS["tiny"]) == "transformers"
