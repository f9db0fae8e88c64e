"""The curation Beam job, one PTransform per step of the data flow.

    ReadExamples -> KeyExamples ─┐
    ReadForwardRecords ──────────┴─> JoinForwardRecords -> ScoreExamples -> SolveThresholds -> SampleExamples
                                                                                  -> WriteCurated / WriteRejects / report

Only bytes, ints and floats cross a shuffle: examples travel as `(id, (split, raw, label))`, records as
`(id, (prediction, hidden_norm, timestamp, model_version))`. After the join, examples move in numpy batches;
the decisions are element-wise given a small per-split `SplitPlan` side input, so any batching or partitioning
selects the same examples (see plan.py). The sampling step also measures the served model's quality on the
joined rows it already holds (quality.py): no second pass over the data.
"""

from __future__ import annotations

import dataclasses
import math
import os
from collections.abc import Iterable, Sequence

import apache_beam as beam
import numpy as np
from absl import logging
from apache_beam.metrics import Metrics

from tfx_curator.components.curator import options as options_lib
from tfx_curator.components.curator.options import CurationOptions
from tfx_curator.components.curator.policy import plan, signals, strategies
from tfx_curator.components.curator.policy.summary import ScoreSummary
from tfx_curator.components.curator.reading import example_keys, record_io, tfrecord_files
from tfx_curator.components.curator.reading import records as records_lib
from tfx_curator.components.curator.reading.records import RecordConfig
from tfx_curator.components.curator.reporting import quality
from tfx_curator.components.curator.reporting.report_stats import SplitStats

NAMESPACE = "tfx_curator"
REJECTS = "rejects"
EVENTS = "events"
STATS = "stats"
QUALITY = "quality"
QUALITY_FULL = "full"  # every joined example of the split, unweighted
QUALITY_CURATED = "curated"  # the kept examples with their 1/p weights (the unbiasedness cross-check)
BATCH_SIZE = 1024
RECORDS_SPLIT = -1  # split index of things that belong to no split (orphan records, record rejects)
CURATED_FILE_PREFIX = "data_tfrecord"
REJECT_SOURCE_EXAMPLES = "examples"
REJECT_SOURCE_RECORDS = "forward_records"

# Join events counted per split (see ResolveJoinDoFn).
ORPHAN_RECORDS = "orphan_records"
DUPLICATE_RECORDS = "duplicate_records"
IDS_WITH_DUPLICATE_RECORDS = "ids_with_duplicate_records"
RECORDS_READ = "records_decoded"
EXAMPLES_READ = "examples_read"


def record_config(options: CurationOptions) -> RecordConfig:
    return RecordConfig(**options.record_config_args())


DETECT_SAMPLE = 64  # records looked at to detect the record format


def resolve_record_format(
    options: CurationOptions, record_pattern: str
) -> tuple[CurationOptions, str | None]:
    """Options with record_format "auto" replaced by the format of the first records, and a line saying so."""
    if options.record_format != options_lib.AUTO_FORMAT:
        return options, None
    samples = tfrecord_files.first_records(tfrecord_files.list_files(record_pattern), DETECT_SAMPLE)
    detected = records_lib.detect_format(samples)
    if detected is None:
        detection = "auto: no record to look at, read as plain"
        detected = records_lib.FORMAT_PLAIN
    else:
        logs = sum(map(records_lib.is_prediction_log, samples))
        detection = f"auto: detected from the first {len(samples)} records ({logs} PredictionLogs)"
    logging.info("forward-record format %r (%s)", detected, detection)
    return dataclasses.replace(options, record_format=detected), detection


def score_signal(options: CurationOptions) -> str:
    """The signal behind the scores: the strategy's own, else the loss (for top_k and for the report)."""
    return strategies.strategy_signal(options.strategy)


# ---------------------------------------------------------------------------------------------------------
# Reading and keying examples
# ---------------------------------------------------------------------------------------------------------


class KeyExamplesDoFn(beam.DoFn):
    """Batch of raw examples of one split -> (id, (split, raw, label)); bad ones -> rejects."""

    def __init__(self, split: int, options: CurationOptions):
        self._split = split
        self._options = options
        self._read = Metrics.counter(NAMESPACE, "examples_read")
        self._rejected = Metrics.counter(NAMESPACE, "examples_rejected")

    def setup(self):
        o = self._options
        self._parser = example_keys.ExampleKeyParser(o.id_feature, o.label_feature, o.task)

    def process(self, batch: Sequence[bytes]):
        ids, labels, rejects = self._parser.parse(batch)
        self._read.inc(len(batch))
        bad = {i for i, _ in rejects}
        for i, reason in rejects:
            self._rejected.inc()
            yield beam.pvalue.TaggedOutput(REJECTS, (self._split, REJECT_SOURCE_EXAMPLES, reason, batch[i]))
        good = (raw for i, raw in enumerate(batch) if i not in bad) if bad else iter(batch)
        for example_id, label, raw in zip(ids, labels.tolist(), good):
            yield example_id, (self._split, raw, label)


class KeyExamples(beam.PTransform):
    """Raw examples of one split -> keyed tuples plus rejects (a DoOutputsTuple).

    Input: serialized examples, or lists of them when `batched` (as ReadTFRecordFiles emits).
    """

    def __init__(self, split: int, options: CurationOptions, batched: bool = False):
        super().__init__()
        self._split = split
        self._options = options
        self._batched = batched

    def expand(self, raw):
        if not self._batched:
            raw = raw | "Batch" >> beam.BatchElements(min_batch_size=BATCH_SIZE, max_batch_size=BATCH_SIZE)
        return raw | "Key" >> beam.ParDo(KeyExamplesDoFn(self._split, self._options)).with_outputs(
            REJECTS, main="examples"
        )


# ---------------------------------------------------------------------------------------------------------
# Join
# ---------------------------------------------------------------------------------------------------------


def resolve_duplicates(records: list[tuple], policy: str, label: float, options: CurationOptions) -> tuple:
    """One (prediction, hidden_norm, timestamp, model_version) from several records of one id."""
    if policy == "latest":
        return max(
            records, key=lambda r: (-math.inf if math.isnan(r[2]) else r[2], r[3], r[0], _nan_low(r[1]))
        )
    if policy == "mean":  # sorted: the grouped records come in any order, float sums must not depend on it
        preds = np.sort([r[0] for r in records])
        norms = np.sort([r[1] for r in records])
        times = np.array([r[2] for r in records])
        norm = float(np.nanmean(norms)) if not np.isnan(norms).all() else math.nan
        when = float(np.nanmax(times)) if not np.isnan(times).all() else math.nan
        return float(preds.mean()), norm, when, max(r[3] for r in records)
    # max: the record with the largest importance score
    preds = np.array([r[0] for r in records])
    norms = np.array([r[1] for r in records])
    scores = signals.compute_scores(
        score_signal(options), preds, np.full(preds.size, label), options.task, hidden_norm=norms
    )
    best = max(range(len(records)), key=lambda i: (scores[i], records[i][3], records[i][0]))
    return records[best]


def _nan_low(x: float) -> float:
    return -math.inf if math.isnan(x) else x


class ResolveJoinDoFn(beam.DoFn):
    """(id, {examples, records}) -> (split, id, raw, label, prediction, hidden_norm, model_version); NaN
    prediction (and model_version b"") = no record.

    Counts orphan records, duplicate records (policy applied) and rejects duplicate example ids: when every copy
    of an id has the same label, the first copy (ordered by split, then serialized bytes: a deterministic choice)
    is kept and the others are rejected as `duplicate_example_id`; when the copies disagree on the label, no
    copy can be trusted and all are rejected as `duplicate_example_id_conflicting_labels` (the id's forward
    records then count as orphans).
    """

    def __init__(self, options: CurationOptions):
        self._options = options
        self._orphans = Metrics.counter(NAMESPACE, ORPHAN_RECORDS)
        self._duplicates = Metrics.counter(NAMESPACE, DUPLICATE_RECORDS)

    def process(self, element):
        example_id, grouped = element
        examples = list(grouped["examples"])
        records = list(grouped["records"])
        if not examples:
            self._orphans.inc(len(records))
            yield beam.pvalue.TaggedOutput(EVENTS, ((RECORDS_SPLIT, ORPHAN_RECORDS), len(records)))
            return
        if len(examples) > 1:
            examples.sort(key=lambda e: (e[0], e[1]))
            conflict = len({label for _, _, label in examples}) > 1
            reason = example_keys.CONFLICTING_DUPLICATE if conflict else example_keys.DUPLICATE_EXAMPLE_ID
            for split, raw, _ in examples if conflict else examples[1:]:
                yield beam.pvalue.TaggedOutput(REJECTS, (split, REJECT_SOURCE_EXAMPLES, reason, raw))
            if conflict:  # no example left for this id: its records match nothing
                if records:
                    self._orphans.inc(len(records))
                    yield beam.pvalue.TaggedOutput(EVENTS, ((RECORDS_SPLIT, ORPHAN_RECORDS), len(records)))
                return
        split, raw, label = examples[0]
        if not records:
            yield split, example_id, raw, label, math.nan, math.nan, b""
            return
        if len(records) > 1:
            self._duplicates.inc(len(records) - 1)
            yield beam.pvalue.TaggedOutput(EVENTS, ((split, DUPLICATE_RECORDS), len(records) - 1))
            yield beam.pvalue.TaggedOutput(EVENTS, ((split, IDS_WITH_DUPLICATE_RECORDS), 1))
            record = resolve_duplicates(records, self._options.duplicate_policy, label, self._options)
        else:
            record = records[0]
        yield split, example_id, raw, label, record[0], record[1], record[3]


class JoinForwardRecords(beam.PTransform):
    """CoGroupByKey of keyed examples and records, then the missing/duplicate policies."""

    def __init__(self, options: CurationOptions):
        super().__init__()
        self._options = options

    def expand(self, inputs):
        examples, records = inputs
        return (
            {"examples": examples, "records": records}
            | "CoGroupByKey" >> beam.CoGroupByKey()
            | "Resolve"
            >> beam.ParDo(ResolveJoinDoFn(self._options)).with_outputs(REJECTS, EVENTS, main="joined")
        )


# ---------------------------------------------------------------------------------------------------------
# Scoring and thresholds
# ---------------------------------------------------------------------------------------------------------


def score_batch(rows: Sequence[tuple], options: CurationOptions) -> tuple:
    """Joined rows -> (splits int64[n], ids, raws, labels f64[n], scores f64[n], predictions f64[n],
    model_versions); NaN score and prediction = no record. The scores are `plan.example_scores`."""
    splits = np.fromiter((r[0] for r in rows), dtype=np.int64, count=len(rows))
    ids = [r[1] for r in rows]
    raws = [r[2] for r in rows]
    labels = np.fromiter((r[3] for r in rows), dtype=np.float64, count=len(rows))
    preds = np.fromiter((r[4] for r in rows), dtype=np.float64, count=len(rows))
    norms = np.fromiter((r[5] for r in rows), dtype=np.float64, count=len(rows))
    scores = plan.example_scores(options, preds, labels, norms)
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


def _window_scores(scored, options: CurationOptions, counts: dict):
    """(split, ids, scores) of one batch -> ((split, window), scores of that window); scores may be 2 x n
    (`_scored` with classes): windows are taken on the last axis."""
    split, ids, scores = scored
    w = plan.windows_of(ids, options, _counts(counts, split).n_scored)
    for k in np.unique(w).tolist():
        yield (split, k), scores[..., w == k]


def _counts(counts: dict, split: int) -> plan.SplitCounts:
    return plan.SplitCounts(*counts.get(split, (0, 0, 0)))


class _ConcatScoresFn(beam.CombineFn):
    """Score arrays of one key (a window) -> one array, concatenated on the last axis (1-D scores, or 2 x n
    scores and classes).

    Combiner lifting merges them within a bundle before the shuffle, so a window's scores cross as a few large
    arrays, not one small array per batch. The order of the result depends on the runner: `plan.solve_window`
    sorts before solving.
    """

    def create_accumulator(self) -> list[np.ndarray]:
        return []

    def add_input(self, acc: list[np.ndarray], scores: np.ndarray) -> list[np.ndarray]:
        acc.append(scores)
        return acc

    def merge_accumulators(self, accs: Iterable[list[np.ndarray]]) -> list[np.ndarray]:
        merged = [a for acc in accs for a in acc]
        return [np.concatenate(merged, axis=-1)] if merged else []

    def compact(self, acc: list[np.ndarray]) -> list[np.ndarray]:
        return [np.concatenate(acc, axis=-1)] if len(acc) > 1 else acc

    def extract_output(self, acc: list[np.ndarray]) -> np.ndarray:
        return np.concatenate(acc, axis=-1) if acc else np.zeros(0)


def _solve_window(element, options: CurationOptions, counts: dict):
    """((split, window), scores) -> (split, that window's thresholds)."""
    (split, k), columns = element
    rate = plan.split_rate(options, _counts(counts, split).n)
    scores, positive = (columns[0], columns[1] == 1.0) if columns.ndim == 2 else (columns, None)
    return split, plan.solve_window(options, rate, k, scores, positive)


def _top_k_threshold(element, options: CurationOptions, counts: dict):
    """(split, [(scores, tiebreaks), ...]) -> (split, its top-k threshold)."""
    split, parts = element
    parts = list(parts)
    scores = np.concatenate([p[0] for p in parts])
    ties = np.concatenate([p[1] for p in parts])
    return split, plan.solve_top_k(plan.split_rate(options, _counts(counts, split).n), scores, ties)


def _make_plans(
    _, options: CurationOptions, n_splits: int, counts: dict, windows: list, summaries: dict, tops: dict
):
    """{split: SplitPlan} from the aggregates: window thresholds, score summaries or top-k thresholds."""
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
        plans[split] = plan.make_plan(options, c, thresholds, tops.get(split))
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
            batches | "Counts" >> beam.FlatMap(batch_counts) | "SumCounts" >> beam.CombinePerKey(_sum_tuples)
        )
        counts_side = beam.pvalue.AsDict(counts)
        root = batches.pipeline
        windows = root | "NoWindows" >> beam.Create([])
        summaries = root | "NoSummaries" >> beam.Create([])
        tops = root | "NoTopK" >> beam.Create([])
        if strategy.water_filled and o.mode == "window":
            windows = (
                batches
                | "IdsAndScores"
                >> beam.FlatMap(
                    _scored, plan.per_class(o)
                )  # fused with scoring: only ids and scores cross over
                | "WindowScores" >> beam.FlatMap(_window_scores, o, counts_side)
                | "GroupWindows" >> beam.CombinePerKey(_ConcatScoresFn())
                | "SolveWindows" >> beam.Map(_solve_window, o, counts_side)
            )
        elif strategy.water_filled:
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
                _make_plans,
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
                (split, SplitStats.from_batch(scores[at], labels[at], p, keep, weight, split_plan.rate)),
            )
            split_versions = [versions[i] for i in at]
            yield beam.pvalue.TaggedOutput(
                QUALITY, ((split, QUALITY_FULL), (preds[at], labels[at], split_versions, None))
            )
            if kept.size:
                kept_at = at[kept]
                yield beam.pvalue.TaggedOutput(
                    QUALITY,
                    (
                        (split, QUALITY_CURATED),
                        (
                            preds[kept_at],
                            labels[kept_at],
                            [split_versions[j] for j in kept.tolist()],
                            weight[kept],
                        ),
                    ),
                )


class ServedQualityFn(beam.CombineFn):
    """(predictions, labels, versions, weights or None) of one key -> a `quality.QualityStats`.

    Rows are added straight into the accumulator (no per-batch object); accumulators merge exactly, in any
    order (quality.py), so combiner lifting and any partitioning give the same figures.
    """

    def __init__(self, task: str, weighted: bool):
        self._task = task
        self._weighted = weighted

    def create_accumulator(self) -> quality.QualityStats:
        return quality.QualityStats(self._task, self._weighted)

    def add_input(self, acc: quality.QualityStats, rows: tuple) -> quality.QualityStats:
        preds, labels, versions, weights = rows
        return acc.add(preds, labels, versions, weights)

    def merge_accumulators(self, accs) -> quality.QualityStats:
        return quality.QualityStats.merge(list(accs), self._task, self._weighted)

    def extract_output(self, acc: quality.QualityStats) -> quality.QualityStats:
        return acc


class MeasureServedQuality(beam.PTransform):
    """((split, full|curated), rows) -> ((split, full|curated), QualityStats): the served model's quality on
    every joined example, and on the curated sample with its weights."""

    def __init__(self, task: str):
        super().__init__()
        self._task = task

    def expand(self, rows):
        full = rows | "Full" >> beam.Filter(lambda kv: kv[0][1] == QUALITY_FULL)
        curated = rows | "Curated" >> beam.Filter(lambda kv: kv[0][1] == QUALITY_CURATED)
        return (
            full | "CombineFull" >> beam.CombinePerKey(ServedQualityFn(self._task, False)),
            curated | "CombineCurated" >> beam.CombinePerKey(ServedQualityFn(self._task, True)),
        ) | "FlattenQuality" >> beam.Flatten()


class _MergeStatsFn(beam.CombineFn):
    def create_accumulator(self):
        return SplitStats.empty()

    def add_input(self, acc, stats):
        return acc.merge(stats)

    def merge_accumulators(self, accs):
        accs = list(accs)
        out = accs[0]
        for a in accs[1:]:
            out = out.merge(a)
        return out

    def extract_output(self, acc):
        return acc


# ---------------------------------------------------------------------------------------------------------
# Writing
# ---------------------------------------------------------------------------------------------------------


def reject_example(element) -> bytes:
    """A reject as a tf.Example: split, source, reason and the untouched payload bytes."""
    from tensorflow.core.example import example_pb2

    split, source, reason, payload = element
    ex = example_pb2.Example()
    f = ex.features.feature
    f["split_index"].int64_list.value.append(split)
    f["source"].bytes_list.value.append(source.encode())
    f["reason"].bytes_list.value.append(reason.encode())
    f["payload"].bytes_list.value.append(payload)
    return ex.SerializeToString()


def split_dir(output_uri: str, split: str) -> str:
    return os.path.join(output_uri, f"Split-{split}")


def write_split(directory: str, prefix: str = CURATED_FILE_PREFIX) -> beam.PTransform:
    """Serialized examples -> gzip TFRecords `<directory>/<prefix>-*.gz` (ExampleGen's layout)."""
    return beam.io.WriteToTFRecord(
        os.path.join(directory, prefix), file_name_suffix=".gz", coder=beam.coders.BytesCoder()
    )


# ---------------------------------------------------------------------------------------------------------
# The whole job
# ---------------------------------------------------------------------------------------------------------


def curate(
    pipeline: beam.Pipeline,
    example_patterns: Sequence[str],
    record_pattern: str,
    options: CurationOptions,
):
    """Build the curation job for splits `example_patterns` (index = split index). Returns a dict of PCollections:
    raw_batches (lists of serialized examples, one PCollection per split), curated (one PCollection of serialized
    examples per split), corrupt_files (split, path, records read, error), rejects (split, source, reason, raw),
    stats (split, SplitStats), quality ((split, full|curated), QualityStats), counts (split, (n, n_scored,
    n_positive)), events ((split, name), n), plans."""
    options, _ = resolve_record_format(options, record_pattern)
    keyed, rejects, raws, read_counts, corrupt = [], [], [], [], []
    skip = options.skip_corrupt_files
    for i, pattern in enumerate(example_patterns):
        read = pipeline | f"ReadExamples[{i}]" >> tfrecord_files.ReadTFRecordFiles(
            tfrecord_files.list_files(pattern), BATCH_SIZE, skip
        )
        out = read.batches | f"KeyExamples[{i}]" >> KeyExamples(i, options, batched=True)
        raws.append(read.batches)
        keyed.append(out.examples)
        rejects.append(out[REJECTS])
        corrupt.append(
            read[tfrecord_files.CORRUPT_FILES] | f"CorruptSplit[{i}]" >> beam.Map(lambda c, i=i: (i, *c))
        )
        read_counts.append(
            read.batches
            | f"BatchSize[{i}]" >> beam.Map(len)
            | f"CountRead[{i}]" >> beam.CombineGlobally(sum)
            | f"KeyReadCount[{i}]" >> beam.Map(lambda n, i=i: ((i, EXAMPLES_READ), n))
        )
    record_files = tfrecord_files.list_files(record_pattern)
    if not record_files:
        raise ValueError(f"no forward-record files match {record_pattern}")
    read_records = pipeline | "ReadRecordFiles" >> tfrecord_files.ReadTFRecordFiles(
        record_files, BATCH_SIZE, skip
    )
    corrupt.append(
        read_records[tfrecord_files.CORRUPT_FILES]
        | "CorruptRecords" >> beam.Map(lambda c: (RECORDS_SPLIT, *c))
    )
    records_out = read_records.batches | "DecodeForwardRecords" >> record_io.DecodeForwardRecords(
        options.record_format, record_config(options), batched=True
    )
    rejects.append(
        records_out[record_io.REJECT_TAG]
        | "KeyRecordRejects" >> beam.Map(lambda r: (RECORDS_SPLIT, REJECT_SOURCE_RECORDS, r[1], r[0]))
    )
    examples = keyed | "FlattenExamples" >> beam.Flatten()
    records = records_out[record_io.RECORDS_TAG]
    joined = (examples, records) | "JoinForwardRecords" >> JoinForwardRecords(options)
    rejects.append(joined[REJECTS])
    batches = joined.joined | "ScoreExamples" >> ScoreExamples(options)
    plans, counts = batches | "SolveThresholds" >> SolveThresholds(options, len(example_patterns))
    sampled = batches | "SampleExamples" >> beam.ParDo(
        SampleExamplesDoFn(options), beam.pvalue.AsSingleton(plans)
    ).with_outputs(STATS, QUALITY, main="curated")
    stats = sampled[STATS] | "MergeStats" >> beam.CombinePerKey(_MergeStatsFn())
    served_quality = sampled[QUALITY] | "MeasureServedQuality" >> MeasureServedQuality(options.task)
    records_read = (
        records
        | "CountRecords" >> beam.combiners.Count.Globally()
        | "KeyRecordCount" >> beam.Map(lambda n: ((RECORDS_SPLIT, RECORDS_READ), n))
    )
    events = (
        (joined[EVENTS], records_read, *read_counts)
        | "FlattenEvents" >> beam.Flatten()
        | "SumEvents" >> beam.CombinePerKey(sum)
    )
    all_rejects = rejects | "FlattenRejects" >> beam.Flatten()
    curated = sampled.curated | "CuratedBySplit" >> beam.Partition(lambda kv, n: kv[0], len(example_patterns))
    return {
        "raw_batches": raws,
        "corrupt_files": corrupt | "FlattenCorrupt" >> beam.Flatten(),
        "curated": [part | f"CuratedValues[{i}]" >> beam.Values() for i, part in enumerate(curated)],
        "rejects": all_rejects,
        "stats": stats,
        "quality": served_quality,
        "counts": counts,
        "events": events,
        "plans": plans,
    }
