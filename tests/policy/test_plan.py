"""The selection rules (plan.py), run as the Beam job runs them: `plan.reference_selection` (hashed windows,
score summaries, `make_plan`, `plan_probabilities`, Poisson sampling) for every strategy. Unbiasedness and
variance are checked statistically over the hash seed, determinism exactly."""

import dataclasses
import math

import numpy as np
import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st
from policy_helpers import (
    SETTINGS,
    fp_tol,
    ht_check,
    ids_for,
    job_options,
    job_probabilities,
    job_runs,
    p_mins,
    score_arrays,
    water_fill_or_out_of_range,
)

from tfx_curator.components.curator.options import CurationOptions
from tfx_curator.components.curator.policy import plan, strategies, waterfill

# ----------------------------------------------------------------------------------------------------------
# Unbiasedness of the Horvitz-Thompson estimate (statistical, deterministic seeds)
# ----------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "p_min, mix, mode",
    [(0.0, 0.0, "window"), (0.02, 0.0, "window"), (0.0, 0.3, "window"), (0.0, 0.0, "global")],
)
def test_horvitz_thompson_sum_is_unbiased(p_min, mix, mode):
    rng = np.random.default_rng(1)
    n = 300
    s = rng.lognormal(0.0, 1.5, n)
    runs = job_runs("loss", s, np.zeros(n), 0.1 * n, range(2000), p_min=p_min, mix=mix, mode=mode)
    ht_check(s, runs)  # the quantity the probabilities were optimised for
    if p_min > 0 or mix > 0:  # any other quantity is estimated without bias as long as p > 0 everywhere
        ht_check(rng.exponential(size=n), runs)


def test_hashed_windows_are_unbiased_too():
    """Windows of about 64 examples drawn by the seed's hash (4 windows of 250): p changes with the seed."""
    rng = np.random.default_rng(2)
    s = rng.gamma(0.5, 2.0, 250)
    runs = job_runs("loss", s, np.zeros(250), 50, range(2000), window_size=64, p_min=0.0)
    assert len({tuple(p) for p, _ in runs[:20]}) > 1  # the windows (so p) do change with the seed
    ht_check(s, runs)


@pytest.mark.parametrize("strategy", ["stratified_loss", "balanced_loss"])
@pytest.mark.parametrize("mode", ["window", "global"])
@pytest.mark.parametrize("budget", [0.03, 0.1])
def test_per_class_strategies_are_unbiased_over_seeds(strategy, mode, budget):
    rng = np.random.default_rng(5)
    n = 3000
    s = rng.gamma(0.7, 1.0, n)
    s[rng.random(n) < 0.05] = 0.0
    y = (rng.random(n) < 0.04).astype(float)
    runs = job_runs(strategy, s, y, budget * n, range(300), mode=mode, window_size=1000, mix=0.1)
    for p, _ in runs:
        assert (p[s > 0] > 0).all()  # no positive score left unseen: HT is unbiased
    ht_check(s, runs)


# ----------------------------------------------------------------------------------------------------------
# Budgets of every strategy
# ----------------------------------------------------------------------------------------------------------


@settings(SETTINGS, max_examples=50)  # ten strategies per example
@given(data=st.data(), n=st.integers(1, 200), frac=st.floats(0.0, 1.0), p_min=st.sampled_from([0.0, 0.05]))
def test_every_strategy_meets_its_budget(data, n, frac, p_min):
    rng = np.random.default_rng(data.draw(st.integers(0, 2**32 - 1)))
    s = rng.exponential(size=n)
    labels = (rng.random(n) < data.draw(st.floats(0.0, 1.0))).astype(float)
    budget = frac * n
    for strategy in strategies.STRATEGIES:
        p, split_plan = job_probabilities(strategy, s, labels, budget, p_min=p_min)
        assert p.shape == (n,) and (p >= 0).all() and (p <= 1).all()
        if strategy == "full":
            assert (p == 1).all()
        elif strategy == "top_k":
            assert abs(p.sum() - budget) <= 0.5 + 1e-9 and set(np.unique(p)) <= {0.0, 1.0}
        else:  # the floor p_min wins when the budget is below n * p_min
            expected = max(split_plan.budget, n * p_min)
            assert abs(p.sum() - expected) <= fp_tol(expected, n), strategy


@SETTINGS
@given(s=score_arrays(min_size=2, max_size=300), rate=st.floats(0.0, 1.0), w=st.integers(1, 70), p_min=p_mins)
def test_every_hashed_window_meets_its_budget(s, rate, w, p_min):
    ids = ids_for(s.size)
    options = CurationOptions(budget=rate, window_size=w, p_min=p_min, mix=0.0)
    windows = plan.windows_of(ids, options, s.size)
    for k in np.unique(windows):  # every window must have a representable lam (verified otherwise)
        assume(water_fill_or_out_of_range(s[windows == k], rate * np.count_nonzero(windows == k), p_min))
    _, _, split_plan = plan.reference_selection(options, ids, s, np.zeros(s.size))
    p = plan.plan_probabilities(split_plan, ids, s, np.zeros(s.size), options.seed)
    assert (p >= p_min).all() and (p <= 1.0).all()
    assert split_plan.n_windows == plan.n_windows(s.size, w)
    for k in np.unique(windows):
        size = np.count_nonzero(windows == k)
        if rate * size > size * p_min:
            assert abs(p[windows == k].sum() - rate * size) <= fp_tol(rate * size, size)


def test_uniform_baseline():
    p, _ = job_probabilities("uniform", np.arange(10.0), None, 3.0)
    np.testing.assert_array_equal(p, np.full(10, 0.3))


def test_negative_downsampling_keeps_positives():
    labels = np.array([1, 0, 0, 0, 1, 0, 0, 0, 0, 0], dtype=float)
    p, split_plan = job_probabilities("negative_downsampling", np.ones(10), labels, 4.0)
    np.testing.assert_allclose(p, np.where(labels == 1, 1.0, 2.0 / 8.0))
    assert split_plan.negative_p == 0.25 and split_plan.notes == ("positives p = 1, negatives p = 0.25",)


def test_negative_downsampling_reports_when_impossible():
    labels = np.array([1, 1, 1, 0, 0, 0, 0, 0], dtype=float)
    p, split_plan = job_probabilities("negative_downsampling", np.ones(8), labels, 2.0)
    assert "not possible" in " ".join(split_plan.notes)
    np.testing.assert_array_equal(p, np.full(8, 0.25))  # uniform: no class left with p = 0
    p, split_plan = job_probabilities("negative_downsampling", np.ones(4), np.zeros(4), 2.0)
    assert "one class absent" in " ".join(split_plan.notes) and p.tolist() == [0.5] * 4


def test_top_k_is_deterministic_order_free_and_unweighted():
    s = np.array([1.0, 5.0, 3.0, 3.0, 3.0, 0.0])
    ids = [b"f", b"a", b"c", b"b", b"d", b"e"]
    options = job_options("top_k", 6, 3.0)
    keep, weight, _ = plan.reference_selection(options, ids, s, np.zeros(6))
    assert keep[1] and keep.sum() == 3 and not keep[[0, 5]].any() and (weight[keep] == 1.0).all()
    for seed in range(10):
        perm = np.random.default_rng(seed).permutation(6)
        k, _, _ = plan.reference_selection(options, [ids[i] for i in perm], s[perm], np.zeros(6))
        np.testing.assert_array_equal(k, keep[perm])


def test_loss_strategy_with_mix_bounds_the_weights():
    s = np.array([0.0, 0.1, 1.0, 10.0])
    p, split_plan = job_probabilities("loss", s, None, 2.0, mix=0.5)
    exact = waterfill.water_fill(s, 2.0)
    np.testing.assert_allclose(p, 0.5 * exact.p + 0.5 * 0.5)
    assert split_plan.lams == {0: exact.lam} and (1 / p).max() <= 1 / (0.5 * 0.5)


def test_examples_without_a_record_follow_the_missing_record_policy():
    s = np.array([1.0, np.nan, 2.0, np.nan])
    for policy, expected in [("uniform", 0.5), ("drop", 0.0), ("keep", 1.0)]:
        p, split_plan = job_probabilities("loss", s, None, 2.0, missing_record_policy=policy)
        assert (p[np.isnan(s)] == expected).all()
        assert any("2 examples without a forward record" in note for note in split_plan.notes)


def test_a_plan_without_the_window_threshold_is_an_error():
    options = CurationOptions(budget=0.5)
    split_plan = plan.make_plan(options, plan.SplitCounts(2, 2, 0), {})
    with pytest.raises(ValueError, match="inconsistent"):
        plan.plan_probabilities(split_plan, [b"a", b"b"], np.ones(2), np.zeros(2), 0)


# ----------------------------------------------------------------------------------------------------------
# Determinism: order, batching and partitioning do not change the selection
# ----------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("strategy", strategies.STRATEGIES)
@pytest.mark.parametrize("mode", ["window", "global"])
def test_selection_does_not_depend_on_order_or_batching(strategy, mode):
    rng = np.random.default_rng(11)
    n = 2000
    ids = ids_for(n, b"d-")
    s = rng.gamma(0.6, 1.0, n)
    s[rng.random(n) < 0.05] = np.nan  # no forward record
    y = (rng.random(n) < 0.1).astype(float)
    options = CurationOptions(strategy=strategy, mode=mode, budget=0.1, window_size=300, seed=3, p_min=0.001)
    keep, weight, split_plan = plan.reference_selection(options, ids, s, y)
    perm = rng.permutation(n)
    keep_p, weight_p, _ = plan.reference_selection(options, [ids[i] for i in perm], s[perm], y[perm])
    np.testing.assert_array_equal(keep_p, keep[perm])
    np.testing.assert_array_equal(weight_p, weight[perm])
    # The job samples batch by batch with the split's plan: any batching gives the whole split's decisions.
    parts = [
        plan.sample(split_plan, [ids[i] for i in at], s[at], y[at], options) for at in np.array_split(perm, 7)
    ]
    np.testing.assert_array_equal(np.concatenate([k for _, k, _ in parts]), keep[perm])
    np.testing.assert_array_equal(np.concatenate([w for _, _, w in parts]), weight[perm])


@pytest.mark.parametrize("per_class", [False, True])
def test_global_thresholds_do_not_depend_on_partitioning(per_class):
    from tfx_curator.components.curator.policy.summary import ScoreSummary

    rng = np.random.default_rng(4)
    s = rng.gamma(0.5, 1.0, 5000)
    positive = rng.random(s.size) < 0.05
    options = CurationOptions(strategy="stratified_loss" if per_class else "loss", mode="global")
    groups = plan.summary_groups(options, positive)
    whole = plan.solve_global(
        options, 0.1, {g: ScoreSummary().add(s[groups == g]) for g in np.unique(groups)}
    )
    for _ in range(3):
        parts = np.array_split(rng.permutation(s.size), 5)
        merged = {
            g: ScoreSummary.merge([ScoreSummary().add(s[part][groups[part] == g]) for part in parts])
            for g in np.unique(groups)
        }
        assert plan.solve_global(options, 0.1, merged) == whole


def test_rates_and_counts():
    assert plan.split_rate(CurationOptions(budget=0.1), 1000) == pytest.approx(0.1)
    assert plan.split_rate(CurationOptions(budget=20), 50) == 0.4
    assert plan.split_rate(CurationOptions(budget=500), 50) == 1.0
    assert plan.split_rate(CurationOptions(budget=0.1), 0) == 0.0
    assert plan.n_windows(10_000, 4096) == 2 and plan.n_windows(10, 4096) == 1
    ties = plan.top_k_tiebreak(ids_for(5))
    assert plan.solve_top_k(0.5, np.arange(5.0), ties) == (2.0, int(ties[2]))  # keeps round(2.5) = 3: 4, 3, 2
    assert plan.solve_top_k(0.0, np.arange(5.0), ties) is None


def test_example_scores_use_the_strategy_signal_and_mark_missing_records():
    preds = np.array([0.2, np.nan, 0.9])
    labels = np.array([1.0, 0.0, 0.0])
    norms = np.array([3.0, np.nan, np.nan])
    loss = plan.example_scores(CurationOptions(strategy="top_k"), preds, labels, norms)
    np.testing.assert_allclose(loss[[0, 2]], [-math.log(0.2), -math.log(0.1)])
    grad = plan.example_scores(CurationOptions(strategy="stratified_grad_norm"), preds, labels, norms)
    np.testing.assert_allclose(grad[[0, 2]], [0.8 * math.sqrt(10.0), 0.9])
    assert np.isnan(loss[1]) and np.isnan(grad[1])


def test_window_mode_windows_and_rate_follow_the_examples_read():
    """Window mode: windows over the examples read in all curated splits, the rate over the split's read; a
    clean single split (every example read, accepted and scored) gets what n_scored gave before."""
    rng = np.random.default_rng(3)
    ids, s = ids_for(3000), rng.exponential(size=3000)
    options = CurationOptions(budget=300, window_size=500, mix=0.0, seed=4)
    _, _, clean = plan.reference_selection(options, ids, s, np.zeros(3000))
    assert clean.n_windows == plan.n_windows(3000, 500) == 6 and clean.rate == pytest.approx(0.1)
    basis = plan.WindowBasis(n_split=4000, n_total=10_000)  # 1000 rejects read here, another split of 6000
    keep, weight, split_plan = plan.reference_selection(options, ids, s, np.zeros(3000), basis)
    assert split_plan.n_windows == plan.n_windows(10_000, 500) == 20
    assert split_plan.rate == plan.split_rate(options, 4000) == pytest.approx(300 / 4000)
    windows = plan.windows_of(ids, options, 10_000)
    assert set(split_plan.lams) == set(np.unique(windows).tolist())
    for k in split_plan.lams:  # each window water-filled at the split's rate: its expected count
        at = windows == k
        p = waterfill.probabilities_from_lambda(s[at], split_plan.lams[k], 0.0)
        assert p.sum() == pytest.approx(split_plan.rate * at.sum(), rel=1e-6)
    assert plan.WindowBasis.of({0: 4000, 1: 6000}, 0) == basis and plan.WindowBasis.of({1: 6}, 0).n_split == 0
    global_plan = plan.reference_selection(
        dataclasses.replace(options, mode="global"), ids, s, np.zeros(3000)
    )[2]
    assert global_plan.rate == pytest.approx(0.1)  # global mode: the accepted examples, as before
