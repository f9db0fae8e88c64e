"""Shared helpers of the policy tests (numpy only, no TensorFlow): score generators, tolerances, and the
selection the Beam job makes, run through the job's own functions (plan.reference_selection)."""

import math
import sys

import numpy as np
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from tfx_curator.components.curator.options import CurationOptions
from tfx_curator.components.curator.policy import plan, waterfill

SETTINGS = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
# Normal quantile for a two-sided false-alarm probability of about 7e-6 per statistical check. The checks are
# deterministic (hash-based sampling with fixed seeds), so this only says how surprising a failure would be.
Z = 4.5


# ----------------------------------------------------------------------------------------------------------
# Data generators
# ----------------------------------------------------------------------------------------------------------

finite_nonneg = st.floats(min_value=0.0, max_value=1e300, allow_nan=False, allow_infinity=False)


@st.composite
def score_arrays(draw, min_size=1, max_size=300):
    """Scores with ties, zeros, huge dynamic ranges and clusters around log-bin edges."""
    kind = draw(st.sampled_from(["floats", "ties", "lognormal", "edges", "dynamic"]))
    n = draw(st.integers(min_size, max_size))
    if kind == "floats":
        return draw(hnp.arrays(np.float64, n, elements=finite_nonneg))
    seed = draw(st.integers(0, 2**32 - 1))
    rng = np.random.default_rng(seed)
    if kind == "ties":
        values = np.array(draw(st.lists(finite_nonneg, min_size=1, max_size=4)))
        return rng.choice(values, size=n)
    if kind == "lognormal":
        s = rng.lognormal(0.0, draw(st.floats(0.01, 20.0)), n)
        s[rng.random(n) < draw(st.floats(0.0, 0.9))] = 0.0
        return s
    if kind == "edges":  # values at both ends of fine log bins: worst case for the summary
        k = rng.integers(-50_000, 50_000, size=n)
        offset = rng.choice([0.0, 1.0 - 1e-9, 0.5], size=n)
        return np.exp2((k + offset) / 1024.0)
    exponents = rng.uniform(-300.0, 300.0, n)  # "dynamic": 1e-300 .. 1e300
    return 10.0**exponents


def budgets(n):
    return st.one_of(st.floats(0.0, 1.2 * n), st.integers(0, n).map(float))


p_mins = st.one_of(st.just(0.0), st.floats(0.0, 0.6), st.sampled_from([1e-6, 0.01, 0.1]))


def fp_tol(budget, n):
    """Floating-point tolerance for sum(p) == budget: summing n terms <= 1 (with margin)."""
    return 1e-12 * (n + 10) * max(1.0, budget)


def reference_log_lambda(s, budget, p_min):
    """Independent reference: bisection on log(lam) for sum(clip(s/lam, p_min, 1)) == budget, computed in
    log space so that it also works where lam itself is outside the float64 range."""
    log_s = np.log(s[s > 0])
    n_zero = s.size - log_s.size
    lo, hi = log_s.min() - 60.0, log_s.max() + math.log(s.size) + 60.0 - math.log(max(budget, 1e-300))
    for _ in range(150):  # the bracket spans < 2000 nats: 150 halvings are far below fp resolution
        mid = 0.5 * (lo + hi)
        with np.errstate(over="ignore"):
            used = np.clip(np.exp(log_s - mid), p_min, 1.0).sum() + n_zero * p_min
        lo, hi = (mid, hi) if used > budget else (lo, mid)
    return 0.5 * (lo + hi)


def lambda_out_of_range(s, budget, p_min):
    log_lam = reference_log_lambda(s, budget, p_min)
    return not (math.log(sys.float_info.min) + 1e-9 < log_lam < math.log(sys.float_info.max) - 1e-9)


def water_fill_or_out_of_range(s, budget, p_min):
    """water_fill, or None when it raised because the exact lam is outside the float64 range (verified)."""
    try:
        return waterfill.water_fill(s, budget, p_min)
    except ValueError as err:
        assert "outside the normal float64 range" in str(err)
        assert lambda_out_of_range(s, budget, p_min)
        return None


def ids_for(n, prefix=b"ex-"):
    return [prefix + str(i).encode() for i in range(n)]


def job_options(
    strategy: str, n: int, budget: float, window_size: int | None = None, **kwargs
) -> CurationOptions:
    """Options asking for an expected `budget` examples out of `n` (a count when whole and > 1, else a rate).

    `window_size` None: one window holding every example, i.e. exact water-filling on the whole split. No
    defensive mixture unless `mix` is given.
    """
    whole = budget > 1 and budget == math.floor(budget)
    return CurationOptions(
        strategy=strategy,
        budget=int(budget) if whole else (budget / n if n else 0.0),
        window_size=window_size or 4 * max(n, 1),
        **{"mix": 0.0, **kwargs},
    )


def job_probabilities(strategy, scores, labels, budget, ids=None, **kwargs):
    """(p, plan) the Beam job gives a split: `plan.reference_selection`'s plan evaluated by
    `plan.plan_probabilities`, the functions the job runs (kwargs: CurationOptions fields, window_size)."""
    scores = np.asarray(scores, dtype=np.float64)
    labels = np.zeros(scores.size) if labels is None else np.asarray(labels, dtype=np.float64)
    ids = ids_for(scores.size) if ids is None else ids
    options = job_options(strategy, scores.size, budget, **kwargs)
    _, _, split_plan = plan.reference_selection(options, ids, scores, labels)
    return plan.plan_probabilities(split_plan, ids, scores, labels, options.seed), split_plan


def floor_bound(split_plan) -> bool:
    """Every water-filled p is p_min (lam == inf): the budget is at or below n * p_min."""
    lams = list(split_plan.lams.values()) + [lam for lam, _ in split_plan.class_thresholds.values()]
    return any(lam == math.inf for lam in lams)


def ht_check(y, selections):
    """Mean and variance of the Horvitz-Thompson estimate sum(w * y) over runs against their exact values.

    `selections`: one (p, weight) per run (seed). Given p, one estimate is a sum of independent terms
    Y_i = (y_i / p_i) * Bernoulli(p_i): unbiased, with variance V = sum y^2 (1 - p) / p and fourth cumulant
    K4 = sum (y/p)^4 p (1-p) (1 - 6 p (1-p)). When p changes with the seed (hashed windows), the estimate's
    variance is the mean of V and the variance of the sample variance (mu4 - sigma^4) / R with
    mu4 = mean(K4 + 3 V^2). Both are tested at Z standard errors.
    """
    total = float(y.sum())
    estimates = np.array([np.dot(weight, y) for _, weight in selections])
    seen = y != 0  # terms with y == 0 add nothing, whatever their p (even 0)
    y = y[seen]
    v = np.array([float(np.sum(y**2 * (1 - p[seen]) / p[seen])) for p, _ in selections])
    k4 = np.array(
        [
            float(np.sum((y / q) ** 4 * q * (1 - q) * (1 - 6 * q * (1 - q))))
            for q in (p[seen] for p, _ in selections)
        ]
    )
    r = len(selections)
    sigma2 = float(v.mean())
    mu4 = float((k4 + 3 * v**2).mean())
    assert abs(estimates.mean() - total) <= Z * math.sqrt(sigma2 / r), (estimates.mean(), total, sigma2)
    assert abs(estimates.var(ddof=1) - sigma2) <= Z * math.sqrt((mu4 - sigma2**2) / r), (
        estimates.var(ddof=1),
        sigma2,
    )


def job_runs(strategy, scores, labels, budget, seeds, **kwargs):
    """(p, weight) of the job's selection for each seed (`plan.reference_selection`)."""
    ids = ids_for(len(scores))
    runs = []
    for seed in seeds:
        options = job_options(strategy, len(scores), budget, seed=seed, **kwargs)
        _, weight, split_plan = plan.reference_selection(options, ids, scores, labels)
        runs.append((plan.plan_probabilities(split_plan, ids, scores, labels, seed), weight))
    return runs
