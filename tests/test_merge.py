"""The mergekit helper: exact results for the simple methods, and a loud error when weights vanish."""

from __future__ import annotations

import pytest
import torch
from safetensors.torch import load_file

from conftest import SMALL
from lfm_helpers.merge import MergeSpec, merge_models, tiny_moe_parents, verify_merge
from lfm_helpers.models import build_model, tiny_lfm2_config
from lfm_helpers.tokenizer import save_tokenizer, train_tokenizer


@pytest.fixture(scope="module")
def parents(tmp_path_factory):
    """A base and two 'fine-tuned' children of it (the base plus different random deltas)."""
    root = tmp_path_factory.mktemp("parents")
    tok = train_tokenizer(["the lamp ships on monday to the city of lindo"] * 50, vocab_size=300)
    base = build_model(tiny_lfm2_config(SMALL, vocab_size=len(tok)), seed=0)
    folders = {}
    for name, seed in (("base", None), ("a", 1), ("b", 2)):
        model = build_model(tiny_lfm2_config(SMALL, vocab_size=len(tok)), seed=0)
        if seed is not None:
            g = torch.Generator().manual_seed(seed)
            with torch.no_grad():
                for p in model.parameters():
                    p.add_(0.02 * torch.randn(p.shape, generator=g))
        folders[name] = root / name
        model.save_pretrained(folders[name])
        save_tokenizer(tok, folders[name])
    del base
    return {k: str(v) for k, v in folders.items()}


def _weights(folder):
    return load_file(f"{folder}/model.safetensors")


def test_a_merge_keeps_the_parents_generation_settings(parents, tmp_path):
    """mergekit writes none; without it a merged model may generate without a KV cache."""
    import shutil

    from transformers import GenerationConfig

    a = shutil.copytree(parents["a"], tmp_path / "a")
    GenerationConfig(use_cache=True, eos_token_id=2).save_pretrained(a)
    merge_models(MergeSpec("linear", (str(a), parents["b"])), tmp_path / "m")
    assert GenerationConfig.from_pretrained(tmp_path / "m").to_dict() == GenerationConfig.from_pretrained(a).to_dict()
    assert GenerationConfig.from_pretrained(tmp_path / "m").use_cache


def test_linear_merge_is_the_weighted_average(parents, tmp_path):
    summary = merge_models(MergeSpec("linear", (parents["a"], parents["b"]), weights=(0.3, 0.7)), tmp_path / "m")
    a, b, m = _weights(parents["a"]), _weights(parents["b"]), _weights(tmp_path / "m")
    assert set(m) == set(a) and summary["tensors"] == len(a)
    for name in a:
        torch.testing.assert_close(m[name], 0.3 * a[name] + 0.7 * b[name], rtol=0, atol=1e-6)
    assert (tmp_path / "m" / "tokenizer.json").exists() and (tmp_path / "m" / "chat_template.jinja").exists()


@pytest.mark.parametrize("t,expected", [(0.0, "base"), (1.0, "a")])
def test_slerp_ends_are_the_parents(parents, tmp_path, t, expected):
    merge_models(MergeSpec("slerp", (parents["a"],), base=parents["base"], t=t), tmp_path / "m")
    m, want = _weights(tmp_path / "m"), _weights(parents[expected])
    for name in want:
        torch.testing.assert_close(m[name], want[name], rtol=0, atol=1e-5)


def test_dare_and_ties_at_full_density_reduce_to_task_arithmetic(parents, tmp_path):
    both = (parents["a"], parents["b"])
    ta = merge_models(MergeSpec("task_arithmetic", both, weights=(0.5, 0.5), base=parents["base"]), tmp_path / "ta")
    merge_models(MergeSpec("dare_linear", both, weights=(0.5, 0.5), base=parents["base"], density=1.0), tmp_path / "dare")
    # TIES elects a sign per weight: with a single task vector there is no conflict to resolve
    merge_models(MergeSpec("ties", (parents["a"],), weights=(1.0,), base=parents["base"], density=1.0, normalize=False),
                 tmp_path / "ties")
    merge_models(MergeSpec("task_arithmetic", (parents["a"],), weights=(1.0,), base=parents["base"]), tmp_path / "ta1")
    base, a, b = _weights(parents["base"]), _weights(parents["a"]), _weights(parents["b"])
    ta_w, dare_w = _weights(tmp_path / "ta"), _weights(tmp_path / "dare")
    for name in base:
        expected = base[name] + 0.5 * (a[name] - base[name]) + 0.5 * (b[name] - base[name])
        torch.testing.assert_close(ta_w[name], expected, rtol=0, atol=1e-6)
        torch.testing.assert_close(dare_w[name], ta_w[name], rtol=0, atol=1e-6)
    ties_w, ta1_w = _weights(tmp_path / "ties"), _weights(tmp_path / "ta1")
    for name in base:
        torch.testing.assert_close(ties_w[name], ta1_w[name], rtol=0, atol=1e-6)
        torch.testing.assert_close(ta1_w[name], a[name], rtol=0, atol=1e-6)
    assert ta["config"]["merge_method"] == "task_arithmetic"


def test_dare_below_full_density_drops_and_rescales(parents, tmp_path):
    merge_models(MergeSpec("dare_linear", (parents["a"],), weights=(1.0,), base=parents["base"], density=0.5, seed=3),
                 tmp_path / "m")
    base, a, m = _weights(parents["base"]), _weights(parents["a"]), _weights(tmp_path / "m")
    name = next(n for n in base if base[n].numel() > 1000)
    delta, merged = a[name] - base[name], m[name] - base[name]
    kept = merged.abs() > 1e-9
    assert 0.35 < kept.float().mean() < 0.65  # about half the differences dropped
    ratio = merged[kept] / delta[kept]  # the rest scaled up by one factor, about 1/density (mergekit
    assert ratio.std() / ratio.mean() < 1e-3 and 1.6 < ratio.mean() < 2.4  # matches the difference's norm)


def test_bad_specs_are_refused(parents, tmp_path):
    with pytest.raises(ValueError, match="unknown merge method"):
        MergeSpec("average", (parents["a"],))
    with pytest.raises(ValueError, match="needs a base"):
        MergeSpec("ties", (parents["a"],))
    with pytest.raises(ValueError, match="t in"):
        MergeSpec("slerp", (parents["a"],), base=parents["base"], t=1.5)
    with pytest.raises(ValueError, match="weights for"):
        MergeSpec("linear", (parents["a"], parents["b"]), weights=(1.0,))
    with pytest.raises(ValueError, match="has no density"):
        MergeSpec("linear", (parents["a"],), density=0.5)
    merge_models(MergeSpec("linear", (parents["a"], parents["b"])), tmp_path / "m")
    with pytest.raises(FileExistsError):
        merge_models(MergeSpec("linear", (parents["a"], parents["b"])), tmp_path / "m")


def test_a_merge_that_loses_weights_fails_loudly(tmp_path):
    """An architecture mergekit has no definition for (LFM2-MoE): its experts would be dropped
    and re-initialised at load time, silently. The helper must raise instead."""
    folders = tiny_moe_parents(tmp_path)
    with pytest.raises(ValueError, match="tensors missing.*experts"):
        merge_models(MergeSpec("linear", folders), tmp_path / "m")
    assert not (tmp_path / "m").exists()  # nothing half-written


def test_verify_catches_a_dropped_tensor(parents, tmp_path):
    from safetensors.torch import save_file

    weights = _weights(parents["a"])
    dropped = sorted(weights)[3]
    broken = tmp_path / "broken"
    broken.mkdir()
    save_file({k: v for k, v in weights.items() if k != dropped}, str(broken / "model.safetensors"))
    with pytest.raises(ValueError, match="1 tensors missing"):
        verify_merge(parents["a"], broken)


def test_colab_sweep_merges_the_real_lfm2_layout(tmp_path):
    """The colab preset merges hub checkpoints of LFM2.5-350M with the same helper. Local folders
    stand in for the hub ids: models of the real LFM2-350M config (its 16 layers, conv and
    attention in the real order, its heads), narrowed so three fit in a test."""
    from transformers import AutoModelForCausalLM

    from lfm_helpers.memory import load_public_config
    from lfm_helpers.merge_study import sweep_specs
    from lfm_helpers.presets import PRESETS

    config = load_public_config("LFM2-350M")
    config.update({"hidden_size": 64, "intermediate_size": 128, "vocab_size": 300, "block_auto_adjust_ff_dim": False})
    tok = train_tokenizer(["the lamp ships on monday to the city of lindo"] * 50, vocab_size=300)
    folders = {}
    for name, seed in (("LiquidAI--LFM2.5-350M", 0), ("extraction", 1), ("tool_use", 2)):
        torch.manual_seed(seed)
        model = AutoModelForCausalLM.from_config(config)
        folders[name] = str(tmp_path / name)
        model.save_pretrained(folders[name])
        save_tokenizer(tok, folders[name])
    specs = sweep_specs(PRESETS["colab"].merging, folders["extraction"], folders["tool_use"], folders["LiquidAI--LFM2.5-350M"])
    assert {m for m, _, _ in specs} == {"linear", "slerp", "task_arithmetic", "ties", "dare_ties"}
    for method, value, spec in specs[::3]:  # one merge of each method
        out = tmp_path / f"{method}-{value}"
        report = merge_models(spec, out)
        assert report["tensors"] == len(_weights(folders["extraction"]))
        merged = AutoModelForCausalLM.from_pretrained(out)
        assert merged.config.layer_types == config.layer_types and merged.config.architectures == ["Lfm2ForCausalLM"]
