"""SFT: the conversational data, the loss mask TRL trains with, full vs LoRA, and the stages."""

from __future__ import annotations

import dataclasses
import inspect
import json

import pytest
import torch

from lfm_helpers import sft
from lfm_helpers.data import load_schemas, load_split
from lfm_helpers.evaluate import evaluate_stage
from lfm_helpers.pipeline import load_stage, run_stage
from lfm_helpers.presets import SFTMix, TrainBudget
from lfm_helpers.tokenizer import IM_END, train_tokenizer
from conftest import SMALL


def _quiet(_):
    pass


@pytest.fixture(scope="module")
def tok():
    rows = load_split("tool_use", "train")[:100] + load_split("extraction", "train")[:100]
    texts = [m["content"] for r in rows if "messages" in r for m in r["messages"]]
    return train_tokenizer(texts + [r["text"] for r in rows if "text" in r], vocab_size=500)


def test_only_assistant_tokens_carry_loss(tok):
    row = load_split("extraction", "train")[0]
    example = sft.extraction_example(row, load_schemas())
    ids, mask = sft.assistant_token_mask(tok, example)
    trained = tok.decode([i for i, m in zip(ids, mask) if m])
    assert trained == example["messages"][-1]["content"] + IM_END  # the JSON and the end of turn, nothing else
    assert row["text"] not in trained and "Extract the" not in trained

    conv = load_split("tool_use", "train")[1]  # a two-call conversation with a follow-up
    shown = sft.show_mask(tok, sft.tool_use_example(conv))
    spans = [s[:-len(IM_END)] for s in shown.split("[[")[1:] for s in [s.split("]]")[0]]]
    assert spans == [m["content"] for m in conv["messages"] if m["role"] == "assistant"]
    for m in conv["messages"]:
        if m["role"] in ("user", "tool", "system"):
            assert f"[[{m['content']}" not in shown


def test_trl_masks_exactly_what_the_template_marks(tok, tmp_path):
    """What SFTTrainer really trains on is the mask above (TRL builds it from the template)."""
    from datasets import Dataset
    from trl import SFTTrainer

    examples = sft.sft_examples("train", SFTMix(extraction=2, tool_use=2))
    budget = TrainBudget(max_steps=1, batch_size=2, learning_rate=1e-3, seq_len=2048)
    model = _tiny_model(tok)
    ds = Dataset.from_list([{k: e[k] for k in ("messages", "tools")} for e in examples])
    trainer = SFTTrainer(model=model, args=sft.sft_config(budget, tmp_path), train_dataset=ds, processing_class=tok)
    for example, row in zip(examples, trainer.train_dataset, strict=True):
        ids, mask = sft.assistant_token_mask(tok, example)
        labels = row.get("labels") or [t if m else -100 for t, m in zip(row["input_ids"], row["assistant_masks"])]
        assert row["input_ids"] == ids and labels == [t if m else -100 for t, m in zip(ids, mask)]


def _tiny_model(tok):
    from lfm_helpers.models import build_model, tiny_lfm2_config

    return build_model(tiny_lfm2_config(SMALL, vocab_size=len(tok)), seed=0)


def test_mixture_counts_shuffle_and_bad_mixtures():
    ex = sft.sft_examples("train", SFTMix(extraction=10, tool_use=3), seed=1)
    assert [e["task"] for e in ex].count("extraction") == 10 and [e["task"] for e in ex].count("tool_use") == 3
    assert all((e["tools"] is None) == (e["task"] == "extraction") for e in ex)
    assert all(isinstance(json.loads(e["tools"]), list) for e in ex if e["tools"])
    assert ex == sft.sft_examples("train", SFTMix(extraction=10, tool_use=3), seed=1)
    assert ex != sft.sft_examples("train", SFTMix(extraction=10, tool_use=3), seed=2)
    assert len(sft.sft_examples("val", SFTMix(val_rows=5))) == 10
    assert not [e for e in sft.sft_examples("train", SFTMix(extraction=5, tool_use=0)) if e["task"] == "tool_use"]
    # validation mirrors the tasks the mixture trains on
    assert {e["task"] for e in sft.sft_examples("val", SFTMix(extraction=5, tool_use=0, val_rows=4))} == {"extraction"}
    with pytest.raises(ValueError):
        SFTMix(extraction=0, tool_use=0)
    with pytest.raises(ValueError):
        SFTMix(extraction=-1)


def test_cpu_config_turns_off_the_gpu_defaults(tmp_path):
    args = sft.sft_config(TrainBudget(max_steps=7, batch_size=4, learning_rate=1e-3, seq_len=256), tmp_path,
                          on_gpu=False)
    assert args.use_cpu and not args.bf16 and not args.gradient_checkpointing and args.assistant_only_loss
    assert not getattr(args, "activation_checkpointing", False)
    assert args.train_sampling_strategy == "group_by_length"
    short = sft.sft_config(TrainBudget(max_steps=7, batch_size=4, learning_rate=1e-3, seq_len=256), tmp_path,
                           on_gpu=False, group_by_length=False)
    assert short.train_sampling_strategy == "random"  # short runs must see both tasks from the first step
    assert args.max_steps == 7 and args.max_length == 256 and not args.packing and args.report_to in ([], "none", ["none"])


def test_trainer_kwargs_are_accepted_by_the_installed_trl():
    """Drift check: every keyword sft_config passes exists in this TRL/transformers."""
    from trl import SFTConfig

    source = inspect.getsource(sft.sft_config)
    call = source[source.index("return SFTConfig("):]
    passed = {line.strip().split("=")[0] for line in call.splitlines()[1:] if "=" in line and not line.strip().startswith("**")}
    accepted = set(inspect.signature(SFTConfig.__init__).parameters)
    assert passed and passed <= accepted, passed - accepted


def test_full_and_lora_training(tok, tmp_path):
    from lfm_helpers.finetune import LoraSpec
    from peft import get_peft_model, LoraConfig

    examples = sft.sft_examples("train", SFTMix(extraction=8, tool_use=8))
    budget = TrainBudget(max_steps=3, batch_size=4, learning_rate=3e-3, seq_len=2048)

    full = _tiny_model(tok)
    before = {k: v.clone() for k, v in full.state_dict().items()}
    out = sft.train_sft(full, tok, examples, examples[:4], budget, tmp_path / "full")
    assert out["steps"] == 3 and len(out["history"]["loss"]) >= 1 and out["history"]["val_loss"]
    assert all(torch.isfinite(torch.tensor(out["history"]["loss"])))
    assert not torch.equal(before["model.layers.0.feed_forward.w1.weight"], full.state_dict()["model.layers.0.feed_forward.w1.weight"])
    assert out["trainable_params"] == sum(p.numel() for p in full.parameters())

    base = _tiny_model(tok)
    spec = LoraSpec(r=4, alpha=8)
    lora = get_peft_model(_tiny_model(tok), LoraConfig(r=spec.r, lora_alpha=spec.alpha,
                                                        target_modules=list(spec.target_modules), task_type="CAUSAL_LM"))
    out = sft.train_sft(lora, tok, examples, [], budget, tmp_path / "lora")
    assert 0 < out["trainable_params"] < sum(p.numel() for p in base.parameters()) / 5
    merged = lora.merge_and_unload()
    w = "model.layers.0.feed_forward.w1.weight"
    assert not torch.equal(base.state_dict()[w], merged.state_dict()[w])  # the adapters moved the weights
    assert torch.equal(base.state_dict()["model.embed_tokens.weight"], merged.state_dict()["model.embed_tokens.weight"])


def test_train_sft_rejects_rows_that_are_not_conversations(tok, tmp_path):
    budget = TrainBudget(max_steps=1, batch_size=1, learning_rate=1e-3, seq_len=64)
    with pytest.raises(ValueError, match="not conversations"):
        sft.train_sft(_tiny_model(tok), tok, [{"text": "hello"}], [], budget, tmp_path)
    with pytest.raises(ValueError, match="no training examples"):
        sft.train_sft(_tiny_model(tok), tok, [], [], budget, tmp_path)


SFT_SMALL = dataclasses.replace(
    SMALL, base_pretrain=None, shipped_sft=False, sft_live=TrainBudget(max_steps=1, batch_size=2, learning_rate=1e-3,
                                                                        seq_len=2048),
    sft=TrainBudget(max_steps=2, batch_size=4, learning_rate=3e-3, seq_len=2048),
    sft_lora=TrainBudget(max_steps=2, batch_size=4, learning_rate=1e-2, seq_len=2048),
    sft_mix=SFTMix(extraction=8, tool_use=8, val_rows=2), lora_rank=4,
    eval=dataclasses.replace(SMALL.eval, num_examples=3, max_new_tokens=8),
)


def test_sft_stages_build_reuse_and_evaluate(task_data, runs_root):
    art = run_stage("sft", SFT_SMALL, log=_quiet)
    assert art.metrics["backend"] == "transformers" and art.metrics["steps"] == 2
    assert art.metrics["trainable_share"] == 1.0
    assert json.loads((art.path / "history.json").read_text())["loss"]
    lora = run_stage("sft_lora", SFT_SMALL, log=_quiet)
    assert 0 < lora.metrics["trainable_share"] < 0.5
    model, tok, again = load_stage("sft_lora", SFT_SMALL, log=_quiet)
    assert again.reused and not any("lora" in n for n, _ in model.named_parameters())  # merged

    messages = []
    report = evaluate_stage("sft", "extraction", "test", SFT_SMALL, log=messages.append)
    assert report.n_examples == 3 and set(report.rates) >= {"valid_json", "field_exact_match"}
    cached = evaluate_stage("sft", "tool_use", "test", SFT_SMALL, log=messages.append)
    assert evaluate_stage("sft", "tool_use", "test", SFT_SMALL, log=messages.append).metrics() == cached.metrics()
    assert any("reusing sft-tool_use" in m for m in messages)


def test_cold_start_experiment_varies_only_the_tool_use_rows(task_data, runs_root):
    from lfm_helpers.presets import ColdStartBudget

    preset = dataclasses.replace(SFT_SMALL, cold_start=ColdStartBudget(tool_use_rows=(0, 4), steps=1, prompts=3,
                                                                       samples=2))
    rows = sft.cold_start_experiment(preset, log=_quiet)
    assert [r["tool_use_rows"] for r in rows] == [0, 4]
    assert rows[0]["tool_use_share"] == 0 and 0 < rows[1]["tool_use_share"] < 1
    for r in rows:
        assert r["prompts"] == 3 and r["samples"] == 2
        assert 0 <= r["mean_reward"] <= 1 and 0 <= r["prompts_with_signal"] <= 1 and r["reward_std_within_prompt"] >= 0
    messages = []
    assert sft.cold_start_experiment(preset, log=messages.append) == rows  # trained once, then re-read
    assert not any("building" in m for m in messages) and sum("reusing" in m and "/tool_use-" in m for m in messages) == 2


def test_reward_signal_counts_spread_within_prompts(monkeypatch):
    import lfm_helpers.evaluate as ev

    rows = load_split("tool_use", "val")
    cases = ev.first_call_prompts(rows, 2)
    right = [ "<|tool_call_start|>[" + c[2][0]["name"] + "(" + ", ".join(
        f"{k}={json.dumps(v)}" for k, v in c[2][0]["arguments"].items()) + ")]<|tool_call_end|>" for c in cases]
    calls = iter([right[0], "no", right[1], right[1]] + right)  # prompt 0 mixed, prompt 1 all right; then greedy

    monkeypatch.setattr(ev, "chat_prompt_ids", lambda tok, msgs, tools: [1])
    monkeypatch.setattr(ev, "generate_batch", lambda m, t, prompts, s, **k: [next(calls) for _ in prompts])
    out = ev.reward_signal(None, None, rows, prompts=2, samples=2, temperature=1.0)
    assert out["mean_reward"] == 0.75 and out["prompts_with_signal"] == 0.5
    assert out["reward_std_within_prompt"] == 0.25 and out["greedy_call_accuracy"] == 1.0


def test_live_stage_uses_the_short_budget(task_data, runs_root):
    art = run_stage("sft_live", SFT_SMALL, log=_quiet)
    assert art.metrics["steps"] == SFT_SMALL.sft_live.max_steps == 1


def test_shipped_checkpoints_round_trip_and_refuse_mismatches(task_data, runs_root):
    from lfm_helpers.artifacts import ArtifactError
    from lfm_helpers.models import load_model
    from lfm_helpers.shipped import SHIPPED_MANIFEST, ship, shipped_dir

    paths = ship(SFT_SMALL, command="test")
    assert [p.name for p in paths] == ["sft", "sft_lora"]
    assert (paths[1] / "adapter_model.safetensors").is_file() and not (paths[1] / "model.safetensors").exists()
    shipped = dataclasses.replace(SFT_SMALL, shipped_sft=True)

    trained_full = load_model(runs_root / "tiny" / "sft")
    full = run_stage("sft", shipped, log=_quiet)
    assert full.metrics["source"] == "shipped" and full.path == runs_root / "tiny" / "sft"
    for (name, a), (_, b) in zip(trained_full.state_dict().items(), load_model(full.path).state_dict().items()):
        assert torch.allclose(a, b, rtol=1e-2, atol=1e-2), name  # bfloat16 storage
    lora = run_stage("sft_lora", shipped, log=_quiet)
    assert (lora.path / "adapter" / "adapter_model.safetensors").is_file()

    manifest = json.loads((shipped_dir(SFT_SMALL, "sft") / SHIPPED_MANIFEST).read_text())
    assert manifest["command"] == "test" and manifest["training"]["config"]["train"]["max_steps"] == 2
    longer = dataclasses.replace(shipped, sft=dataclasses.replace(shipped.sft, max_steps=3))
    with pytest.raises(ArtifactError, match="ship-sft --preset tiny"):
        run_stage("sft", longer, log=_quiet)
    (shipped_dir(SFT_SMALL, "sft_lora") / "adapter_model.safetensors").write_bytes(b"altered")
    with pytest.raises(ArtifactError, match="altered"):
        run_stage("sft_lora", shipped, log=_quiet, force=True)
