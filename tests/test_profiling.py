"""The architecture profiler: matched configs, cache formulas against real cache objects, the
analytical model, memory measurement, the stored table and the command. Tiny sizes, no timings asserted."""

import dataclasses

import matplotlib

matplotlib.use("Agg")

import pandas as pd
import pytest
import torch
from transformers import AutoModelForCausalLM

from lfm_helpers import presets, profiling
from lfm_helpers.__main__ import main
from lfm_helpers.memory import count_parameters_meta, load_public_config
from lfm_helpers.plotting import plot_cache_at_scale, plot_cache_bytes, plot_profile_latency
from lfm_helpers.presets import PROFILE_SIZES, ModelSpec, ProfileBudget

MICRO = ProfileBudget(
    name="micro",
    model=ModelSpec(hidden_size=128, num_layers=4, attention_layers=(1, 3), num_heads=2, num_kv_heads=1,
                    intermediate_size=256, max_position_embeddings=256),
    vocab_size=256,
    sliding_window=16,
    contexts=(8, 40),
    prefill_warmup=0,
    prefill_repeats=1,
    decode_tokens=3,
    decode_warmup=1,
)


@pytest.fixture(scope="module")
def micro_configs():
    return profiling.matched_configs(MICRO)


@pytest.mark.parametrize("size", ["small", "realistic"])
def test_matched_configs_are_within_five_percent(size):
    table = profiling.architecture_table(profiling.matched_configs(PROFILE_SIZES[size]))
    assert list(table["architecture"]) == list(profiling.ARCHITECTURES)
    assert table["vs_lfm2_pct"].abs().max() < 5


def test_realistic_lfm2_is_lfm2_350m_and_patterns_are_each_familys():
    configs = profiling.matched_configs(PROFILE_SIZES["realistic"])
    assert count_parameters_meta(configs["lfm2"]) == 354_483_968  # the LFM2-350M model card
    patterns = {arch: profiling.layer_pattern(cfg) for arch, cfg in configs.items()}
    assert patterns == {"lfm2": "10 conv + 6 global attn", "gemma3": "14 sliding attn + 2 global attn",
                        "qwen3_5": "12 DeltaNet + 4 global attn", "gqa": "16 global attn"}
    assert configs["gemma3"].sliding_window == 512


def test_unknown_architecture_is_an_error():
    with pytest.raises(ValueError, match="unknown architecture"):
        profiling.architecture_config("mamba", MICRO)


@pytest.mark.parametrize("arch", list(profiling.ARCHITECTURES))
def test_measured_cache_equals_formula(arch, micro_configs):
    """Prefill past the sliding window, then decode: the cache object holds what the formula says."""
    config = micro_configs[arch]
    torch.manual_seed(0)
    model = AutoModelForCausalLM.from_config(config).eval()
    with torch.inference_mode():
        out = model(input_ids=torch.randint(0, 256, (1, 40)), use_cache=True, logits_to_keep=1)
        cache = out.cache
        assert profiling.measured_cache_bytes(cache) == profiling.decode_state_bytes(config, 40)
        for token in (3, 5):
            model(input_ids=torch.tensor([[token]]), cache=cache, use_cache=True)
    assert profiling.measured_cache_bytes(cache) == profiling.decode_state_bytes(config, 42)


def test_state_formula_by_layer_kind(micro_configs):
    lfm2, gemma, qwen, gqa = (micro_configs[a] for a in ("lfm2", "gemma3", "qwen3_5", "gqa"))
    kv_token = 2 * 1 * 64 * 4  # K and V x 1 kv head x head dim 64 x float32
    assert profiling.decode_state_bytes(gqa, 100)["kv"] == 4 * 100 * kv_token
    assert profiling.decode_state_bytes(lfm2, 100) == {"kv": 2 * 100 * kv_token, "conv": 2 * 128 * 3 * 4,
                                                        "recurrent": 0}
    # Gemma style, 4 layers: all sliding (the global one is every 6th); capped at window - 1 = 15 tokens
    assert profiling.decode_state_bytes(gemma, 10)["kv"] == 4 * 10 * kv_token
    assert profiling.decode_state_bytes(gemma, 1000)["kv"] == 4 * 15 * kv_token
    # Qwen3.5 style: 3 DeltaNet layers (one 128 x 128 state, conv over q, k, v with 4 taps) + 1 attention
    state = profiling.decode_state_bytes(qwen, 100, bytes_per_value=2)
    assert state == {"kv": 100 * kv_token // 2, "conv": 3 * 384 * 4 * 2, "recurrent": 3 * 128 * 128 * 2}


def test_analytical_flops_and_bytes(micro_configs):
    gqa, lfm2, gemma = micro_configs["gqa"], micro_configs["lfm2"], micro_configs["gemma3"]
    short, long = profiling.analytical_decode_flops(gqa, 100), profiling.analytical_decode_flops(gqa, 200)
    assert short["matmul"] == long["matmul"]
    assert long["mixing"] - short["mixing"] == 4 * 4 * 2 * 64 * 100  # 4 layers x 4 x heads x head_dim x 100 tokens
    assert profiling.analytical_decode_flops(gemma, 100)["mixing"] == profiling.analytical_decode_flops(gemma, 10_000)["mixing"]
    conv_only = profiling.analytical_decode_flops(lfm2, 0)["mixing"]
    assert conv_only == 2 * (2 * 128 * 3 + 2 * 128)  # two conv layers, nothing from empty attention
    traffic = profiling.analytical_decode_bytes(gqa, 100)
    assert traffic["weights"] == count_parameters_meta(gqa) * 4  # tied: the LM head reads the embedding
    assert traffic["state"] == profiling.decode_state_bytes(gqa, 100)["kv"]


def test_real_configs_count_and_cache_arithmetic():
    gemma, qwen = load_public_config("Gemma-3-270M"), load_public_config("Qwen3-0.6B")
    assert count_parameters_meta(gemma) == 268_098_176
    assert count_parameters_meta(qwen) == 596_049_920
    # Gemma 3 270M: 3 global layers keep every token, 15 local ones 511; 1 kv head of 256; bf16
    assert profiling.decode_state_bytes(gemma, 32768, bytes_per_value=2)["kv"] == \
        3 * 2 * 256 * 32768 * 2 + 15 * 2 * 256 * 511 * 2
    assert profiling.decode_state_bytes(qwen, 4096, bytes_per_value=2)["kv"] == 28 * 2 * 8 * 128 * 4096 * 2
    table = profiling.cache_at_scale()
    fits = {(r.model, r.context): r.fits for r in table.itertuples()}
    assert fits == {("LFM2-350M", 4096): True, ("LFM2-350M", 32768): False, ("Gemma-3-270M", 4096): True,
                    ("Gemma-3-270M", 32768): True, ("Qwen3-0.6B", 4096): False, ("Qwen3-0.6B", 32768): False}
    assert len(plot_cache_at_scale(table).patches) == 3 * len(table)


def test_kernel_paths_follow_importability(monkeypatch):
    paths = profiling.kernel_paths()
    assert set(paths) == {"short conv", "gated DeltaNet", "attention", "device", "torch"}
    real_import = profiling.importlib.import_module

    def fake_import(name, *args):
        if name in ("causal_conv1d", "fla"):
            return object()
        return real_import(name, *args)

    monkeypatch.setattr(profiling.importlib, "import_module", fake_import)
    assert profiling.kernel_paths()["gated DeltaNet"] == "flash-linear-attention kernels"
    assert profiling.kernel_paths()["short conv"] == "causal-conv1d kernel"


def _hold_memory():
    x = torch.ones(20_000_000)  # 80 MB
    x += 1
    torch.testing.assert_close(x[:3], torch.full((3,), 2.0))
    return x


def test_peak_rss_sees_a_transient_allocation():
    with profiling.PeakRSS() as memory:
        del_me = _hold_memory()
        del del_me
    assert memory.peak - memory.baseline > 60e6
    assert memory.method


def test_peak_rss_falls_back_to_sampling(monkeypatch):
    import builtins
    import time

    real_open = builtins.open

    def no_clear_refs(path, *args, **kwargs):
        if str(path) == "/proc/self/clear_refs":
            raise OSError("not allowed here")
        return real_open(path, *args, **kwargs)

    monkeypatch.setattr(builtins, "open", no_clear_refs)
    with profiling.PeakRSS() as memory:
        held = _hold_memory()
        time.sleep(0.1)  # long enough for several 5 ms samples
        del held
    assert memory.method.startswith("psutil")
    assert memory.peak - memory.baseline > 60e6


def test_profile_table_is_tidy_and_consistent():
    threads = torch.get_num_threads()
    table = profiling.profile_architectures(MICRO, progress=False)
    assert torch.get_num_threads() == threads  # restored
    assert len(table) == len(profiling.ARCHITECTURES) * len(MICRO.contexts)
    assert (table["cache_bytes"] == table["cache_bytes_formula"]).all()
    assert (table[["prefill_s", "decode_ms", "peak_rss_mb"]] > 0).all().all()
    assert (table["threads"] == profiling.resolve_threads(MICRO)).all()
    gqa = table[table["architecture"] == "gqa"].set_index("context")["cache_bytes"]
    assert gqa[40] == 5 * gqa[8]  # full attention grows linearly with the context
    summary = profiling.profile_summary(table)
    assert summary["longest_context"] == 40 and summary["cache_matches_formula"]
    ratios = profiling.relative_to_lfm2(table)
    assert (ratios.loc["lfm2"] == 1.0).all()
    axes = plot_profile_latency(table)
    assert len(axes[0].lines) == len(profiling.ARCHITECTURES)
    curve = profiling.analytical_table(profiling.matched_configs(MICRO), (8, 16, 40))
    ax = plot_cache_bytes(table, curve)
    assert len(ax.lines) == 2 * len(profiling.ARCHITECTURES)
    assert "cache_mb" in profiling.format_profile_table(table)


def test_run_profile_stores_and_reuses(runs_root, monkeypatch):
    monkeypatch.setitem(PROFILE_SIZES, "micro", MICRO)
    first = profiling.run_profile("tiny", size="micro", architectures=("lfm2", "gqa"), progress=False, log=lambda s: None)
    assert first.path == runs_root / "tiny" / "profile" / "micro" and not first.reused
    assert (first.path / "profile.csv").is_file() and first.metrics["cache_matches_formula"]
    assert first.metrics["cpu"] == profiling.cpu_name() and first.metrics["threads"] >= 1
    again = profiling.run_profile("tiny", size="micro", architectures=("lfm2", "gqa"), progress=False, log=lambda s: None)
    assert again.reused
    pd.testing.assert_frame_equal(first.table, again.table)
    other = profiling.run_profile("tiny", size="micro", contexts=(12,), architectures=("lfm2",), progress=False,
                                  log=lambda s: None)
    assert not other.reused and list(other.table["context"]) == [12]
    pd.testing.assert_frame_equal(profiling.stored_profile("tiny", "micro"), other.table)
    assert profiling.stored_profile("tiny", "realistic") is None
    with pytest.raises(ValueError, match="unknown profile size"):
        profiling.run_profile("tiny", size="huge")


def test_profile_command(runs_root, monkeypatch, capsys):
    monkeypatch.setitem(PROFILE_SIZES, "small", dataclasses.replace(MICRO, name="small"))
    assert main(["profile", "--size", "small", "--architectures", "lfm2", "gqa", "--contexts", "8", "16"]) == 0
    out = capsys.readouterr().out
    assert "threads:" in out and "short conv:" in out and "profile.csv" in out
    assert (runs_root / "tiny" / "profile" / "small" / "profile.csv").is_file()
    assert main(["profile", "--architectures", "mamba"]) == 2


def test_presets_carry_a_valid_profile_budget():
    assert presets.PRESETS["tiny"].profile.name == "small"
    assert presets.PRESETS["full"].profile.contexts[-1] == 16384
    with pytest.raises(ValueError, match="increasing"):
        dataclasses.replace(MICRO, contexts=(40, 8))
    with pytest.raises(ValueError, match="max_position_embeddings"):
        dataclasses.replace(MICRO, contexts=(8, 300))
