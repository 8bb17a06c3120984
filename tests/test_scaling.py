import itertools

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt
import numpy as np
import pytest

from lfm_helpers.plotting import plot_isoflop, plot_scaling_fit
from lfm_helpers.scaling import (
    CHINCHILLA,
    EPOCH_AI,
    ScalingLaw,
    bootstrap_fit,
    compute_optimal,
    fit_scaling_law,
    format_inference_aware_table,
    format_overtraining_table,
    inference_aware_optimum,
    inference_aware_table,
    isoflop_curve,
    overtraining_table,
    predicted_loss,
    tokens_per_parameter,
)

TRUTH = ScalingLaw(E=1.8, A=300.0, B=900.0, alpha=0.35, beta=0.3, name="truth")
SIZES = (1e6, 3e6, 1e7)               # 3 model sizes over one decade
BUDGETS = (1e6, 5e6, 2e7, 1e8)        # 4 token budgets over two decades
NOISE = 0.001                         # 0.1% multiplicative (log-normal) noise on each final loss
# A 3^5 grid of starts: enough for noise-free data, and 20x cheaper than the default grid.
SMALL_GRID = np.array(list(itertools.product((0.0, 8.0), (0.0, 8.0), (-0.5, 0.5), (0.3, 1.0), (0.3, 1.0))))


def synthetic_runs(law: ScalingLaw, noise: float, seed: int = 0):
    N, D = (grid.ravel() for grid in np.meshgrid(SIZES, BUDGETS))
    L = law.loss(N, D) * np.exp(noise * np.random.default_rng(seed).standard_normal(N.size))
    return N, D, L


@pytest.fixture(scope="module")
def runs():
    return synthetic_runs(TRUTH, NOISE)


@pytest.fixture(scope="module")
def fitted(runs):
    return fit_scaling_law(*runs)


def test_fit_recovers_the_exact_law_from_noise_free_runs():
    law = fit_scaling_law(*synthetic_runs(TRUTH, 0.0), inits=SMALL_GRID)
    for name, value in TRUTH.params().items():
        assert law.params()[name] == pytest.approx(value, rel=1e-4), name


def test_fit_recovers_a_known_law_from_noisy_runs(fitted):
    # Over 8 noise seeds the exponent errors of this design stayed below 0.026 (alpha) and 0.003
    # (beta); alpha is the looser one because the sizes span one decade, the budgets two.
    assert fitted.alpha == pytest.approx(TRUTH.alpha, abs=0.05)
    assert fitted.beta == pytest.approx(TRUTH.beta, abs=0.05)
    held_out_N = np.array([2e6, 5e6, 1.5e6, 8e6, 4e6])
    held_out_D = np.array([3e6, 1e7, 5e7, 2e6, 6e7])
    relative = fitted.loss(held_out_N, held_out_D) / TRUTH.loss(held_out_N, held_out_D) - 1
    assert np.abs(relative).max() < 0.01


def test_fit_is_deterministic(runs):
    first = fit_scaling_law(*runs, inits=SMALL_GRID)
    assert fit_scaling_law(*runs, inits=SMALL_GRID) == first


def test_bootstrap_intervals_contain_the_true_exponents(runs, fitted):
    intervals = bootstrap_fit(*runs, n_boot=200, seed=0)
    assert set(intervals) == {"E", "A", "B", "alpha", "beta"}
    for name in ("alpha", "beta"):
        low, high = intervals[name]
        assert low <= getattr(TRUTH, name) <= high, (name, low, high)
        assert low <= getattr(fitted, name) <= high, (name, low, high)
    # 4 budgets over two decades pin beta down better than 3 sizes over one decade pin alpha
    width = {name: intervals[name][1] - intervals[name][0] for name in ("alpha", "beta")}
    assert width["beta"] < width["alpha"]


@pytest.mark.parametrize("law", [CHINCHILLA, EPOCH_AI], ids=["chinchilla", "epoch"])
def test_compute_optimal_spends_the_budget_and_is_the_isoflop_minimum(law):
    budgets = np.array([1e18, 1e21, 1e24])
    N_opt, D_opt = compute_optimal(law, budgets)
    np.testing.assert_allclose(6 * N_opt * D_opt, budgets, rtol=1e-12)
    for C, n in zip(budgets, N_opt):
        N, D, L = isoflop_curve(law, C, n * np.geomspace(0.1, 10, 2001))
        np.testing.assert_allclose(6 * N * D, C, rtol=1e-12)
        assert L.min() >= law.loss(n, C / (6 * n)) - 1e-12  # nothing on the valley beats the optimum
        assert N[np.argmin(L)] == pytest.approx(n, rel=0.01)  # grid step is 0.23%
    assert isinstance(compute_optimal(law, 1e21)[0], float)


def test_tokens_per_parameter_of_the_published_laws():
    budgets = [1e21, 1e22, 1e23, 1e24]
    chinchilla = [tokens_per_parameter(CHINCHILLA, C) for C in budgets]
    epoch = [tokens_per_parameter(EPOCH_AI, C) for C in budgets]
    # Chinchilla approach-3 constants: 50.1, 62.6, 78.2, 97.7 tokens/param (alpha > beta: rising).
    assert all(45 < r < 105 for r in chinchilla) and chinchilla == sorted(chinchilla)
    # Epoch AI refit: 21.6, 20.4, 19.2, 18.1 tokens/param, the "about 20" rule (alpha < beta: falling).
    assert all(17 < r < 23 for r in epoch) and epoch == sorted(epoch, reverse=True)


def test_overtraining_table_for_lfm2_350m():
    rows = overtraining_table(CHINCHILLA)
    assert [round(r.tokens_per_param, -3) for r in rows[2:]] == [28_000, 79_000]  # 10T and 28T tokens
    assert rows[0].tokens_per_param == pytest.approx(19.7, abs=0.1)  # 7B tokens: Chinchilla-style
    # Chinchilla constants: 2.913, 2.373, 2.288, 2.264 nats; the law's extrapolation, not LFM2's loss
    assert [r.loss for r in rows] == pytest.approx([2.9129, 2.3729, 2.2877, 2.2641], abs=1e-4)
    assert all(r.loss == pytest.approx(float(predicted_loss(CHINCHILLA, r.params, r.tokens))) for r in rows)
    losses = [r.loss for r in rows]
    assert losses == sorted(losses, reverse=True)  # more tokens always help...
    gaps = [r.loss - r.optimal_loss for r in rows]
    assert all(g >= 0 for g in gaps) and gaps == sorted(gaps)  # ...but ever less than a bigger model would
    assert gaps[0] < 0.01  # at ~20 tokens/param, 354M is close to compute-optimal
    assert "28,210" in format_overtraining_table(rows)  # tokens/param at 10T


@pytest.mark.parametrize("law", [CHINCHILLA, EPOCH_AI], ids=["chinchilla", "epoch"])
def test_inference_aware_optimum(law):
    target = law.loss(*compute_optimal(law, 1e22))
    N0, D0, total0 = inference_aware_optimum(law, target, 0.0)
    N_opt, D_opt = compute_optimal(law, 1e22)
    assert (N0, D0, total0) == pytest.approx((N_opt, D_opt, 1e22), rel=1e-4)  # nothing served: Chinchilla

    served = 1e13
    N, D, total = inference_aware_optimum(law, target, served)
    assert law.loss(N, D) == pytest.approx(target, rel=1e-9)
    assert total == pytest.approx(6 * N * D + 2 * N * served, rel=1e-12)
    # brute force along the target's level set: no size reaches the target for less
    N_min = (law.A / (target - law.E)) ** (1 / law.alpha)
    sizes = N_min * np.geomspace(1 + 1e-6, 1e3, 200_001)
    tokens = (law.B / (target - law.E - law.A / sizes**law.alpha)) ** (1 / law.beta)
    assert total <= (6 * sizes * tokens + 2 * sizes * served).min() * (1 + 1e-9)

    rows = inference_aware_table(law, target, tokens_served=(0.0, 1e11, 1e12, 1e13, 1e14))
    sizes, ratios, savings = ([getattr(r, f) for r in rows] for f in ("params", "tokens_per_param", "saving"))
    assert sizes == sorted(sizes, reverse=True) and len(set(sizes)) == len(sizes)  # smaller models...
    assert ratios == sorted(ratios) and len(set(ratios)) == len(ratios)  # ...trained on more tokens each
    assert savings[0] == pytest.approx(0.0, abs=1e-6) and savings == sorted(savings)
    assert savings[-1] > 0.5  # serving 1e14 tokens: over half the FLOPs saved (Chinchilla 75%, Epoch 74%)
    assert len(format_inference_aware_table(rows).splitlines()) == 2 + len(rows)


def test_validation_messages():
    N, D, L = synthetic_runs(TRUTH, 0.0)
    with pytest.raises(ValueError, match="one entry per run"):
        fit_scaling_law(N, D[:-1], L)
    with pytest.raises(ValueError, match="finite and positive"):
        fit_scaling_law(N, D, np.where(np.arange(len(L)) == 3, -1.0, L))
    with pytest.raises(ValueError, match="finite and positive"):
        fit_scaling_law(N, D, np.where(np.arange(len(L)) == 3, np.nan, L))
    with pytest.raises(ValueError, match="4 distinct .* cannot determine 5 constants"):
        fit_scaling_law(N[:4], D[:4], L[:4])
    with pytest.raises(ValueError, match="4 distinct .* cannot determine 5 constants"):
        fit_scaling_law(np.tile(N[:4], 2), np.tile(D[:4], 2), np.tile(L[:4], 2))  # repeats add nothing
    one_size, budgets = np.full(5, 1e6), np.geomspace(1e6, 1e8, 5)
    with pytest.raises(ValueError, match="at least 2 model sizes"):
        fit_scaling_law(one_size, budgets, TRUTH.loss(one_size, budgets))
    with pytest.raises(ValueError, match="1-D"):
        fit_scaling_law(N.reshape(3, 4), D.reshape(3, 4), L.reshape(3, 4))
    with pytest.raises(ValueError, match="inits must have shape"):
        fit_scaling_law(N, D, L, inits=np.zeros((3, 4)))
    with pytest.raises(ValueError, match="level"):
        bootstrap_fit(N, D, L, level=95)
    with pytest.raises(ValueError, match="above the irreducible loss"):
        inference_aware_optimum(CHINCHILLA, 1.5, 1e12)
    with pytest.raises(ValueError, match="positive"):
        compute_optimal(CHINCHILLA, 0.0)


def test_plot_helpers_return_axes_with_one_line_per_curve(runs, fitted):
    ax = plot_scaling_fit(*runs, fitted)
    assert len(ax.get_lines()) == 2 * len(SIZES)  # points + fitted curve per size
    ax = plot_isoflop(CHINCHILLA, [1e19, 1e20, 1e21, 1e22])
    assert len(ax.get_lines()) == 4 + 1  # one valley per budget + the line through the optima
    plt.close("all")
