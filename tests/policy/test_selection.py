"""Tests for the pure selection library (numpy only): properties with hypothesis, statistics with derived
tolerances, and every ValueError path."""

import math
import pickle
import sys

import numpy as np
import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from tfx_curator.components.curator.policy import selection as sel

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
        return sel.water_fill(s, budget, p_min)
    except ValueError as err:
        assert "outside the normal float64 range" in str(err)
        assert lambda_out_of_range(s, budget, p_min)
        return None


def ids_for(n, prefix=b"ex-"):
    return [prefix + str(i).encode() for i in range(n)]


# ----------------------------------------------------------------------------------------------------------
# Signals
# ----------------------------------------------------------------------------------------------------------


def test_loss_binary_is_log_loss_with_clipping():
    pred = np.array([0.9, 0.9, 0.0, 1.0, 0.5])
    label = np.array([1.0, 0.0, 1.0, 0.0, 0.25])
    s = sel.compute_scores("loss", pred, label, eps=1e-7)
    expected = [-math.log(0.9), -math.log(0.1), -math.log(1e-7), -math.log(1e-7), math.log(2.0)]
    np.testing.assert_allclose(s, expected, rtol=1e-9)  # 1 - (1 - eps) rounds
    assert np.isfinite(s).all() and (s >= 0).all()


def test_loss_regression_is_squared_error():
    s = sel.compute_scores("loss", np.array([1.0, -2.0, 3.5]), np.array([3.0, -2.0, 1.0]), task="regression")
    np.testing.assert_allclose(s, [4.0, 0.0, 6.25])


def test_grad_norm_with_and_without_hidden_norm():
    pred = np.array([0.2, 0.7, 0.4])
    label = np.array([1.0, 0.0, 0.0])
    np.testing.assert_allclose(sel.compute_scores("grad_norm", pred, label), [0.8, 0.7, 0.4])
    h = np.array([3.0, np.nan, 0.0])
    expected = [0.8 * math.sqrt(10.0), 0.7, 0.4]
    np.testing.assert_allclose(sel.compute_scores("grad_norm", pred, label, hidden_norm=h), expected)
    reg = sel.compute_scores("grad_norm", np.array([1.0]), np.array([4.0]), "regression", np.array([2.0]))
    np.testing.assert_allclose(reg, [3.0 * math.sqrt(5.0)])


def test_uniform_signal_is_ones():
    np.testing.assert_array_equal(
        sel.compute_scores("uniform", np.array([0.1, 0.9]), np.array([0, 1])), [1, 1]
    )


def test_invalid_inputs_mask_counts_bad_rows():
    pred = np.array([0.5, np.nan, 1.5, 0.5, 0.5])
    label = np.array([1.0, 1.0, 1.0, np.inf, 1.0])
    h = np.array([1.0, 1.0, 1.0, 1.0, -1.0])
    np.testing.assert_array_equal(
        sel.invalid_inputs(pred, label, "binary", h), [False, True, True, True, True]
    )
    # Regression allows any finite prediction; NaN hidden_norm means "not logged".
    mask = sel.invalid_inputs(
        np.array([5.0, -3.0]), np.array([1.0, 2.0]), "regression", np.array([np.nan, 1])
    )
    assert not mask.any()


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
    np.testing.assert_array_equal(sel.probabilities_from_lambda(s, r.lam, p_min), p)


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
        sel.water_fill(big, 10.0)
    r = sel.water_fill(big / 2.0**60, 10.0)  # scale-invariant: rescaled scores are fine
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
    best = sel.water_fill(s, budget, p_min).p
    v_best = sel.expected_squared_error(s, best)
    for _ in range(20):
        other = sel.water_fill(rng.exponential(size=n) ** rng.uniform(0, 3), budget, p_min).p
        t = rng.uniform()
        for alt in (other, t * other + (1 - t) * best):
            assert abs(alt.sum() - best.sum()) <= 1e-9 * n and alt.min() >= p_min - 1e-15
            assert v_best <= sel.expected_squared_error(s, alt) * (1 + 1e-9) + 1e-12


# ----------------------------------------------------------------------------------------------------------
# Water-filling: the degenerate and edge cases
# ----------------------------------------------------------------------------------------------------------


def test_all_zero_scores_fall_back_to_uniform():
    r = sel.water_fill(np.zeros(8), 2.0)
    np.testing.assert_array_equal(r.p, np.full(8, 0.25))
    assert r.lam == -0.25 and not r.floor_bound and "zero" in r.note
    r = sel.water_fill(np.zeros(8), 2.0, p_min=0.1)  # the floor does not bind: still uniform
    np.testing.assert_array_equal(r.p, np.full(8, 0.25))


def test_budget_beyond_positive_scores_is_shared_by_zero_scores():
    s = np.array([0.0, 3.0, 0.0, 1.0, 0.0])
    r = sel.water_fill(s, 3.5)
    np.testing.assert_allclose(r.p, [0.5, 1.0, 0.5, 1.0, 0.5])
    assert r.lam == -0.5 and r.n_saturated == 2
    # Exactly at the boundary (budget == n_positive) it is the regular solution with zero scores at p_min=0.
    r = sel.water_fill(s, 2.0)
    np.testing.assert_allclose(r.p, [0.0, 1.0, 0.0, 1.0, 0.0])
    assert r.lam > 0


def test_budget_at_least_n_gives_all_ones():
    for budget in (5.0, 7.5):
        r = sel.water_fill([0.0, 1.0, 2.0, 0.5, 9.0], budget, p_min=0.2)
        np.testing.assert_array_equal(r.p, np.ones(5))
        assert r.lam == 0.0 and r.n_saturated == 5


def test_floor_bound_is_reported():
    r = sel.water_fill([1.0, 2.0, 3.0, 4.0], 0.8, p_min=0.25)
    np.testing.assert_array_equal(r.p, np.full(4, 0.25))
    assert r.floor_bound and r.lam == math.inf and "exceeds the budget" in r.note
    r = sel.water_fill([1.0, 2.0, 3.0, 4.0], 1.0, p_min=0.25)  # exactly at the floor: budget met
    assert r.floor_bound and r.p.sum() == 1.0
    assert sel.water_fill([1.0, 2.0], 0.0).p.tolist() == [0.0, 0.0]


def test_empty_input():
    r = sel.water_fill(np.zeros(0), 3.0)
    assert r.p.size == 0 and r.n_saturated == 0


def test_huge_dynamic_range():
    s = np.array([1e-300, 1e300, 2e-300, 1.7e308, 5e-324])
    r = sel.water_fill(s, 2.5)
    # The two huge scores saturate; the tiny ones share 0.5 in proportion to their size.
    tiny = 1e-300 + 2e-300 + 5e-324
    np.testing.assert_allclose(
        r.p, [0.5 * (1e-300 / tiny), 1.0, 0.5 * (2e-300 / tiny), 1.0, 0.5 * (5e-324 / tiny)]
    )
    assert abs(r.p.sum() - 2.5) < 1e-12
    big = np.full(1000, 1.5e308)  # their sum overflows float64: the solver rescales internally
    big[:10] = 1e308
    r = sel.water_fill(big, 999.0)
    assert abs(r.p.sum() - 999.0) < 1e-9 and np.isfinite(r.lam)


def test_ties_share_equally():
    r = sel.water_fill([2.0, 2.0, 2.0, 1.0], 2.0)
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
        sel.water_fill(scores, budget, p_min)


# ----------------------------------------------------------------------------------------------------------
# Hashing and Poisson sampling
# ----------------------------------------------------------------------------------------------------------

GOLDEN_IDS = [b"", b"a", b"a\x00", b"example-0", bytes(range(256))]
GOLDEN = {  # stable forever: changing these changes which examples every past run selected
    0: [0x3DFEDBC9A74D0E98, 0x0701C73DA8F05968, 0x2AA0CF3465EA5B35, 0x7A0ACD5DEF1A95C1, 0xFEACD9F49B97558A],
    42: [0x52098BA14F202DBB, 0xDB6AF0DD150656D8, 0xF51A52BB5B7DC4D1, 0x04424361A188F6E6, 0x7C99BD483367AE3D],
    2**64 - 1: [
        0xC9C71B6B32CD0173,
        0xEDB57DD8F825715A,
        0xDF3412E331AE7EDE,
        0x842BA1DF00FED71D,
        0xEFFDAF2E2102C0CF,
    ],
}


def reference_hash64(id_bytes: bytes, seed: int) -> int:
    """Pure-Python transcription of the documented definition."""
    mask = 2**64 - 1

    def mix64(z):
        z = ((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9) & mask
        z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & mask
        return z ^ (z >> 31)

    state = 0xCBF29CE484222325 ^ mix64(((seed & mask) + 0x9E3779B97F4A7C15) & mask)
    for byte in len(id_bytes).to_bytes(8, "little") + id_bytes:
        state = ((state ^ byte) * 0x100000001B3) & mask
    return mix64(state)


def test_hash_is_pinned_to_golden_values():
    assert sel.splitmix64(0) == 0xE220A8397B1DCDAF  # SplitMix64's published first output for seed 0
    for seed, expected in GOLDEN.items():
        assert [int(h) for h in sel.hash64(GOLDEN_IDS, seed)] == expected
        assert [reference_hash64(i, seed) for i in GOLDEN_IDS] == expected
        u = sel.hash_uniform(GOLDEN_IDS, seed)
        np.testing.assert_array_equal(u, [(h >> 11) / 2.0**53 for h in expected])


@SETTINGS
@given(ids=st.lists(st.binary(max_size=40), min_size=1, max_size=50), seed=st.integers(-(2**70), 2**70))
def test_hash_matches_reference_for_any_bytes(ids, seed):
    got = sel.hash64(ids, seed)
    assert [int(h) for h in got] == [reference_hash64(i, seed) for i in ids]
    u = sel.hash_uniform(ids, seed)
    assert u.dtype == np.float64 and (u >= 0).all() and (u < 1).all()


def test_trailing_nul_bytes_are_significant():
    u = sel.hash_uniform([b"a", b"a\x00", b"a\x00\x00", b"\x00", b""], 3)
    assert len(set(u.tolist())) == 5
    assert sel.hash_uniform(np.array([b"a", b"a\x00"], dtype=object), 3).tolist() == u[:2].tolist()


def test_hash_uniformity():
    n, bins = 200_000, 64
    u = sel.hash_uniform(ids_for(n), seed=11)
    assert abs(u.mean() - 0.5) <= Z * math.sqrt(1.0 / 12.0 / n)
    counts = np.bincount((u * bins).astype(int), minlength=bins)
    chi2 = float(((counts - n / bins) ** 2 / (n / bins)).sum())
    k = bins - 1  # Wilson-Hilferty upper quantile of chi-square(k) at the same false-alarm level
    assert chi2 <= k * (1 - 2 / (9 * k) + Z * math.sqrt(2 / (9 * k))) ** 3
    # Different seeds give (nearly) uncorrelated numbers.
    v = sel.hash_uniform(ids_for(n), seed=12)
    assert abs(np.corrcoef(u, v)[0, 1]) <= Z / math.sqrt(n)


@SETTINGS
@given(
    ids=st.lists(st.binary(max_size=12), min_size=1, max_size=80),
    seed=st.integers(0, 2**64 - 1),
    data=st.data(),
)
def test_decisions_do_not_depend_on_order_or_partition(ids, seed, data):
    n = len(ids)
    p = np.array(data.draw(st.lists(st.floats(0.0, 1.0), min_size=n, max_size=n)))
    keep, weight = sel.poisson_sample(ids, p, seed)
    perm = np.array(data.draw(st.permutations(range(n))), dtype=int)
    keep_p, weight_p = sel.poisson_sample([ids[i] for i in perm], p[perm], seed)
    np.testing.assert_array_equal(keep_p, keep[perm])
    np.testing.assert_array_equal(weight_p, weight[perm])
    cuts = sorted(data.draw(st.lists(st.integers(0, n), max_size=4)))
    bounds = [0, *cuts, n]
    parts = [sel.poisson_sample(ids[a:b], p[a:b], seed) for a, b in zip(bounds[:-1], bounds[1:])]
    np.testing.assert_array_equal(np.concatenate([k for k, _ in parts]), keep)
    np.testing.assert_array_equal(np.concatenate([w for _, w in parts]), weight)


def test_poisson_sample_rule_and_weights():
    ids = ids_for(5000)
    p = np.linspace(0.0, 1.0, 5000)
    keep, weight = sel.poisson_sample(ids, p, seed=5)
    np.testing.assert_array_equal(keep, sel.hash_uniform(ids, 5) < p)
    assert not keep[0] and keep[-1]  # p = 0 never kept, p = 1 always kept
    np.testing.assert_allclose(weight[keep], 1.0 / p[keep])
    assert (weight[~keep] == 0).all()
    keep_c, weight_c = sel.poisson_sample(ids, p, seed=5, max_weight=4.0)
    np.testing.assert_array_equal(keep_c, keep)
    np.testing.assert_allclose(weight_c[keep], np.minimum(1.0 / p[keep], 4.0))


@pytest.mark.parametrize(
    "call",
    [
        lambda: sel.poisson_sample([b"a", b"b"], [0.5], 0),
        lambda: sel.poisson_sample([b"a"], [1.5], 0),
        lambda: sel.poisson_sample([b"a"], [np.nan], 0),
        lambda: sel.poisson_sample([b"a"], [0.5], 0, max_weight=0.5),
        lambda: sel.poisson_sample([b"a"], [0.5], 0, max_weight=np.nan),
    ],
)
def test_poisson_sample_rejects_bad_input(call):
    with pytest.raises(ValueError):
        call()


@pytest.mark.parametrize(
    "ids", [["a", "b"], np.array([b"a", b"b"]), b"ab", [b"a", 3], [b"a", bytearray(b"b")]]
)
def test_hash_rejects_ids_that_are_not_bytes(ids):
    with pytest.raises(TypeError):
        sel.hash_uniform(ids, 0)


# ----------------------------------------------------------------------------------------------------------
# Unbiasedness of the Horvitz-Thompson estimate (statistical, deterministic seeds)
# ----------------------------------------------------------------------------------------------------------


def _ht_check(y, p, ids, seeds):
    """Mean and variance of sum(w * y) over seeds against their exact Poisson-sampling values.

    One estimate is a sum of independent terms Y_i = (y_i / p_i) * Bernoulli(p_i), so its variance is
    V = sum y^2 (1 - p) / p and its fourth cumulant K4 = sum (y/p)^4 p (1-p) (1 - 6 p (1-p)). Over R seeds
    the mean has standard error sqrt(V / R) and the sample variance sqrt((K4 + 2 V^2) / R) (to first order),
    so both are tested at Z of those standard errors.
    """
    total = float(y.sum())
    estimates = np.array([np.dot(sel.poisson_sample(ids, p, seed)[1], y) for seed in seeds])
    r = len(seeds)
    a = y / p
    v = float(np.sum(y**2 * (1 - p) / p))
    k4 = float(np.sum(a**4 * p * (1 - p) * (1 - 6 * p * (1 - p))))
    assert abs(estimates.mean() - total) <= Z * math.sqrt(v / r), (estimates.mean(), total, v)
    assert abs(estimates.var(ddof=1) - v) <= Z * math.sqrt((k4 + 2 * v**2) / r), (estimates.var(ddof=1), v)


@pytest.mark.parametrize("p_min, mix", [(0.0, 0.0), (0.02, 0.0), (0.0, 0.3)])
def test_horvitz_thompson_sum_is_unbiased(p_min, mix):
    rng = np.random.default_rng(1)
    n = 300
    s = rng.lognormal(0.0, 1.5, n)
    p, _ = sel.strategy_probabilities("loss", s, None, 0.1 * n, p_min=p_min, mix=mix)
    ids = ids_for(n)
    seeds = range(2000)
    _ht_check(s, p, ids, seeds)  # the quantity the probabilities were optimised for
    if p_min > 0 or mix > 0:  # any other quantity is estimated without bias as long as p > 0 everywhere
        _ht_check(rng.exponential(size=n), p, ids, seeds)


def test_window_mode_is_unbiased_too():
    rng = np.random.default_rng(2)
    s = rng.gamma(0.5, 2.0, 250)
    p = sel.window_probabilities(s, 0.2, 64, p_min=0.0)
    _ht_check(s, p, ids_for(250, b"w-"), range(2000))


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
    q = sel.defensive_mix(r.p, rate, a)
    assert abs(q.sum() - budget) <= fp_tol(budget, n)
    assert (q <= 1.0).all() and (q >= (1 - a) * p_min + a * rate - 1e-15).all()
    if a * rate > 1e-300:
        assert (1.0 / q).max() <= 1.0 / (a * rate) * (1 + 1e-12)
        _, w = sel.poisson_sample(ids_for(n), q, seed=0)
        assert w.max() <= 1.0 / (a * rate) * (1 + 1e-12)


@pytest.mark.parametrize(
    "p, rate, a",
    [([0.5], 0.5, -0.1), ([0.5], 0.5, 1.1), ([0.5], 1.5, 0.5), ([1.5], 0.5, 0.5), ([0.5], np.nan, 0.5)],
)
def test_defensive_mix_rejects_bad_input(p, rate, a):
    with pytest.raises(ValueError):
        sel.defensive_mix(np.array(p), rate, a)


# ----------------------------------------------------------------------------------------------------------
# Window mode (the paper's mini-batch approximation)
# ----------------------------------------------------------------------------------------------------------


def test_window_mode_with_partial_last_window():
    s = np.array([5.0, 1.0, 1.0, 1.0, 0.0, 2.0, 2.0, 4.0, 3.0, 1.0])
    p = sel.window_probabilities(s, rate=0.3, window_size=4)
    for start, size in [(0, 4), (4, 4), (8, 2)]:
        chunk = slice(start, start + size)
        assert abs(p[chunk].sum() - 0.3 * size) < 1e-12
        np.testing.assert_array_equal(p[chunk], sel.water_fill(s[chunk], 0.3 * size).p)
    np.testing.assert_allclose(p[8:], [0.6 * 3 / 4, 0.6 * 1 / 4])


@SETTINGS
@given(s=score_arrays(max_size=300), rate=st.floats(0.0, 1.0), w=st.integers(1, 70), p_min=p_mins)
def test_window_mode_meets_every_window_budget(s, rate, w, p_min):
    for start in range(0, s.size, w):  # every window must have a representable lam (verified otherwise)
        chunk = s[start : start + w]
        assume(water_fill_or_out_of_range(chunk, rate * chunk.size, p_min) is not None)
    p = sel.window_probabilities(s, rate, w, p_min)
    assert (p >= p_min).all() and (p <= 1.0).all()
    for start in range(0, s.size, w):
        chunk = p[start : start + w]
        if rate * chunk.size > chunk.size * p_min:
            assert abs(chunk.sum() - rate * chunk.size) <= fp_tol(rate * chunk.size, chunk.size)


@pytest.mark.parametrize("rate, w", [(0.1, 0), (0.1, 2.5), (1.5, 4), (-0.1, 4)])
def test_window_mode_rejects_bad_input(rate, w):
    with pytest.raises(ValueError):
        sel.window_probabilities([1.0, 2.0], rate, w)


# ----------------------------------------------------------------------------------------------------------
# Exact global mode: ScoreSummary
# ----------------------------------------------------------------------------------------------------------


def _summary_of_parts(s, cuts):
    bounds = [0, *sorted(cuts), s.size]
    parts = [sel.ScoreSummary().add(s[a:b]) for a, b in zip(bounds[:-1], bounds[1:])]
    return sel.ScoreSummary.merge(parts)


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
    p = sel.probabilities_from_lambda(s, lam, p_min)
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
    summary = sel.ScoreSummary()
    for chunk in np.array_split(s, 50):
        summary.add(chunk)
    for budget, p_min in [(1e4, 0.0), (1e5, 0.01), (5e5, 0.2)]:
        lam = summary.solve_lambda(budget, p_min)
        used = sel.probabilities_from_lambda(s, lam, p_min).sum()
        assert abs(used - budget) <= summary.relative_bin_width * budget
        exact = sel.water_fill(s, budget, p_min).lam
        assert abs(lam / exact - 1) <= summary.relative_bin_width


def test_summary_merge_is_order_free_and_picklable():
    rng = np.random.default_rng(4)
    s = rng.lognormal(0, 2, 10_000)
    s[::7] = 0.0
    whole = sel.ScoreSummary().add(s)
    a, b, c = (sel.ScoreSummary().add(x) for x in np.array_split(s, 3))
    for merged in (
        sel.ScoreSummary.merge([a, b, c]),
        sel.ScoreSummary.merge([c, sel.ScoreSummary.merge([b, a])]),
    ):
        np.testing.assert_array_equal(merged.keys, whole.keys)
        np.testing.assert_array_equal(merged.counts, whole.counts)
        np.testing.assert_allclose(merged.sums, whole.sums, rtol=1e-12)
        assert merged.n_zero == whole.n_zero and merged.n == s.size
    clone = pickle.loads(pickle.dumps(whole))
    assert clone.solve_lambda(500.0) == whole.solve_lambda(500.0)
    assert sel.ScoreSummary.merge([]).n == 0
    with pytest.raises(ValueError):
        sel.ScoreSummary.merge([sel.ScoreSummary(64), sel.ScoreSummary(1024)])


def test_summary_memory_does_not_grow_with_n():
    rng = np.random.default_rng(5)
    summary = sel.ScoreSummary()
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
        lam = sel.ScoreSummary().add(s).solve_lambda(budget, p_min)
        exact = sel.water_fill(s, budget, p_min)
        assert lam == exact.lam
        np.testing.assert_array_equal(sel.probabilities_from_lambda(s, lam, p_min), exact.p)


def test_summary_rejects_bad_input():
    with pytest.raises(ValueError):
        sel.ScoreSummary().add(np.array([1.0, np.nan]))
    with pytest.raises(ValueError):
        sel.ScoreSummary().add(np.array([-1.0]))
    with pytest.raises(ValueError):
        sel.ScoreSummary(0)
    with pytest.raises(ValueError):
        sel.ScoreSummary().add(np.ones(3)).solve_lambda(-1.0)


def test_probabilities_from_lambda_semantics():
    s = np.array([0.0, 1.0, 4.0])
    np.testing.assert_array_equal(sel.probabilities_from_lambda(s, 2.0, 0.1), [0.1, 0.5, 1.0])
    np.testing.assert_array_equal(sel.probabilities_from_lambda(s, 0.0, 0.1), [1.0, 1.0, 1.0])
    np.testing.assert_array_equal(sel.probabilities_from_lambda(s, math.inf, 0.1), [0.1, 0.1, 0.1])
    np.testing.assert_array_equal(sel.probabilities_from_lambda(s, -0.4, 0.1), [0.4, 1.0, 1.0])
    for lam in (math.nan, -1.5):
        with pytest.raises(ValueError):
            sel.probabilities_from_lambda(s, lam)


# ----------------------------------------------------------------------------------------------------------
# Strategies and baselines
# ----------------------------------------------------------------------------------------------------------


@SETTINGS
@given(data=st.data(), n=st.integers(1, 200), frac=st.floats(0.0, 1.0), p_min=st.sampled_from([0.0, 0.05]))
def test_every_strategy_meets_its_budget(data, n, frac, p_min):
    rng = np.random.default_rng(data.draw(st.integers(0, 2**32 - 1)))
    s = rng.exponential(size=n)
    labels = (rng.random(n) < data.draw(st.floats(0.0, 1.0))).astype(float)
    budget = frac * n
    for strategy in sel.STRATEGIES:
        p, info = sel.strategy_probabilities(strategy, s, labels, budget, p_min=p_min, ids=ids_for(n))
        assert p.shape == (n,) and (p >= 0).all() and (p <= 1).all()
        assert info["expected_kept"] == pytest.approx(p.sum())
        if strategy == "full":
            assert (p == 1).all()
        elif strategy == "top_k":
            assert p.sum() == math.floor(budget + 0.5) and set(np.unique(p)) <= {0.0, 1.0}
            assert not info["weighted"]
        elif not info["floor_bound"]:
            assert abs(p.sum() - budget) <= fp_tol(budget, n), strategy


def test_uniform_baseline():
    p, info = sel.strategy_probabilities("uniform", np.arange(10.0), None, 3.0)
    np.testing.assert_array_equal(p, np.full(10, 0.3))
    assert info["weighted"] and not info["floor_bound"]


def test_negative_downsampling_keeps_positives():
    labels = np.array([1, 0, 0, 0, 1, 0, 0, 0, 0, 0], dtype=float)
    p, info = sel.strategy_probabilities("negative_downsampling", np.ones(10), labels, 4.0)
    np.testing.assert_allclose(p, np.where(labels == 1, 1.0, 2.0 / 8.0))
    assert info["possible"] and info["negative_rate"] == 0.25


def test_negative_downsampling_reports_when_impossible():
    labels = np.array([1, 1, 1, 0, 0, 0, 0, 0], dtype=float)
    p, info = sel.strategy_probabilities("negative_downsampling", np.ones(8), labels, 2.0)
    assert not info["possible"] and "not possible" in " ".join(info["notes"])
    np.testing.assert_array_equal(p, np.full(8, 0.25))  # uniform: no class left with p = 0
    p, info = sel.strategy_probabilities("negative_downsampling", np.ones(4), np.zeros(4), 2.0)
    assert not info["possible"] and p.tolist() == [0.5] * 4


def test_top_k_is_deterministic_and_order_free_with_ids():
    s = np.array([1.0, 5.0, 3.0, 3.0, 3.0, 0.0])
    ids = [b"f", b"a", b"c", b"b", b"d", b"e"]
    p, info = sel.strategy_probabilities("top_k", s, None, 3.0, ids=ids)
    assert p[1] == 1 and p.sum() == 3 and p[[0, 5]].sum() == 0 and not info["weighted"]
    for seed in range(10):
        perm = np.random.default_rng(seed).permutation(6)
        q, _ = sel.strategy_probabilities("top_k", s[perm], None, 3.0, ids=[ids[i] for i in perm])
        np.testing.assert_array_equal(q, p[perm])
    q, _ = sel.strategy_probabilities("top_k", s, None, 3.0)  # no ids: ties by position
    np.testing.assert_array_equal(q, [0, 1, 1, 1, 0, 0])


def test_loss_strategy_with_mix_reports_lam_and_weight_bound():
    s = np.array([0.0, 0.1, 1.0, 10.0])
    p, info = sel.strategy_probabilities("loss", s, None, 2.0, mix=0.5)
    exact = sel.water_fill(s, 2.0)
    np.testing.assert_allclose(p, 0.5 * exact.p + 0.5 * 0.5)
    assert info["lam"] == exact.lam and info["weighted"] and (1 / p).max() <= 1 / (0.5 * 0.5)


@pytest.mark.parametrize(
    "args, kwargs",
    [
        (("nope", [1.0], None, 1.0), {}),
        (("loss", [1.0, 2.0], None, 3.0), {}),
        (("loss", [1.0, 2.0], None, -1.0), {}),
        (("loss", [1.0, 2.0], None, 1.0), {"mix": 1.5}),
        (("loss", [1.0, np.nan], None, 1.0), {}),
        (("negative_downsampling", [1.0, 2.0], None, 1.0), {}),
        (("negative_downsampling", [1.0, 2.0], [0.0, 0.5], 1.0), {}),
        (("negative_downsampling", [1.0, 2.0], [0.0], 1.0), {}),
        (("top_k", [1.0, 2.0], None, 1.0), {"ids": [b"a"]}),
    ],
)
def test_strategy_rejects_bad_input(args, kwargs):
    with pytest.raises(ValueError):
        sel.strategy_probabilities(*args, **kwargs)


# ----------------------------------------------------------------------------------------------------------
# Budgets, diagnostics, signals: error paths
# ----------------------------------------------------------------------------------------------------------


def test_budget_count():
    assert sel.budget_count(0.1, 1000) == pytest.approx(100.0)
    assert sel.budget_count(1.0, 50) == 50.0  # 1 is a rate: everything
    assert sel.budget_count(0.0, 50) == 0.0
    assert sel.budget_count(20, 50) == 20.0
    assert sel.budget_count(500, 50) == 50.0
    for budget, n in [(2.5, 10), (-0.1, 10), (math.nan, 10), (math.inf, 10), (0.5, -1), (0.5, 2.5)]:
        with pytest.raises(ValueError):
            sel.budget_count(budget, n)


def test_diagnostics_values():
    s = np.array([1.0, 2.0, 3.0, 4.0])
    p = np.array([0.25, 0.5, 0.75, 1.0])
    w = np.array([0.0, 2.0, 0.0, 1.0])
    d = sel.diagnostics(s, p, w)
    assert d["ess"] == pytest.approx(9.0 / 5.0) and d["n_kept"] == 2
    err = 1 * 3 + 4 * 1 + 9 * (1 / 3)
    err_u = 30.0 * (1 / 0.625 - 1)
    assert d["expected_sq_error"] == pytest.approx(err)
    assert d["expected_sq_error_uniform"] == pytest.approx(err_u)
    assert d["error_ratio_vs_uniform"] == pytest.approx(err / err_u)
    same = sel.diagnostics(s, np.full(4, 0.5), np.array([2.0, 2.0, 0.0, 0.0]))
    assert same["error_ratio_vs_uniform"] == 1.0 and same["ess"] == 2.0


def test_diagnostics_with_unseen_positive_scores_is_infinite_not_a_crash():
    d = sel.diagnostics(np.array([1.0, 2.0, 0.0]), np.array([0.0, 1.0, 0.0]), np.array([0.0, 1.0, 0.0]))
    assert d["expected_sq_error"] == math.inf and d["n_zero_p_positive_score"] == 1
    assert math.isfinite(d["expected_sq_error_uniform"]) and d["error_ratio_vs_uniform"] == math.inf
    d = sel.diagnostics(np.array([1.0, 2.0]), np.zeros(2), np.zeros(2))
    assert d["ess"] == 0.0 and math.isnan(d["error_ratio_vs_uniform"])
    d = sel.diagnostics(np.zeros(3), np.full(3, 0.5), np.zeros(3))
    assert d["error_ratio_vs_uniform"] == 1.0


def test_diagnostics_rejects_bad_input():
    with pytest.raises(ValueError):
        sel.diagnostics(np.ones(2), np.ones(3), np.ones(2))
    with pytest.raises(ValueError):
        sel.diagnostics(np.ones(2), np.ones(2), np.array([1.0, -1.0]))


@pytest.mark.parametrize(
    "args, kwargs",
    [
        (("entropy", [0.5], [1.0]), {}),
        (("loss", [0.5], [1.0]), {"task": "multiclass"}),
        (("loss", [0.5, 0.5], [1.0]), {}),
        (("loss", [np.nan], [1.0]), {}),
        (("loss", [0.5], [np.inf]), {}),
        (("loss", [1.5], [1.0]), {}),
        (("loss", [0.5], [2.0]), {}),
        (("loss", [0.5], [1.0]), {"eps": 0.0}),
        (("grad_norm", [0.5], [1.0]), {"hidden_norm": np.array([np.inf])}),
        (("grad_norm", [0.5], [1.0]), {"hidden_norm": np.array([-1.0])}),
        (("grad_norm", [0.5], [1.0]), {"hidden_norm": np.array([1.0, 2.0])}),
        (("loss", [np.inf], [1.0]), {"task": "regression"}),
    ],
)
def test_compute_scores_rejects_bad_input(args, kwargs):
    signal, pred, label = args
    with pytest.raises(ValueError):
        sel.compute_scores(signal, np.array(pred), np.array(label), **kwargs)
