"""On-policy preference optimisation: scores, pairs, the (length-normalised) DPO loss, the stages."""

from __future__ import annotations

import dataclasses
import json
import math

import pytest
import torch

from lfm_helpers import preference as pref
from lfm_helpers.presets import PreferenceBudget, TrainBudget
from test_sft import SFT_SMALL, _tiny_model, tok  # noqa: F401  (tok is a fixture)


def _quiet(_):
    pass


# --------------------------------------------------------------------------- the loss
def test_dpo_loss_matches_a_hand_computation():
    args = (torch.tensor([2.0]), torch.tensor([-1.0]), torch.tensor([4.0]), torch.tensor([2.0]))
    standard = pref.dpo_loss(*args, beta=0.5, normalise=False)
    normalised = pref.dpo_loss(*args, beta=0.5, normalise=True)
    # standard: -log sigmoid(0.5 * (2 - (-1))) ; normalised: -log sigmoid(0.5 * (2/4 - (-1)/2))
    assert standard.item() == pytest.approx(math.log1p(math.exp(-1.5)), abs=1e-6)
    assert normalised.item() == pytest.approx(math.log1p(math.exp(-0.5)), abs=1e-6)
    # doubling a completion's length halves its weight only in the normalised loss
    longer = (args[0], args[1], torch.tensor([8.0]), args[3])
    assert pref.dpo_loss(*longer, beta=0.5, normalise=False) == standard
    assert pref.dpo_loss(*longer, beta=0.5, normalise=True).item() == pytest.approx(math.log1p(math.exp(-0.375)), abs=1e-6)


def _completion_logps(model, batch):
    logits = model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"]).logits[:, :-1]
    logps = torch.log_softmax(logits.float(), -1).gather(-1, batch["input_ids"][:, 1:, None])[..., 0]
    mask = batch["completion_mask"][:, 1:].float()
    return (logps * mask).sum(1), mask.sum(1)


@pytest.mark.parametrize("variant", ["standard", "normalised"])
def test_trl_loss_is_the_package_formula(tok, tmp_path, variant):  # noqa: F811
    """TRL's ``sigmoid`` / ``sigmoid_norm`` losses on a real batch equal :func:`dpo_loss` computed
    from the policy's and the reference's log-probabilities: the option really normalises."""
    from trl import DPOTrainer

    pairs = [{"prompt": [{"role": "user", "content": "Extract: Anna, 3 lamps."}],
              "chosen": [{"role": "assistant", "content": '{"name": "Anna", "quantity": 3}'}],
              "rejected": [{"role": "assistant", "content": '{"name": "Ben"}'}], "tools": None}] * 2
    model = _tiny_model(tok)
    budget = TrainBudget(max_steps=1, batch_size=2, learning_rate=1e-3, seq_len=256)
    from datasets import Dataset

    reference = _tiny_model(tok).eval()
    trainer = DPOTrainer(model=model, ref_model=reference,
                         args=pref.dpo_config(budget, tmp_path, loss_type=pref.LOSS_TYPES[variant], beta=0.7),
                         train_dataset=Dataset.from_list(pairs), processing_class=tok)
    with torch.no_grad():  # move the policy away from the reference
        for p in model.parameters():
            p.add_(0.05 * torch.randn_like(p))
    batch = next(iter(trainer.get_train_dataloader()))
    model.eval()
    with torch.no_grad():
        trl_loss = trainer.compute_loss(model, batch)
        policy, lengths = _completion_logps(model, batch)
        ref, _ = _completion_logps(trainer.ref_model, batch)
    ratio = policy - ref
    chosen, rejected = ratio.chunk(2)
    n_chosen, n_rejected = lengths.chunk(2)
    ours = pref.dpo_loss(chosen, rejected, n_chosen, n_rejected, beta=0.7, normalise=variant == "normalised")
    assert trl_loss.item() == pytest.approx(ours.item(), rel=1e-4)
    assert not torch.equal(n_chosen, n_rejected)  # the lengths differ, so the two losses differ


# --------------------------------------------------------------------------- cases, scores, pairs
def test_cases_cover_both_tasks_and_every_turn():
    cases = pref.preference_cases("train", extraction=3, tool_use=2)
    kinds = [c.kind for c in cases]
    assert kinds[:3] == ["extraction"] * 3 and {"call", "answer"} <= set(kinds[3:])
    assert all(c.messages[-1]["role"] != "assistant" for c in cases)
    later = pref.preference_cases("train", extraction=3, tool_use=0, offset=3)
    assert not {c.id for c in later} & {c.id for c in cases}


def test_scores_follow_the_verifiers():
    cases = pref.preference_cases("train", extraction=1, tool_use=1)
    ex = cases[0]
    right = json.dumps(ex.expected["target"])
    assert pref.score(ex, right) == 1.0 and pref.score(ex, "not json") == 0.0
    call = next(c for c in cases if c.kind == "call")
    c = call.expected[0]
    text = "<|tool_call_start|>[" + c["name"] + "(" + ", ".join(f"{k}={json.dumps(v)}" for k, v in c["arguments"].items()) + ")]<|tool_call_end|>"
    assert pref.score(call, text) == 1.0 and pref.score(call, "no call") == 0.0
    answer = next(c for c in cases if c.kind == "answer")
    assert pref.score(answer, f"It is {answer.expected}.") == 1.0
    with pytest.raises(ValueError, match="unknown case kind"):
        pref.score(dataclasses.replace(ex, kind="poem"), "x")


def test_pairs_are_best_against_worst_with_a_margin():
    assert pref.choose_pair(["a", "b", "c"], [0.5, 1.0, 0.0], 0.2) == (1, 2)
    assert pref.choose_pair(["a", "b", "c"], [1.0, 1.0, 0.0], 0.2) == (0, 2)  # ties: the first, never by length
    assert pref.choose_pair(["a", "b"], [0.5, 0.6], 0.2) is None
    with pytest.raises(ValueError):
        pref.choose_pair(["a"], [1.0], 0.1)


def test_sample_pairs_scores_every_candidate(monkeypatch, tok):  # noqa: F811
    cases = pref.preference_cases("train", extraction=2, tool_use=0)
    right = [json.dumps(c.expected["target"]) for c in cases]
    # prompt 0: samples wrong, right; greedy wrong -> a pair (rejected is a sample, the first worst)
    # prompt 1: every candidate right -> no pair
    outputs = iter([["{}", right[0], right[1], right[1]], ["{}", right[1]]])
    monkeypatch.setattr("lfm_helpers.sampling.generate_batch", lambda *a, **k: next(outputs))
    ps = pref.sample_pairs(None, tok, cases, samples=2, temperature=1.0, max_new_tokens=8, min_margin=0.5)
    assert ps.scores == [[0.0, 1.0, 0.0], [1.0, 1.0, 1.0]]
    assert len(ps.pairs) == 1 and ps.pairs[0]["chosen"][0]["content"] == right[0]
    stats = ps.stats()
    assert stats["pair_yield"] == 0.5 and stats["all_equal_prompts"] == 0.5 and stats["rejected_is_greedy_share"] == 0
    assert stats["chosen_longer_share"] == 1.0 and stats["mean_margin"] == 1.0


def test_pairs_round_trip_and_malformed_rows(tmp_path):
    pairs = [{"prompt": [], "chosen": [], "rejected": [], "chosen_score": 1.0, "rejected_score": 0.0}]
    pref.save_pairs(pairs, tmp_path / "p.jsonl")
    assert pref.load_pairs(tmp_path / "p.jsonl") == pairs
    (tmp_path / "bad.jsonl").write_text(json.dumps({"prompt": []}) + "\n")
    with pytest.raises(ValueError, match="bad.jsonl:1"):
        pref.load_pairs(tmp_path / "bad.jsonl")


def test_dpo_config_adds_the_chosen_nll_only_when_asked(tmp_path):
    budget = TrainBudget(max_steps=3, batch_size=2, learning_rate=1e-3, seq_len=256)
    plain = pref.dpo_config(budget, tmp_path, loss_type="sigmoid_norm", beta=2.0)
    rpo = pref.dpo_config(budget, tmp_path, loss_type="sigmoid_norm", beta=2.0, sft_weight=0.5)
    assert plain.loss_type == ["sigmoid_norm"] and rpo.loss_type == ["sigmoid_norm", "sft"]
    assert rpo.loss_weights == [1.0, 0.5] and plain.beta == 2.0 and plain.max_steps == 3
    if not torch.cuda.is_available():
        assert plain.use_cpu and not plain.bf16


def test_the_reference_is_the_policy_as_it_was(tok, tmp_path, monkeypatch):  # noqa: F811
    """In a later round the reference must be the current policy, not the checkpoint on disk."""
    import trl

    seen = {}
    real = trl.DPOTrainer.__init__

    def spy(self, *args, **kwargs):
        seen["ref"] = {k: v.clone() for k, v in kwargs["ref_model"].state_dict().items()}
        real(self, *args, **kwargs)

    monkeypatch.setattr(trl.DPOTrainer, "__init__", spy)
    model = _tiny_model(tok)
    with torch.no_grad():
        model.model.embed_tokens.weight.add_(1.0)  # "trained in round 1": differs from any saved checkpoint
    current = {k: v.clone() for k, v in model.state_dict().items()}
    pairs = [{"prompt": [{"role": "user", "content": "hi"}], "chosen": [{"role": "assistant", "content": "hello"}],
              "rejected": [{"role": "assistant", "content": "no"}], "tools": None}] * 2
    pref.train_dpo(model, tok, pairs, TrainBudget(max_steps=1, batch_size=2, learning_rate=1e-2, seq_len=128), tmp_path,
                   loss_type="sigmoid", beta=0.1)
    assert all(torch.equal(seen["ref"][k], current[k]) for k in current)
    assert not torch.equal(model.state_dict()["model.embed_tokens.weight"], current["model.embed_tokens.weight"])


def test_train_dpo_refuses_bad_input(tok, tmp_path):  # noqa: F811
    budget = TrainBudget(max_steps=1, batch_size=2, learning_rate=1e-3, seq_len=256)
    with pytest.raises(ValueError, match="no preference pairs"):
        pref.train_dpo(_tiny_model(tok), tok, [], budget, tmp_path, loss_type="sigmoid", beta=0.1)
    with pytest.raises(ValueError, match="unknown loss_type"):
        pref.train_dpo(_tiny_model(tok), tok, [{}], budget, tmp_path, loss_type="hinge2", beta=0.1)


# --------------------------------------------------------------------------- the stages
PREF_SMALL = dataclasses.replace(
    SFT_SMALL, preference=PreferenceBudget(train=TrainBudget(max_steps=1, batch_size=2, learning_rate=1e-3, seq_len=2048),
                                           rounds=2, extraction_prompts=2, tool_use_rows=1, samples=2, max_new_tokens=8),
    eval=dataclasses.replace(SFT_SMALL.eval, num_examples=2),
)


def test_preference_stages_run_rounds_and_save_pairs(task_data, runs_root, monkeypatch):
    from lfm_helpers.pipeline import run_stage

    # an untrained model scores 0 everywhere; score by length so every prompt yields a pair
    monkeypatch.setattr(pref, "score", lambda case, text: min(1.0, len(text) / 20))
    art = run_stage("preference", PREF_SMALL, log=_quiet)
    rounds = pref.load_rounds(art)
    assert [r["round"] for r in rounds] == [1, 2] and art.metrics["variant"] == "normalised"
    for r in rounds:
        assert r["pairs"]["prompts"] >= 3 and r["dpo"]["steps"] == 1
        assert set(r["metrics"]) == {"extraction", "tool_use"} and r["mean_output_tokens"] > 0
        assert len(pref.load_pairs(art.path / f"pairs-round-{r['round']}.jsonl")) == r["pairs"]["pairs"]
    standard = run_stage("preference_standard", PREF_SMALL, log=_quiet)
    assert standard.metrics["loss_type"] == "sigmoid" and standard.metrics["beta"] == PREF_SMALL.preference.beta
    assert run_stage("preference", PREF_SMALL, log=_quiet).reused


def test_a_round_without_pairs_trains_nothing(task_data, runs_root, monkeypatch):
    from lfm_helpers.pipeline import run_stage

    monkeypatch.setattr(pref, "score", lambda case, text: 0.0)
    art = run_stage("preference", dataclasses.replace(PREF_SMALL, preference=dataclasses.replace(PREF_SMALL.preference, rounds=1)),
                    log=_quiet)
    (only,) = pref.load_rounds(art)
    assert only["pairs"]["pairs"] == 0 and only["dpo"] is None and only["pairs"]["all_equal_prompts"] == 1.0


# --------------------------------------------------------------------------- reading the results
def test_trl_code_path_of_the_normalised_loss_divides_by_length():
    code = pref.trl_loss_code("sigmoid_norm")
    assert code.startswith('elif loss_type == "sigmoid_norm"') and "completion_mask" in code and ".sum(dim=1)" in code
    assert "sigmoid_norm" not in pref.trl_loss_code("sigmoid")  # one branch only
    with pytest.raises(ValueError, match="no loss_type 'nope'"):
        pref.trl_loss_code("nope")


def test_improvement_table_flags_clear_gains():
    from lfm_helpers.evaluate import EvalReport, Rate

    start = pref.stage_start({"extraction": EvalReport("extraction", "test", 100, {"valid_json": Rate(20, 100)},
                                                       [{"output": "abc"}])}, _Tok())
    final = {"successes": {"extraction": {"valid_json": [80, 100]}}}
    same = {"successes": {"extraction": {"valid_json": [22, 100]}}}
    table = pref.improvement_table(start, {"good": final, "flat": same}, {"valid JSON": ("extraction", "valid_json")})
    assert table.loc[("good", "valid JSON"), "difference"] == 0.6 and table.loc[("good", "valid JSON"), "clearly better"]
    assert not table.loc[("flat", "valid JSON"), "clearly better"]
    assert start["round"] == 0 and start["mean_output_tokens"] == 3


class _Tok:
    """Counts characters as tokens."""

    def __call__(self, text, add_special_tokens=False):
        return {"input_ids": list(text)}


# --------------------------------------------------------------------------- the length-bias stress test
def test_verbose_chosen_changes_copies_only(tok):  # noqa: F811
    pairs = [{"prompt": [{"role": "user", "content": "x"}], "chosen": [{"role": "assistant", "content": "{}"}],
              "rejected": [{"role": "assistant", "content": "no"}], "chosen_tokens": 1}] * 4
    out = pref.with_verbose_chosen(pairs, tok, tail=" thanks", every=2)
    assert [p["chosen"][0]["content"] for p in out] == ["{} thanks", "{}", "{} thanks", "{}"]
    assert out[0]["chosen_tokens"] == pref.n_tokens(tok, "{} thanks") > 1
    assert pairs[0]["chosen"][0]["content"] == "{}"  # the originals are untouched
    with pytest.raises(ValueError, match="every"):
        pref.with_verbose_chosen(pairs, tok, every=0)


def test_ending_logodds_is_the_hand_computation(tok):  # noqa: F811
    model = _tiny_model(tok).eval()
    prompt, reply, tail = tok("hello there", add_special_tokens=False)["input_ids"], "ok", " thanks a lot"
    end = tok.convert_tokens_to_ids("<|im_end|>")
    head = prompt + tok(reply, add_special_tokens=False)["input_ids"]
    tail_ids = tok(tail, add_special_tokens=False)["input_ids"] + [end]
    with torch.no_grad():
        logp = torch.log_softmax(model(torch.tensor([head + tail_ids])).logits[0].float(), -1)
    expected = sum(logp[len(head) - 1 + j, t].item() for j, t in enumerate(tail_ids)) - logp[len(head) - 1, end].item()
    assert pref.ending_logodds(model, tok, [prompt], [reply], tail=tail) == pytest.approx(expected, abs=1e-4)
    with pytest.raises(ValueError, match="one reply per prompt"):
        pref.ending_logodds(model, tok, [prompt], [], tail=tail)


def test_length_bias_experiment_trains_both_variants(tok, monkeypatch):  # noqa: F811
    """Each variant trains on pairs whose chosen side carries the tail, without the NLL term."""
    seen = []
    real = pref.train_dpo

    def spy(model, tokenizer, pairs, budget, out, **kw):
        seen.append((kw["loss_type"], kw.get("sft_weight", 0.0), budget.max_steps,
                     all(p["chosen"][0]["content"].endswith(" thanks") for p in pairs)))
        return real(model, tokenizer, pairs, budget, out, **kw)

    monkeypatch.setattr(pref, "train_dpo", spy)
    preset = PREF_SMALL
    cases = pref.preference_cases("test", extraction=2, tool_use=0)
    pairs = [{"prompt": cases[0].messages, "chosen": [{"role": "assistant", "content": '{"a": 1}'}],
              "rejected": [{"role": "assistant", "content": "no"}], "tools": None}] * 2
    model = _tiny_model(tok)
    before = {k: v.clone() for k, v in model.state_dict().items()}
    table = pref.length_bias_experiment(model, tok, pairs, preset, cases, steps=1, tail=" thanks")
    assert list(table.index) == ["start", "standard", "normalised"]
    assert seen == [("sigmoid", 0.0, 1, True), ("sigmoid_norm", 0.0, 1, True)]
    assert table.loc["standard", "verbose-ending log-odds"] != table.loc["start", "verbose-ending log-odds"]
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())  # the start model is untouched
