"""GGUF export, llama.cpp inference and the speed/size accounting of notebook 09.

The llama.cpp tests need llama-cpp-python and its converter (``make llama-cpp``, which ``make
test`` runs). Outside CI they skip with that instruction where it is missing; in CI they run.
"""

from __future__ import annotations

import dataclasses
import json
import os

import pytest
import torch

from lfm_helpers import deploy
from lfm_helpers.gguf_convert import is_gpt2_byte_level
from lfm_helpers.presets import PRESETS, DeployBudget
from lfm_helpers.sampling import Sampling, generate_batch
from test_sft import SFT_SMALL, SMALL, tok  # noqa: F401  (tok is a fixture)

READY, WHY = deploy.llama_cpp_status()
needs_llama_cpp = pytest.mark.skipif(not READY and not os.environ.get("CI"), reason=WHY)


def _quiet(_):
    pass


# --------------------------------------------------------------------------- without llama.cpp
def test_budget_validation_and_presets():
    assert PRESETS["tiny"].deploy.formats == ("f32", "f16", "q8_0", "q4_k_m")
    assert "f32" not in PRESETS["colab"].deploy.formats  # a 350M f32 file is 1.4 GB: the colab path starts at f16
    with pytest.raises(ValueError, match="formats"):
        DeployBudget(formats=("q3_k",))
    with pytest.raises(ValueError, match="formats"):
        DeployBudget(reference_formats=())
    with pytest.raises(ValueError, match=">= 1"):
        DeployBudget(repeats=0)


def test_missing_converter_is_a_clear_error(tmp_path, monkeypatch):
    monkeypatch.setenv("LFM_LLAMA_CPP_SRC", str(tmp_path))
    with pytest.raises(FileNotFoundError, match="make llama-cpp"):
        deploy.llama_cpp_sources()
    ready, message = deploy.llama_cpp_status()
    assert not ready and "make llama-cpp" in message


def test_bad_export_requests(tmp_path):
    with pytest.raises(ValueError, match="unknown GGUF format"):
        deploy.export_gguf(tmp_path, tmp_path / "out", ("f32", "q3_k"))
    with pytest.raises(ValueError, match="quantize_gguf"):
        deploy.convert_to_gguf(tmp_path, tmp_path / "x.gguf", "q8_0")
    with pytest.raises(FileNotFoundError, match="config.json"):
        deploy.convert_to_gguf(tmp_path, tmp_path / "x.gguf", "f32")


def test_course_tokenizer_is_declared_gpt2_only_when_it_splits_like_gpt2(tmp_path):
    def write(pre):
        (tmp_path / "tokenizer.json").write_text(json.dumps({"pre_tokenizer": pre}))
        return is_gpt2_byte_level(tmp_path)

    assert write({"type": "ByteLevel", "add_prefix_space": False, "use_regex": True})
    assert not write({"type": "ByteLevel", "use_regex": False})
    assert not write({"type": "Metaspace"})
    assert not is_gpt2_byte_level(tmp_path / "missing")


def test_memory_bandwidth_is_measured_and_refuses_cache_sized_buffers():
    assert deploy.memory_bandwidth(64, repeats=2) > 0.1
    with pytest.raises(ValueError, match="64 MB"):
        deploy.memory_bandwidth(8)


def test_roofline_is_bandwidth_over_weight_bytes():
    speeds = [deploy.Speed("m", "llama.cpp", "q8_0", 500.0, 100.0, 10.0),
              deploy.Speed("m", "transformers (eager)", "float32", 2000.0, 50.0, 1.0)]
    table = deploy.roofline_table(speeds, bandwidth_gb_s=10.0)
    assert list(table["roofline_tok_s"]) == [20.0, 5.0]  # 10 GB/s over 0.5 GB and over 2 GB
    assert list(table["share_of_roofline"]) == [0.5, 0.2]


def test_speedups_set_bytes_saved_beside_decode_speed():
    speeds = [deploy.Speed("m", "llama.cpp", "f16", 800.0, 100.0, 10.0),
              deploy.Speed("m", "llama.cpp", "q8_0", 400.0, 100.0, 18.0),
              deploy.Speed("m", "transformers (eager)", "float32", 1600.0, 50.0, 4.0),
              deploy.Speed("other", "llama.cpp", "f16", 8.0, 100.0, 999.0)]
    table = deploy.speedups(deploy.roofline_table(speeds, bandwidth_gb_s=10.0), "m")
    assert list(table.index) == ["f16", "q8_0"]  # llama.cpp rows of that model only
    assert list(table["fewer bytes than f16"]) == [1.0, 2.0] and list(table["decode speed-up over f16"]) == [1.0, 1.8]
    with pytest.raises(ValueError, match="no llama.cpp 'f32' row"):
        deploy.speedups(deploy.roofline_table(speeds, bandwidth_gb_s=10.0), "m", baseline="f32")


def test_budget_table_at_two_contexts():
    table = deploy.budget_table(("LFM2-350M", "LFM2-1.2B"), ("bf16", "q8_0"), (4096, 32768))
    assert len(table) == 8 and set(table["context"]) == {4096, 32768}
    row = table.set_index(["model", "precision", "context"])
    assert row.loc[("LFM2-350M", "q8_0", 4096), "fits_1GB"]
    assert not row.loc[("LFM2-1.2B", "bf16", 4096), "fits_1GB"]
    # the state grows with the context; the weights do not
    assert row.loc[("LFM2-350M", "bf16", 32768), "state_GB"] > 4 * row.loc[("LFM2-350M", "bf16", 4096), "state_GB"]
    assert row.loc[("LFM2-350M", "bf16", 32768), "weights_GB"] == row.loc[("LFM2-350M", "bf16", 4096), "weights_GB"]


def test_same_outputs_compares_reports_example_by_example():
    from lfm_helpers.evaluate import EvalReport

    a = EvalReport("extraction", "test", 2, {}, [{"output": "x"}, {"output": "y"}])
    b = EvalReport("extraction", "test", 2, {}, [{"output": "x"}, {"output": "z"}])
    assert deploy.same_outputs(a, b) == 0.5 and deploy.same_outputs(a, a) == 1.0
    with pytest.raises(ValueError, match="different numbers"):
        deploy.same_outputs(a, EvalReport("extraction", "test", 1, {}, [{"output": "x"}]))


def test_generate_batch_hands_over_to_a_runtime_that_decodes_itself():
    class Runtime:
        def generate_texts(self, tokenizer, prompts, sampling, *, desc=None):
            return [f"{len(p)} tokens, max {sampling.max_new_tokens}" for p in prompts]

    assert generate_batch(Runtime(), None, [[1, 2], [3]], Sampling(max_new_tokens=5)) == \
        ["2 tokens, max 5", "1 tokens, max 5"]


# --------------------------------------------------------------------------- with llama.cpp
@pytest.fixture(scope="module")
def exported(tmp_path_factory, tok):  # noqa: F811
    """The course tokenizer on a small random LFM2, exported in every format."""
    from lfm_helpers.models import build_model, tiny_lfm2_config
    from lfm_helpers.tokenizer import save_tokenizer

    root = tmp_path_factory.mktemp("export")
    model = build_model(tiny_lfm2_config(SMALL, vocab_size=len(tok)), seed=0)
    model.save_pretrained(root / "model")
    save_tokenizer(tok, root / "model")
    files = deploy.export_gguf(root / "model", root / "gguf", tuple(deploy.FORMATS), stem="small", log=_quiet)
    return model, tok, files


@needs_llama_cpp
def test_export_writes_every_format_with_the_chat_template(exported):
    _, tokenizer, files = exported
    assert list(files) == list(deploy.FORMATS)
    sizes = [files[f].stat().st_size for f in deploy.FORMATS]
    assert sizes == sorted(sizes, reverse=True)  # f32 > f16 > q8_0 > q4_k_m
    assert not [p for p in files["f32"].parent.iterdir() if p.name.startswith(".")]  # no temporary left
    types = deploy.tensor_types(files["q8_0"])
    assert types.loc["ffn_up.weight", "Q8_0"] == 4 and types.loc["ffn_norm.weight", "F32"] == 4  # 4 blocks
    with deploy.GGUFModel(files["f32"]) as gguf:
        meta = gguf.metadata
        assert meta["general.architecture"] == "lfm2" and meta["tokenizer.ggml.pre"] == "gpt-2"
        assert meta["tokenizer.chat_template"] == tokenizer.chat_template
        assert gguf.n_params == sum(p.numel() for p in exported[0].parameters())


@needs_llama_cpp
def test_llama_cpp_matches_transformers_in_f32(exported):
    model, tokenizer, files = exported
    sequences = deploy.test_conversations(tokenizer, 4)
    with deploy.GGUFModel(files["f32"], logits_all=True) as gguf:
        texts = [tokenizer.decode(ids, skip_special_tokens=False) for ids in sequences]
        assert deploy.tokenization_check(tokenizer, gguf, texts)["share"] == 1.0
        agreement = deploy.logit_agreement(model, gguf, sequences)
        assert agreement["top1_agreement"] == 1.0 and agreement["max_abs_logit_diff"] < 1e-3
        prompts = [ids[:40] for ids in sequences]
        greedy = Sampling(max_new_tokens=12)
        ours = gguf.generate_texts(tokenizer, prompts, greedy, desc=None)
        assert ours == generate_batch(model, tokenizer, prompts, greedy, desc=None)
    table = deploy.agreement_table(model, tokenizer, {f: files[f] for f in ("q8_0", "q4_k_m")}, sequences)
    assert (table["identical_tokenisation"] == 1.0).all() and (table["top1_agreement"] > 0.5).all()


@needs_llama_cpp
def test_chat_from_the_file_alone_and_logits_need_logits_all(exported):
    _, tokenizer, files = exported
    with deploy.GGUFModel(files["q8_0"]) as gguf:
        reply = deploy.chat(gguf, [{"role": "user", "content": "Where is Lindo?"}], max_new_tokens=5)
        assert isinstance(reply, str) and len(gguf.tokenize(reply)) <= 5
        with pytest.raises(ValueError, match="logits_all"):
            gguf.logits([1, 2, 3])
    with pytest.raises(FileNotFoundError, match="no GGUF file"):
        deploy.GGUFModel(files["q8_0"].with_name("missing.gguf"))


@needs_llama_cpp
def test_speed_measurements(exported):
    model, _, files = exported
    fast = deploy.llama_cpp_speed(files["q8_0"], model="small", fmt="q8_0", prompt_tokens=16, decode_tokens=4,
                                  repeats=1)
    eager = deploy.transformers_speed(model, model="small", prompt_tokens=16, decode_tokens=4, repeats=1)
    assert fast.prefill_tok_s > 0 and fast.decode_tok_s > 0 and eager.decode_tok_s > 0
    assert fast.weight_mb < eager.weight_mb  # 8.5 bits a weight against 32


@needs_llama_cpp
def test_export_stage_and_the_harness_on_gguf(task_data, runs_root):
    from lfm_helpers.evaluate import evaluate
    from lfm_helpers.pipeline import run_stage

    preset = dataclasses.replace(SFT_SMALL, deploy=DeployBudget(formats=("f32", "q4_k_m")))
    art = run_stage("export", preset, log=_quiet)
    files = deploy.export_files(art)
    assert set(files) == {"f32", "q4_k_m"} and art.metrics["llama_cpp_python"] == deploy.LLAMA_CPP_PYTHON
    assert (art.path / "tokenizer.json").is_file()
    sft = run_stage("sft", preset, log=_quiet)
    for task in ("extraction", "tool_use"):
        ours = deploy.evaluate_export(art, "f32", task, preset, n=2, log=_quiet)
        reference = evaluate(sft.path, task, "test", preset, n=2)
        assert ours.n_examples == 2 and deploy.same_outputs(ours, reference) == 1.0
    again = []
    deploy.evaluate_export(art, "f32", "extraction", preset, n=2, log=again.append)
    assert "reusing" in again[0]


@needs_llama_cpp
def test_colab_path_exports_the_real_lfm2_layout(tmp_path):
    """The colab preset exports a fine-tuned LFM2.5-350M. A local folder stands in: the real
    LFM2-350M config (16 layers, conv and attention in the real order, its heads), narrowed."""
    from lfm_helpers.memory import load_public_config
    from lfm_helpers.tokenizer import save_tokenizer, train_tokenizer
    from transformers import AutoModelForCausalLM

    config = load_public_config("LFM2-350M")
    config.update({"hidden_size": 64, "intermediate_size": 256, "vocab_size": 300, "block_auto_adjust_ff_dim": False})
    torch.manual_seed(0)
    model = AutoModelForCausalLM.from_config(config)
    model.save_pretrained(tmp_path / "model")
    save_tokenizer(train_tokenizer(["the lamp ships on monday to the city of lindo"] * 50, vocab_size=300),
                   tmp_path / "model")
    files = deploy.export_gguf(tmp_path / "model", tmp_path / "gguf", PRESETS["colab"].deploy.formats, log=_quiet)
    assert set(files) == {"f16", "q8_0", "q4_k_m"} and not (tmp_path / "gguf" / "model-f32.gguf").exists()
    with deploy.GGUFModel(files["q8_0"]) as gguf:
        assert int(gguf.metadata["lfm2.block_count"]) == 16
        assert gguf.n_params == sum(p.numel() for p in model.parameters())


@needs_llama_cpp
def test_first_divergence_shows_both_runtimes_top_two(exported):
    from lfm_helpers.evaluate import EvalReport

    model, tokenizer, files = exported
    same = EvalReport("extraction", "test", 1, {}, [{"output": '{"a": 1}'}])
    other = EvalReport("extraction", "test", 1, {}, [{"output": '{"a": 2}'}])
    assert deploy.first_divergence(model, tokenizer, files["f32"], same, same) is None
    found = deploy.first_divergence(model, tokenizer, files["f32"], same, other)
    assert found["example"] == 0 and found["shared_text"] == '{"a": '
    assert found["gguf_continues"] == "1}" and found["transformers_continues"] == "2}"
    assert len(found["gguf_top2"]) == len(found["transformers_top2"]) == 2
    # f32 in both runtimes: the same two candidates, scored within a rounding error
    assert [t for t, _ in found["gguf_top2"]] == [t for t, _ in found["transformers_top2"]]
