"""measure.py: per-batch selection stats and served-quality rows fold into the same per-split figures however the
batches are cut (TestPipeline + assert_that)."""

from __future__ import annotations

import json

import apache_beam as beam
import numpy as np
from apache_beam.testing.test_pipeline import TestPipeline
from apache_beam.testing.util import assert_that, equal_to

from tfx_curator.components.curator.beam import measure, rows
from tfx_curator.components.curator.reporting import quality
from tfx_curator.components.curator.reporting.report_stats import SplitStats

RNG = np.random.default_rng(3)
N = 600
SCORES = RNG.gamma(2.0, size=N)
LABELS = (RNG.random(N) < 0.3).astype(float)
P = np.clip(SCORES / SCORES.max(), 0.05, 1.0)
KEEP = RNG.random(N) < P
WEIGHT = np.where(KEEP, 1.0 / P, 0.0)
PREDS = np.clip(RNG.random(N), 0.0, 1.0)
VERSIONS = [b"1" if i % 3 else b"2" for i in range(N)]


def _stats(at: slice) -> SplitStats:
    return SplitStats.from_batch(SCORES[at], LABELS[at], P[at], KEEP[at], WEIGHT[at])


def _figures(stats: SplitStats) -> str:
    """Counts and histograms exactly, float sums to 10 significant digits (their order of addition varies)."""
    rounded = json.loads(
        json.dumps(stats.to_dict(), default=float), parse_float=lambda x: float(f"{float(x):.10g}")
    )
    return json.dumps(rounded, sort_keys=True)


def test_merged_stats_equal_the_stats_of_one_batch_up_to_float_rounding():
    cuts = [slice(0, 50), slice(50, 51), slice(51, 400), slice(400, N)]
    whole = _figures(_stats(slice(0, N)))
    with TestPipeline() as p:
        merged = (
            p
            | beam.Create([(0, _stats(c)) for c in cuts] + [(1, _stats(slice(0, N)))])
            | measure.MergeStats()
            | beam.MapTuple(lambda split, stats: (split, _figures(stats)))
        )
        assert_that(merged, equal_to([(0, whole), (1, whole)]))


def _rows(at: slice, weighted: bool) -> rows.QualityRows:
    return rows.QualityRows(PREDS[at], LABELS[at], VERSIONS[at], WEIGHT[at] if weighted else None)


def _quality(stats: quality.QualityStats) -> str:
    return json.dumps(stats.to_dict(), sort_keys=True)


def test_served_quality_is_measured_per_split_and_kind():
    cuts = [slice(0, 200), slice(200, 201), slice(201, N)]
    elements = [(rows.QualityKey(0, rows.QUALITY_FULL), _rows(c, False)) for c in cuts]
    elements += [(rows.QualityKey(0, rows.QUALITY_CURATED), _rows(c, True)) for c in cuts]
    full = quality.QualityStats("binary", False).add(PREDS, LABELS, VERSIONS)
    curated = quality.QualityStats("binary", True).add(PREDS, LABELS, VERSIONS, WEIGHT)
    with TestPipeline() as p:
        got = (
            p
            | beam.Create(elements)
            | measure.MeasureServedQuality("binary")
            | beam.MapTuple(lambda key, stats: (tuple(key), stats.weighted, _quality(stats)))
        )
        assert_that(
            got,
            equal_to(
                [
                    ((0, rows.QUALITY_FULL), False, _quality(full)),
                    ((0, rows.QUALITY_CURATED), True, _quality(curated)),
                ]
            ),
        )
