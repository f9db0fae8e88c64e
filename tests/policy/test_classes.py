"""Label-aware water-filling (classes.py: stratified_* and balanced_*): the variance properties of the exact
functions the Beam job runs (`plan.reference_selection` / `plan.plan_probabilities`, one window = the whole
split, so water-filling is exact), and their thresholds in window and global mode."""

import math

import numpy as np
import pytest
from hypothesis import assume, given
from hypothesis import strategies as st
from policy_helpers import SETTINGS, floor_bound, job_probabilities

from tfx_curator.components.curator.options import CurationOptions
from tfx_curator.components.curator.policy import classes, diagnostics, plan, strategies, waterfill
from tfx_curator.components.curator.policy.summary import ScoreSummary

# Budget fractions: 0, or at least 1e-9 (below, p underflows to subnormals and every variance is inf or nan;
# test_waterfill covers the water-filling solver over the whole range).
DRAWS = dict(
    seed=st.integers(0, 2**32 - 1),
    n=st.integers(2, 400),
    frac=st.one_of(st.just(0.0), st.floats(1e-9, 1.0)),
)


def _data(seed: int, n: int, positive_rate: float):
    rng = np.random.default_rng(seed)
    scores = rng.gamma(0.7, 1.0, n)
    scores[rng.random(n) < 0.05] = 0.0
    labels = (rng.random(n) < positive_rate).astype(float)
    return [f"id-{seed}-{i}".encode() for i in range(n)], scores, labels


def _variance(strategy, s, y, budget, p_min=0.0, mix=0.0):
    p, split_plan = job_probabilities(strategy, s, y, budget, p_min=p_min, mix=mix)
    return diagnostics.expected_squared_error(s, p), p, split_plan


@SETTINGS
@given(
    positive_rate=st.floats(0.0, 0.6),
    p_min=st.sampled_from([0.0, 0.02]),
    mix=st.sampled_from([0.0, 0.1, 0.5]),
    **DRAWS,
)
def test_variance_lies_between_importance_sampling_and_negative_downsampling(
    seed, n, positive_rate, frac, p_min, mix
):
    """V(loss IS) <= V(stratified, any mix) <= V(negative down-sampling) at equal budget, with V the variance of
    the HT estimate of the total loss: IS is V's unconstrained minimum, the stratified solution its minimum
    with positives at p = 1 (the set ND lives in), and the within-class mixture keeps it below ND (convexity)."""
    _, s, y = _data(seed, n, positive_rate)
    budget = frac * n
    v_is, *_ = _variance("loss", s, y, budget, p_min)
    v_st, p, split_plan = _variance("stratified_loss", s, y, budget, p_min, mix)
    v_nd, *_ = _variance("negative_downsampling", s, y, budget, p_min)
    if floor_bound(split_plan):
        return  # budget below n * p_min: every strategy exceeds the budget in its own way
    tol = 1e-9 * (1.0 + abs(v_nd) if math.isfinite(v_nd) else 1.0)
    assert v_is <= v_st + 1e-9 * (1.0 + v_st)
    assert v_st <= v_nd + tol
    assert abs(p.sum() - budget) <= 1e-9 * (n + 10)


def test_variance_is_not_below_the_defensive_mixture_of_loss_is():
    """What does NOT hold: at the same mix, forcing positives to p = 1 costs variance of the total loss against
    the defensive loss IS (it is a constrained optimum); the stratified strategy trades it for the positives."""
    _, s, y = _data(1, 2000, 0.1)
    v_st, *_ = _variance("stratified_loss", s, y, 400.0, mix=0.1)
    v_def, *_ = _variance("loss", s, y, 400.0, mix=0.1)
    assert v_st > v_def


@SETTINGS
@given(positive_rate=st.floats(0.01, 0.5), mix=st.sampled_from([0.0, 0.1]), **DRAWS)
def test_every_positive_is_kept_when_the_budget_allows(seed, n, positive_rate, frac, mix):
    _, s, y = _data(seed, n, positive_rate)
    n_pos = int(y.sum())
    p, split_plan = job_probabilities("stratified_loss", s, y, frac * n, mix=mix)
    budget = split_plan.budget
    if 0 < n_pos < budget and n_pos < n:
        assert (p[y == 1] == 1.0).all()
        # the negatives' share of the budget is water-filled on their scores (then mixed at their own rate)
        q = (budget - n_pos) / (n - n_pos)
        expected = waterfill.defensive_mix(
            waterfill.water_fill(s[y == 0], budget - n_pos).p, min(q, 1.0), mix
        )
        np.testing.assert_allclose(p[y == 0], expected, rtol=1e-12, atol=1e-15)
    else:  # the floor is infeasible: one joint water level, i.e. the defensive loss IS solution
        expected, _ = job_probabilities("loss", s, y, frac * n, mix=mix)
        np.testing.assert_allclose(p, expected, rtol=1e-12, atol=1e-15)


@pytest.mark.parametrize("mode", ["window", "global"])
@pytest.mark.parametrize("strategy", strategies.STRATIFIED_STRATEGIES)
@pytest.mark.parametrize("budget", [0.03, 0.1, 0.3])
def test_plan_meets_the_budget_and_keeps_positives(mode, strategy, budget):
    ids, s, y = _data(3, 6000, 0.05)
    s[::17] = math.nan  # no forward record: the uniform policy's rate
    options = CurationOptions(strategy=strategy, mode=mode, budget=budget, window_size=1000)
    _, _, split_plan = plan.reference_selection(options, ids, s, y)
    p = plan.plan_probabilities(split_plan, ids, s, y, options.seed)
    tol = 1e-9 if mode == "window" else 2 * ScoreSummary().relative_bin_width
    assert p.sum() == pytest.approx(budget * len(ids), rel=tol)
    if budget > 0.1 and strategy.startswith("stratified_"):  # 5% positives: every window can keep them all
        assert (p[(y == 1) & ~np.isnan(s)] == 1.0).all()


@pytest.mark.parametrize("balanced", [False, True])
def test_thresholds_do_not_depend_on_order_or_partitioning(balanced):
    rng = np.random.default_rng(7)
    s = rng.gamma(0.5, 1.0, 5000)
    positive = rng.random(s.size) < 0.04
    window = plan.window_class_thresholds(s, positive, 0.1, 0.001, balanced)
    summaries = [ScoreSummary().add(s[positive == c]) for c in (False, True)]
    whole = plan.global_class_thresholds(*summaries, 0.1, 0.0, balanced)
    for _ in range(5):
        order = rng.permutation(s.size)
        assert plan.window_class_thresholds(s[order], positive[order], 0.1, 0.001, balanced) == window
        parts = np.array_split(order, 7)
        merged = [
            ScoreSummary.merge(
                [
                    ScoreSummary().add(s[part][positive[part] == c])
                    for part in (parts[i] for i in rng.permutation(len(parts)))
                ]
            )
            for c in (False, True)
        ]
        assert plan.global_class_thresholds(*merged, 0.1, 0.0, balanced) == whole


def test_stratified_strategies_need_a_binary_task():
    with pytest.raises(ValueError, match="needs task 'binary'"):
        CurationOptions(task="regression", strategy="stratified_loss")


def test_class_thresholds_when_the_floor_is_infeasible():
    """More positives than budget: one joint level for both classes, mixed at the split's rate."""
    joint = classes.stratified_thresholds(5, 10, 4.0, 0.0, lambda b: 1.0, lambda b: 7.0)
    assert joint == ((7.0, 4.0 / 15), (7.0, 4.0 / 15))
    floor = classes.stratified_thresholds(10, 2, 4.0, 0.0, lambda b: b, lambda b: 0.0)
    assert floor == ((2.0, 0.2), (0.0, 1.0))  # negatives get budget 4 - 2 at rate 0.2; positives p = 1


def _balanced_variance(s, y, p):
    """Variance of the HT estimate of the class-balanced loss sum_c L_c / N_c."""
    n_c = np.where(y == 1, max(int(y.sum()), 1), max(int((y == 0).sum()), 1))
    return diagnostics.expected_squared_error(s / n_c, p)


@SETTINGS
@given(positive_rate=st.floats(0.0, 0.6), p_min=st.sampled_from([0.0, 0.02]), **DRAWS)
def test_balanced_variant_minimises_the_class_balanced_variance(positive_rate, p_min, seed, n, frac):
    """balanced_loss (mix 0) has the lowest variance of the class-balanced loss estimate of every strategy at
    the same budget (it is that objective's water-filling solution), and meets the budget."""
    _, s, y = _data(seed, n, positive_rate)
    budget = frac * n
    assume(budget > 0)  # at 0 every variance is inf
    p, split_plan = job_probabilities("balanced_loss", s, y, budget, p_min=p_min)
    if floor_bound(split_plan) or budget <= n * p_min:
        return
    assert abs(p.sum() - budget) <= 1e-9 * (n + 10)
    v = _balanced_variance(s, y, p)
    for other in ("loss", "stratified_loss", "negative_downsampling", "uniform"):
        q, _ = job_probabilities(other, s, y, budget, p_min=p_min)
        assert v <= _balanced_variance(s, y, q) * (1 + 1e-9) + 1e-12, other
