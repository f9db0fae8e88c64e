"""The curation rules' Beam steps: score joined rows, solve each split's thresholds, sample.

    JoinedRow -> ScoreExamples -> SolveThresholds -> SampleExamples -> kept examples, stats, quality rows

After the join (join.py), examples move in numpy batches; the decisions are element-wise given a small per-split
`SplitPlan` side input, so any batching or partitioning selects the same examples (see plan.py). The sampling
step also emits the served model's quality rows for the joined rows it already holds (measure.py): no second
pass over the data. curate.py puts the steps together.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

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
    QualityKey,
    QualityRows,
)
from tfx_curator.components.curator.options import CurationOptions
from tfx_curator.components.curator.policy import plan, selection
from tfx_curator.components.curator.reading import example_keys
from tfx_curator.components.curator.reading.records import RecordConfig
from tfx_curator.components.curator.reporting.report_stats import SplitStats


def record_config(options: CurationOptions) -> RecordConfig:
    return RecordConfig(
        id_feature=options.id_feature,
        id_output_key=options.record_id_output_key,
        prediction_key=options.prediction_key,
        hidden_norm_key=options.hidden_norm_key,
        class_label=options.class_label,
        task=options.task,
    )


def score_signal(options: CurationOptions) -> str:
    """The signal behind the scores: the strategy's own, else the loss (for top_k and for the report)."""
    return selection.strategy_signal(options.strategy)


# ---------------------------------------------------------------------------------------------------------
# Scoring and thresholds
# ---------------------------------------------------------------------------------------------------------


def score_batch(rows: Sequence[tuple], options: CurationOptions) -> tuple:
    """Joined rows -> (splits int64[n], ids, raws, labels f64[n], scores f64[n], predictions f64[n],
    model_versions); NaN score and prediction = no record."""
    splits = np.fromiter((r[0] for r in rows), dtype=np.int64, count=len(rows))
    ids = [r[1] for r in rows]
    raws = [r[2] for r in rows]
    labels = np.fromiter((r[3] for r in rows), dtype=np.float64, count=len(rows))
    preds = np.fromiter((r[4] for r in rows), dtype=np.float64, count=len(rows))
    norms = np.fromiter((r[5] for r in rows), dtype=np.float64, count=len(rows))
    scores = np.full(len(rows), math.nan)
    has = ~np.isnan(preds)
    if has.any():
        scores[has] = selection.compute_scores(
            score_signal(options), preds[has], labels[has], options.task, hidden_norm=norms[has]
        )
    return splits, ids, raws, labels, scores, preds, [r[6] for r in rows]


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


def _sum_tuples(values):
    return tuple(int(sum(v)) for v in zip(*values)) if values else (0, 0, 0)


class _ScoreSummaryFn(beam.CombineFn):
    def create_accumulator(self):
        return selection.ScoreSummary()

    def add_input(self, acc, scores):
        return acc.add(scores)

    def merge_accumulators(self, accs):
        return selection.ScoreSummary.merge(accs)

    def extract_output(self, acc):
        return acc


def _scored(batch):
    splits, ids, _, _, scores = batch[:5]
    has = ~np.isnan(scores)
    for split in np.unique(splits[has]).tolist():
        at = has & (splits == split)
        yield split, [ids[i] for i in np.flatnonzero(at)], scores[at]


def _scored_by_class(batch):
    """(split, ids, [scores, positive]) of one batch: the stratified strategies' window input (2 x n floats)."""
    splits, ids, _, labels, scores = batch[:5]
    has = ~np.isnan(scores)
    for split in np.unique(splits[has]).tolist():
        at = has & (splits == split)
        yield split, [ids[i] for i in np.flatnonzero(at)], np.stack([scores[at], labels[at] == 1.0])


def _class_scores(batch):
    """((split, positive), scores) of one batch: the stratified strategies' global-mode summaries."""
    for split, _, columns in _scored_by_class(batch):
        for c in (0, 1):
            yield (split, c), columns[0][columns[1] == c]


def _window_scores(scored, options: CurationOptions, counts: dict):
    """(split, ids, scores) of one batch -> ((split, window), scores of that window); scores may be 2 x n
    (scores and class, `_scored_by_class`): windows are taken on the last axis."""
    split, ids, scores = scored
    windows = plan.n_windows(_counts(counts, split).n_scored, options.window_size)
    w = plan.window_index(ids, options.seed, windows) if windows > 1 else np.zeros(len(ids), dtype=np.int64)
    for k in np.unique(w).tolist():
        yield (split, k), scores[..., w == k]


def _counts(counts: dict, split: int) -> plan.SplitCounts:
    return plan.SplitCounts(*counts.get(split, (0, 0, 0)))


def _rate(options: CurationOptions, c: plan.SplitCounts) -> float:
    return selection.budget_count(options.budget, c.n) / c.n if c.n else 0.0


class _ConcatScoresFn(beam.CombineFn):
    """Concatenates score arrays per key; combiner lifting merges them within a bundle before the shuffle, so
    a window's scores cross as a few large arrays, not one small array per batch."""

    def create_accumulator(self):
        return []

    def add_input(self, acc, scores):
        acc.append(scores)
        return acc

    def merge_accumulators(self, accs):
        merged = [a for acc in accs for a in acc]
        return [np.concatenate(merged, axis=-1)] if merged else []

    def compact(self, acc):
        return [np.concatenate(acc, axis=-1)] if len(acc) > 1 else acc

    def extract_output(self, acc):
        return np.concatenate(acc, axis=-1) if acc else np.zeros(0)


def _window_lambda(element, options: CurationOptions, counts: dict):
    (split, k), scores = element
    return split, (k, plan.window_lambda(scores, _rate(options, _counts(counts, split)), options.p_min))


def _window_class_thresholds(element, options: CurationOptions, counts: dict):
    (split, k), columns = element
    rate = _rate(options, _counts(counts, split))
    thresholds = plan.window_class_thresholds(
        columns[0], columns[1] == 1.0, rate, options.p_min, plan.is_balanced(options)
    )
    return split, plan.thresholds_by_key(k, thresholds)


def _top_k_threshold(element, options: CurationOptions, counts: dict):
    split, parts = element
    parts = list(parts)
    scores = np.concatenate([p[0] for p in parts])
    ties = np.concatenate([p[1] for p in parts])
    c = _counts(counts, split)
    k = int(math.floor(_rate(options, c) * c.n_scored + 0.5))
    return split, plan.top_k_threshold(scores, ties, k)


def _make_plans(
    _, options: CurationOptions, n_splits: int, counts: dict, lams: list, summaries: dict, tops: dict
):
    stratified = options.strategy in selection.STRATIFIED_STRATEGIES
    by_split: dict[int, dict] = {}
    for split, value in lams:
        if stratified:
            by_split.setdefault(split, {}).update(value)
        else:
            k, lam = value
            by_split.setdefault(split, {})[k] = lam
    plans = {}
    for split in range(n_splits):
        c = _counts(counts, split)
        split_lams = by_split.get(split)
        if split in summaries:
            split_lams = {0: summaries[split].solve_lambda(_rate(options, c) * c.n_scored, options.p_min)}
        if stratified:
            if (split, 0) in summaries or (split, 1) in summaries:
                negatives, positives = (summaries.get((split, k), selection.ScoreSummary()) for k in (0, 1))
                thresholds = plan.global_class_thresholds(
                    negatives, positives, _rate(options, c), options.p_min, plan.is_balanced(options)
                )
                split_lams = plan.thresholds_by_key(0, thresholds)
            plans[split] = plan.make_plan(options, c, None, None, split_lams)
        else:
            plans[split] = plan.make_plan(options, c, split_lams, tops.get(split))
    return plans


class SolveThresholds(beam.PTransform):
    """Scored batches -> {split: SplitPlan} (a singleton for a side input) and the per-split counts."""

    def __init__(self, options: CurationOptions, n_splits: int):
        super().__init__()
        self._options = options
        self._n_splits = n_splits

    def expand(self, batches):
        o = self._options
        counts = (
            batches | "Counts" >> beam.FlatMap(batch_counts) | "SumCounts" >> beam.CombinePerKey(_sum_tuples)
        )
        counts_side = beam.pvalue.AsDict(counts)
        root = batches.pipeline
        lams = root | "NoWindows" >> beam.Create([])
        summaries = root | "NoSummaries" >> beam.Create([])
        tops = root | "NoTopK" >> beam.Create([])
        if o.strategy in selection.IMPORTANCE_STRATEGIES and o.mode == "window":
            lams = (
                batches
                | "IdsAndScores"
                >> beam.FlatMap(_scored)  # fused with scoring: only ids and scores cross over
                | "WindowScores" >> beam.FlatMap(_window_scores, o, counts_side)
                | "GroupWindows" >> beam.CombinePerKey(_ConcatScoresFn())
                | "WaterFillWindows" >> beam.Map(_window_lambda, o, counts_side)
            )
        elif o.strategy in selection.STRATIFIED_STRATEGIES and o.mode == "window":
            lams = (
                batches
                | "IdsScoresAndClasses" >> beam.FlatMap(_scored_by_class)
                | "WindowScores" >> beam.FlatMap(_window_scores, o, counts_side)
                | "GroupWindows" >> beam.CombinePerKey(_ConcatScoresFn())
                | "WaterFillWindowClasses" >> beam.Map(_window_class_thresholds, o, counts_side)
            )
        elif o.strategy in selection.STRATIFIED_STRATEGIES:
            summaries = (
                batches
                | "ClassScores" >> beam.FlatMap(_class_scores)
                | "SummariseClassScores" >> beam.CombinePerKey(_ScoreSummaryFn())
            )
        elif o.strategy in selection.IMPORTANCE_STRATEGIES:
            summaries = (
                batches
                | "SplitScores" >> beam.FlatMap(lambda b: ((s, scores) for s, _, scores in _scored(b)))
                | "SummariseScores" >> beam.CombinePerKey(_ScoreSummaryFn())
            )
        elif o.strategy == "top_k":
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
                _make_plans,
                o,
                self._n_splits,
                counts_side,
                beam.pvalue.AsList(lams),
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
            p = plan.plan_probabilities(split_plan, split_ids, scores[at], labels[at], o.seed)
            keep, weight = selection.poisson_sample(split_ids, p, o.seed, o.max_weight)
            kept = np.flatnonzero(keep)
            self._selected.inc(int(kept.size))
            self._not_selected.inc(int(at.size - kept.size))
            for j in kept.tolist():
                yield split, raws[at[j]] + example_keys.weight_suffix(o.weight_feature, float(weight[j]))
            yield beam.pvalue.TaggedOutput(
                STATS,
                (split, SplitStats.from_batch(scores[at], labels[at], p, keep, weight, split_plan.rate)),
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
