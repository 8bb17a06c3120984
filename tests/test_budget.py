"""Embedding budgets: exact parameter accounting of real configs, vocabulary trades, the tokenizer
sweep, the designer and its widget."""

from __future__ import annotations

import json

import matplotlib

matplotlib.use("Agg")

import pandas as pd
import pytest
import torch
from transformers import AutoConfig, AutoModelForCausalLM, GPT2Config, Qwen3Config

from lfm_helpers import budget
from lfm_helpers.budget import (
    PARTS,
    SHIPPED_MODELS,
    as_config,
    break_even_token_ratio,
    budget_table,
    cheapest_vocabulary,
    decode_macs_per_token,
    design_model,
    designer_panel,
    hybrid_layer_types,
    leading_texts,
    parameter_budget,
    shipped_budgets,
    shrink_vocabulary,
    vocabulary_costs,
    vocabulary_sweep,
    vocabulary_trades,
)
from lfm_helpers.memory import count_parameters_meta, decode_state_bytes, load_public_config
from lfm_helpers.paths import data_dir
from lfm_helpers.plotting import plot_parameter_budgets, plot_vocabulary_tradeoff

#: Published totals: the LFM2 model cards and lfm2_facts.md's table (Gemma 3 270M, Qwen3-0.6B,
#: SmolLM2); Gemma 3 1B from Google's keras-hub preset metadata ("params": 999885952).
PUBLISHED = {
    "LFM2-350M": 354_483_968, "LFM2-700M": 742_489_344, "LFM2-1.2B": 1_170_340_608, "LFM2-2.6B": 2_569_272_320,
    "Gemma-3-270M": 268_098_176, "Gemma-3-1B": 999_885_952, "Qwen3-0.6B": 596_049_920,
    "SmolLM2-135M": 134_515_008, "SmolLM2-360M": 361_821_120,
}
#: Embedding shares (percent) quoted by the reference sheet.
PUBLISHED_SHARES = {"Gemma-3-270M": 62.6, "Gemma-3-1B": 30.2, "Qwen3-0.6B": 26.1, "SmolLM2-135M": 21.0,
                    "SmolLM2-360M": 13.0, "LFM2-350M": 18.9, "LFM2-1.2B": 11.5}


def small_qwen3(**overrides) -> Qwen3Config:
    fields = dict(vocab_size=1000, hidden_size=64, intermediate_size=128, num_hidden_layers=2,
                  num_attention_heads=4, num_key_value_heads=2, head_dim=16, tie_word_embeddings=True)
    return Qwen3Config(**{**fields, **overrides})


@pytest.fixture(scope="module")
def table() -> pd.DataFrame:
    return budget_table(shipped_budgets().values())


# --------------------------------------------------------------------------- exact accounting
def test_every_shipped_config_reproduces_its_published_total(table):
    assert list(table["model"]) == list(SHIPPED_MODELS)
    assert dict(zip(table["model"], table["total"])) == PUBLISHED
    assert (table[list(PARTS)].sum(axis=1) == table["total"]).all()


@pytest.mark.parametrize("name, pct", PUBLISHED_SHARES.items())
def test_embedding_shares_match_the_reference_sheet(table, name, pct):
    row = table.set_index("model").loc[name]
    assert 100 * (row["embedding"] + row["output_head"]) / row["total"] == pytest.approx(pct, abs=0.05)


def test_lfm2_350m_parts_by_hand():
    b = parameter_budget(load_public_config("LFM2-350M"), name="LFM2-350M")
    d, kv, ff = 1024, 8 * 64, 4608
    assert b.parts == {
        "embedding": 65_536 * d,
        "output_head": 0,  # tied: the head is the embedding matrix
        "attention": 6 * (2 * d * d + 2 * d * kv),  # q, out: d x d; k, v: d x (8 heads x 64)
        "convolution": 10 * (3 * d * d + d * d + 3 * d),  # in_proj d -> 3d, out_proj, depthwise kernel 3
        "linear_attention": 0,
        "mlp": 16 * 3 * d * ff,  # w1, w3: d -> ff; w2: ff -> d
        "norms": 16 * 2 * d + 6 * 2 * 64 + d,  # two per layer, QK-norms, the final norm
    }
    assert b.tied and b.num_layers == 16 and len(b.layer_params) == 16
    assert sum(b.layer_params) == b.total - b.parts["embedding"] - d  # everything but embedding and final norm
    assert b.row()["embedding_pct"] == 18.9


def test_tied_and_untied_heads():
    tied, untied = parameter_budget(small_qwen3()), parameter_budget(small_qwen3(tie_word_embeddings=False))
    assert tied.tied and tied.parts["output_head"] == 0
    assert not untied.tied and untied.parts["output_head"] == 1000 * 64
    assert untied.total == tied.total + 1000 * 64 == count_parameters_meta(small_qwen3(tie_word_embeddings=False))
    assert untied.vocab_params == 2 * 1000 * 64
    assert untied.embedding_share == pytest.approx(2 * 1000 * 64 / untied.total)


def test_object_dict_and_path_inputs_agree(tmp_path):
    path = data_dir() / "configs" / "SmolLM2-135M.json"
    fields = json.loads(path.read_text())
    folder = tmp_path / "SmolLM2-135M"
    folder.mkdir()
    (folder / "config.json").write_text(path.read_text())
    budgets = [parameter_budget(load_public_config("SmolLM2-135M")), parameter_budget(fields),
               parameter_budget(path), parameter_budget(str(folder / "config.json"))]
    assert {b.total for b in budgets} == {134_515_008}
    assert all(b.parts == budgets[0].parts for b in budgets)
    assert [b.name for b in budgets] == ["LlamaForCausalLM", "LlamaForCausalLM", "SmolLM2-135M", "SmolLM2-135M"]
    assert fields["model_type"] == "llama"  # the caller's dict is not consumed


@pytest.mark.parametrize("config, error, match", [
    ({"model_type": "gpt2", "n_embd": 64}, ValueError, "no parameter accounting for model_type 'gpt2'"),
    (GPT2Config(n_embd=64, n_layer=1, n_head=2), ValueError, "known: gemma3_text, lfm2"),
    ({"model_type": "gemma3", "text_config": {}}, ValueError, "pass its text_config"),
    ({"hidden_size": 64}, ValueError, "no model_type"),
    ("does/not/exist/config.json", FileNotFoundError, "load_public_config"),
    (42, TypeError, "expected a transformers config"),
])
def test_unknown_or_malformed_input_is_a_clear_error(config, error, match):
    with pytest.raises(error, match=match):
        parameter_budget(config)


def test_a_parameter_no_rule_knows_is_an_error(monkeypatch):
    without_mlp = tuple(rule for rule in budget.ACCOUNTING_RULES["qwen3"] if rule[0] != "mlp")
    monkeypatch.setitem(budget.ACCOUNTING_RULES, "qwen3", without_mlp)
    with pytest.raises(RuntimeError, match=r"no accounting rule matches parameter 'model\.layers\.0\.mlp"):
        parameter_budget(small_qwen3())


def test_parts_are_checked_against_the_model_total(monkeypatch):
    monkeypatch.setattr(budget, "count_parameters_meta", lambda config: 1)
    with pytest.raises(AssertionError, match="parts add up to"):
        parameter_budget(small_qwen3())


@pytest.mark.parametrize("model_type, extra", [
    ("qwen3_5_text", {}),
    ("qwen3_next", {"num_experts": 4, "num_experts_per_tok": 2, "moe_intermediate_size": 32,
                    "shared_expert_intermediate_size": 32}),
])
def test_gated_deltanet_hybrids(model_type, extra):
    config = AutoConfig.for_model(
        model_type, vocab_size=1000, hidden_size=64, intermediate_size=128, num_hidden_layers=4,
        num_attention_heads=4, num_key_value_heads=2, head_dim=16, linear_num_key_heads=2, linear_num_value_heads=2,
        linear_key_head_dim=16, linear_value_head_dim=16, tie_word_embeddings=False, **extra)
    b = parameter_budget(config)
    with torch.device("meta"):
        model = AutoModelForCausalLM.from_config(config)
    deltanet = sum(p.numel() for n, p in model.named_parameters() if ".linear_attn." in n and "linear_attn.norm" not in n)
    mlp = sum(p.numel() for n, p in model.named_parameters() if ".mlp." in n)
    assert b.parts["linear_attention"] == deltanet > 0
    assert b.parts["mlp"] == mlp and b.parts["attention"] > 0 and b.parts["convolution"] == 0
    assert b.total == count_parameters_meta(config)


@pytest.mark.parametrize("model_type", sorted(budget.ACCOUNTING_RULES))
def test_every_known_architecture_is_accounted(model_type):
    extra = {"layer_types": ["conv", "full_attention"] * 2} if model_type == "lfm2" else {}
    # 4 layers: the DeltaNet hybrids put a full-attention layer every 4th
    config = AutoConfig.for_model(model_type, vocab_size=1000, hidden_size=64, intermediate_size=128,
                                  num_hidden_layers=4, num_attention_heads=4, num_key_value_heads=2, **extra)
    b = parameter_budget(config)
    assert b.total == count_parameters_meta(config) and b.model_type == model_type
    assert b.parts["embedding"] == 64_000 and b.parts["attention"] > 0 and b.parts["mlp"] > 0 and b.parts["norms"] > 0


def test_as_config_rejects_unknown_config_objects():
    assert as_config(small_qwen3()).model_type == "qwen3"
    with pytest.raises(ValueError, match="gpt2"):
        as_config(GPT2Config())


# --------------------------------------------------------------------------- vocabulary in layers
def test_shrinking_the_vocabulary_buys_exactly_the_layers_that_fit():
    qwen = load_public_config("Qwen3-0.6B")
    b = parameter_budget(qwen, name="Qwen3-0.6B")
    trade = shrink_vocabulary(b, 65_536)
    assert trade.freed_params == (151_936 - 65_536) * 1024
    fields = {**qwen.to_dict(), "vocab_size": 65_536}

    def total_with(layers: int) -> int:
        return count_parameters_meta(Qwen3Config(**{**fields, "num_hidden_layers": layers, "layer_types": None}))

    assert total_with(trade.layers) == trade.total_after <= b.total < total_with(trade.layers + 1)
    assert trade.extra_layers == trade.layers - 28 > 0
    assert trade.embedding_share_after == pytest.approx(65_536 * 1024 / trade.total_after)


def test_gemma_270m_with_lfm2s_vocabulary_and_the_reverse():
    gemma = shrink_vocabulary(parameter_budget(load_public_config("Gemma-3-270M")), 65_536)
    assert (gemma.extra_layers, gemma.layers) == (22, 40)
    lfm2 = shrink_vocabulary(parameter_budget(load_public_config("LFM2-350M")), 262_144)
    assert lfm2.freed_params < 0 and lfm2.layers == 4  # Gemma 3's vocabulary leaves LFM2-350M 4 layers
    with pytest.raises(ValueError, match="no room for a single layer"):
        shrink_vocabulary(parameter_budget(load_public_config("SmolLM2-135M")), 262_144)
    with pytest.raises(ValueError, match="positive"):
        shrink_vocabulary(parameter_budget(small_qwen3()), 0)


def test_vocabulary_trades_table_skips_the_models_own_size():
    budgets = shipped_budgets(("Gemma-3-270M", "LFM2-350M"))
    assert list(budgets) == ["Gemma-3-270M", "LFM2-350M"]
    trades = vocabulary_trades(budgets.values(), [32_768, 65_536])
    assert list(zip(trades["model"], trades["new_vocab"])) == [
        ("Gemma-3-270M", 32_768), ("Gemma-3-270M", 65_536), ("LFM2-350M", 32_768)]
    assert trades.iloc[1]["layers_after"] == 40


def test_decode_work_and_break_even():
    gemma = parameter_budget(load_public_config("Gemma-3-270M"))
    body = 268_098_176 - 262_144 * 640
    assert decode_macs_per_token(gemma) == 268_098_176  # tied: every weight once, the head is the embedding
    assert decode_macs_per_token(gemma, 65_536) == body + 65_536 * 640
    assert break_even_token_ratio(gemma, 65_536) == pytest.approx(268_098_176 / (body + 65_536 * 640))
    assert break_even_token_ratio(gemma, 262_144) == 1.0
    with pytest.raises(ValueError):
        break_even_token_ratio(gemma, 0)


# --------------------------------------------------------------------------- tokenizer sweep
def test_leading_texts():
    assert leading_texts(["aaa", "bb", "c"], 5) == ["aaa", "bb"]
    assert leading_texts(["aaaaaa", "b"], 2) == ["aaaaaa"]  # never empty
    assert leading_texts(["a", "b"], 100) == ["a", "b"]


@pytest.fixture(scope="module")
def sweep() -> pd.DataFrame:
    words = [f"{w}{i}" for i, w in enumerate(["alpha", "beta", "gamma", "delta", "epsilon"] * 4)]
    texts = [" ".join(words[(i * 7) % 20:(i * 7) % 20 + 8]) + f" order {i % 13}." for i in range(300)]
    return vocabulary_sweep(texts[:250], texts[250:], [300, 400, 2000, 4000], max_train_chars=None)


def test_vocabulary_sweep_measures_compression(sweep):
    assert list(sweep["requested"]) == [300, 400, 2000, 4000]
    assert (sweep["vocab_size"] <= sweep["requested"]).all()
    assert sweep["vocab_size"].iloc[2] == sweep["vocab_size"].iloc[3] < 2000  # the corpus ran out of merges
    assert sweep["bytes_per_token"].is_monotonic_increasing and sweep["bytes_per_token"].iloc[0] > 1
    assert sweep["tokens_per_doc"].is_monotonic_decreasing
    with pytest.raises(ValueError, match="held-out"):
        vocabulary_sweep(["some text here"], [], [300])


def test_vocabulary_sweep_trains_on_the_leading_characters_only():
    few = vocabulary_sweep(["ab " * 50, "cd " * 5000], ["ab ab"], [300], max_train_chars=200)
    alls = vocabulary_sweep(["ab " * 50, "cd " * 5000], ["ab ab"], [300], max_train_chars=None)
    assert few["vocab_size"].iloc[0] < alls["vocab_size"].iloc[0]  # "cd" merges only come from the second text


def test_vocabulary_costs_by_hand():
    sweep = pd.DataFrame({"requested": [1000, 2000, 4000], "vocab_size": [1000, 2000, 2000],
                          "bytes_per_token": [2.0, 3.0, 3.0], "tokens_per_doc": [100.0, 60.0, 60.0]})
    b = parameter_budget(small_qwen3())  # hidden 64, tied
    body = b.total - 1000 * 64
    costs = vocabulary_costs(sweep, {"small": b, "untied": parameter_budget(small_qwen3(tie_word_embeddings=False))})
    small = costs[costs["model"] == "small"]
    assert list(small["vocab_size"]) == [1000, 2000]  # the saturated request appears once
    assert list(small["embedding_params"]) == [64_000, 128_000]
    assert list(small["macs_per_doc"]) == [100 * (body + 64_000), 60 * (body + 128_000)]
    assert small["relative_cost"].min() == 1.0
    untied = costs[costs["model"] == "untied"]
    assert list(untied["embedding_params"]) == [128_000, 256_000]
    assert cheapest_vocabulary(costs) == {"small": 2000, "untied": 2000}


# --------------------------------------------------------------------------- the designer
def test_hybrid_layer_types():
    assert hybrid_layer_types(16, 0.375).count("full_attention") == 6
    assert hybrid_layer_types(4, 0.0) == ["conv"] * 4
    assert hybrid_layer_types(3, 1.0) == ["full_attention"] * 3
    for bad in ((0, 0.5), (4, 1.5), (4, -0.1)):
        with pytest.raises(ValueError):
            hybrid_layer_types(*bad)


def test_designer_defaults_are_lfm2_350m():
    d = design_model()
    lfm2 = load_public_config("LFM2-350M")
    assert d.params == 354_483_968 and (d.num_heads, d.num_kv_heads, d.attention_layers) == (16, 8, 6)
    assert d.embedding_share == pytest.approx(65_536 * 1024 / 354_483_968)
    assert d.weights_gb == pytest.approx({"bf16": 0.708967936, "int8": 0.354483968, "int4": 0.177241984})
    assert d.cache_gb * 1e9 == sum(decode_state_bytes(lfm2, 4096, bytes_per_value=2).values())
    assert d.fits and "354,483,968" in d.summary() and "fits in 1 GB" in d.summary()
    assert not design_model(context=32_768).fits and design_model(context=32_768, precision="int8").fits


def test_designer_untied_and_invalid():
    tied, untied = design_model(), design_model(tied=False)
    assert untied.params - tied.params == 65_536 * 1024
    assert design_model(hidden_size=768).num_kv_heads == 6  # 12 heads: the largest divisor up to 8
    assert design_model(precision="q4_0").weights_gb.keys() == {"bf16", "int8", "int4", "q4_0"}
    with pytest.raises(ValueError, match="head_dim"):
        design_model(hidden_size=1000)
    with pytest.raises(ValueError, match="precision"):
        design_model(precision="fp8")
    with pytest.raises(ValueError, match="context"):
        design_model(context=0)


def _controls(panel) -> dict:
    return {child.description: child for child in panel.children if getattr(child, "description", "")}


def test_designer_panel_redraws_on_change():
    panel = designer_panel()
    output = panel.children[-1]
    assert "354,483,968" in output.value
    controls = _controls(panel)
    assert set(controls) == {"vocabulary", "hidden size", "layers", "attention share", "FFN size",
                             "tied embeddings", "precision", "context"}
    controls["vocabulary"].value = 262_144
    assert f"{design_model(vocab_size=262_144).params:,}" in output.value
    controls["precision"].value = "int4"
    assert "at int4" in output.value


def test_designer_panel_shows_errors_and_passes_fixed_settings():
    panel = designer_panel(head_dim=48)  # 1024 is not a multiple of 48
    assert "not a valid model" in panel.children[-1].value
    assert "in 2 GB" in designer_panel(budget_gb=2.0).children[-1].value


# --------------------------------------------------------------------------- plots
def test_plots(table, sweep):
    ax = plot_parameter_budgets(table)
    assert len(ax.patches) == len(table) * 5  # embedding, attention, convolution, mlp, norms
    b = parameter_budget(small_qwen3())
    costs = vocabulary_costs(sweep, {"a": b, "b": parameter_budget(small_qwen3(hidden_size=128, head_dim=32))})
    axes = plot_vocabulary_tradeoff(sweep, costs)
    assert len(axes) == 3 and len(axes[2].lines) == 4  # a curve and a star per model
    with pytest.raises(ValueError):
        plot_parameter_budgets(table.iloc[:0])
