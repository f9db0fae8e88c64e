"""The curation job as one composite: read, key, join, score, solve, sample, measure.

    ReadExamples[i] -> KeyExamples[i] ─┐
    ReadRecordFiles -> DecodeForwardRecords ┴─> window mode: CurateWindows (windowed.py, one shuffle)
                                                otherwise: JoinForwardRecords -> ScoreExamples -> SolveThresholds
                                                           -> SampleExamples
                                             -> MergeStats / MeasureServedQuality

`Curate` returns a `CurateOutputs`; writing them is writers.py's and job.py's business.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from typing import NamedTuple

import apache_beam as beam
from absl import logging

from tfx_curator.components.curator import options as options_lib
from tfx_curator.components.curator.beam import join, measure, transforms, windowed
from tfx_curator.components.curator.beam.rows import (
    BATCH_SIZE,
    EVENTS,
    EXAMPLES_READ,
    QUALITY,
    RECORDS_READ,
    RECORDS_SPLIT,
    REJECT_SOURCE_RECORDS,
    REJECTS,
    STATS,
    CorruptFile,
    EventKey,
    Reject,
)
from tfx_curator.components.curator.options import CurationOptions
from tfx_curator.components.curator.reading import record_io, tfrecord_files
from tfx_curator.components.curator.reading import records as records_lib

DETECT_SAMPLE = 64  # records looked at to detect the record format


class CurateOutputs(NamedTuple):
    """What `Curate` produces; per-split PCollections are indexed like the example patterns."""

    accepted_batches: tuple  # per split: lists of the serialized raw examples KeyExamples accepts
    curated: tuple  # per split: serialized kept examples (original bytes + the weight feature)
    rejects: beam.PCollection  # Reject
    corrupt_files: beam.PCollection  # CorruptFile
    stats: beam.PCollection  # (split, SplitStats)
    quality: beam.PCollection  # (QualityKey, QualityStats)
    counts: beam.PCollection  # (split, (n, n_scored, n_positive))
    events: beam.PCollection  # (EventKey, n)
    plans: beam.PCollection  # one {split: SplitPlan}


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


class Curate(beam.PTransform):
    """PBegin -> CurateOutputs: the curation of splits `example_patterns` (index = split index) against the
    forward records of `record_pattern`."""

    def __init__(self, example_patterns: Sequence[str], record_pattern: str, options: CurationOptions):
        super().__init__()
        self._example_patterns = list(example_patterns)
        self._record_pattern = record_pattern
        self._options, _ = resolve_record_format(options, record_pattern)

    def expand(self, pbegin) -> CurateOutputs:
        options = self._options
        n_splits = len(self._example_patterns)
        skip = options.skip_corrupt_files
        one_shuffle = windowed.applies(options)  # window mode: the windows are known before the join
        keyed, rejects, accepted, read_counts, corrupt = [], [], [], [], []
        split_files = [tfrecord_files.list_files(pattern) for pattern in self._example_patterns]
        for i, files in enumerate(split_files):
            read = pbegin | f"ReadExamples[{i}]" >> tfrecord_files.ReadTFRecordFiles(files, BATCH_SIZE, skip)
            out = read.batches | f"KeyExamples[{i}]" >> join.KeyExamples(
                i, options, batched=True, as_lists=one_shuffle
            )
            accepted.append(out[join.ACCEPTED_BATCHES])
            keyed.append(out[join.EXAMPLES_TAG])
            rejects.append(out[REJECTS])
            corrupt.append(read[tfrecord_files.CORRUPT_FILES] | f"CorruptSplit[{i}]" >> _CorruptFiles(i))
            read_counts.append(
                read.batches
                | f"BatchSize[{i}]" >> beam.Map(len)
                | f"CountRead[{i}]" >> beam.CombineGlobally(sum)
                | f"KeyReadCount[{i}]" >> beam.Map(lambda n, i=i: (EventKey(i, EXAMPLES_READ), n))
            )
        record_files = tfrecord_files.list_files(self._record_pattern)
        if not record_files:
            raise ValueError(f"no forward-record files match {self._record_pattern}")
        read_records = pbegin | "ReadRecordFiles" >> tfrecord_files.ReadTFRecordFiles(
            record_files, BATCH_SIZE, skip
        )
        corrupt.append(
            read_records[tfrecord_files.CORRUPT_FILES] | "CorruptRecords" >> _CorruptFiles(RECORDS_SPLIT)
        )
        records_out = read_records.batches | "DecodeForwardRecords" >> record_io.DecodeForwardRecords(
            options.record_format, transforms.record_config(options), batched=True, as_lists=one_shuffle
        )
        rejects.append(
            records_out[record_io.REJECT_TAG]
            | "KeyRecordRejects"
            >> beam.MapTuple(lambda raw, reason: Reject(RECORDS_SPLIT, REJECT_SOURCE_RECORDS, reason, raw))
        )
        records = records_out[record_io.RECORDS_TAG]
        if one_shuffle:  # examples and records come as one list per batch
            examples_read = pbegin | "CountExamples" >> tfrecord_files.CountRecords(
                list(enumerate(split_files))
            )
            sampled = (tuple(keyed), records) | "CurateWindows" >> windowed.CurateWindows(
                options, n_splits, examples_read
            )
        else:
            examples = keyed | "FlattenExamples" >> beam.Flatten()
            sampled = (examples, records) | "CurateTwoPasses" >> _TwoPasses(options, n_splits)
        rejects.append(sampled.rejects)
        records_read = (
            records | "ListLengths" >> beam.Map(len) | "CountRecords" >> beam.CombineGlobally(sum)
            if one_shuffle
            else records | "CountRecords" >> beam.combiners.Count.Globally()
        ) | "KeyRecordCount" >> beam.Map(lambda n: (EventKey(RECORDS_SPLIT, RECORDS_READ), n))
        curated = sampled.curated | "CuratedBySplit" >> beam.Partition(lambda kv, n: kv[0], n_splits)
        return CurateOutputs(
            accepted_batches=tuple(accepted),
            curated=tuple(part | f"CuratedValues[{i}]" >> beam.Values() for i, part in enumerate(curated)),
            rejects=rejects | "FlattenRejects" >> beam.Flatten().with_output_types(Reject),
            corrupt_files=corrupt | "FlattenCorrupt" >> beam.Flatten().with_output_types(CorruptFile),
            stats=sampled.stats | "MergeStats" >> measure.MergeStats(),
            quality=sampled.quality | "MeasureServedQuality" >> measure.MeasureServedQuality(options.task),
            counts=sampled.counts,
            events=(sampled.events, records_read, *read_counts)
            | "FlattenEvents" >> beam.Flatten().with_output_types(tuple[EventKey, int])
            | "SumEvents" >> beam.CombinePerKey(sum),
            plans=sampled.plans,
        )


class _TwoPasses(beam.PTransform):
    """Keyed examples and records -> windowed.WindowedOutputs by the two-pass path: a join by id, then scoring
    with the strategy's aggregates (SolveThresholds), then sampling the scored batches against the plans."""

    def __init__(self, options: CurationOptions, n_splits: int):
        super().__init__()
        self._options = options
        self._n_splits = n_splits

    def expand(self, inputs) -> windowed.WindowedOutputs:
        options = self._options
        joined = inputs | "JoinForwardRecords" >> join.JoinForwardRecords(options)
        batches = joined.joined | "ScoreExamples" >> transforms.ScoreExamples(options)
        plans, counts = batches | "SolveThresholds" >> transforms.SolveThresholds(options, self._n_splits)
        sampled = batches | "SampleExamples" >> beam.ParDo(
            transforms.SampleExamplesDoFn(options), beam.pvalue.AsSingleton(plans)
        ).with_outputs(STATS, QUALITY, main="curated")
        return windowed.WindowedOutputs(
            sampled.curated, sampled[STATS], sampled[QUALITY], joined[REJECTS], joined[EVENTS], counts, plans
        )


class _CorruptFiles(beam.PTransform):
    """(path, records read, error) of one split's reader -> CorruptFile."""

    def __init__(self, split: int):
        super().__init__()
        self._split = split

    def expand(self, corrupt):
        split = self._split
        return corrupt | "ToCorruptFile" >> beam.MapTuple(
            lambda path, n, error: CorruptFile(split, path, n, error)
        ).with_output_types(CorruptFile)
