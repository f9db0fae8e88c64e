"""Beam readers of forward records: ReadForwardRecords / DecodeForwardRecords route rejects and count them."""

import collections
import math

import apache_beam as beam
import pytest
from apache_beam.metrics.metric import MetricsFilter
from apache_beam.testing.test_pipeline import TestPipeline as BeamTestPipeline
from apache_beam.testing.util import assert_that, equal_to
from record_builders import PLAIN_REJECTS, classify_log, plain, predict_log, regress_log, write_tfrecords

from tfx_curator.components.curator.reading import record_io
from tfx_curator.components.curator.reading.records import RecordConfig

NAN = math.nan
BINARY = RecordConfig()
REGRESSION = RecordConfig(task="regression")


def counters(result) -> dict:
    out = {}
    for counter in result.metrics().query(MetricsFilter().with_namespace(record_io.METRICS_NAMESPACE))[
        "counters"
    ]:
        out[counter.key.metric.name] = out.get(counter.key.metric.name, 0) + counter.result
    return out


def comparable(record):
    """NaN -> None, so that equal_to can compare records (NaN != NaN)."""
    example_id, values = record
    return example_id, tuple(None if isinstance(v, float) and math.isnan(v) else v for v in values)


def run_read(
    pattern, record_format, config=BINARY, expected_records=None, expected_rejects=None, batch_size=3
):
    pipeline = BeamTestPipeline()
    outputs = pipeline | record_io.ReadForwardRecords(pattern, record_format, config, batch_size=batch_size)
    assert_that(
        outputs[record_io.RECORDS_TAG] | beam.Map(comparable),
        equal_to([comparable(r) for r in expected_records]),
        label="CheckRecords",
    )
    assert_that(outputs[record_io.REJECT_TAG], equal_to(expected_rejects), label="CheckRejects")
    result = pipeline.run()
    result.wait_until_finish()
    return counters(result)


def test_read_plain_records_routes_rejects(tmp_path):
    good = [
        plain(example_id=b"id%d" % i, prediction=0.5, timestamp=i + 1, model_version=b"m") for i in range(7)
    ]
    bad = [raw for raw, _ in PLAIN_REJECTS[:6]]
    write_tfrecords(str(tmp_path / "records-0.gz"), good[:4] + bad[:3])
    write_tfrecords(str(tmp_path / "records-1"), good[4:] + bad[3:])
    got = run_read(
        str(tmp_path / "records-*"),
        "plain",
        expected_records=[(b"id%d" % i, (0.5, NAN, float(i + 1), b"m")) for i in range(7)],
        expected_rejects=list(PLAIN_REJECTS[:6]),
    )
    assert got[record_io.DECODED_COUNTER] == 7
    assert got[record_io.REJECTED_COUNTER] == 6
    for reason, count in collections.Counter(reason for _, reason in PLAIN_REJECTS[:6]).items():
        assert got[record_io.reject_counter_name(reason)] == count, reason


def test_read_prediction_logs_routes_rejects(tmp_path):
    good = classify_log([b"a", b"b"], [0.25, 0.5], version=3, timestamp=10)
    partly_bad = classify_log([b"c", b"d"], [0.75, 2.0])
    logs = [
        good.SerializeToString(),
        partly_bad.SerializeToString(),
        b"\xff\xff\xff",
        predict_log([b"e"], [0.5], hidden_norms=[-2.0]).SerializeToString(),
    ]
    write_tfrecords(str(tmp_path / "prediction_logs-00000-of-00001.gz"), logs)
    got = run_read(
        str(tmp_path / "prediction_logs-*.gz"),
        "predictionlog",
        expected_records=[
            (b"a", (0.25, NAN, 10.0, b"3")),
            (b"b", (0.5, NAN, 10.0, b"3")),
            (b"c", (0.75, NAN, NAN, b"")),
        ],
        expected_rejects=[
            (logs[1], "prediction_out_of_range"),
            (logs[2], "unparseable"),
            (logs[3], "negative_hidden_norm"),
        ],
    )
    assert got[record_io.DECODED_COUNTER] == 3
    assert got["record_reject_prediction_out_of_range"] == 1
    assert got["record_reject_negative_hidden_norm"] == 1


def test_decode_forward_records_on_a_pcollection():
    raws = [plain(example_id=b"a", prediction=0.5), plain(example_id=b"b", prediction=9.0)]
    with BeamTestPipeline() as pipeline:
        outputs = pipeline | beam.Create(raws) | record_io.DecodeForwardRecords("plain", REGRESSION)
        records_out, rejects = outputs  # main output first
        assert_that(records_out | beam.Keys(), equal_to([b"a", b"b"]), label="Ids")
        assert_that(rejects, equal_to([]), label="NoRejects")
    with pytest.raises(ValueError):
        record_io.DecodeForwardRecords("csv")


@pytest.mark.parametrize("record_format", ["plain", "predictionlog"])
def test_decode_forward_records_batched_input(record_format):
    if record_format == "plain":
        good = [plain(example_id=b"id%d" % i, prediction=0.5) for i in range(5)]
    else:
        good = [regress_log([b"id%d" % i], [0.5]).SerializeToString() for i in range(5)]
    batches = [good[:2] + [b"\xff\xff\xff"], good[2:]]
    with BeamTestPipeline() as pipeline:
        outputs = (
            pipeline
            | beam.Create(batches)
            | record_io.DecodeForwardRecords(record_format, BINARY, batched=True)
        )
        assert_that(outputs[record_io.RECORDS_TAG] | beam.Keys(), equal_to([b"id%d" % i for i in range(5)]))
        assert_that(outputs[record_io.REJECT_TAG], equal_to([(b"\xff\xff\xff", "unparseable")]), label="Rej")


@pytest.mark.parametrize("record_format", ["plain", "predictionlog"])
def test_decode_forward_records_as_lists_gives_one_list_per_batch_of_the_same_records(record_format):
    """Window mode's input: one list of a batch's decoded records (no per-record element), rejects as before."""
    if record_format == "plain":
        good = [plain(example_id=b"id%d" % i, prediction=0.1 * i) for i in range(5)]
    else:
        good = [regress_log([b"id%d" % i], [0.1 * i]).SerializeToString() for i in range(5)]
    batches = [good[:2] + [b"\xff\xff\xff"], good[2:], [b"\xff\xff\xff"]]
    with BeamTestPipeline() as pipeline:
        created = pipeline | beam.Create(batches)
        flat = created | "Flat" >> record_io.DecodeForwardRecords(record_format, BINARY, batched=True)
        lists = created | "Lists" >> record_io.DecodeForwardRecords(
            record_format, BINARY, batched=True, as_lists=True
        )
        assert_that(
            lists[record_io.RECORDS_TAG] | "Ids" >> beam.Map(lambda rs: sorted(r[0] for r in rs)),
            equal_to([[b"id0", b"id1"], [b"id2", b"id3", b"id4"]]),  # the all-rejected batch gives no list
            label="OneListPerBatch",
        )
        assert_that(
            (
                lists[record_io.RECORDS_TAG] | "Unlist" >> beam.FlatMap(lambda rs: [tuple(r) for r in rs]),
                flat[record_io.RECORDS_TAG] | "Tuples" >> beam.Map(tuple),
            )
            | beam.Flatten()
            | beam.combiners.Count.PerElement()
            | "Twice" >> beam.Map(lambda kv: kv[1]),
            equal_to([2] * 5),  # every record once in each output, identical
            label="SameRecords",
        )
        assert_that(
            lists[record_io.REJECT_TAG], equal_to([(b"\xff\xff\xff", "unparseable")] * 2), label="Rej"
        )
    with pytest.raises(ValueError, match="batched"):
        record_io.DecodeForwardRecords("plain", as_lists=True)
