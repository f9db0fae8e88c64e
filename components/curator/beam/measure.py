"""Folding the sampling step's per-batch figures into per-split ones: selection stats and served quality.

Counts, histograms and the served-quality accumulators merge exactly in any order (report_stats.py,
quality.py); the selection stats' float sums up to rounding. Only accumulators cross the shuffle.
"""

from __future__ import annotations

from collections.abc import Iterable

import apache_beam as beam

from tfx_curator.components.curator.beam.rows import QUALITY_CURATED, QUALITY_FULL, QualityKey, QualityRows
from tfx_curator.components.curator.reporting import quality
from tfx_curator.components.curator.reporting.report_stats import SplitStats


class MergeStatsFn(beam.CombineFn):
    """Per-batch `SplitStats` of one split -> the split's `SplitStats` (counts, sums and fixed-bin histograms).

    The accumulator is a `SplitStats` itself, starting from `SplitStats.empty()`; merging adds counts,
    histograms and sums.
    """

    def create_accumulator(self) -> SplitStats:
        return SplitStats.empty()

    def add_input(self, acc: SplitStats, stats: SplitStats) -> SplitStats:
        return acc.merge(stats)

    def merge_accumulators(self, accs: Iterable[SplitStats]) -> SplitStats:
        accs = iter(accs)
        out = next(accs)
        for acc in accs:
            out = out.merge(acc)
        return out

    def extract_output(self, acc: SplitStats) -> SplitStats:
        return acc


class ServedQualityFn(beam.CombineFn):
    """`QualityRows` of one key -> a `quality.QualityStats`.

    Rows are added straight into the accumulator (no per-batch object); accumulators merge exactly, in any
    order (quality.py).
    """

    def __init__(self, task: str, weighted: bool):
        self._task = task
        self._weighted = weighted

    def create_accumulator(self) -> quality.QualityStats:
        return quality.QualityStats(self._task, self._weighted)

    def add_input(self, acc: quality.QualityStats, rows: QualityRows) -> quality.QualityStats:
        return acc.add(rows.predictions, rows.labels, rows.versions, rows.weights)

    def merge_accumulators(self, accs: Iterable[quality.QualityStats]) -> quality.QualityStats:
        return quality.QualityStats.merge(list(accs), self._task, self._weighted)

    def extract_output(self, acc: quality.QualityStats) -> quality.QualityStats:
        return acc


class MergeStats(beam.PTransform):
    """(split, SplitStats) per batch -> (split, SplitStats) per split."""

    def expand(self, stats):
        return stats | "Merge" >> beam.CombinePerKey(MergeStatsFn()).with_output_types(tuple[int, SplitStats])


class MeasureServedQuality(beam.PTransform):
    """(QualityKey, QualityRows) -> (QualityKey, QualityStats): the served model's quality on every joined
    example, and on the curated sample with its weights."""

    def __init__(self, task: str):
        super().__init__()
        self._task = task

    def expand(self, rows):
        typed = tuple[QualityKey, QualityRows]
        full = rows | "Full" >> beam.Filter(lambda kv: kv[0].kind == QUALITY_FULL).with_output_types(typed)
        curated = rows | "Curated" >> beam.Filter(lambda kv: kv[0].kind == QUALITY_CURATED).with_output_types(
            typed
        )
        return (
            full | "CombineFull" >> beam.CombinePerKey(ServedQualityFn(self._task, False)),
            curated | "CombineCurated" >> beam.CombinePerKey(ServedQualityFn(self._task, True)),
        ) | "FlattenQuality" >> beam.Flatten()
