"""Keying examples by id and joining them with their forward records.

    raw batches -> KeyExamples -> (id, KeyedExample) ─┐
    decoded records ──────────────> (id, ForwardRecord) ┴─> JoinForwardRecords -> JoinedRow

The join is a GroupByKey of `(id, JoinValue)`: one schema-coded row type of bytes, ints and floats crosses the
shuffle (rows.py). Duplicate ids and records are
resolved here, deterministically; every dropped input is a reject or a counted event.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence

import apache_beam as beam
import numpy as np
from apache_beam.metrics import Metrics

from tfx_curator.components.curator.beam import transforms
from tfx_curator.components.curator.beam.rows import (
    BATCH_SIZE,
    DUPLICATE_RECORDS,
    EVENTS,
    IDS_WITH_DUPLICATE_RECORDS,
    NAMESPACE,
    ORPHAN_RECORDS,
    RECORDS_SPLIT,
    REJECT_SOURCE_EXAMPLES,
    REJECTS,
    EventKey,
    ExampleColumns,
    ForwardRecord,
    JoinedRow,
    JoinValue,
    KeyedExample,
    Reject,
)
from tfx_curator.components.curator.options import CurationOptions
from tfx_curator.components.curator.policy import passes, signals
from tfx_curator.components.curator.reading import example_keys
from tfx_curator.components.curator.reporting import unbiasedness

EXAMPLES_TAG = "examples"
ACCEPTED_BATCHES = "accepted_batches"  # the raw sample of the examples of each batch that KeyExamples accepts


class KeyExamplesDoFn(beam.DoFn):
    """Batch of raw examples of one split -> (id, KeyedExample); bad ones -> Reject (REJECTS output); the
    accepted raw examples of the batch that are in the raw sample (unbiasedness.raw_sample: a hash of id and
    seed) as one list (ACCEPTED_BATCHES output, for the raw statistics: no second parse).

    as_lists: the main output is one ExampleColumns per batch instead of one (id, KeyedExample) per example
    (window mode's chunking takes columns: no per-example step or row object)."""

    def __init__(self, split: int, options: CurationOptions, as_lists: bool = False):
        self._split = split
        self._options = options
        self._as_lists = as_lists
        self._read = Metrics.counter(NAMESPACE, "examples_read")
        self._rejected = Metrics.counter(NAMESPACE, "examples_rejected")
        self._sample_rate = unbiasedness.raw_sample_rate(options)

    def setup(self):
        o = self._options
        self._parser = example_keys.ExampleKeyParser(o.id_feature, o.label_feature, o.task)

    def process(self, batch: Sequence[bytes]) -> Iterable[tuple[bytes, KeyedExample]]:
        ids, labels, rejects = self._parser.parse(batch)
        self._read.inc(len(batch))
        bad = {i for i, _ in rejects}
        for i, reason in rejects:
            self._rejected.inc()
            yield beam.pvalue.TaggedOutput(
                REJECTS, Reject(self._split, REJECT_SOURCE_EXAMPLES, reason, batch[i])
            )
        accepted = [raw for i, raw in enumerate(batch) if i not in bad] if bad else batch
        sampled = unbiasedness.raw_sample(ids, self._options.seed, self._sample_rate)
        yield beam.pvalue.TaggedOutput(ACCEPTED_BATCHES, [raw for raw, s in zip(accepted, sampled) if s])
        split = self._split
        if self._as_lists:
            if ids:
                yield ExampleColumns(ids, [split] * len(ids), accepted, labels.tolist())
            return
        for example_id, label, raw in zip(ids, labels.tolist(), accepted):
            yield example_id, KeyedExample(split, raw, label)


class KeyExamples(beam.PTransform):
    """Raw examples of one split -> `examples` (id, KeyedExample), `rejects` (Reject) and `accepted_batches`
    (lists of the accepted raw examples), a DoOutputsTuple.

    Input: serialized examples, or lists of them when `batched` (as ReadTFRecordFiles emits). `as_lists`:
    `examples` holds one ExampleColumns per batch.
    """

    def __init__(self, split: int, options: CurationOptions, batched: bool = False, as_lists: bool = False):
        super().__init__()
        self._split = split
        self._options = options
        self._batched = batched
        self._as_lists = as_lists

    def expand(self, raw):
        if not self._batched:
            raw = raw | "Batch" >> beam.BatchElements(min_batch_size=BATCH_SIZE, max_batch_size=BATCH_SIZE)
        keyed = tuple[bytes, KeyedExample]
        return raw | "Key" >> beam.ParDo(
            KeyExamplesDoFn(self._split, self._options, self._as_lists)
        ).with_output_types(ExampleColumns if self._as_lists else keyed).with_outputs(
            REJECTS, ACCEPTED_BATCHES, main=EXAMPLES_TAG
        )


def resolve_duplicates(
    records: list[ForwardRecord], policy: str, label: float, options: CurationOptions
) -> ForwardRecord:
    """One record from several records of one id, by the duplicate policy (latest, mean, max or mean_std)."""
    records = [ForwardRecord(*r) for r in records]
    if policy == "latest":
        return max(
            records,
            key=lambda r: (_nan_low(r.timestamp), r.model_version, r.prediction, _nan_low(r.hidden_norm)),
        )
    if policy == "mean":  # sorted: the grouped records come in any order, float sums must not depend on it
        preds = np.sort([r.prediction for r in records])
        norms = np.sort([r.hidden_norm for r in records])
        times = np.array([r.timestamp for r in records])
        norm = float(np.nanmean(norms)) if not np.isnan(norms).all() else math.nan
        when = float(np.nanmax(times)) if not np.isnan(times).all() else math.nan
        return ForwardRecord(float(preds.mean()), norm, when, max(r.model_version for r in records))
    scores = _record_scores(records, label, options)
    if policy == "mean_std":  # the mean record, scored by the passes' mean score + beta * std
        mean = resolve_duplicates(records, "mean", label, options)
        return mean._replace(score=passes.combine_one(scores))
    # max: the record with the largest importance score
    # Ties are broken on every field, so the record kept never depends on the order the runner delivers them in.
    best = max(
        range(len(records)),
        key=lambda i: (
            scores[i],
            records[i].model_version,
            records[i].prediction,
            _nan_low(records[i].hidden_norm),
            _nan_low(records[i].timestamp),
        ),
    )
    return records[best]


def _record_scores(records: list[ForwardRecord], label: float, options: CurationOptions) -> np.ndarray:
    """The strategy's signal of each record."""
    preds = np.array([r.prediction for r in records])
    norms = np.array([r.hidden_norm for r in records])
    signal = transforms.score_signal(options)
    return signals.compute_scores(signal, preds, np.full(preds.size, label), options.task, hidden_norm=norms)


def _nan_low(x: float) -> float:
    return -math.inf if math.isnan(x) else x


class ResolveJoinDoFn(beam.DoFn):
    """(id, [JoinValue]) -> JoinedRow; NaN prediction (and model_version b"") = no record.

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

    def process(self, element) -> Iterable[JoinedRow]:
        example_id, values = element
        examples, records = [], []
        for value in values:
            if value.example is not None:
                examples.append(value.example)
            else:
                records.append(value.record)
        if not examples:
            yield from self._orphan(records)
            return
        if len(examples) > 1:
            examples.sort(key=lambda e: (e.split, e.raw))
            conflict = len({e.label for e in examples}) > 1
            reason = example_keys.CONFLICTING_DUPLICATE if conflict else example_keys.DUPLICATE_EXAMPLE_ID
            for e in examples if conflict else examples[1:]:
                yield beam.pvalue.TaggedOutput(
                    REJECTS, Reject(e.split, REJECT_SOURCE_EXAMPLES, reason, e.raw)
                )
            if conflict:  # no example left for this id: its records match nothing
                if records:
                    yield from self._orphan(records)
                return
        example = examples[0]
        if not records:
            yield JoinedRow(example.split, example_id, example.raw, example.label, math.nan, math.nan, b"")
            return
        if len(records) > 1:
            self._duplicates.inc(len(records) - 1)
            yield beam.pvalue.TaggedOutput(
                EVENTS, (EventKey(example.split, DUPLICATE_RECORDS), len(records) - 1)
            )
            yield beam.pvalue.TaggedOutput(EVENTS, (EventKey(example.split, IDS_WITH_DUPLICATE_RECORDS), 1))
            record = resolve_duplicates(records, self._options.duplicate_policy, example.label, self._options)
        else:
            record = records[0]
        yield JoinedRow(
            example.split,
            example_id,
            example.raw,
            example.label,
            record.prediction,
            record.hidden_norm,
            record.model_version,
            record.score,
        )

    def _orphan(self, records: list):
        self._orphans.inc(len(records))
        yield beam.pvalue.TaggedOutput(EVENTS, (EventKey(RECORDS_SPLIT, ORPHAN_RECORDS), len(records)))


class JoinForwardRecords(beam.PTransform):
    """((id, KeyedExample), (id, ForwardRecord or its 4 fields as decoded)) -> `joined` (JoinedRow), `rejects`
    (Reject), `events`.

    A GroupByKey of both sides as `(id, JoinValue)`, then the missing/duplicate policies."""

    def __init__(self, options: CurationOptions):
        super().__init__()
        self._options = options

    def expand(self, inputs):
        examples, records = inputs
        keyed = tuple[bytes, JoinValue]
        return (
            (
                examples | "ExampleSide" >> beam.MapTuple(_example_side).with_output_types(keyed),
                records | "RecordSide" >> beam.MapTuple(_record_side).with_output_types(keyed),
            )
            | "Flatten" >> beam.Flatten().with_output_types(keyed)
            | "GroupById" >> beam.GroupByKey()
            | "Resolve"
            >> beam.ParDo(ResolveJoinDoFn(self._options))
            .with_output_types(JoinedRow)
            .with_outputs(REJECTS, EVENTS, main="joined")
        )


def _example_side(example_id: bytes, example: KeyedExample) -> tuple[bytes, JoinValue]:
    return example_id, JoinValue(example, None)


def _record_side(example_id: bytes, record) -> tuple[bytes, JoinValue]:
    return example_id, JoinValue(None, ForwardRecord(*record))
