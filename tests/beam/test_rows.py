"""rows.py: every row that crosses a shuffle is encoded by Beam's RowCoder from its schema, never pickled."""

from __future__ import annotations

import math

import apache_beam as beam
import pytest

from tfx_curator.components.curator.beam import join, rows
from tfx_curator.components.curator.options import CurationOptions

SAMPLES = {
    rows.KeyedExample: rows.KeyedExample(1, b"\x00raw", 1.0),
    rows.ForwardRecord: rows.ForwardRecord(0.25, math.nan, 1700.0, b"v1"),
    rows.JoinValue: rows.JoinValue(None, rows.ForwardRecord(0.5, 2.0, math.nan, b"")),
    rows.JoinedRow: rows.JoinedRow(0, b"id", b"raw", 0.0, math.nan, math.nan, b""),
    rows.Reject: rows.Reject(rows.RECORDS_SPLIT, rows.REJECT_SOURCE_RECORDS, "unparseable", b"\xff"),
    rows.RejectKey: rows.RejectKey(0, rows.REJECT_SOURCE_EXAMPLES, "missing_id"),
    rows.EventKey: rows.EventKey(rows.RECORDS_SPLIT, rows.ORPHAN_RECORDS),
    rows.CorruptFile: rows.CorruptFile(0, "/data/part-0.gz", 12, "DataLossError: truncated"),
    rows.QualityKey: rows.QualityKey(2, rows.QUALITY_CURATED),
}


def _field_kinds(schema) -> list[str]:
    """Every field's kind, nested rows included; a Python object Beam would pickle shows as `pythonsdk_any`."""
    kinds = []
    for field in schema.fields:
        kind = field.type.WhichOneof("type_info")
        if kind == "row_type":
            kinds += _field_kinds(field.type.row_type.schema)
        else:
            kinds.append(field.type.logical_type.urn.split(":")[-2] if kind == "logical_type" else kind)
    return kinds


@pytest.mark.parametrize("row_type", rows.SCHEMA_ROWS, ids=lambda t: t.__name__)
def test_rows_have_a_schema_coder_of_plain_fields(row_type):
    coder = beam.coders.registry.get_coder(row_type)
    assert isinstance(coder, beam.coders.RowCoder)
    assert set(_field_kinds(coder.schema)) == {"atomic_type"}
    if row_type in (rows.RejectKey, rows.EventKey, rows.QualityKey):  # grouping keys
        assert coder.is_deterministic()


@pytest.mark.parametrize("row_type", rows.SCHEMA_ROWS, ids=lambda t: t.__name__)
def test_rows_round_trip_through_their_coder(row_type):
    impl = beam.coders.registry.get_coder(row_type).get_impl()
    value = SAMPLES[row_type]
    decoded = impl.decode(impl.encode(value))
    assert decoded._fields == value._fields
    assert _plain(decoded) == _plain(value)


def _plain(value):
    """Rows as plain nested tuples, floats as their repr (NaN-safe equality)."""
    if isinstance(value, tuple):
        return tuple(_plain(v) for v in value)
    return repr(value) if isinstance(value, float) else value


def _coders_into(pipeline: beam.Pipeline, label: str) -> list[str]:
    """The coders of the PCollections going into the transform named `label`, as nested URN names."""
    components = pipeline.to_runner_api().components

    def name(coder_id: str) -> str:
        coder = components.coders[coder_id]
        inner = ",".join(name(c) for c in coder.component_coder_ids)
        return coder.spec.urn.split(":")[-2] + (f"[{inner}]" if inner else "")

    (transform,) = [t for t in components.transforms.values() if t.unique_name.endswith(label)]
    return [name(components.pcollections[pc].coder_id) for pc in transform.inputs.values()]


def test_the_join_shuffles_ids_and_rows():
    options = CurationOptions()
    p = beam.Pipeline()
    examples = p | "Ex" >> beam.Create([b"raw"]) | join.KeyExamples(0, options)
    records = p | "Rec" >> beam.Create([(b"id", (0.5, 1.0, 2.0, b"v"))])  # as DecodeForwardRecords emits them
    _ = (examples.examples, records) | "Join" >> join.JoinForwardRecords(options)
    assert _coders_into(p, "Join/GroupById") == ["kv[bytes,row]"]


@pytest.mark.parametrize(
    "columns",
    [
        rows.WindowChunk(
            [b"a", b"b"], [0, 1], [b"r", b"s"], [1.0, 0.0], [b"a"], [0.5], [math.nan], [2.0], [b""], [0.7]
        ),
        rows.ExampleColumns([b"a", b"b"], [2, 2], [b"r", b""], [1.0, math.nan]),
    ],
    ids=lambda c: type(c).__name__,
)
def test_rows_of_columns_round_trip_as_lists_of_plain_fields(columns):
    coder = beam.coders.registry.get_coder(type(columns))
    assert isinstance(coder, beam.coders.RowCoder)
    kinds = {f.type.array_type.element_type.WhichOneof("type_info") for f in coder.schema.fields}
    assert kinds == {"atomic_type"}
    decoded = coder.get_impl().decode(coder.get_impl().encode(columns))
    assert _plain(tuple(map(tuple, decoded))) == _plain(tuple(map(tuple, columns)))


def test_window_mode_shuffles_window_keys_and_columns(tmp_path):
    from record_builders import write_tfrecords

    from tfx_curator.components.curator.beam import curate

    examples = write_tfrecords(str(tmp_path / "ex.gz"), [b"x"])
    records = write_tfrecords(str(tmp_path / "rec.gz"), [b"y"])
    p = beam.Pipeline()
    options = CurationOptions(mode="window", record_format="plain")
    _ = p | curate.Curate([examples], records, options)
    assert _coders_into(p, "CurateWindows/GroupWindows/GroupByKey") == ["kv[varint,row]"]
    assert _coders_into(p, "CurateWindows/CurateWindow") == ["kv[varint,row]"]
