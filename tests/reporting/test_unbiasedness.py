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


def _write(report_uri: str, split: str, which: str, dataset) -> None:
    path = report.stats_path(report_uri, split, which)
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "wb") as f:
        f.write(statistics_pb2.DatasetFeatureStatisticsList(datasets=[dataset]).SerializeToString())


def test_check_reads_the_three_statistics_of_a_split(tmp_path):
    uri, options = str(tmp_path), CurationOptions()
    assert unbiasedness.check(uri, "train", 100.0, options) is None  # statistics not computed
    raw = _dataset(_numeric("x", EDGES), _numeric(options.weight_feature, EDGES))
    _write(uri, "train", report.RAW, raw)
    _write(uri, "train", report.UNWEIGHTED, _dataset(_numeric("x", SHIFTED)))
    _write(
        uri,
        "train",
        report.WEIGHTED,
        _dataset(_numeric("x", SHIFTED), _numeric(options.weight_feature, SHIFTED)),
    )
    got = unbiasedness.check(uri, "train", 500.0, options)
    assert got["mismatched"] == ["x"] and [r["feature"] for r in got["features"]] == ["x"]
    assert got["statistics"][report.WEIGHTED] == report.stats_path(uri, "train", report.WEIGHTED)


def test_check_of_an_empty_split_says_there_is_nothing_to_compare(tmp_path):
    uri = str(tmp_path)
    for which in (report.RAW, report.UNWEIGHTED, report.WEIGHTED):
        _write(uri, "eval", which, _dataset(n=0))
    assert unbiasedness.check(uri, "eval", 0.0, CurationOptions()) == {
        "features": [],
        "note": unbiasedness.NO_EXAMPLES,
    }
