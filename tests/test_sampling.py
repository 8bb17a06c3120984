import pytest

from lfm_helpers.models import build_model, tiny_lfm2_config
from lfm_helpers.sampling import Sampling, complete, stop_token_ids
from lfm_helpers.tokenizer import train_tokenizer
from conftest import SENTENCES, SMALL


@pytest.fixture(scope="module")
def tok_model():
    tok = train_tokenizer(SENTENCES * 20, vocab_size=300)
    return tok, build_model(tiny_lfm2_config(SMALL, vocab_size=len(tok)), seed=0)


def test_greedy_is_deterministic_and_returns_only_new_text(tok_model):
    tok, model = tok_model
    a = complete(model, tok, ["Anna ordered"], Sampling(max_new_tokens=8))
    b = complete(model, tok, ["Anna ordered"], Sampling(max_new_tokens=8))
    assert a == b and not a[0].startswith("Anna ordered")


def test_sampling_is_seeded(tok_model):
    tok, model = tok_model
    s = Sampling(max_new_tokens=8, temperature=1.0, top_k=50, seed=3)
    assert complete(model, tok, ["Ben"], s) == complete(model, tok, ["Ben"], s)


def test_stop_tokens_include_end_of_turn(tok_model):
    tok, _ = tok_model
    assert stop_token_ids(tok) == sorted({tok.eos_token_id, tok.convert_tokens_to_ids("<|im_end|>")})


def test_repetition_penalty_below_one_is_refused():
    with pytest.raises(ValueError, match="rewards repetition"):
        Sampling(repetition_penalty=0.1)
    # allowed only when asked for by name (notebook 07 measures the mistake), never at or below 0
    assert Sampling(repetition_penalty=0.1, allow_rewarding_repetition=True).repetition_penalty == 0.1
    with pytest.raises(ValueError, match="must be > 0"):
        Sampling(repetition_penalty=0.0, allow_rewarding_repetition=True)


def test_held_out_prompts():
    from lfm_helpers.sampling import held_out_prompts

    rows = [{"kind": "a", "text": "one two three four five"}, {"kind": "b", "text": "x" * 50}]
    assert held_out_prompts(rows, ("a", "b"), n_chars=12) == ["one two", "x" * 12]
    with pytest.raises(ValueError, match="no document of kind 'c'"):
        held_out_prompts(rows, ("c",))
