import dataclasses

import pytest

from lfm_helpers.presets import PRESETS, ModelSpec, load_preset


def test_default_is_tiny(monkeypatch):
    monkeypatch.delenv("LFM_PRESET", raising=False)
    assert load_preset().name == "tiny"


def test_env_var_selects_preset(monkeypatch):
    monkeypatch.setenv("LFM_PRESET", "colab")
    assert load_preset(check_device=False).name == "colab"


def test_unknown_preset_names_the_valid_ones(monkeypatch):
    monkeypatch.setenv("LFM_PRESET", "huge")
    with pytest.raises(ValueError, match=r"unknown preset 'huge'; valid presets: colab, full, tiny"):
        load_preset()


def test_gpu_preset_fails_clearly_without_gpu(monkeypatch):
    monkeypatch.setattr("torch.cuda.is_available", lambda: False)
    with pytest.raises(RuntimeError, match="needs a CUDA GPU"):
        load_preset("colab")


def test_presets_are_frozen():
    with pytest.raises(dataclasses.FrozenInstanceError):
        PRESETS["tiny"].vocab_size = 10  # type: ignore[misc]


def test_colab_names_the_real_checkpoint():
    colab = PRESETS["colab"]
    assert colab.sources.base_model == "LiquidAI/LFM2.5-350M"
    assert colab.model.layer_types.count("full_attention") == 6  # LFM2-350M: 10 conv + 6 GQA
    local = colab.with_base_model("/tmp/some-folder")
    assert local.sources.base_model == local.sources.tokenizer == "/tmp/some-folder"
    assert colab.sources.base_model == "LiquidAI/LFM2.5-350M"  # the original is unchanged


def test_tiny_is_hybrid():
    types = PRESETS["tiny"].model.layer_types
    assert types.count("full_attention") >= 2 and types.count("conv") > types.count("full_attention")


@pytest.mark.parametrize(
    "kwargs, message",
    [
        (dict(attention_layers=(1, 9)), "outside"),
        (dict(attention_layers=(1,)), "at least two"),
        (dict(num_heads=8), "not divisible"),
        (dict(num_kv_heads=4), "cannot be grouped"),
    ],
)
def test_model_spec_rejects_impossible_shapes(kwargs, message):
    base = dict(hidden_size=60, num_layers=4, attention_layers=(1, 3), num_heads=6, num_kv_heads=2,
                intermediate_size=64)
    with pytest.raises(ValueError, match=message):
        ModelSpec(**{**base, **kwargs})
