"""What the curation job's steps hand each other: typed rows and the names of the side outputs.

The rows that cross a shuffle are NamedTuples of bytes, ints, floats and strings registered with Beam's
`RowCoder`: Beam encodes them field by field from their schema (no pickling), and steps read them by name.
Keyed examples `(id, KeyedExample)` and records `(id, ForwardRecord)` meet in the join's shuffle as
`(id, JoinValue)`.
"""

import math
import typing
from typing import NamedTuple, Optional

import apache_beam as beam
import numpy as np

NAMESPACE = "tfx_curator"  # Beam metrics
BATCH_SIZE = 4096
RECORDS_SPLIT = -1  # split index of things that belong to no split (orphan records, record rejects)

# Side outputs.
REJECTS = "rejects"
EVENTS = "events"
STATS = "stats"
QUALITY = "quality"
QUALITY_FULL = "full"  # every joined example of the split, unweighted
QUALITY_CURATED = "curated"  # the kept examples with their 1/p weights (the unbiasedness cross-check)

REJECT_SOURCE_EXAMPLES = "examples"
REJECT_SOURCE_RECORDS = "forward_records"

# Events counted per split (EventKey.name).
ORPHAN_RECORDS = "orphan_records"
DUPLICATE_RECORDS = "duplicate_records"
IDS_WITH_DUPLICATE_RECORDS = "ids_with_duplicate_records"
RECORDS_READ = "records_decoded"
EXAMPLES_READ = "examples_read"


class KeyedExample(NamedTuple):
    """An accepted raw example, the value of `(id, KeyedExample)` going into the join."""

    split: int
    raw: bytes
    label: float


class ForwardRecord(NamedTuple):
    """A decoded forward record, the value of `(id, ForwardRecord)` going into the join; NaN = not recorded.

    `score`: set only on a record resolved from several (duplicate_policy `mean_std`): the combined score of
    policy/passes.py, which then replaces the score of the prediction; NaN otherwise (decoded records)."""

    prediction: float
    hidden_norm: float
    timestamp: float
    model_version: bytes
    score: float = math.nan


class JoinValue(NamedTuple):
    """One side of the join under an id, `(id, JoinValue)`: an example or a record, the other None.

    One row type for both sides, so the join's shuffle has one schema coder (CoGroupByKey would group a union
    of two types, which Beam encodes by pickling)."""

    # typing.Optional, not `X | None`: Beam 2.59 reads the latter as "any Python object" and pickles it.
    example: Optional[KeyedExample]  # noqa: UP045
    record: Optional[ForwardRecord]  # noqa: UP045


class JoinedRow(NamedTuple):
    """An example with its (resolved) forward record; NaN prediction and model_version b"" = no record."""

    split: int
    example_id: bytes
    raw: bytes
    label: float
    prediction: float
    hidden_norm: float
    model_version: bytes
    score: float = math.nan  # ForwardRecord.score: NaN = the score of the prediction (plan.example_scores)


class Reject(NamedTuple):
    """A rejected input: its split index (RECORDS_SPLIT for records), source, reason and untouched bytes."""

    split: int
    source: str
    reason: str
    payload: bytes


class RejectKey(NamedTuple):
    """What rejects are counted by."""

    split: int
    source: str
    reason: str


class EventKey(NamedTuple):
    """What events (examples read, orphan and duplicate records, ...) are counted by."""

    split: int
    name: str


class CorruptFile(NamedTuple):
    """A file whose reading ended early (skip_corrupt_files): records read before the damage, the error."""

    split: int
    path: str
    records_read: int
    error: str


class QualityKey(NamedTuple):
    """What the served model's quality is measured by: a split, on all its rows or on the curated sample."""

    split: int
    kind: str  # QUALITY_FULL or QUALITY_CURATED


class QualityRows(NamedTuple):
    """Joined rows of one batch for the served model's quality (numpy columns: folded in before the shuffle)."""

    predictions: np.ndarray
    labels: np.ndarray
    versions: list
    weights: np.ndarray | None


def _columns(prefix: str, row_type) -> list[tuple[str, type]]:
    return [(prefix + name, list[kind]) for name, kind in typing.get_type_hints(row_type).items()]


class ExampleColumns(NamedTuple):
    """The accepted examples of one read batch as columns (KeyExamples' `as_lists` output, window mode): the ids
    and the KeyedExample fields, with no row object per example."""

    ids: list[bytes]
    split: list[int]
    raw: list[bytes]
    label: list[float]


if ExampleColumns._fields[1:] != KeyedExample._fields:
    raise TypeError("ExampleColumns must hold the ids, then KeyedExample's fields in their order")

# Examples and forward records of one window as columns (window mode's one shuffle, windowed.py): the ids and
# the fields of KeyedExample (example_*) and of ForwardRecord (record_*), whatever fields those rows have.
WindowChunk = NamedTuple(
    "WindowChunk",
    [
        ("example_ids", list[bytes]),
        *_columns("example_", KeyedExample),
        ("record_ids", list[bytes]),
        *_columns("record_", ForwardRecord),
    ],
)
N_EXAMPLE_FIELDS = len(KeyedExample._fields)


SCHEMA_ROWS = (
    KeyedExample,
    ForwardRecord,
    JoinValue,
    JoinedRow,
    Reject,
    RejectKey,
    EventKey,
    CorruptFile,
    QualityKey,
)
for _row in SCHEMA_ROWS:
    beam.coders.registry.register_coder(_row, beam.coders.RowCoder)
for _columns_row in (ExampleColumns, WindowChunk):  # rows of list fields (columns)
    beam.coders.registry.register_coder(_columns_row, beam.coders.RowCoder)
