import matplotlib

matplotlib.use("Agg")

import pytest

from lfm_helpers.memory import (
    GB,
    conv_state_bytes,
    count_parameters_meta,
    decode_speed_bound,
    kv_cache_bytes,
    load_public_config,
    memory_table,
    weight_bytes,
)
from lfm_helpers.plotting import plot_memory_budget


@pytest.mark.parametrize("name, card", [("LFM2-350M", 354_483_968), ("LFM2-1.2B", 1_170_340_608)])
def test_exact_parameter_counts_match_model_cards(name, card):
    assert count_parameters_meta(load_public_config(name)) == card


def test_cache_arithmetic_for_lfm2_350m():
    cfg = load_public_config("LFM2-350M")
    # 6 attention layers x 8 kv heads x head dim 64 x (K and V) x 2 bytes per token
    assert kv_cache_bytes(cfg, 1) == 6 * 8 * 64 * 2 * 2
    assert kv_cache_bytes(cfg, 4096) == 4096 * kv_cache_bytes(cfg, 1)
    # 10 conv layers x 1024 channels x 3 taps x 2 bytes, whatever the context
    assert conv_state_bytes(cfg) == 10 * 1024 * 3 * 2


def test_weight_bytes_and_unknown_precision():
    assert weight_bytes(1000, "bf16") == 2000
    assert weight_bytes(32, "q8_0") == 34  # 32 int8 weights + one fp16 scale
    assert weight_bytes(32, "q4_0") == 18
    with pytest.raises(ValueError, match="unknown precision"):
        weight_bytes(1, "fp8")


def test_memory_table_budget_verdicts():
    rows = {(r.model, r.precision): r for r in memory_table(["LFM2-350M", "LFM2-1.2B"], ["bf16", "int4"])}
    assert rows["LFM2-350M", "bf16"].fits
    assert not rows["LFM2-1.2B", "bf16"].fits and rows["LFM2-1.2B", "int4"].fits
    assert rows["LFM2-1.2B", "bf16"].weights_gb == pytest.approx(1_170_340_608 * 2 / GB)
    ax = plot_memory_budget(list(rows.values()))
    assert len(ax.patches) == 8  # weights and cache bars for 4 rows


def test_missing_config_lists_available(tmp_path):
    with pytest.raises(FileNotFoundError, match="LFM2-350M"):
        load_public_config("LFM9-7B")


def test_decode_speed_bound():
    assert decode_speed_bound(1e9, 100) == pytest.approx(100.0)
    with pytest.raises(ValueError):
        decode_speed_bound(0, 10)


def test_sliding_window_layers_are_counted_up_to_their_window():
    gemma = load_public_config("Gemma-3-270M")
    per_token = 2 * gemma.num_key_value_heads * gemma.head_dim * 2  # K and V, bf16
    n_global = gemma.layer_types.count("full_attention")
    n_local = gemma.layer_types.count("sliding_attention")
    assert n_local > 0
    expected = per_token * (n_global * 32768 + n_local * (gemma.sliding_window - 1))
    assert kv_cache_bytes(gemma, 32768) == expected
