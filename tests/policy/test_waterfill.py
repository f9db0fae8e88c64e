"""Water-filling (waterfill.py): properties with hypothesis, the degenerate cases, the defensive mixture,
the budget count and every ValueError path."""

import math

import numpy as np
import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st
from policy_helpers import (
    SETTINGS,
    budgets,
    fp_tol,
    ids_for,
    p_mins,
    reference_log_lambda,
    score_arrays,
    water_fill_or_out_of_range,
)

from tfx_curator.components.curator.policy import diagnostics, sampling, waterfill

# ----------------------------------------------------------------------------------------------------------
# Water-filling: properties
# ----------------------------------------------------------------------------------------------------------


@SETTINGS
@given(data=st.data(), s=score_arrays(), p_min=p_mins)
def test_water_fill_budget_bounds_monotone(data, s, p_min):
    n = s.size
    budget = data.draw(budgets(n))
    r = water_fill_or_out_of_range(s, budget, p_min)
    assume(r is not None)
    p = r.p
    assert p.shape == s.shape
    assert (p >= p_min).all() and (p <= 1.0).all()
    if r.floor_bound:
        assert budget <= n * p_min and (p == p_min).all() and r.lam == math.inf
    else:
        assert abs(p.sum() - min(budget, n)) <= fp_tol(budget, n)
    order = np.argsort(s, kind="stable")
    assert (np.diff(p[order]) >= 0).all(), "p must be non-decreasing in the score"
    for value in np.unique(s):  # ties get equal probabilities
        assert np.ptp(p[s == value]) == 0.0
    assert r.n_saturated == int((p == 1.0).sum())
    # The Beam job recomputes p from lam alone: it must agree exactly.
    np.testing.assert_array_equal(waterfill.probabilities_from_lambda(s, r.lam, p_min), p)


@SETTINGS
@given(s=score_arrays(min_size=2, max_size=200), frac=st.floats(0.01, 0.99), p_min=p_mins)
def test_water_fill_matches_bisection_reference(s, frac, p_min):
    n = s.size
    budget = frac * n
    n_pos = int((s > 0).sum())
    assume(n * p_min < budget < n_pos + (n - n_pos) * p_min)  # the regular case
    r = water_fill_or_out_of_range(s, budget, p_min)
    assume(r is not None)
    log_s = np.log(np.where(s > 0, s, 1.0))
    with np.errstate(over="ignore"):
        p_ref = np.exp(log_s - reference_log_lambda(s, budget, p_min))
    p_ref = np.where(s > 0, np.clip(p_ref, p_min, 1.0), p_min)
    np.testing.assert_allclose(r.p, p_ref, rtol=1e-7, atol=1e-9)


def test_lambda_outside_float64_range_is_a_clear_error():
    big = np.full(1000, 1.5e308)  # the exact lam ~ 1.5e310 is not a float64
    with pytest.raises(ValueError, match="outside the normal float64 range"):
        waterfill.water_fill(big, 10.0)
    r = waterfill.water_fill(big / 2.0**60, 10.0)  # scale-invariant: rescaled scores are fine
    np.testing.assert_allclose(r.p, np.full(1000, 0.01))


@settings(SETTINGS, max_examples=100)
@given(data=st.data(), n=st.integers(2, 60), p_min=st.one_of(st.just(0.0), st.floats(0.0, 0.3)))
def test_optimal_p_has_lowest_variance(data, n, p_min):
    """sum s^2 (1/p - 1) at the water-filling p is <= that of random alternatives with the same budget
    and bounds (alternatives: water-filling of unrelated random scores, and mixtures with the optimum)."""
    rng = np.random.default_rng(data.draw(st.integers(0, 2**32 - 1)))
    s = rng.lognormal(0.0, data.draw(st.floats(0.1, 4.0)), n)
    budget = data.draw(st.floats(n * p_min + 1e-3, n - 1e-3)) if n * p_min + 1e-3 < n - 1e-3 else n / 2
    assume(budget > n * p_min)
    best = waterfill.water_fill(s, budget, p_min).p
    v_best = diagnostics.expected_squared_error(s, best)
    for _ in range(20):
        other = waterfill.water_fill(rng.exponential(size=n) ** rng.uniform(0, 3), budget, p_min).p
        t = rng.uniform()
        for alt in (other, t * other + (1 - t) * best):
            assert abs(alt.sum() - best.sum()) <= 1e-9 * n and alt.min() >= p_min - 1e-15
            assert v_best <= diagnostics.expected_squared_error(s, alt) * (1 + 1e-9) + 1e-12


# ----------------------------------------------------------------------------------------------------------
# Water-filling: the degenerate and edge cases
# ----------------------------------------------------------------------------------------------------------


def test_all_zero_scores_fall_back_to_uniform():
    r = waterfill.water_fill(np.zeros(8), 2.0)
    np.testing.assert_array_equal(r.p, np.full(8, 0.25))
    assert r.lam == -0.25 and not r.floor_bound and "zero" in r.note
    r = waterfill.water_fill(np.zeros(8), 2.0, p_min=0.1)  # the floor does not bind: still uniform
    np.testing.assert_array_equal(r.p, np.full(8, 0.25))


def test_budget_beyond_positive_scores_is_shared_by_zero_scores():
    s = np.array([0.0, 3.0, 0.0, 1.0, 0.0])
    r = waterfill.water_fill(s, 3.5)
    np.testing.assert_allclose(r.p, [0.5, 1.0, 0.5, 1.0, 0.5])
    assert r.lam == -0.5 and r.n_saturated == 2
    # Exactly at the boundary (budget == n_positive) it is the regular solution with zero scores at p_min=0.
    r = waterfill.water_fill(s, 2.0)
    np.testing.assert_allclose(r.p, [0.0, 1.0, 0.0, 1.0, 0.0])
    assert r.lam > 0


def test_budget_at_least_n_gives_all_ones():
    for budget in (5.0, 7.5):
        r = waterfill.water_fill([0.0, 1.0, 2.0, 0.5, 9.0], budget, p_min=0.2)
        np.testing.assert_array_equal(r.p, np.ones(5))
        assert r.lam == 0.0 and r.n_saturated == 5


def test_floor_bound_is_reported():
    r = waterfill.water_fill([1.0, 2.0, 3.0, 4.0], 0.8, p_min=0.25)
    np.testing.assert_array_equal(r.p, np.full(4, 0.25))
    assert r.floor_bound and r.lam == math.inf and "exceeds the budget" in r.note
    r = waterfill.water_fill([1.0, 2.0, 3.0, 4.0], 1.0, p_min=0.25)  # exactly at the floor: budget met
    assert r.floor_bound and r.p.sum() == 1.0
    assert waterfill.water_fill([1.0, 2.0], 0.0).p.tolist() == [0.0, 0.0]


def test_empty_input():
    r = waterfill.water_fill(np.zeros(0), 3.0)
    assert r.p.size == 0 and r.n_saturated == 0


def test_huge_dynamic_range():
    s = np.array([1e-300, 1e300, 2e-300, 1.7e308, 5e-324])
    r = waterfill.water_fill(s, 2.5)
    # The two huge scores saturate; the tiny ones share 0.5 in proportion to their size.
    tiny = 1e-300 + 2e-300 + 5e-324
    np.testing.assert_allclose(
        r.p, [0.5 * (1e-300 / tiny), 1.0, 0.5 * (2e-300 / tiny), 1.0, 0.5 * (5e-324 / tiny)]
    )
    assert abs(r.p.sum() - 2.5) < 1e-12
    big = np.full(1000, 1.5e308)  # their sum overflows float64: the solver rescales internally
    big[:10] = 1e308
    r = waterfill.water_fill(big, 999.0)
    assert abs(r.p.sum() - 999.0) < 1e-9 and np.isfinite(r.lam)


def test_ties_share_equally():
    r = waterfill.water_fill([2.0, 2.0, 2.0, 1.0], 2.0)
    np.testing.assert_allclose(r.p, [4 / 7, 4 / 7, 4 / 7, 2 / 7])


@pytest.mark.parametrize(
    "scores, budget, p_min",
    [
        ([1.0, np.nan], 1.0, 0.0),
        ([1.0, np.inf], 1.0, 0.0),
        ([1.0, -0.5], 1.0, 0.0),
        ([[1.0, 2.0]], 1.0, 0.0),
        ([1.0, 2.0], -1.0, 0.0),
        ([1.0, 2.0], np.nan, 0.0),
        ([1.0, 2.0], np.inf, 0.0),
        ([1.0, 2.0], 1.0, -0.1),
        ([1.0, 2.0], 1.0, 1.5),
        ([1.0, 2.0], 1.0, np.nan),
    ],
)
def test_water_fill_rejects_bad_input(scores, budget, p_min):
    with pytest.raises(ValueError):
        waterfill.water_fill(scores, budget, p_min)


# ----------------------------------------------------------------------------------------------------------
# Defensive mixture
# ----------------------------------------------------------------------------------------------------------


@SETTINGS
@given(s=score_arrays(max_size=200), frac=st.floats(0.01, 1.0), a=st.floats(0.0, 1.0), p_min=p_mins)
def test_defensive_mix_keeps_budget_and_bounds_weights(s, frac, a, p_min):
    n = s.size
    budget = frac * n
    r = water_fill_or_out_of_range(s, budget, p_min)
    assume(r is not None and not r.floor_bound)
    rate = budget / n
    q = waterfill.defensive_mix(r.p, rate, a)
    assert abs(q.sum() - budget) <= fp_tol(budget, n)
    assert (q <= 1.0).all() and (q >= (1 - a) * p_min + a * rate - 1e-15).all()
    if a * rate > 1e-300:
        assert (1.0 / q).max() <= 1.0 / (a * rate) * (1 + 1e-12)
        _, w = sampling.poisson_sample(ids_for(n), q, seed=0)
        assert w.max() <= 1.0 / (a * rate) * (1 + 1e-12)


@pytest.mark.parametrize(
    "p, rate, a",
    [([0.5], 0.5, -0.1), ([0.5], 0.5, 1.1), ([0.5], 1.5, 0.5), ([1.5], 0.5, 0.5), ([0.5], np.nan, 0.5)],
)
def test_defensive_mix_rejects_bad_input(p, rate, a):
    with pytest.raises(ValueError):
        waterfill.defensive_mix(np.array(p), rate, a)


def test_probabilities_from_lambda_semantics():
    s = np.array([0.0, 1.0, 4.0])
    np.testing.assert_array_equal(waterfill.probabilities_from_lambda(s, 2.0, 0.1), [0.1, 0.5, 1.0])
    np.testing.assert_array_equal(waterfill.probabilities_from_lambda(s, 0.0, 0.1), [1.0, 1.0, 1.0])
    np.testing.assert_array_equal(waterfill.probabilities_from_lambda(s, math.inf, 0.1), [0.1, 0.1, 0.1])
    np.testing.assert_array_equal(waterfill.probabilities_from_lambda(s, -0.4, 0.1), [0.4, 1.0, 1.0])
    for lam in (math.nan, -1.5):
        with pytest.raises(ValueError):
            waterfill.probabilities_from_lambda(s, lam)


def test_budget_count():
    assert waterfill.budget_count(0.1, 1000) == pytest.approx(100.0)
    assert waterfill.budget_count(1.0, 50) == 50.0  # 1 is a rate: everything
    assert waterfill.budget_count(0.0, 50) == 0.0
    assert waterfill.budget_count(20, 50) == 20.0
    assert waterfill.budget_count(500, 50) == 50.0
    for budget, n in [(2.5, 10), (-0.1, 10), (math.nan, 10), (math.inf, 10), (0.5, -1), (0.5, 2.5)]:
        with pytest.raises(ValueError):
            waterfill.budget_count(budget, n)
