import dataclasses

import pytest
import torch
from transformers import Lfm2ForCausalLM

from lfm_helpers.models import build_model, count_parameters, load_model, tiny_lfm2_config
from lfm_helpers.presets import PRESETS, ModelSpec

SMALL = dataclasses.replace(
    PRESETS["tiny"],
    vocab_size=300,
    model=ModelSpec(hidden_size=32, num_layers=4, attention_layers=(1, 3), num_heads=4, num_kv_heads=2,
                    intermediate_size=48, max_position_embeddings=128),
)


def test_config_has_the_hybrid_layout_and_exact_ffn():
    cfg = tiny_lfm2_config(PRESETS["tiny"])
    assert cfg.layer_types == ["conv", "conv", "full_attention", "conv", "conv", "full_attention"]
    model = build_model(cfg)
    assert isinstance(model, Lfm2ForCausalLM)
    assert model.model.layers[0].feed_forward.w1.out_features == PRESETS["tiny"].model.intermediate_size
    kinds = [type(layer.conv if hasattr(layer, "conv") else layer.self_attn).__name__ for layer in model.model.layers]
    assert kinds.count("Lfm2Attention") == 2 and kinds.count("Lfm2ShortConv") == 4


def test_parameter_accounting_adds_up_and_ties_embeddings():
    model = build_model(tiny_lfm2_config(SMALL))
    parts = count_parameters(model)
    assert parts["total"] == sum(v for k, v in parts.items() if k != "total")
    assert parts["embedding"] == 300 * 32  # tied: counted once
    assert model.lm_head.weight.data_ptr() == model.model.embed_tokens.weight.data_ptr()


def test_build_is_seeded():
    a = build_model(tiny_lfm2_config(SMALL), seed=1)
    b = build_model(tiny_lfm2_config(SMALL), seed=1)
    c = build_model(tiny_lfm2_config(SMALL), seed=2)
    assert torch.equal(a.model.embed_tokens.weight, b.model.embed_tokens.weight)
    assert not torch.equal(a.model.embed_tokens.weight, c.model.embed_tokens.weight)


def test_save_and_load_round_trip(tmp_path):
    model = build_model(tiny_lfm2_config(SMALL)).eval()
    model.save_pretrained(tmp_path / "m")
    assert (tmp_path / "m" / "model.safetensors").is_file()
    loaded = load_model(tmp_path / "m").eval()
    ids = torch.tensor([[1, 5, 9, 200, 7]])
    with torch.no_grad():
        assert torch.allclose(model(ids).logits, loaded(ids).logits)
    assert loaded.config.layer_types == model.config.layer_types


def test_missing_local_folder_is_a_clear_error(tmp_path):
    with pytest.raises(FileNotFoundError, match="does not exist"):
        load_model(tmp_path / "nowhere")
