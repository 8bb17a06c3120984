import dataclasses

import pytest
import torch

from lfm_helpers.models import build_model, tiny_lfm2_config
from lfm_helpers.presets import PRESETS, ModelSpec
from lfm_helpers.pretrain import (
    PretrainConfig,
    batch_indices,
    evaluate_loss,
    lr_multiplier,
    pack_documents,
    train_lm,
    unigram_entropy,
)

SMALL = dataclasses.replace(
    PRESETS["tiny"], vocab_size=64,
    model=ModelSpec(hidden_size=32, num_layers=3, attention_layers=(1, 2), num_heads=4, num_kv_heads=2,
                    intermediate_size=48, max_position_embeddings=64),
)
CFG = PretrainConfig(max_steps=8, batch_size=4, seq_len=16, learning_rate=3e-3, warmup_steps=2,
                     eval_every=4, eval_batches=2, checkpoint_every=100, seed=3)


def _data():
    g = torch.Generator().manual_seed(0)
    # A learnable stream: repeating ramps 3, 4, 5, ... so the loss must fall quickly.
    docs = [[3 + (i + j) % 20 for j in range(int(torch.randint(5, 30, (1,), generator=g)))] for i in range(200)]
    windows = pack_documents(docs, 16, bos_id=1, eos_id=2)
    return windows[:-8], windows[-8:]


def _model():
    return build_model(tiny_lfm2_config(SMALL), seed=0)


def test_pack_documents():
    w = pack_documents([[5, 6], [7]], 3, bos_id=1, eos_id=2)
    assert w.tolist() == [[1, 5, 6], [2, 1, 7]]  # the trailing eos did not fill a window
    with pytest.raises(ValueError, match="do not fill"):
        pack_documents([[5]], 10, 1, 2)


def test_batch_indices_cover_each_epoch_once():
    seen = torch.cat([batch_indices(s, 10, 5, seed=1) for s in range(2)])
    assert sorted(seen.tolist()) == list(range(10))
    assert torch.equal(batch_indices(3, 10, 5, seed=1), batch_indices(3, 10, 5, seed=1))
    across = batch_indices(1, 10, 7, seed=1)  # straddles the epoch boundary
    assert len(across) == 7


def test_schedule_warms_up_then_decays():
    cfg = dataclasses.replace(CFG, max_steps=100, warmup_steps=10, min_lr_ratio=0.1)
    mults = [lr_multiplier(s, cfg) for s in range(100)]
    assert mults[0] == pytest.approx(0.1) and mults[9] == pytest.approx(1.0)
    assert all(a >= b for a, b in zip(mults[10:], mults[11:]))
    assert lr_multiplier(100, cfg) == pytest.approx(0.1)


def test_config_validation():
    with pytest.raises(ValueError, match="warmup_steps"):
        PretrainConfig(max_steps=5, batch_size=2, seq_len=8, learning_rate=1e-3, warmup_steps=6)


def test_training_lowers_the_loss():
    train, val = _data()
    model = _model()
    before = evaluate_loss(model, val, 4)
    result = train_lm(model, train, val, dataclasses.replace(CFG, max_steps=30), progress=False)
    assert result.history.val_loss[-1] < before - 1.0
    assert result.tokens_seen == 30 * 4 * 16 and result.tokens_per_second > 0


def test_interrupted_run_resumes_to_the_same_result(tmp_path):
    train, val = _data()
    full_model = _model()
    full = train_lm(full_model, train, val, CFG, progress=False)

    model = _model()
    part = train_lm(model, train, val, CFG, checkpoint_dir=tmp_path, stop_after=3, progress=False)
    assert part.steps == 3 and (tmp_path / "checkpoint.pt").is_file()
    resumed_model = _model()  # a fresh process: weights come from the checkpoint
    rest = train_lm(resumed_model, train, val, CFG, checkpoint_dir=tmp_path, progress=False)
    assert rest.resumed_from_step == 3 and rest.steps == CFG.max_steps
    assert rest.tokens_seen == full.tokens_seen
    assert rest.history.loss == pytest.approx(full.history.loss, rel=1e-5)
    for a, b in zip(full_model.parameters(), resumed_model.parameters()):
        assert torch.allclose(a, b, atol=1e-6)


def test_checkpoint_of_another_config_is_refused(tmp_path):
    train, val = _data()
    train_lm(_model(), train, val, CFG, checkpoint_dir=tmp_path, stop_after=1, progress=False)
    with pytest.raises(ValueError, match="another config"):
        train_lm(_model(), train, val, dataclasses.replace(CFG, learning_rate=1e-3), checkpoint_dir=tmp_path,
                 progress=False)


def test_wrong_window_length_is_an_error():
    train, val = _data()
    with pytest.raises(ValueError, match="seq_len"):
        train_lm(_model(), train[:, :8], val, CFG, progress=False)


def test_unigram_entropy():
    uniform = torch.arange(8).repeat(10).view(10, 8)
    assert unigram_entropy(uniform, 8) == pytest.approx(torch.log(torch.tensor(8.0)).item())
    assert unigram_entropy(torch.zeros(4, 4, dtype=torch.long), 8) == pytest.approx(0.0)
