"""report_stats.py: SplitStats merge like one pass over the split (any order, any grouping), fixed-bin
histograms, the summary's figures."""

from __future__ import annotations

import functools
import json
import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from tfx_curator.components.curator.reporting.report_stats import (
    SCORE_BINS,
    WEIGHT_BINS,
    SplitStats,
    _hist,
)

# Summed in another order, float sums may differ in their last bits: counts, histograms, min and max are exact.
FLOAT_SUMS = {
    "expected_kept",
    "sum_w",
    "sum_w2",
    "sum_w_label",
    "sum_label",
    "sum_w_times_label",
    "p_sum_by_score_bin",
    "sq_error",
    "sum_s2",
    "sum_s",
}


def _batch(scores, labels, p, keep) -> SplitStats:
    weight = np.where(keep, 1.0 / np.where(keep, p, 1.0), 0.0)
    return SplitStats.from_batch(scores, labels, p, keep, weight)


def _assert_same(a: SplitStats, b: SplitStats) -> None:
    x, y = a.to_dict(), b.to_dict()
    assert x.keys() == y.keys()
    for name in x:
        if name in FLOAT_SUMS:
            assert np.asarray(x[name]) == pytest.approx(np.asarray(y[name]), rel=1e-9, abs=1e-9), name
        else:
            assert x[name] == y[name], name


@st.composite
def split_and_batches(draw):
    n = draw(st.integers(0, 60))
    values = st.one_of(st.just(0.0), st.just(math.nan), st.floats(1e-10, 1e5))
    scores = draw(hnp.arrays(np.float64, n, elements=values))
    labels = draw(hnp.arrays(np.float64, n, elements=st.sampled_from([0.0, 1.0])))
    p = draw(hnp.arrays(np.float64, n, elements=st.one_of(st.just(0.0), st.floats(1e-7, 1.0))))
    keep = draw(hnp.arrays(np.bool_, n)) & (p > 0)
    cuts = sorted(draw(st.lists(st.integers(0, n), max_size=6)))
    bounds = list(zip([0, *cuts], [*cuts, n]))
    order = draw(st.permutations(range(len(bounds))))
    tree = draw(st.booleans())
    return (scores, labels, p, keep), [bounds[i] for i in order], tree


def _merge_tree(parts: list[SplitStats]) -> SplitStats:
    """Pairwise, as a combiner merging accumulators of accumulators does."""
    while len(parts) > 1:
        parts = [a.merge(b) if b is not None else a for a, b in zip(parts[::2], [*parts[1::2], None])]
    return parts[0]


@settings(max_examples=200, deadline=None)
@given(split_and_batches())
def test_merged_batches_equal_one_pass_in_any_order_and_grouping(case):
    arrays, bounds, tree = case
    whole = _batch(*arrays)
    parts = [_batch(*(a[lo:hi] for a in arrays)) for lo, hi in bounds]
    if tree:
        merged = _merge_tree(parts)
    else:
        merged = functools.reduce(SplitStats.merge, parts, SplitStats.empty())
    _assert_same(merged, whole)
    assert merged.n == whole.n and int(merged.score_hist.sum()) + merged.score_zero == merged.n_scored


def test_empty_is_the_identity_of_merge_and_of_an_empty_batch():
    stats = _batch(
        np.array([0.5, np.nan, 0.0]),
        np.array([1.0, 0.0, 0.0]),
        np.array([0.5, 0.2, 0.0]),
        np.array([True, False, False]),
    )
    _assert_same(SplitStats.empty().merge(stats), stats)
    _assert_same(stats.merge(SplitStats.empty()), stats)
    none = np.array([])
    _assert_same(_batch(none, none, none, none.astype(bool)), SplitStats.empty())


def test_hist_counts_each_value_in_the_bin_it_starts_and_clamps_the_rest():
    edges = np.array([1.0, 10.0, 100.0])
    got = _hist(np.array([0.5, 1.0, 9.99, 10.0, 99.0, 100.0, 1e9]), edges)
    assert got.tolist() == [3, 4] and got.dtype == np.int64  # 0.5 clamped below, 100 and 1e9 clamped above


def test_score_histogram_zeros_and_missing_apart_out_of_range_clamped():
    scores = np.array([0.0, 0.0, np.nan, 1e-12, SCORE_BINS[0], 1.0, SCORE_BINS[-1], 1e9])
    n = scores.size
    stats = _batch(scores, np.zeros(n), np.full(n, 0.5), np.zeros(n, bool))
    assert stats.n == n and stats.n_scored == n - 1 and stats.score_zero == 2
    hist = stats.score_hist
    assert hist.size == SCORE_BINS.size - 1 and hist.sum() == 5
    assert hist[0] == 2 and hist[-1] == 2  # below the first edge and at it; at the last edge and above
    assert hist[np.searchsorted(SCORE_BINS, 1.0, side="right") - 1] == 1
    assert stats.p_sum_by_score_bin.sum() == pytest.approx(5 * 0.5)
    assert (stats.min_s, stats.max_s) == (0.0, 1e9)


def test_weight_histogram_of_kept_examples_only():
    p = np.array([1.0, 0.5, 1e-7, 0.1, 0.2])
    keep = np.array([True, True, True, True, False])
    stats = _batch(np.ones(5), np.array([1.0, 0.0, 0.0, 1.0, 1.0]), p, keep)
    assert stats.weight_hist.size == WEIGHT_BINS.size - 1 and stats.weight_hist.sum() == 4
    assert stats.weight_hist[0] == 1 and stats.weight_hist[-1] == 1  # weight 1, weight 1e7 (clamped)
    assert stats.n_kept == 4 and stats.max_w == pytest.approx(1e7) and stats.min_p_kept == 1e-7
    assert stats.kept_label.tolist() == [2, 2] and stats.n_label.tolist() == [2, 3]
    assert stats.sum_w_label.tolist() == pytest.approx([2.0 + 1e7, 1.0 + 10.0])
    assert stats.p_hist.sum() == 5 and stats.p_zero == 0


def test_summary_uniform_selection_matches_the_uniform_error_and_equal_weights_give_full_ess():
    n, rate = 100, 0.25
    rng = np.random.default_rng(0)
    keep = rng.random(n) < rate
    stats = _batch(rng.gamma(2.0, size=n), np.zeros(n), np.full(n, rate), keep)
    s = stats.summary()
    assert s["error_ratio_vs_uniform"] == pytest.approx(1.0)
    assert s["expected_sq_error"] == pytest.approx(stats.sum_s2 * (1 / rate - 1))
    assert s["ess"] == pytest.approx(keep.sum())  # equal weights: ESS = kept
    assert s["sum_of_weights"] == pytest.approx(keep.sum() / rate)
    assert s["sum_of_weights_over_examples"] == pytest.approx(keep.sum() / rate / n)
    assert s["min_p_kept"] == rate and s["max_weight"] == pytest.approx(1 / rate)


def test_summary_of_nothing_and_of_a_positive_score_never_selectable():
    s = SplitStats.empty().summary()
    assert s["ess"] == 0.0 and s["error_ratio_vs_uniform"] == 1.0 and s["min_p_kept"] is None
    assert math.isnan(s["sum_of_weights_over_examples"])
    stats = _batch(np.array([2.0, 1.0]), np.zeros(2), np.array([0.0, 0.5]), np.array([False, True]))
    assert stats.n_zero_p_positive_score == 1 and stats.p_zero == 1
    assert math.isinf(stats.summary()["expected_sq_error"])
    assert math.isinf(stats.summary()["error_ratio_vs_uniform"])


def test_to_dict_is_plain_json():
    stats = _batch(np.array([0.5, 2.0]), np.array([1.0, 0.0]), np.array([0.5, 1.0]), np.array([True, True]))
    d = json.loads(json.dumps(stats.to_dict()))
    assert d["score_hist"] == stats.score_hist.tolist() and d["n_kept"] == 2
