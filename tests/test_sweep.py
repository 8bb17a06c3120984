import dataclasses

import pytest

from lfm_helpers.presets import SweepBudget
from lfm_helpers.sweep import points_table, run_config, run_sweep, sweep_model_spec
from conftest import SMALL

BUDGET = SweepBudget(hidden_sizes=(16, 32, 48), token_budgets=(1280, 2560, 3840), num_layers=2,
                     attention_layers=(0, 1), head_dim=16, seq_len=16, batch_size=8, learning_rate=3e-3)


def test_budget_validation():
    with pytest.raises(ValueError, match="at least 3"):
        dataclasses.replace(BUDGET, hidden_sizes=(16, 32))
    with pytest.raises(ValueError, match="multiples of head_dim"):
        dataclasses.replace(BUDGET, hidden_sizes=(16, 32, 40))


def test_model_spec_and_steps():
    spec = sweep_model_spec(BUDGET, 48)
    assert spec.hidden_size == 48 and spec.num_heads == 3 and spec.intermediate_size == 120
    assert run_config(BUDGET, 2560, seed=0).max_steps == 20


@pytest.mark.slow
def test_sweep_runs_every_point_and_reuses_them(small_data, runs_root):
    points = run_sweep(SMALL, BUDGET, log=lambda _: None)
    assert len(points) == 9
    assert {p.tokens for p in points} == {1280, 2560, 3840}
    by = {(p.hidden_size, p.tokens): p for p in points}
    assert by[48, 3840].params > by[16, 3840].params
    # more data helps at every size on this learnable toy corpus
    assert all(by[h, 3840].val_loss < by[h, 1280].val_loss for h in (16, 32, 48))
    assert (runs_root / "tiny" / "sweep" / "h16-t1280" / "manifest.json").is_file()
    again = run_sweep(SMALL, BUDGET, log=lambda _: None)
    assert again == points
    table = points_table(points)
    assert list(table.columns)[:3] == ["hidden_size", "params", "total_params"] and len(table) == 9
