"""Scaling-law arithmetic: fit L(N, D) to your own runs, then ask what it says about budgets.

A scaling law predicts the pretraining loss of a model with ``N`` parameters trained on ``D``
tokens. Notebook 03 trains a small sweep (several sizes x several token budgets) and fits the
Chinchilla form to it::

    L(N, D) = E + A / N**alpha + B / D**beta

``E`` is the loss no model reaches (the entropy of text), ``A / N**alpha`` what a finite model
costs and ``B / D**beta`` what finite data costs. Training compute is ``C = 6 N D`` FLOPs (two
FLOPs per parameter per token forward, four backward).

The fit follows Hoffmann et al. 2022 ("approach 3"), as replicated by Besiroglu et al. 2024:

- work in log space, because losses of different runs differ by a few percent and relative
  errors are what matter: ``log L = LSE(a - alpha log N, b - beta log D, e)`` with ``A = exp(a)``,
  ``B = exp(b)``, ``E = exp(e)``. The log-sum-exp form is the same law, but keeps A, B and E
  positive without constraints and keeps the numbers well scaled (A can be 1e2 or 1e6);
- minimise the Huber loss (``delta = 1e-3``) of the log residuals, so that one diverged or
  under-trained run does not drag the whole fit (beyond ``delta`` the penalty grows linearly);
- the objective has several local minima, so L-BFGS is started from a grid of initialisations and
  the best end point is kept.

With the law in hand, the rest is closed-form or one-dimensional arithmetic: the compute-optimal
split of a FLOP budget, the loss of an over-trained small model (LFM2-350M saw 10T tokens, about
28,000 per parameter), and the inference-aware optimum of Sardana et al. 2024, where the compute
spent serving the model also counts.

"About 20 tokens per parameter" is the Chinchilla rule of thumb, but the two constant sets below
do not agree on it: Epoch AI's refit gives 22 to 18 tokens per parameter from 1e21 to 1e24 FLOPs,
while the published approach-3 constants give 50 to 98 (and rising, because their alpha > beta).
Which law you plug in changes the answer several-fold; that is a lesson in itself.

Caveat: a published law is fitted to one data set and tokenizer, in one range of N and D. Its
absolute losses do not transfer to another corpus, and 10T tokens for a 350M model is far outside
the range either published law was fitted on: read those predictions as the law's extrapolation,
not as LFM2's loss.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass

import numpy as np

FLOPS_PER_PARAM_TOKEN_TRAIN = 6  # forward (2) + backward (4)
FLOPS_PER_PARAM_TOKEN_INFERENCE = 2  # forward only

PARAMS = ("E", "A", "B", "alpha", "beta")


@dataclass(frozen=True)
class ScalingLaw:
    """``L(N, D) = E + A / N**alpha + B / D**beta`` (loss in nats per token)."""

    E: float
    A: float
    B: float
    alpha: float
    beta: float
    name: str = "scaling law"

    def loss(self, N, D):
        """Predicted loss; ``N`` and ``D`` broadcast like numpy arrays (floats in, float out)."""
        N, D = np.asarray(N, dtype=float), np.asarray(D, dtype=float)
        return self.E + self.A / N**self.alpha + self.B / D**self.beta

    def params(self) -> dict[str, float]:
        """The five constants by name (the keys of :func:`bootstrap_fit`)."""
        return {p: getattr(self, p) for p in PARAMS}


CHINCHILLA = ScalingLaw(E=1.69, A=406.4, B=410.7, alpha=0.34, beta=0.28,
                        name="Chinchilla (Hoffmann et al. 2022, approach 3)")
EPOCH_AI = ScalingLaw(E=1.8172, A=482.01, B=2085.43, alpha=0.3478, beta=0.3658,
                      name="Epoch AI replication (Besiroglu et al. 2024)")

#: Starting points for the fit, columns ``(a, b, e, alpha, beta)`` with ``A = exp(a)`` etc.: a
#: coarse grid over the plausible range (A and B from 1 to e^25, E from 0.37 to 2.7 nats,
#: exponents 0 to 2), 4,500 points. The optimiser runs them all at once, in a few seconds.
INIT_GRID = np.array(list(itertools.product(
    np.arange(0.0, 26.0, 5.0),       # a
    np.arange(0.0, 26.0, 5.0),       # b
    np.arange(-1.0, 1.01, 0.5),      # e
    np.arange(0.0, 2.01, 0.5),       # alpha
    np.arange(0.0, 2.01, 0.5),       # beta
)))


# --------------------------------------------------------------------------------------------
# Fitting
# --------------------------------------------------------------------------------------------

def check_runs(N, D, L) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The runs as 1-D float arrays, or a ValueError that says what is wrong with them."""
    arrays = [np.asarray(x, dtype=float) for x in (N, D, L)]
    for name, x in zip("NDL", arrays):
        if x.ndim != 1:
            raise ValueError(f"{name} must be a 1-D sequence of runs, got shape {x.shape}")
        if not np.all(np.isfinite(x)) or np.any(x <= 0):
            raise ValueError(f"{name} must be finite and positive (parameters, tokens, loss in nats)")
    lengths = {name: len(x) for name, x in zip("NDL", arrays)}
    if len(set(lengths.values())) != 1:
        raise ValueError(f"N, D and L must have one entry per run; got lengths {lengths}")
    problem = _degenerate(arrays[0], arrays[1])
    if problem:
        raise ValueError(problem)
    return arrays[0], arrays[1], arrays[2]


def _degenerate(N: np.ndarray, D: np.ndarray) -> str | None:
    """Why these runs cannot determine the five constants (None when they can)."""
    distinct = len(set(zip(N.tolist(), D.tolist())))
    if distinct < len(PARAMS):
        return (f"{distinct} distinct (N, D) runs cannot determine {len(PARAMS)} constants "
                f"(E, A, B, alpha, beta); train at least {len(PARAMS)}, e.g. 3 sizes x 3 token budgets")
    if len(np.unique(N)) < 2 or len(np.unique(D)) < 2:
        return "the runs need at least 2 model sizes and 2 token budgets to separate alpha from beta"
    return None


def _huber_objective(theta, logN, logD, logL, weights, delta):
    """Weighted mean Huber loss of the log residuals for each row of ``theta``, and its gradient.

    ``theta`` rows are ``(a, b, e, alpha, beta)``; ``weights`` (one row per theta row, one column
    per run) says how many times each run counts: all ones for a fit, bootstrap counts for a
    resample. Divided by ``delta`` so that the slope beyond ``delta`` is 1 (same minimiser,
    better scaled for the stopping tolerances).
    """
    a, b, e, alpha, beta = (theta[:, i, None] for i in range(5))
    size_term, data_term = a - alpha * logN, b - beta * logD
    top = np.maximum(np.maximum(size_term, data_term), e)  # log-sum-exp, shifted to avoid overflow
    w_size, w_data, w_e = np.exp(size_term - top), np.exp(data_term - top), np.exp(e - top)
    total = w_size + w_data + w_e
    residual = top + np.log(total) - logL
    size = np.abs(residual)
    weights = weights / weights.sum(axis=1, keepdims=True)
    huber = np.where(size <= delta, 0.5 * residual**2, delta * (size - 0.5 * delta)) / delta
    slope = weights * np.clip(residual, -delta, delta) / (delta * total)  # x softmax numerators below
    grad = np.empty_like(theta)
    grad[:, 0] = (slope * w_size).sum(axis=1)
    grad[:, 1] = (slope * w_data).sum(axis=1)
    grad[:, 2] = (slope * w_e).sum(axis=1)
    grad[:, 3] = -(slope * w_size) @ logN
    grad[:, 4] = -(slope * w_data) @ logD
    return (weights * huber).sum(axis=1), grad


def _lbfgs(fun, x0: np.ndarray, *, memory: int = 10, max_iter: int = 500, gtol: float = 1e-7,
           ftol: float = 1e-10) -> tuple[np.ndarray, np.ndarray]:
    """L-BFGS with backtracking (Armijo) line search, run on every row of ``x0`` at once.

    ``fun(x, rows)`` returns the objective values and gradients of problems ``rows`` (indices
    into ``x0``) at the points ``x``, one row each. Each row is an independent problem with its
    own curvature history; vectorising over rows is what makes a grid of thousands of starts
    cheap. Rows stop when their gradient vanishes, their objective
    stops moving, or no step decreases it. Pure numpy, so the result is deterministic.
    """
    x = np.array(x0, dtype=float)
    f, g = fun(x, np.arange(len(x)))
    rows, dim = x.shape
    S, Y = np.zeros((rows, memory, dim)), np.zeros((rows, memory, dim))
    rho = np.zeros((rows, memory))  # 0 marks an empty or rejected history slot
    gamma = 1 / np.maximum(np.abs(g).max(axis=1), 1.0)  # first step: at most 1 in any coordinate
    active = np.isfinite(f) & np.all(np.isfinite(g), axis=1)
    f = np.where(active, f, np.inf)
    for it in range(max_iter):
        active &= np.abs(g).max(axis=1) > gtol
        r = np.flatnonzero(active)
        if len(r) == 0:
            break
        # Two-loop recursion: direction = -H g from the stored (s, y) pairs, newest first.
        Sr, Yr, rhor, gr = S[r], Y[r], rho[r], g[r]
        q = gr.copy()
        coef = np.zeros((len(r), memory))
        order = [(it - 1 - k) % memory for k in range(memory)]
        for j in order:
            coef[:, j] = rhor[:, j] * np.einsum("rd,rd->r", Sr[:, j], q)
            q -= coef[:, j, None] * Yr[:, j]
        q *= gamma[r, None]
        for j in reversed(order):
            b = rhor[:, j] * np.einsum("rd,rd->r", Yr[:, j], q)
            q += (coef[:, j] - b)[:, None] * Sr[:, j]
        direction = -q
        slope = np.einsum("rd,rd->r", gr, direction)
        uphill = slope >= 0  # a stale history: restart those rows with steepest descent
        if uphill.any():
            direction[uphill] = -gr[uphill] / np.maximum(np.abs(gr[uphill]).max(axis=1, keepdims=True), 1.0)
            slope[uphill] = np.einsum("rd,rd->r", gr[uphill], direction[uphill])
            rho[r[uphill]] = 0.0
        # Backtracking: halve each row's step until it decreases f enough (Armijo, c1 = 1e-4),
        # evaluating only the rows still searching.
        step = np.ones(len(r))
        x_new, f_new, g_new = x[r], f[r], gr.copy()
        pending = np.arange(len(r))
        for _ in range(50):
            trial = x[r[pending]] + step[pending, None] * direction[pending]
            f_try, g_try = fun(trial, r[pending])
            ok = np.isfinite(f_try) & (f_try <= f[r[pending]] + 1e-4 * step[pending] * slope[pending])
            done = pending[ok]
            x_new[done], f_new[done], g_new[done] = trial[ok], f_try[ok], g_try[ok]
            pending = pending[~ok]
            if len(pending) == 0:
                break
            step[pending] *= 0.5
        s, y = x_new - x[r], g_new - gr
        sy, yy = np.einsum("rd,rd->r", s, y), np.einsum("rd,rd->r", y, y)
        # Keep a pair only if it saw real curvature: where every residual is beyond delta the
        # objective is linear, y is rounding noise, and 1/sy would blow the next step up.
        keep = sy > 1e-10 * np.einsum("rd,rd->r", s, s)
        slot = it % memory
        S[r, slot], Y[r, slot] = s, y
        rho[r, slot] = np.where(keep, 1.0 / np.where(keep, sy, 1.0), 0.0)
        gamma[r] = np.where(keep, sy / np.where(keep, yy, 1.0), gamma[r])
        stalled = np.abs(f[r] - f_new) <= ftol * np.maximum(1.0, np.abs(f[r]))
        x[r], f[r], g[r] = x_new, f_new, g_new
        active[r[stalled]] = False  # includes rows where no step decreased f (f_new == f)
    return x, f


def _fit_rows(N, D, L, weights, starts, delta) -> tuple[np.ndarray, np.ndarray]:
    """End points ``(a, b, e, alpha, beta)`` and objective values of L-BFGS from each start.

    Row k of ``weights`` and ``starts`` is one independent problem. The optimiser works with
    ``log N`` and ``log D`` centred on their means: ``a - alpha log N = (a - alpha m) - alpha
    (log N - m)`` is the same law, but without the centring ``a`` and ``alpha`` move almost in
    lock-step and L-BFGS needs far more iterations.
    """
    logN, logD, logL = np.log(N), np.log(D), np.log(L)
    mN, mD = logN.mean(), logD.mean()
    x = np.array(starts, dtype=float)
    x[:, 0] -= x[:, 3] * mN
    x[:, 1] -= x[:, 4] * mD
    x, f = _lbfgs(lambda t, rows: _huber_objective(t, logN - mN, logD - mD, logL, weights[rows], delta), x)
    x[:, 0] += x[:, 3] * mN
    x[:, 1] += x[:, 4] * mD
    return x, f


def _law(row, name: str) -> ScalingLaw:
    a, b, e, alpha, beta = (float(v) for v in row)
    return ScalingLaw(E=float(np.exp(e)), A=float(np.exp(a)), B=float(np.exp(b)), alpha=alpha, beta=beta,
                      name=name)


def fit_scaling_law(N, D, L, *, delta: float = 1e-3, inits: np.ndarray = INIT_GRID,
                    name: str | None = None) -> ScalingLaw:
    """Fit ``L = E + A/N**alpha + B/D**beta`` to runs (parameters, tokens, final loss), Chinchilla approach 3.

    Minimises the Huber loss (``delta``) between log predicted and log observed loss, in the
    log-sum-exp parametrisation, by L-BFGS from every row of ``inits`` (columns
    ``a, b, e, alpha, beta``); the best end point wins. Deterministic: same runs, same law.

    Needs at least 5 distinct runs (one per constant) over at least 2 sizes and 2 budgets; in
    practice use 3 or more of each, spread over a decade or more, or the exponents are loose
    (see :func:`bootstrap_fit`).
    """
    N, D, L = check_runs(N, D, L)
    inits = np.asarray(inits, dtype=float)
    if inits.ndim != 2 or inits.shape[1] != 5 or len(inits) == 0:
        raise ValueError(f"inits must have shape (k, 5) with columns a, b, e, alpha, beta; got {inits.shape}")
    x, f = _fit_rows(N, D, L, np.ones((len(inits), len(N))), inits, delta)
    if not np.isfinite(f).any():
        raise ValueError("the fit diverged from every initialisation; check the runs")
    return _law(x[int(np.argmin(f))], name or f"fit to {len(N)} runs")


def bootstrap_fit(N, D, L, n_boot: int = 200, seed: int = 0, *, level: float = 0.95,
                  delta: float = 1e-3, n_starts: int = 8) -> dict[str, tuple[float, float]]:
    """Percentile bootstrap intervals per constant: how much the fit depends on which runs you trained.

    Resamples the runs with replacement ``n_boot`` times and refits each resample; the interval
    is the central ``level`` share of the refitted values. A wide alpha or beta interval means
    the sweep does not pin that exponent down: add sizes (alpha) or budgets (beta).

    A resample is the same runs counted 0, 1, 2... times, so every resample is the full data
    with integer weights, and all of them are optimised in one batch. Each starts from the
    ``n_starts`` best distinct end points of the full-data fit (its local minima), not the whole
    grid: a resample's landscape is close to the full one. Resamples that cannot determine the law
    (fewer than 5 distinct runs, or a single size or budget) are skipped.
    """
    N, D, L = check_runs(N, D, L)
    if not 0 < level < 1:
        raise ValueError(f"level must be between 0 and 1, got {level}")
    ends, f = _fit_rows(N, D, L, np.ones((len(INIT_GRID), len(N))), INIT_GRID, delta)
    ends = ends[np.argsort(f, kind="stable")]
    _, first = np.unique(np.round(ends, 3), axis=0, return_index=True)
    starts = ends[np.sort(first)[:n_starts]]
    rng = np.random.default_rng(seed)
    counts = [np.bincount(rng.integers(0, len(N), len(N)), minlength=len(N)) for _ in range(n_boot)]
    counts = np.array([c for c in counts if not _degenerate(N[c > 0], D[c > 0])])
    if len(counts) < max(10, n_boot // 2):
        raise ValueError(f"only {len(counts)} of {n_boot} resamples could determine the law; train more runs")
    x, f = _fit_rows(N, D, L, np.repeat(counts, len(starts), axis=0), np.tile(starts, (len(counts), 1)), delta)
    best = np.argmin(f.reshape(len(counts), len(starts)), axis=1)
    ends = x.reshape(len(counts), len(starts), 5)[np.arange(len(counts)), best]
    fits = np.array([list(_law(row, "resample").params().values()) for row in ends])
    tail = 100 * (1 - level) / 2
    low, high = np.percentile(fits, [tail, 100 - tail], axis=0)
    return {p: (float(lo), float(hi)) for p, lo, hi in zip(PARAMS, low, high)}


# --------------------------------------------------------------------------------------------
# Compute-optimal allocation
# --------------------------------------------------------------------------------------------

def predicted_loss(law: ScalingLaw, N, D):
    """The law's loss for ``N`` parameters trained on ``D`` tokens (same as ``law.loss``)."""
    return law.loss(N, D)


def compute_optimal(law: ScalingLaw, C) -> tuple[np.ndarray | float, np.ndarray | float]:
    """``(N_opt, D_opt)`` minimising the loss at ``C = 6 N D`` training FLOPs, in closed form.

    Setting dL/dN = 0 along ``D = C / (6N)`` gives ``N_opt = G (C/6)**(beta/(alpha+beta))`` with
    ``G = (alpha A / (beta B))**(1/(alpha+beta))``, and ``D_opt = (C/6) / N_opt``. When
    ``alpha > beta`` (Chinchilla), N_opt grows slower than D_opt, so the optimal tokens per
    parameter slowly rises with compute; when ``alpha < beta`` (Epoch AI) it slowly falls.
    """
    C = np.asarray(C, dtype=float)
    if np.any(C <= 0):
        raise ValueError("compute C must be positive")
    G = (law.alpha * law.A / (law.beta * law.B)) ** (1 / (law.alpha + law.beta))
    N_opt = G * (C / 6) ** (law.beta / (law.alpha + law.beta))
    D_opt = (C / 6) / N_opt
    return (float(N_opt), float(D_opt)) if C.ndim == 0 else (N_opt, D_opt)


def tokens_per_parameter(law: ScalingLaw, C):
    """``D_opt / N_opt`` at ``C`` FLOPs: the law's version of "20 tokens per parameter"."""
    N_opt, D_opt = compute_optimal(law, C)
    return D_opt / N_opt


def isoflop_curve(law: ScalingLaw, C: float, N_grid) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``(N, D, L)`` along one FLOP budget: each size gets ``D = C / (6N)`` tokens.

    Too small a model wastes the budget on tokens it cannot use, too big a one is under-trained;
    the minimum of this valley is :func:`compute_optimal` (Chinchilla's approach 2 fits parabolas
    to such valleys measured from real runs).
    """
    N = np.asarray(N_grid, dtype=float)
    if C <= 0 or np.any(N <= 0):
        raise ValueError("compute and model sizes must be positive")
    D = C / (FLOPS_PER_PARAM_TOKEN_TRAIN * N)
    return N, D, law.loss(N, D)


# --------------------------------------------------------------------------------------------
# Over-training and inference-aware optimum
# --------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class OvertrainingRow:
    """One fixed-size model at one token budget, against the compute-optimal model for the same FLOPs."""

    params: float
    tokens: float
    tokens_per_param: float
    flops: float
    loss: float
    optimal_params: float  # the compute-optimal size for the same training FLOPs
    optimal_loss: float    # ...and its loss: the price of fixing N is loss - optimal_loss


def overtraining_table(law: ScalingLaw, N: float = 354_483_968,
                       tokens=(7e9, 1e12, 10e12, 28e12)) -> list[OvertrainingRow]:
    """Predicted loss of one model size (default LFM2-350M) trained far past 20 tokens per parameter.

    Each row also gives the compute-optimal model for the same training FLOPs: it reaches a lower
    loss, but is larger and so costs more memory and time on every token it later serves. That
    trade, not the training loss alone, is why on-device models are over-trained.
    """
    rows = []
    for D in tokens:
        flops = FLOPS_PER_PARAM_TOKEN_TRAIN * N * D
        N_opt, D_opt = compute_optimal(law, flops)
        rows.append(OvertrainingRow(float(N), float(D), D / N, flops, float(law.loss(N, D)),
                                    N_opt, float(law.loss(N_opt, D_opt))))
    return rows


def format_overtraining_table(rows: list[OvertrainingRow]) -> str:
    """A plain-text table of :func:`overtraining_table` rows."""
    head = (f"{'tokens':>8} {'tokens/param':>13} {'train FLOPs':>11} {'loss':>7}   "
            f"{'compute-optimal N':>17} {'its loss':>8}")
    lines = [head, "-" * len(head)]
    for r in rows:
        lines.append(f"{r.tokens:>8.3g} {r.tokens_per_param:>13,.0f} {r.flops:>11.3g} {r.loss:>7.4f}   "
                     f"{r.optimal_params:>17.3g} {r.optimal_loss:>8.4f}")
    return "\n".join(lines)


def _allocation_for_loss(law: ScalingLaw, target_loss: float, share):
    """``(N, D)`` reaching ``target_loss`` when the size term takes ``share`` of the reducible loss.

    Every (N, D) on the target's level set splits ``target_loss - E`` between the size term
    ``A / N**alpha`` and the data term ``B / D**beta``; ``share`` in (0, 1) walks that curve
    with both N and D finite (share -> 1: the smallest possible model and infinite data).
    """
    reducible = target_loss - law.E
    N = (law.A / (share * reducible)) ** (1 / law.alpha)
    D = (law.B / ((1 - share) * reducible)) ** (1 / law.beta)
    return N, D


def inference_aware_optimum(law: ScalingLaw, target_loss: float,
                            tokens_served: float) -> tuple[float, float, float]:
    """``(N, D, total FLOPs)`` reaching ``target_loss`` at least cost over training *and* serving.

    After Sardana, Doubov and Frankle 2024 (arXiv:2401.00448): minimise
    ``6 N D + 2 N D_inference`` subject to ``L(N, D) = target_loss``. With nothing served this is
    the compute-optimal model for that loss; every served token adds ``2N`` FLOPs, which pushes
    the optimum to a smaller model trained on more tokens.

    Solved as a 1-D problem along the level set (see ``_allocation_for_loss``): a dense grid in
    logit(share), then golden-section refinement around the best grid point.
    """
    if not target_loss > law.E:
        raise ValueError(f"target loss {target_loss} must be above the irreducible loss E = {law.E}")
    if tokens_served < 0:
        raise ValueError("tokens_served must be zero or positive")

    def total_flops(u):
        N, D = _allocation_for_loss(law, target_loss, 1 / (1 + np.exp(-u)))
        return FLOPS_PER_PARAM_TOKEN_TRAIN * N * D + FLOPS_PER_PARAM_TOKEN_INFERENCE * N * tokens_served

    with np.errstate(over="ignore"):  # the grid's ends reach infinite N or D: those costs are inf
        grid = np.linspace(-30, 30, 6001)
        costs = total_flops(grid)
    i = int(np.argmin(costs))
    lo, hi = grid[max(i - 1, 0)], grid[min(i + 1, len(grid) - 1)]
    ratio = (np.sqrt(5) - 1) / 2
    for _ in range(100):  # golden section: the bracket shrinks by 0.618 per step
        u1, u2 = hi - ratio * (hi - lo), lo + ratio * (hi - lo)
        if total_flops(u1) <= total_flops(u2):
            hi = u2
        else:
            lo = u1
    u = (lo + hi) / 2
    N, D = _allocation_for_loss(law, target_loss, 1 / (1 + np.exp(-u)))
    return float(N), float(D), float(total_flops(u))


@dataclass(frozen=True)
class InferenceAwareRow:
    """The cheapest model for a target loss when ``tokens_served`` tokens will be generated with it."""

    tokens_served: float
    params: float
    tokens: float
    tokens_per_param: float
    total_flops: float
    compute_optimal_flops: float  # the compute-optimal model for the same loss, serving the same tokens

    @property
    def saving(self) -> float:
        """Share of total FLOPs saved against training the compute-optimal model and serving it."""
        return 1 - self.total_flops / self.compute_optimal_flops


def inference_aware_table(law: ScalingLaw, target_loss: float,
                          tokens_served=(0.0, 1e11, 1e12, 1e13, 1e14)) -> list[InferenceAwareRow]:
    """:func:`inference_aware_optimum` at growing demand: the optimum shrinks and trains longer.

    The baseline is the model that is compute-optimal for ``target_loss`` (the first row when
    ``tokens_served`` starts at 0), trained once and then serving the same tokens.
    """
    N0, D0, _ = inference_aware_optimum(law, target_loss, 0.0)
    rows = []
    for served in tokens_served:
        N, D, total = inference_aware_optimum(law, target_loss, served)
        baseline = FLOPS_PER_PARAM_TOKEN_TRAIN * N0 * D0 + FLOPS_PER_PARAM_TOKEN_INFERENCE * N0 * served
        rows.append(InferenceAwareRow(float(served), N, D, D / N, total, baseline))
    return rows


def format_inference_aware_table(rows: list[InferenceAwareRow]) -> str:
    """A plain-text table of :func:`inference_aware_table` rows."""
    head = f"{'tokens served':>13} {'N':>9} {'D':>9} {'tokens/param':>12} {'total FLOPs':>11} {'saving':>7}"
    lines = [head, "-" * len(head)]
    for r in rows:
        lines.append(f"{r.tokens_served:>13.3g} {r.params:>9.3g} {r.tokens:>9.3g} {r.tokens_per_param:>12,.0f} "
                     f"{r.total_flops:>11.3g} {r.saving:>6.1%}")
    return "\n".join(lines)
