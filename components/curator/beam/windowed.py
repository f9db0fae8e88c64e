"""Window mode in one shuffle: examples and forward records keyed by window, then joined, scored, water-filled
and sampled where each window is grouped.

    split files -> CountRecords (tfrecord_files) -----------------------> {split: n_read} (side input)
    ExampleColumns of split i ------> ChunkExamples[i] ─┐
    [(id, record)] -----------------> ChunkRecords ──────┴─> GroupWindows (CombinePerKey, columns) -> CurateWindow
        -> curated (split, raw + weight), stats, quality, counts, thresholds, rejects, events

The window of an id is `plan.windows_of` over the examples read from all curated splits (plan.py, "Windows"):
known before the join, so an id's examples (of any split) and its records meet in one group. Inside a group the
join is `join.ResolveJoinDoFn`'s (an id with one example and one record is paired column by column), the
scores `transforms.score_columns`', the thresholds `plan.solve_window`'s and the sampling
`transforms.SampleExamplesDoFn`'s: the two-pass path's functions, without a second pass over the scored
examples and without a side input of thresholds. Rows cross the shuffle as columns (rows.WindowChunk,
schema-coded), packed per window over up to PACK_ROWS rows of a bundle by ChunkByWindow itself: Beam's
FnApiRunner materialises the Flatten of its inputs before the combine, so combiner lifting cannot pack them.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable
from itertools import chain
from operator import itemgetter
from typing import NamedTuple

import apache_beam as beam
import numpy as np
from apache_beam.transforms.window import GlobalWindows

from tfx_curator.components.curator.beam import join, transforms
from tfx_curator.components.curator.beam.rows import (
    EVENTS,
    N_EXAMPLE_FIELDS,
    QUALITY,
    REJECTS,
    STATS,
    ForwardRecord,
    JoinedRow,
    JoinValue,
    KeyedExample,
    WindowChunk,
)
from tfx_curator.components.curator.options import CurationOptions
from tfx_curator.components.curator.policy import plan

COUNTS = "counts"
THRESHOLDS = "thresholds"
_EXAMPLE_COLUMNS = slice(1, 1 + N_EXAMPLE_FIELDS)
_RECORD_IDS = 1 + N_EXAMPLE_FIELDS
_RECORD_COLUMNS = slice(2 + N_EXAMPLE_FIELDS, None)


def applies(options: CurationOptions) -> bool:
    """Window mode of a water-filled strategy: the selection this module makes in one shuffle."""
    return plan.strategy_of(options).water_filled and options.mode == "window"


def _empty_chunk() -> WindowChunk:
    return WindowChunk(*([] for _ in WindowChunk._fields))


def _chunk(ids: list, columns: list, records: bool) -> WindowChunk:
    """ids and the columns of their KeyedExample (or ForwardRecord, `records`) fields -> a WindowChunk.

    Decoded records carry the decoder's fields only: the ForwardRecord fields after them take their defaults."""
    chunk = _empty_chunk()
    side = _RECORD_COLUMNS if records else _EXAMPLE_COLUMNS
    chunk[_RECORD_IDS if records else 0].extend(ids)
    row_type = ForwardRecord if records else KeyedExample
    for k, (name, column) in enumerate(zip(row_type._fields, chunk[side])):
        column.extend(columns[k] if k < len(columns) else [row_type._field_defaults[name]] * len(ids))
    return chunk


PACK_ROWS = 1 << 17  # rows one packer holds before it hands its chunks on (bounds a worker's memory)


class _PackByWindowDoFn(beam.DoFn):
    """ExampleColumns, or lists of (id, record fields) -> (window, WindowChunk): the rows of up to PACK_ROWS
    inputs of a bundle, one chunk per window (`plan.windows_of` over the examples read in all curated splits).

    Why pack across read batches: Beam's FnApiRunner (DirectRunner) materialises the Flatten of examples and
    records before the combine, so whatever crosses it is encoded, buffered and decoded one element at a time;
    chunked per read batch, a window got a handful of rows (4 at 1M examples: 470k elements, ~20 s of coding
    at 1M rows), packed it gets hundreds. Rows stay columns from the input to the chunk."""

    def __init__(self, options: CurationOptions, records: bool):
        self._options = options
        self._records = records

    def start_bundle(self):
        self._held: list[tuple[list, list, np.ndarray]] = []
        self._rows = 0

    def process(self, batch, read: dict) -> Iterable[tuple[int, WindowChunk]]:
        if self._records:
            ids = [element[0] for element in batch]
            columns = [list(c) for c in zip(*(element[1] for element in batch))]
        else:
            ids, columns = batch.ids, list(batch[1:])
        if ids:
            windows = plan.windows_of(ids, self._options, sum(read.values()))
            self._held.append((ids, columns, windows))
            self._rows += len(ids)
        if self._rows >= PACK_ROWS:
            yield from self._chunks()

    def finish_bundle(self):
        for element in self._chunks():
            yield GlobalWindows.windowed_value(element)

    def _chunks(self) -> Iterable[tuple[int, WindowChunk]]:
        held, self._held, self._rows = self._held, [], 0
        if not held:
            return
        windows = np.concatenate([h[2] for h in held])
        order = np.argsort(windows, kind="stable")
        keys, starts = np.unique(windows[order], return_index=True)
        pick = _picker(order)
        ids = pick(chain.from_iterable(h[0] for h in held))
        columns = [
            pick(chain.from_iterable(h[1][k] for h in held)) for k in range(min(len(h[1]) for h in held))
        ]
        ends = [*starts[1:].tolist(), len(order)]
        for k, start, end in zip(keys.tolist(), starts.tolist(), ends):
            yield k, _chunk(ids[start:end], [c[start:end] for c in columns], self._records)


def _picker(order: np.ndarray):
    """A function: an iterable of len(order) values -> the list of them in `order`."""
    if len(order) == 1:
        return lambda values: list(values)
    get = itemgetter(*order.tolist())
    return lambda values: list(get(list(values)))


class ChunkByWindow(beam.PTransform):
    """ExampleColumns or lists of (id, record fields), one per read batch (KeyExamples' and
    DecodeForwardRecords' `as_lists`) -> (window, WindowChunk), given `read` (AsDict side input of the examples
    read per split)."""

    def __init__(self, options: CurationOptions, records: bool, read):
        super().__init__()
        self._options = options
        self._records = records
        self._read = read

    def expand(self, batches):
        return batches | "Chunk" >> beam.ParDo(
            _PackByWindowDoFn(self._options, self._records), self._read
        ).with_output_types(tuple[int, WindowChunk])


@beam.typehints.with_input_types(WindowChunk)
@beam.typehints.with_output_types(WindowChunk)
class _ConcatChunksFn(beam.CombineFn):
    """WindowChunks of one window -> one, column by column (the accumulator is a WindowChunk of lists)."""

    def create_accumulator(self) -> WindowChunk:
        return _empty_chunk()

    def add_input(self, acc: WindowChunk, chunk: WindowChunk) -> WindowChunk:
        for column, values in zip(acc, chunk):
            column.extend(values)
        return acc

    def merge_accumulators(self, accs: Iterable[WindowChunk]) -> WindowChunk:
        accs = iter(accs)
        out = next(accs)
        for acc in accs:
            self.add_input(out, acc)
        return out

    def extract_output(self, acc: WindowChunk) -> WindowChunk:
        return acc

    def get_accumulator_coder(self):
        return beam.coders.registry.get_coder(WindowChunk)


def _joined_sources() -> list[tuple[str, str]]:
    """(side, field) of each JoinedRow field: the id, a KeyedExample field or a ForwardRecord field."""
    sources = []
    for field in JoinedRow._fields:
        if field == "example_id":
            sources.append(("id", field))
        elif field in KeyedExample._fields:
            sources.append(("example", field))
        elif field in ForwardRecord._fields:
            sources.append(("record", field))
        else:
            raise TypeError(
                f"JoinedRow.{field} comes from neither KeyedExample nor ForwardRecord: pair it here"
            )
    return sources


_JOINED_SOURCES = _joined_sources()


class CurateWindowDoFn(beam.DoFn):
    """(window, WindowChunk) -> (split, raw + weight feature) of the kept examples; tagged: STATS and QUALITY
    rows (as SampleExamplesDoFn), REJECTS and EVENTS (as ResolveJoinDoFn), COUNTS (split, (n, n_scored,
    n_positive)) and THRESHOLDS (split, thresholds of this window).

    The join: an id with exactly one example and one record is paired column by column (no row objects); every
    other id (duplicate examples or records, no record, orphan records) goes through `join.ResolveJoinDoFn`.
    """

    def __init__(self, options: CurationOptions):
        self._options = options
        self._resolve = join.ResolveJoinDoFn(options)
        self._sample = transforms.SampleExamplesDoFn(options)

    def process(self, element, read: dict):
        o = self._options
        window, chunk = element
        joined = yield from self._join(chunk)
        if not joined.example_id:
            return
        batch = transforms.score_columns(joined, o)
        plans = {}
        for split, counts in transforms.batch_counts(batch):
            yield beam.pvalue.TaggedOutput(COUNTS, (split, counts))
            split_basis = plan.WindowBasis.of(read, split)
            at = (batch.splits == split) & ~np.isnan(batch.scores)
            thresholds = (
                plan.solve_window(
                    o,
                    plan.split_rate(o, split_basis.n_split),
                    window,
                    batch.scores[at],
                    batch.labels[at] == 1.0,
                )
                if at.any()
                else {}
            )
            yield beam.pvalue.TaggedOutput(THRESHOLDS, (split, thresholds))
            plans[split] = plan.make_plan(o, plan.SplitCounts(*counts), thresholds, basis=split_basis)
        yield from self._sample.process(batch, plans)

    def _join(self, chunk: WindowChunk):
        """Yields the join's rejects and events; returns the joined rows as columns (a JoinedRow of lists)."""
        example_ids, record_ids = chunk.example_ids, chunk.record_ids
        examples = dict(zip(KeyedExample._fields, chunk[_EXAMPLE_COLUMNS]))
        records = dict(zip(ForwardRecord._fields, chunk[_RECORD_COLUMNS]))
        n_examples, n_records = Counter(example_ids), Counter(record_ids)
        single = {i for i, n in n_examples.items() if n == 1 and n_records.get(i) == 1}
        record_at = {i: j for j, i in enumerate(record_ids) if i in single}
        paired = [k for k, i in enumerate(example_ids) if i in single]
        paired_records = [record_at[example_ids[k]] for k in paired]
        sources = {
            "id": lambda _: [example_ids[k] for k in paired],
            "example": lambda f: [examples[f][k] for k in paired],
            "record": lambda f: [records[f][k] for k in paired_records],
        }
        columns = JoinedRow(*(sources[side](field) for side, field in _JOINED_SOURCES))
        others: dict[bytes, list[JoinValue]] = {}
        for k, i in enumerate(example_ids):
            if i not in single:
                fields = (examples[f][k] for f in KeyedExample._fields)
                others.setdefault(i, []).append(JoinValue(KeyedExample(*fields), None))
        for k, i in enumerate(record_ids):
            if i not in single:
                fields = (records[f][k] for f in ForwardRecord._fields)
                others.setdefault(i, []).append(JoinValue(None, ForwardRecord(*fields)))
        for item in sorted(others.items()):
            for out in self._resolve.process(item):
                if isinstance(out, beam.pvalue.TaggedOutput):
                    yield out
                else:
                    for column, value in zip(columns, out):
                        column.append(value)
        return columns


class WindowedOutputs(NamedTuple):
    curated: beam.PCollection  # (split, raw + weight feature)
    stats: beam.PCollection  # (split, SplitStats) per window
    quality: beam.PCollection  # (QualityKey, QualityRows) per window
    rejects: beam.PCollection  # Reject (duplicate example ids)
    events: beam.PCollection  # (EventKey, n)
    counts: beam.PCollection  # (split, (n, n_scored, n_positive))
    plans: beam.PCollection  # one {split: SplitPlan}


class CurateWindows(beam.PTransform):
    """(one PCollection of ExampleColumns per split, lists of (id, record fields)) -> WindowedOutputs, given
    `read`: the (split, examples read) of every curated split (tfrecord_files.CountRecords). Both inputs come one
    element per read batch; each split is packed by window before the one Flatten (a Flatten of the splits'
    unpacked batches would cross the runner one read batch at a time)."""

    def __init__(self, options: CurationOptions, n_splits: int, read: beam.PCollection):
        super().__init__()
        self._options = options
        self._n_splits = n_splits
        self._read = read

    def expand(self, inputs) -> WindowedOutputs:
        o = self._options
        examples, records = inputs
        read = beam.pvalue.AsDict(self._read)
        keyed = tuple[int, WindowChunk]
        grouped = (
            (
                *(
                    split | f"ChunkExamples[{i}]" >> ChunkByWindow(o, False, read)
                    for i, split in enumerate(examples)
                ),
                records | "ChunkRecords" >> ChunkByWindow(o, True, read),
            )
            | "FlattenChunks" >> beam.Flatten().with_output_types(keyed)
            | "GroupWindows" >> beam.CombinePerKey(_ConcatChunksFn()).with_output_types(keyed)
        )
        out = grouped | "CurateWindow" >> beam.ParDo(CurateWindowDoFn(o), read).with_outputs(
            STATS, QUALITY, REJECTS, EVENTS, COUNTS, THRESHOLDS, main="curated"
        )
        counts = out[COUNTS] | "SumCounts" >> beam.CombinePerKey(transforms.sum_tuples)
        plans = (
            records.pipeline
            | "Once" >> beam.Create([None])
            | "MakePlans"
            >> beam.Map(
                transforms.make_plans,
                o,
                self._n_splits,
                beam.pvalue.AsDict(counts),
                beam.pvalue.AsList(out[THRESHOLDS]),
                {},
                {},
                read,
            )
        )
        return WindowedOutputs(
            out.curated, out[STATS], out[QUALITY], out[REJECTS], out[EVENTS], counts, plans
        )
