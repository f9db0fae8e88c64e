"""The global mode's mergeable ScoreSummary (summary.py): budget error bound, exact merges, memory,
degenerate cases."""

import math
import pickle

import numpy as np
import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st
from policy_helpers import (
    budgets,
    fp_tol,
    p_mins,
    score_arrays,
    water_fill_or_out_of_range,
)

from tfx_curator.components.curator.policy import waterfill
from tfx_curator.components.curator.policy.summary import ScoreSummary

# ----------------------------------------------------------------------------------------------------------
# Exact global mode: ScoreSummary
# ----------------------------------------------------------------------------------------------------------


def _summary_of_parts(s, cuts):
    bounds = [0, *sorted(cuts), s.size]
    parts = [ScoreSummary().add(s[a:b]) for a, b in zip(bounds[:-1], bounds[1:])]
    return ScoreSummary.merge(parts)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.data(), s=score_arrays(max_size=400), p_min=p_mins)
def test_global_mode_budget_error_within_bound(data, s, p_min):
    n = s.size
    budget = data.draw(budgets(n))
    summary = _summary_of_parts(s, data.draw(st.lists(st.integers(0, n), max_size=5)))
    assert summary.n == n
    exact = water_fill_or_out_of_range(s, budget, p_min)
    assume(exact is not None)
    lam = summary.solve_lambda(budget, p_min)
    p = waterfill.probabilities_from_lambda(s, lam, p_min)
    bound = summary.relative_bin_width
    assert bound < 0.001
    if exact.floor_bound or exact.lam <= 0:  # degenerate cases are solved exactly, with the same lam
        assert lam == exact.lam
        np.testing.assert_array_equal(p, exact.p)
    else:
        target = min(budget, n)
        assert abs(p.sum() - target) <= bound * target * (1 + 1e-9) + fp_tol(target, n)
        assert abs(p.sum() - target) <= 0.001 * target + fp_tol(target, n)


def test_global_mode_on_a_million_scores():
    rng = np.random.default_rng(3)
    s = rng.lognormal(0.0, 3.0, 1_000_000)
    s[rng.random(s.size) < 0.1] = 0.0
    summary = ScoreSummary()
    for chunk in np.array_split(s, 50):
        summary.add(chunk)
    for budget, p_min in [(1e4, 0.0), (1e5, 0.01), (5e5, 0.2)]:
        lam = summary.solve_lambda(budget, p_min)
        used = waterfill.probabilities_from_lambda(s, lam, p_min).sum()
        assert abs(used - budget) <= summary.relative_bin_width * budget
        exact = waterfill.water_fill(s, budget, p_min).lam
        assert abs(lam / exact - 1) <= summary.relative_bin_width


def test_summary_merge_is_order_free_and_picklable():
    rng = np.random.default_rng(4)
    s = rng.lognormal(0, 2, 10_000)
    s[::7] = 0.0
    whole = ScoreSummary().add(s)
    a, b, c = (ScoreSummary().add(x) for x in np.array_split(s, 3))
    for merged in (
        ScoreSummary.merge([a, b, c]),
        ScoreSummary.merge([c, ScoreSummary.merge([b, a])]),
    ):
        np.testing.assert_array_equal(merged.keys, whole.keys)
        np.testing.assert_array_equal(merged.counts, whole.counts)
        np.testing.assert_allclose(merged.sums, whole.sums, rtol=1e-12)
        assert merged.n_zero == whole.n_zero and merged.n == s.size
    clone = pickle.loads(pickle.dumps(whole))
    assert clone.solve_lambda(500.0) == whole.solve_lambda(500.0)
    assert ScoreSummary.merge([]).n == 0
    with pytest.raises(ValueError):
        ScoreSummary.merge([ScoreSummary(64), ScoreSummary(1024)])


def test_summary_memory_does_not_grow_with_n():
    rng = np.random.default_rng(5)
    summary = ScoreSummary()
    low, high = 1e-3, 1e3
    bound = math.ceil(math.log2(high / low) * summary.bins_per_octave) + 1
    sizes = []
    for _ in range(20):
        summary.add(np.exp(rng.uniform(math.log(low), math.log(high), 100_000)))
        sizes.append(summary.n_bins)
    assert summary.n == 2_000_000
    assert sizes[-1] <= bound
    assert sizes[-1] == sizes[-5], "bins are saturated: more data adds no memory"
    assert len(pickle.dumps(summary)) < 40 * bound


def test_summary_degenerate_cases_agree_with_water_fill():
    cases = [(np.zeros(10), 3.0, 0.0), (np.array([0, 0, 1.0, 2.0]), 3.0, 0.0), (np.ones(4), 4.0, 0.0)]
    cases += [(np.arange(5.0), 1.0, 0.3), (np.zeros(0), 1.0, 0.0)]
    for s, budget, p_min in cases:
        lam = ScoreSummary().add(s).solve_lambda(budget, p_min)
        exact = waterfill.water_fill(s, budget, p_min)
        assert lam == exact.lam
        np.testing.assert_array_equal(waterfill.probabilities_from_lambda(s, lam, p_min), exact.p)


def test_summary_rejects_bad_input():
    with pytest.raises(ValueError):
        ScoreSummary().add(np.array([1.0, np.nan]))
    with pytest.raises(ValueError):
        ScoreSummary().add(np.array([-1.0]))
    with pytest.raises(ValueError):
        ScoreSummary(0)
    with pytest.raises(ValueError):
        ScoreSummary().add(np.ones(3)).solve_lambda(-1.0)


# ----------------------------------------------------------------------------------------------------------
