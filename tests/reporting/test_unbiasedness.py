"""unbiasedness.py: per-feature distances raw vs curated from TFDV statistics, the noise level, the split check."""

from __future__ import annotations

import math
import os

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from tensorflow_metadata.proto.v0 import statistics_pb2

from tfx_curator.components.curator.options import CurationOptions
from tfx_curator.components.curator.policy import sampling
from tfx_curator.components.curator.reporting import report, unbiasedness

QUANTILES = statistics_pb2.Histogram.QUANTILES


def _numeric(name: str, edges, weighted_edges=None) -> statistics_pb2.FeatureNameStatistics:
    f = statistics_pb2.FeatureNameStatistics()
    f.path.step.append(name)
    for hist, e in (
        (f.num_stats.histograms.add(), edges),
        (f.num_stats.weighted_numeric_stats.histograms.add(), weighted_edges or edges),
    ):
        hist.type = QUANTILES
        for low, high in zip(e[:-1], e[1:]):
            hist.buckets.add(low_value=low, high_value=high, sample_count=1.0)
    return f


def _categorical(
    name: str, counts: dict, weighted_counts: dict | None = None
) -> statistics_pb2.FeatureNameStatistics:
    f = statistics_pb2.FeatureNameStatistics()
    f.path.step.append(name)
    for buckets, c in (
        (f.string_stats.rank_histogram.buckets, counts),
        (f.string_stats.weighted_string_stats.rank_histogram.buckets, weighted_counts or counts),
    ):
        for label, n in c.items():
            buckets.add(label=label, sample_count=n)
    return f


def _dataset(*features, n: int = 1000) -> statistics_pb2.DatasetFeatureStatistics:
    d = statistics_pb2.DatasetFeatureStatistics(num_examples=n)
    d.features.extend(features)
    return d


EDGES = list(np.linspace(0.0, 1.0, 21))
SHIFTED = list(np.linspace(0.5, 1.5, 21))


def test_identical_distributions_are_at_distance_zero():
    raw = _dataset(_numeric("x", EDGES), _categorical("c", {"a": 5, "b": 5}))
    rows = unbiasedness.compare_statistics(raw, raw, raw, 1000, 100.0)
    assert [(r["feature"], r["distance"], r["raw_vs_weighted"], r["mismatch"]) for r in rows] == [
        ("c", "linf", 0.0, False),
        ("x", "ks", 0.0, False),
    ]


def test_a_shifted_weighted_sample_is_flagged_and_the_unweighted_distance_reported():
    raw = _dataset(_numeric("x", EDGES))
    unweighted = _dataset(_numeric("x", SHIFTED))
    weighted = _dataset(_numeric("x", EDGES, weighted_edges=SHIFTED))
    (row,) = unbiasedness.compare_statistics(raw, unweighted, weighted, 10_000, 5_000.0)
    assert row["raw_vs_weighted"] == pytest.approx(0.5) and row["raw_vs_unweighted"] == pytest.approx(0.5)
    assert row["noise_95"] == pytest.approx(unbiasedness.KS_95 * math.sqrt(1 / 10_000 + 1 / 5_000))
    assert row["mismatch"]


def test_category_frequencies_compare_by_l_infinity():
    raw = _dataset(_categorical("c", {"a": 50, "b": 50}))
    curated = _dataset(_categorical("c", {"a": 50, "b": 50}, weighted_counts={"a": 90, "b": 10}))
    (row,) = unbiasedness.compare_statistics(raw, curated, curated, 100_000, 100_000.0)
    assert row["raw_vs_weighted"] == pytest.approx(0.4) and row["raw_vs_unweighted"] == 0.0
    assert row["mismatch"]


def test_skipped_and_missing_features_are_left_out():
    raw = _dataset(_numeric("x", EDGES), _numeric("example_id", EDGES), _numeric("only_raw", EDGES))
    curated = _dataset(_numeric("x", EDGES), _numeric("example_id", EDGES))
    rows = unbiasedness.compare_statistics(raw, curated, curated, 10, 10.0, skip=("example_id",))
    assert [r["feature"] for r in rows] == ["x"]


@settings(max_examples=50, deadline=None)
@given(st.lists(st.floats(-1e6, 1e6, allow_nan=False), min_size=2, max_size=30, unique=True))
def test_distance_of_a_feature_to_itself_is_zero(values):
    f = _numeric("x", sorted(values))
    assert unbiasedness.feature_distance(f, f, True) == ("ks", 0.0)
    assert unbiasedness.feature_distance(f, f, False) == ("ks", 0.0)


def _write(report_uri: str, split: str, which: str, dataset, path: str | None = None) -> str:
    path = path or report.stats_path(report_uri, split, which)
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "wb") as f:
        f.write(statistics_pb2.DatasetFeatureStatisticsList(datasets=[dataset]).SerializeToString())
    return path


def test_check_reads_both_curated_views_from_the_one_weighted_pass(tmp_path):
    uri, options = str(tmp_path), CurationOptions()  # budget 0.1: a raw sample at rate 0.4
    assert unbiasedness.check(uri, "train", 100.0, options, 10_000) is None  # statistics not computed
    raw = _dataset(_numeric("x", EDGES), _numeric(options.weight_feature, EDGES), n=4_000)
    _write(uri, "train", report.RAW, raw)
    # the curated file: unweighted like the raw data, weighted shifted (a weighting bug)
    _write(uri, "train", report.CURATED, _dataset(_numeric("x", EDGES, weighted_edges=SHIFTED)))
    got = unbiasedness.check(uri, "train", 500.0, options, 10_000)
    assert got["mismatched"] == ["x"] and [r["feature"] for r in got["features"]] == ["x"]
    (row,) = got["features"]
    assert row["raw_vs_unweighted"] == 0.0 and row["raw_vs_weighted"] == pytest.approx(0.5)
    curated = report.stats_path(uri, "train", report.CURATED)
    assert got["statistics"] == {
        report.RAW: report.stats_path(uri, "train", report.RAW),
        report.UNWEIGHTED: curated,
        report.WEIGHTED: curated,
    }
    # the raw sample, and a noise level from its size (4,000), not the split's (10,000)
    assert got["raw_statistics"] == {"source": "sample", "rate": 0.4, "sampled": 4_000, "accepted": 10_000}
    assert row["noise_95"] == pytest.approx(unbiasedness.KS_95 * math.sqrt(1 / 4_000 + 1 / 500))


def test_check_still_reads_the_two_curated_files_of_older_reports(tmp_path):
    uri, options = str(tmp_path), CurationOptions()
    _write(uri, "train", report.RAW, _dataset(_numeric("x", EDGES)))
    _write(uri, "train", report.UNWEIGHTED, _dataset(_numeric("x", SHIFTED)))
    _write(uri, "train", report.WEIGHTED, _dataset(_numeric("x", SHIFTED)))
    got = unbiasedness.check(uri, "train", 500.0, options, 1000)
    assert got["mismatched"] == ["x"]
    assert got["statistics"][report.WEIGHTED] == report.stats_path(uri, "train", report.WEIGHTED)


def test_check_reads_the_raw_statistics_of_a_statistics_input(tmp_path):
    uri, options = str(tmp_path / "report"), CurationOptions()
    stats_gen = str(tmp_path / "StatisticsGen")
    _write(uri, "train", report.CURATED, _dataset(_numeric("x", EDGES)))
    path = _write(
        "",
        "",
        "",
        _dataset(_numeric("x", EDGES), n=9_000),
        os.path.join(stats_gen, "Split-train", "FeatureStats.pb"),
    )
    assert unbiasedness.statistics_gen_paths(stats_gen, ["train", "eval"]) == {"train": path}
    got = unbiasedness.check(uri, "train", 500.0, options, 9_000, path, statistics_input=True)
    assert got["raw_statistics"] == {"source": "statistics", "uri": path, "examples": 9_000}
    assert got["statistics"][report.RAW] == path and not got["mismatched"]
    assert got["features"][0]["noise_95"] == pytest.approx(
        unbiasedness.KS_95 * math.sqrt(1 / 9_000 + 1 / 500)
    )


def test_a_split_the_statistics_input_lacks_is_computed_and_says_so(tmp_path):
    uri = str(tmp_path)
    _write(uri, "eval", report.RAW, _dataset(_numeric("x", EDGES), n=50))
    _write(uri, "eval", report.CURATED, _dataset(_numeric("x", EDGES)))
    got = unbiasedness.check(uri, "eval", 10.0, CurationOptions(budget=500), 50, None, statistics_input=True)
    assert got["raw_statistics"] == {
        "source": "all",  # a count budget: every accepted example
        "examples": 50,
        "accepted": 50,
        "note": "split not in the statistics input: raw statistics computed by the job",
    }


def test_check_of_an_empty_split_says_there_is_nothing_to_compare(tmp_path):
    uri = str(tmp_path)
    for which in (report.RAW, report.CURATED):
        _write(uri, "eval", which, _dataset(n=0))
    assert unbiasedness.check(uri, "eval", 0.0, CurationOptions(budget=1.0), 0) == {
        "features": [],
        "note": unbiasedness.NO_EXAMPLES,
        "raw_statistics": {"source": "all", "examples": 0, "accepted": 0},
    }


# ---------------------------------------------------------------------------------------------------------
# The raw sample
# ---------------------------------------------------------------------------------------------------------

budgets = st.one_of(st.floats(0.0, 1.0), st.integers(2, 10**9).map(float))


@settings(max_examples=200, deadline=None)
@given(budgets, st.floats(0.0, 1.0))
def test_raw_sample_rate_is_a_few_times_the_budget_rate_at_most_one(budget, p_min):
    rate = unbiasedness.raw_sample_rate(CurationOptions(budget=budget, p_min=p_min))
    if budget > 1:  # a count: the split's rate is unknown while its examples go by
        assert rate == 1.0
    else:
        assert rate == min(1.0, unbiasedness.RAW_SAMPLE_FACTOR * max(budget, p_min))
        assert rate >= min(1.0, budget)  # never fewer raw examples than the curated sample expects


ids_lists = st.lists(st.binary(min_size=0, max_size=12), min_size=0, max_size=300)


@settings(max_examples=100, deadline=None)
@given(ids_lists, st.integers(0, 2**63 - 1), st.floats(0.0, 1.0), st.data())
def test_raw_sample_is_per_id_whatever_the_batching_and_order(ids, seed, rate, data):
    whole = unbiasedness.raw_sample(ids, seed, rate)
    assert whole.dtype == bool and whole.shape == (len(ids),)
    assert np.array_equal(unbiasedness.raw_sample(list(ids), seed, rate), whole)  # deterministic
    cuts = sorted(data.draw(st.lists(st.integers(0, len(ids)), max_size=5)))
    pieces = [ids[a:b] for a, b in zip([0, *cuts], [*cuts, len(ids)])]
    assert np.array_equal(
        np.concatenate([unbiasedness.raw_sample(p, seed, rate) for p in pieces] + [np.zeros(0, bool)]), whole
    )
    order = data.draw(st.permutations(range(len(ids))))
    assert np.array_equal(unbiasedness.raw_sample([ids[i] for i in order], seed, rate), whole[list(order)])


@settings(max_examples=30, deadline=None)
@given(st.integers(0, 2**63 - 1), st.floats(0.001, 0.999))
def test_raw_sample_honours_its_rate_within_binomial_bounds(seed, rate):
    n = 20_000
    ids = [f"id-{i}".encode() for i in range(n)]
    kept = int(unbiasedness.raw_sample(ids, seed, rate).sum())
    assert abs(kept - n * rate) <= 5 * math.sqrt(n * rate * (1 - rate)) + 1


def test_raw_sample_is_independent_of_the_selection_hash():
    """Salted: at the same rate, the raw sample and `hash_uniform(id, seed) < rate` (the selection's uniform
    numbers) agree only as two independent samples would."""
    n, rate = 20_000, 0.4
    ids = [f"id-{i}".encode() for i in range(n)]
    raw = unbiasedness.raw_sample(ids, 3, rate)
    both = int((raw & (sampling.hash_uniform(ids, 3) < rate)).sum())
    assert abs(both - n * rate * rate) <= 5 * math.sqrt(n * rate * rate)
    assert unbiasedness.raw_sample(ids, 3, 1.0).all() and not unbiasedness.raw_sample(ids, 3, 0.0).any()
