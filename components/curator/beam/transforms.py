"""The curation rules' Beam steps: score joined rows, solve each split's thresholds, sample.

    JoinedRow -> ScoreExamples -> SolveThresholds -> SampleExamples -> kept examples, stats, quality rows

After the join (join.py), examples move in numpy batches; the decisions are element-wise given a small per-split
`SplitPlan` side input, so any batching or partitioning selects the same examples (see plan.py). The sampling
step also emits the served model's quality rows for the joined rows it already holds (measure.py): no second
pass over the data. curate.py puts the steps together: this path serves global mode and the strategies without
windows; window mode joins, solves and samples each window in one group (windowed.py) with `score_batch` and
`SampleExamplesDoFn` from here.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import NamedTuple

import apache_beam as beam
import numpy as np
from apache_beam.metrics import Metrics

from tfx_curator.components.curator.beam.rows import (
    BATCH_SIZE,
    NAMESPACE,
    QUALITY,
    QUALITY_CURATED,
    QUALITY_FULL,
    STATS,
    JoinedRow,
    QualityKey,
    QualityRows,
)
from tfx_curator.components.curator.options import CurationOptions
from tfx_curator.components.curator.policy import plan, strategies
from tfx_curator.components.curator.policy.summary import ScoreSummary
from tfx_curator.components.curator.reading import example_keys
from tfx_curator.components.curator.reading.records import RecordConfig
from tfx_curator.components.curator.reporting.report_stats import SplitStats


def record_config(options: CurationOptions) -> RecordConfig:
    return RecordConfig(**options.record_config_args())


def score_signal(options: CurationOptions) -> str:
    """The signal behind the scores: the strategy's own, else the loss (for top_k and for the report)."""
    return strategies.strategy_signal(options.strategy)


# ---------------------------------------------------------------------------------------------------------
# Scoring and thresholds
# ---------------------------------------------------------------------------------------------------------


class ScoredBatch(NamedTuple):
    """A batch of joined rows as columns; NaN score and prediction = no record."""

    splits: np.ndarray  # int64[n]
    ids: list[bytes]
    raws: list[bytes]
    labels: np.ndarray  # float64[n]
    scores: np.ndarray  # float64[n], `plan.example_scores`
    predictions: np.ndarray  # float64[n]
    model_versions: list[bytes]


def score_batch(rows: Sequence[JoinedRow], options: CurationOptions) -> ScoredBatch:
    """Joined rows -> one `ScoredBatch` (`score_columns` of their columns)."""
    columns = zip(*rows) if rows else ([] for _ in JoinedRow._fields)
    return score_columns(JoinedRow(*(list(c) for c in columns)), options)


def score_columns(joined: JoinedRow, options: CurationOptions) -> ScoredBatch:
    """Joined rows as columns (a JoinedRow of lists) -> one `ScoredBatch` (the scores are
    `plan.example_scores`)."""
    preds = np.asarray(joined.prediction, dtype=np.float64)
    labels = np.asarray(joined.label, dtype=np.float64)
    norms = np.asarray(joined.hidden_norm, dtype=np.float64)
    return ScoredBatch(
        splits=np.asarray(joined.split, dtype=np.int64),
        ids=joined.example_id,
        raws=joined.raw,
        labels=labels,
        scores=plan.example_scores(options, preds, labels, norms, np.asarray(joined.score, dtype=np.float64)),
        predictions=preds,
        model_versions=joined.model_version,
    )


class ScoreExamples(beam.PTransform):
    """Joined rows -> batches (splits, ids, raws, labels, scores, predictions, versions), scored vectorised."""

    def __init__(self, options: CurationOptions):
        super().__init__()
        self._options = options

    def expand(self, joined):
        options = self._options
        return (
            joined
            | "Batch" >> beam.BatchElements(min_batch_size=BATCH_SIZE, max_batch_size=BATCH_SIZE)
            | "Score" >> beam.Map(score_batch, options)
        )


def batch_counts(batch, positive_label: float = 1.0):
    splits, _, _, labels, scores = batch[:5]
    for split in np.unique(splits).tolist():
        at = splits == split
        yield (
            split,
            (int(at.sum()), int((~np.isnan(scores[at])).sum()), int((labels[at] == positive_label).sum())),
        )


def sum_tuples(values):
    return tuple(int(sum(v)) for v in zip(*values)) if values else (0, 0, 0)


class _ScoreSummaryFn(beam.CombineFn):
    """Score arrays of one key -> their `ScoreSummary`, the global mode's mergeable aggregate.

    The summary's sums are exact integers, so combiner lifting and any merge order give the same summary and
    the same threshold, bit for bit.
    """

    def create_accumulator(self) -> ScoreSummary:
        return ScoreSummary()

    def add_input(self, acc: ScoreSummary, scores: np.ndarray) -> ScoreSummary:
        return acc.add(scores)

    def merge_accumulators(self, accs: Iterable[ScoreSummary]) -> ScoreSummary:
        return ScoreSummary.merge(accs)

    def extract_output(self, acc: ScoreSummary) -> ScoreSummary:
        return acc


def _scored(batch, with_classes: bool = False):
    """(split, ids, scores) of one batch's scored examples per split; with `with_classes`, scores is 2 x n:
    [scores, positive as 0/1] (the per-class strategies' input)."""
    splits, ids, _, labels, scores = batch[:5]
    has = ~np.isnan(scores)
    for split in np.unique(splits[has]).tolist():
        at = has & (splits == split)
        columns = np.stack([scores[at], labels[at] == 1.0]) if with_classes else scores[at]
        yield split, [ids[i] for i in np.flatnonzero(at)], columns


def _summary_scores(batch, options: CurationOptions):
    """((split, group), scores) of one batch: the global mode's summaries (`plan.summary_groups`)."""
    for split, _, columns in _scored(batch, with_classes=True):
        groups = plan.summary_groups(options, columns[1] == 1.0)
        for g in np.unique(groups).tolist():
            yield (split, g), columns[0][groups == g]


def _counts(counts: dict, split: int) -> plan.SplitCounts:
    return plan.SplitCounts(*counts.get(split, (0, 0, 0)))


def _top_k_threshold(element, options: CurationOptions, counts: dict):
    """(split, [(scores, tiebreaks), ...]) -> (split, its top-k threshold)."""
    split, parts = element
    parts = list(parts)
    scores = np.concatenate([p[0] for p in parts])
    ties = np.concatenate([p[1] for p in parts])
    return split, plan.solve_top_k(plan.split_rate(options, _counts(counts, split).n), scores, ties)


def make_plans(
    _,
    options: CurationOptions,
    n_splits: int,
    counts: dict,
    windows: list,
    summaries: dict,
    tops: dict,
    read: dict | None = None,
):
    """{split: SplitPlan} from the aggregates: window thresholds, score summaries or top-k thresholds; `read`:
    {split: examples read}, the basis of window mode's rate and windows (windowed.py)."""
    by_split: dict[int, dict] = {}
    for split, thresholds in windows:
        by_split.setdefault(split, {}).update(thresholds)
    plans = {}
    for split in range(n_splits):
        c = _counts(counts, split)
        thresholds = by_split.get(split)
        groups = {g: summary for (s, g), summary in summaries.items() if s == split}
        if groups:
            thresholds = plan.solve_global(options, plan.split_rate(options, c.n), groups)
        basis = plan.WindowBasis.of(read, split) if read is not None else None
        plans[split] = plan.make_plan(options, c, thresholds, tops.get(split), basis)
    return plans


class SolveThresholds(beam.PTransform):
    """Scored batches -> {split: SplitPlan} (a singleton for a side input) and the per-split counts.

    Only moves data: the aggregates of the strategy (scores per window, score summaries, or the scores for
    top-k) are gathered per split and solved by the plan functions (plan.py), the same `reference_selection`
    calls.
    """

    def __init__(self, options: CurationOptions, n_splits: int):
        super().__init__()
        self._options = options
        self._n_splits = n_splits

    def expand(self, batches):
        o = self._options
        strategy = plan.strategy_of(o)
        counts = (
            batches | "Counts" >> beam.FlatMap(batch_counts) | "SumCounts" >> beam.CombinePerKey(sum_tuples)
        )
        counts_side = beam.pvalue.AsDict(counts)
        root = batches.pipeline
        windows = root | "NoWindows" >> beam.Create([])
        summaries = root | "NoSummaries" >> beam.Create([])
        tops = root | "NoTopK" >> beam.Create([])
        if strategy.water_filled and o.mode == "window":
            raise ValueError("window mode is solved where each window is grouped (windowed.CurateWindows)")
        if strategy.water_filled:
            summaries = (
                batches
                | "GroupScores" >> beam.FlatMap(_summary_scores, o)
                | "SummariseScores" >> beam.CombinePerKey(_ScoreSummaryFn())
            )
        elif strategy.kind == strategies.TOP_K:
            tops = (
                batches
                | "ScoresAndTies"
                >> beam.FlatMap(
                    lambda b: ((s, (scores, plan.top_k_tiebreak(ids))) for s, ids, scores in _scored(b))
                )
                | "GroupSplits" >> beam.GroupByKey()
                | "TopKThreshold" >> beam.Map(_top_k_threshold, o, counts_side)
            )
        plans = (
            root
            | "Once" >> beam.Create([None])
            | "MakePlans"
            >> beam.Map(
                make_plans,
                o,
                self._n_splits,
                counts_side,
                beam.pvalue.AsList(windows),
                beam.pvalue.AsDict(summaries),
                beam.pvalue.AsDict(tops),
            )
        )
        return plans, counts


# ---------------------------------------------------------------------------------------------------------
# Sampling
# ---------------------------------------------------------------------------------------------------------


class SampleExamplesDoFn(beam.DoFn):
    """Scored batch + plans -> (split, raw + weight feature) for kept examples; per-batch report stats and
    the rows the served model's quality is measured on: ((split, full|curated), (predictions, labels,
    versions, weights or None)), combined by `MeasureServedQuality`."""

    def __init__(self, options: CurationOptions):
        self._options = options
        self._selected = Metrics.counter(NAMESPACE, "examples_selected")
        self._not_selected = Metrics.counter(NAMESPACE, "examples_not_selected")

    def process(self, batch, plans):
        o = self._options
        splits, ids, raws, labels, scores, preds, versions = batch
        for split in np.unique(splits).tolist():
            at = np.flatnonzero(splits == split)
            split_ids = [ids[i] for i in at]
            split_plan = plans[split]
            p, keep, weight = plan.sample(split_plan, split_ids, scores[at], labels[at], o)
            kept = np.flatnonzero(keep)
            self._selected.inc(int(kept.size))
            self._not_selected.inc(int(at.size - kept.size))
            for j in kept.tolist():
                yield split, raws[at[j]] + example_keys.weight_suffix(o.weight_feature, float(weight[j]))
            yield beam.pvalue.TaggedOutput(
                STATS,
                (split, SplitStats.from_batch(scores[at], labels[at], p, keep, weight)),
            )
            split_versions = [versions[i] for i in at]
            yield beam.pvalue.TaggedOutput(
                QUALITY,
                (QualityKey(split, QUALITY_FULL), QualityRows(preds[at], labels[at], split_versions, None)),
            )
            if kept.size:
                kept_at = at[kept]
                yield beam.pvalue.TaggedOutput(
                    QUALITY,
                    (
                        QualityKey(split, QUALITY_CURATED),
                        QualityRows(
                            preds[kept_at],
                            labels[kept_at],
                            [split_versions[j] for j in kept.tolist()],
                            weight[kept],
                        ),
                    ),
                )
