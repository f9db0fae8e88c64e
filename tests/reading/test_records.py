"""Forward records: PredictionLog and plain-format decoding, rejects, Beam readers, TFDV schema."""

import collections
import math
import os

import apache_beam as beam
import numpy as np
import pytest
import tensorflow as tf
from apache_beam.metrics.metric import MetricsFilter
from apache_beam.testing.test_pipeline import TestPipeline as BeamTestPipeline
from apache_beam.testing.util import assert_that, equal_to
from hypothesis import given, settings
from hypothesis import strategies as st
from tensorflow_metadata.proto.v0 import anomalies_pb2 as anomaly_pb2
from tensorflow_metadata.proto.v0 import schema_pb2
from tensorflow_serving.apis import prediction_log_pb2

from tfx_curator.components.curator.reading import record_io, records
from tfx_curator.components.curator.reading.records import RecordConfig, RecordError

NAN = math.nan
BINARY = RecordConfig()
REGRESSION = RecordConfig(task="regression")


# ---------------------------------------------------------------------------------------------- helpers


def make_example(**features) -> tf.train.Example:
    """tf.Example from name=value(s); bytes -> bytes_list, int -> int64_list, float -> float_list."""
    example = tf.train.Example()
    for name, value in features.items():
        values = value if isinstance(value, list) else [value]
        feature = example.features.feature[name]
        if not values:
            feature.float_list.SetInParent()
        elif isinstance(values[0], bytes):
            feature.bytes_list.value.extend(values)
        elif isinstance(values[0], int):
            feature.int64_list.value.extend(values)
        else:
            feature.float_list.value.extend(values)
    return example


def plain(**features) -> bytes:
    return make_example(**features).SerializeToString()


def f32(x: float) -> float:
    return float(np.float32(x))


def classify_log(ids, scores, labels=("0", "1"), version=None, timestamp=None):
    log = prediction_log_pb2.PredictionLog()
    for example_id in ids:
        log.classify_log.request.input.example_list.examples.add().CopyFrom(
            make_example(example_id=example_id, x=1.0)
        )
    for p in scores:
        classifications = log.classify_log.response.result.classifications.add()
        for label, score in zip(labels, (1 - p, p)):
            classifications.classes.add(label=label, score=score)
    if version is not None:
        log.log_metadata.model_spec.version.value = version
    if timestamp is not None:
        log.log_metadata.timestamp_secs = timestamp
    return log


def regress_log(ids, values):
    log = prediction_log_pb2.PredictionLog()
    for example_id in ids:
        log.regress_log.request.input.example_list.examples.add().CopyFrom(
            make_example(example_id=example_id)
        )
    for value in values:
        log.regress_log.response.result.regressions.add(value=value)
    return log


def predict_log(ids, predictions, hidden_norms=None, echo_ids=False, id_key="example_id"):
    log = prediction_log_pb2.PredictionLog()
    examples = [make_example(example_id=i, x=0.5).SerializeToString() for i in ids]
    log.predict_log.request.inputs["examples"].CopyFrom(tf.make_tensor_proto(examples, dtype=tf.string))
    outputs = log.predict_log.response.outputs
    outputs["prediction"].CopyFrom(tf.make_tensor_proto(np.asarray(predictions, np.float32)))
    if hidden_norms is not None:
        outputs["hidden_norm"].CopyFrom(tf.make_tensor_proto(np.asarray(hidden_norms, np.float32)))
    if echo_ids:
        outputs[id_key].CopyFrom(tf.make_tensor_proto(list(ids), dtype=tf.string))
    return log


def multi_inference_log(ids, scores, hidden_norms, signature_names=("classification", "hidden_norm")):
    log = prediction_log_pb2.PredictionLog()
    for example_id in ids:
        log.multi_inference_log.request.input.example_list.examples.add().CopyFrom(
            make_example(example_id=example_id)
        )
    results = log.multi_inference_log.response.results
    cls = results.add()
    cls.model_spec.signature_name = signature_names[0]
    cls.model_spec.version.value = 12
    for p in scores:
        classifications = cls.classification_result.classifications.add()
        classifications.classes.add(label="0", score=1 - p)
        classifications.classes.add(label="1", score=p)
    reg = results.add()
    reg.model_spec.signature_name = signature_names[1]
    for h in hidden_norms:
        reg.regression_result.regressions.add(value=h)
    return log


def decode(log, config=BINARY):
    return records.decode_prediction_log(log.SerializeToString(), config)


def reason_of(fn, *args) -> str:
    with pytest.raises(RecordError) as info:
        fn(*args)
    assert info.value.reason in records.REJECT_REASONS
    return info.value.reason


def assert_records_close(actual, expected):
    assert len(actual) == len(expected)
    for (aid, avalues), (eid, evalues) in zip(actual, expected):
        assert aid == eid
        assert avalues[3] == evalues[3]
        np.testing.assert_allclose(avalues[:3], evalues[:3], rtol=1e-6, equal_nan=True)


# ------------------------------------------------------------------------------------ PredictionLog


def test_classify_log_with_metadata():
    log = classify_log([b"a", b"b"], [0.25, 0.75], version=7, timestamp=1_700_000_000)
    assert_records_close(
        decode(log),
        [(b"a", (0.25, NAN, 1.7e9, b"7")), (b"b", (0.75, NAN, 1.7e9, b"7"))],
    )


def test_classify_log_class_label_and_unlabelled_fallback():
    log = classify_log([b"a"], [0.25], labels=("neg", "pos"))
    assert decode(log, RecordConfig(class_label="pos"))[0][1][0] == 0.25
    assert decode(log, RecordConfig(class_label="neg"))[0][1][0] == 0.75
    assert reason_of(decode, log) == "missing_class_label"  # labelled, but no class "1"
    unlabelled = classify_log([b"a"], [0.25], labels=("", ""))
    assert decode(unlabelled)[0][1][0] == 0.25  # [negative, positive]: index 1


def test_classify_log_int_id_and_context_id():
    log = classify_log([7], [0.5])
    assert decode(log)[0][0] == b"7"
    ctx = prediction_log_pb2.PredictionLog()
    lst = ctx.classify_log.request.input.example_list_with_context
    lst.context.CopyFrom(make_example(example_id=b"from-context"))
    lst.examples.add().CopyFrom(make_example(x=1.0))
    ctx.classify_log.response.result.classifications.add().classes.add(label="1", score=0.5)
    assert decode(ctx)[0][0] == b"from-context"


def test_regress_log_version_from_response_and_task():
    log = regress_log([b"a", b"b"], [-3.5, 2.0])
    log.regress_log.response.model_spec.version_label = "canary"
    assert_records_close(
        decode(log, REGRESSION), [(b"a", (-3.5, NAN, NAN, b"canary")), (b"b", (2.0, NAN, NAN, b"canary"))]
    )
    assert reason_of(decode, log, BINARY) == "prediction_out_of_range"


def test_predict_log_ids_from_request_examples():
    log = predict_log([b"a", b"b"], [[0.1], [0.9]], hidden_norms=[1.5, 2.5])
    log.log_metadata.timestamp_secs = 42
    assert_records_close(
        decode(log), [(b"a", (f32(0.1), 1.5, 42.0, b"")), (b"b", (f32(0.9), 2.5, 42.0, b""))]
    )


def test_predict_log_ids_from_echoed_output_and_id_output_key():
    log = predict_log([b"a"], [0.3], echo_ids=True)
    # The echoed output wins over the request: make the request id differ to see which one is read.
    log.predict_log.request.inputs["examples"].CopyFrom(
        tf.make_tensor_proto([make_example(example_id=b"other").SerializeToString()], dtype=tf.string)
    )
    assert decode(log)[0][0] == b"a"
    custom = predict_log([b"z"], [0.3], echo_ids=True, id_key="served_id")
    assert decode(custom, RecordConfig(id_output_key="served_id"))[0][0] == b"z"
    assert reason_of(decode, custom, RecordConfig(id_output_key="nope")) == "missing_id"


def test_predict_log_raw_feature_request_and_two_column_softmax():
    log = prediction_log_pb2.PredictionLog()
    log.predict_log.request.inputs["example_id"].CopyFrom(tf.make_tensor_proto([11, 12], dtype=tf.int64))
    log.predict_log.request.inputs["x"].CopyFrom(tf.make_tensor_proto([[1.0], [2.0]], dtype=tf.float32))
    log.predict_log.response.outputs["prediction"].CopyFrom(
        tf.make_tensor_proto(np.array([[0.8, 0.2], [0.4, 0.6]], np.float32))
    )
    got = decode(log)
    assert [r[0] for r in got] == [b"11", b"12"]
    np.testing.assert_allclose([r[1][0] for r in got], [0.2, 0.6], rtol=1e-6)
    assert reason_of(decode, log, REGRESSION) == "bad_prediction_shape"


def test_multi_inference_log_prediction_and_hidden_norm_signatures():
    log = multi_inference_log([b"a", b"b"], [0.2, 0.7], [3.0, 4.0])
    expected = [(b"a", (f32(0.2), 3.0, NAN, b"12")), (b"b", (f32(0.7), 4.0, NAN, b"12"))]
    assert_records_close(decode(log), expected)  # no signature "prediction": the classification result
    assert_records_close(decode(log, RecordConfig(prediction_key="classification")), expected)
    no_hidden = decode(log, RecordConfig(hidden_norm_key=None))
    assert math.isnan(no_hidden[0][1][1])


def test_multi_example_log_keeps_good_examples_in_lenient_mode():
    log = classify_log([b"good", b"x" * (records.MAX_ID_BYTES + 1), b"good2"], [0.1, 0.2, float("nan")])
    got, reasons = records.decode_prediction_log_lenient(log.SerializeToString(), BINARY)
    assert [r[0] for r in got] == [b"good"]
    assert reasons == ["id_too_long", "non_finite_prediction"]
    assert reason_of(decode, log) == "id_too_long"


@pytest.mark.parametrize(
    "log, config, reason",
    [
        (prediction_log_pb2.PredictionLog(), BINARY, "empty_log"),
        (classify_log([b"a"], [1.5]), BINARY, "prediction_out_of_range"),
        (classify_log([b"a"], [float("nan")]), BINARY, "non_finite_prediction"),
        (regress_log([b"a"], [float("inf")]), REGRESSION, "non_finite_prediction"),
        (regress_log([b"a"], [0.5, 0.6]), BINARY, "example_count_mismatch"),
        (regress_log([b"x" * 1025], [0.5]), BINARY, "id_too_long"),
        (regress_log([b""], [0.5]), BINARY, "missing_id"),
        (predict_log([b"a"], [0.5], hidden_norms=[-1.0]), BINARY, "negative_hidden_norm"),
        (predict_log([b"a"], [0.5], hidden_norms=[float("inf")]), BINARY, "non_finite_hidden_norm"),
        (predict_log([b"a", b"b"], [0.5]), BINARY, "bad_prediction_shape"),
    ],
)
def test_prediction_log_rejects(log, config, reason):
    assert reason_of(decode, log, config) == reason


def test_prediction_log_structural_rejects():
    assert reason_of(records.decode_prediction_log, b"\xff\xff\xff", BINARY) == "unparseable"
    valid = classify_log([b"a"], [0.5]).SerializeToString()
    assert (
        reason_of(records.decode_prediction_log, b"\x0c" + valid, BINARY) == "unparseable"
    )  # stray end-group
    assert reason_of(records.decode_prediction_log, valid + b"\x0cjunk", BINARY) == "unparseable"
    log = prediction_log_pb2.PredictionLog()
    log.session_run_log.SetInParent()
    assert reason_of(decode, log) == "unsupported_log_type"
    no_examples = regress_log([], [])
    no_examples.regress_log.request.model_spec.name = "m"
    assert reason_of(decode, no_examples) == "no_request_example"
    missing = classify_log([b"a"], [0.5])
    del missing.classify_log.request.input.example_list.examples[0].features.feature["example_id"]
    assert reason_of(decode, missing) == "missing_id"
    float_id = regress_log([b"a"], [0.5])
    float_id.regress_log.request.input.example_list.examples[0].features.feature["example_id"].Clear()
    float_id.regress_log.request.input.example_list.examples[0].features.feature[
        "example_id"
    ].float_list.value.append(1.0)
    assert reason_of(decode, float_id) == "bad_id_type"
    no_prediction = predict_log([b"a"], [0.5])
    del no_prediction.predict_log.response.outputs["prediction"]
    assert reason_of(decode, no_prediction) == "missing_prediction"
    bad_example = predict_log([b"a"], [0.5])
    bad_example.predict_log.request.inputs["examples"].CopyFrom(
        tf.make_tensor_proto([b"\xff\xff\xff"], dtype=tf.string)
    )
    assert reason_of(decode, bad_example) == "unparseable_request_example"
    huge = predict_log([b"a"], [0.5])
    huge.predict_log.response.outputs["prediction"].tensor_shape.dim[0].size = 1 << 40
    assert reason_of(decode, huge) == "bad_tensor"


# ------------------------------------------------------------------------------------ plain format


def test_plain_record_full_and_minimal():
    full = plain(
        example_id=b"a", prediction=0.25, model_version=b"v3", timestamp=1_700_000_000, hidden_norm=2.0
    )
    assert records.decode_plain_record(full, BINARY) == (b"a", (0.25, 2.0, 1.7e9, b"v3"))
    got = records.decode_plain_record(plain(example_id=b"b", prediction=0.5), BINARY)
    assert got[0] == b"b" and got[1][0] == 0.5 and math.isnan(got[1][1]) and math.isnan(got[1][2])
    assert got[1][3] == b""
    renamed = RecordConfig(id_feature="uid", prediction_key="y_hat", hidden_norm_key=None, task="regression")
    assert records.decode_plain_record(plain(uid=b"u", y_hat=-7.0, hidden_norm=-1.0), renamed)[1][:1] == (
        -7.0,
    )


PLAIN_REJECTS = [
    (b"\xff\xff\xff", "unparseable"),
    (b"\x0c" + plain(example_id=b"a", prediction=0.5), "unparseable"),
    (plain(prediction=0.5), "missing_id"),
    (plain(example_id=[], prediction=0.5), "bad_id_type"),  # an empty float_list
    (b"\n\x12\n\x10\n\nexample_id\x12\x02\n\x00" + plain(prediction=0.5), "missing_id"),  # empty bytes_list
    (plain(example_id=7, prediction=0.5), "bad_id_type"),
    (plain(example_id=[b"a", b"b"], prediction=0.5), "bad_id_count"),
    (plain(example_id=b"x" * 1025, prediction=0.5), "id_too_long"),
    (plain(example_id=b"", prediction=0.5), "missing_id"),
    (plain(example_id=b"a"), "missing_prediction"),
    (plain(example_id=b"a", prediction=b"0.5"), "bad_prediction_type"),
    (plain(example_id=b"a", prediction=[0.1, 0.2]), "bad_prediction_count"),
    (plain(example_id=b"a", prediction=float("nan")), "non_finite_prediction"),
    (plain(example_id=b"a", prediction=float("inf")), "non_finite_prediction"),
    (plain(example_id=b"a", prediction=1.5), "prediction_out_of_range"),
    (plain(example_id=b"a", prediction=-0.1), "prediction_out_of_range"),
    (plain(example_id=b"a", prediction=0.5, hidden_norm=-1.0), "negative_hidden_norm"),
    (plain(example_id=b"a", prediction=0.5, hidden_norm=float("inf")), "non_finite_hidden_norm"),
    (plain(example_id=b"a", prediction=0.5, hidden_norm=[1.0, 2.0]), "bad_hidden_norm_count"),
    (plain(example_id=b"a", prediction=0.5, timestamp=1.5), "bad_timestamp_type"),
    (plain(example_id=b"a", prediction=0.5, model_version=3), "bad_model_version_type"),
    (plain(example_id=b"a", prediction=0.5, model_version=b"v" * 1025), "model_version_too_long"),
]


@pytest.mark.parametrize("raw, reason", PLAIN_REJECTS)
def test_plain_rejects(raw, reason):
    assert reason_of(records.decode_plain_record, raw, BINARY) == reason
    got, rejects = records.decode_plain_batch([plain(example_id=b"ok", prediction=0.5), raw], BINARY)
    assert [r[0] for r in got] == [b"ok"] and rejects == [(raw, reason)]


def test_plain_empty_optional_feature_reads_as_absent():
    raw = plain(example_id=b"a", prediction=0.5, hidden_norm=[])
    assert math.isnan(records.decode_plain_record(raw, BINARY)[1][1])
    assert math.isnan(records.decode_plain_batch([raw], BINARY)[0][0][1][1])


_field = st.sampled_from(["ok", "absent", "nan", "negative", "big", "wrong_type", "two"])


@st.composite
def plain_records(draw):
    feats = {}
    id_kind = draw(_field)
    if id_kind != "absent":
        feats["example_id"] = {
            "ok": draw(st.binary(min_size=1, max_size=12)),
            "nan": b"",
            "negative": b"",
            "big": b"i" * 1025,
            "wrong_type": 5,
            "two": [b"a", b"b"],
        }[id_kind]
    for name, ok in (("prediction", st.floats(0, 1, width=32)), ("hidden_norm", st.floats(0, 1e6, width=32))):
        kind = draw(_field)
        if kind != "absent":
            feats[name] = {
                "ok": draw(ok),
                "nan": float("nan"),
                "negative": -1.0,
                "big": 1e30,
                "wrong_type": b"x",
                "two": [0.1, 0.2],
            }[kind]
    if draw(st.booleans()):
        feats["timestamp"] = draw(st.integers(-(2**63), 2**63 - 1))
    if draw(st.booleans()):
        feats["model_version"] = draw(st.binary(max_size=8))
    return plain(**feats)


@settings(max_examples=60, deadline=None)
@given(st.lists(plain_records(), min_size=1, max_size=12))
def test_plain_batch_matches_record_by_record(batch):
    got, rejects = records.decode_plain_batch(batch, BINARY)
    expected, expected_rejects = [], []
    for raw in batch:
        try:
            expected.append(records.decode_plain_record(raw, BINARY))
        except RecordError as e:
            expected_rejects.append((raw, e.reason))
    assert len(got) == len(expected)
    for a, e in zip(got, expected):
        assert a[0] == e[0] and a[1][3] == e[1][3]
        np.testing.assert_array_equal(a[1][:3], e[1][:3])
    assert sorted(rejects) == sorted(expected_rejects)


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=200))
def test_arbitrary_bytes_never_crash_the_decoders(raw):
    got, reasons = records.decode_prediction_log_lenient(raw, BINARY)
    assert set(reasons) <= set(records.REJECT_REASONS)
    got, rejects = records.decode_plain_batch([raw], BINARY)
    assert {reason for _, reason in rejects} <= set(records.REJECT_REASONS)


@settings(max_examples=200, deadline=None)
@given(st.data())
def test_mutated_prediction_logs_never_crash(data):
    """Bit flips and truncations of real logs: decoded or rejected with a known reason, never an exception."""
    logs = [
        classify_log([b"a", b"b"], [0.2, 0.4], version=3, timestamp=5),
        predict_log([b"a"], [[0.5]], hidden_norms=[[1.0]], echo_ids=True),
        multi_inference_log([b"a"], [0.3], [2.0]),
    ]
    raw = bytearray(data.draw(st.sampled_from(logs)).SerializeToString())
    for _ in range(data.draw(st.integers(1, 4))):
        raw[data.draw(st.integers(0, len(raw) - 1))] = data.draw(st.integers(0, 255))
    raw = bytes(raw[: data.draw(st.integers(0, len(raw)))])
    got, reasons = records.decode_prediction_log_lenient(raw, BINARY)
    assert set(reasons) <= set(records.REJECT_REASONS)
    for example_id, (prediction, hidden_norm, _, _) in got:
        assert 0 < len(example_id) <= records.MAX_ID_BYTES and 0.0 <= prediction <= 1.0
        assert math.isnan(hidden_norm) or hidden_norm >= 0.0


def test_record_config_validation():
    with pytest.raises(ValueError):
        RecordConfig(task="multiclass")
    with pytest.raises(ValueError):
        RecordConfig(prediction_key="timestamp")
    with pytest.raises(ValueError):
        RecordConfig(id_feature="x", prediction_key="x")


# ------------------------------------------------------------------------------------ Beam readers


def write_tfrecords(path: str, serialized) -> str:
    options = "GZIP" if path.endswith(".gz") else None
    with tf.io.TFRecordWriter(path, options=options) as writer:
        for raw in serialized:
            writer.write(raw)
    return path


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


# ------------------------------------------------------------------------------------ TFDV schema


def test_schema_matches_plain_features():
    schema = records.forward_record_schema()
    by_name = {f.name: f for f in schema.feature}
    kinds = {"bytes_list": schema_pb2.BYTES, "float_list": schema_pb2.FLOAT, "int64_list": schema_pb2.INT}
    assert list(by_name) == [name for name, *_ in records.PLAIN_FEATURES]
    for name, kind, _, required, _ in records.PLAIN_FEATURES:
        assert by_name[name].type == kinds[kind], name
        assert (by_name[name].presence.min_fraction == 1.0) == required, name
    renamed = records.forward_record_schema(
        RecordConfig(id_feature="uid", hidden_norm_key=None, task="regression")
    )
    names = {f.name for f in renamed.feature}
    assert "uid" in names and "hidden_norm" not in names
    assert not {f.name: f for f in renamed.feature}["prediction"].float_domain.HasField("max")


def anomaly_types(anomalies) -> dict:
    return {
        name: {anomaly_pb2.AnomalyInfo.Type.Name(r.type) for r in info.reason}
        for name, info in anomalies.anomaly_info.items()
    }


def test_validate_plain_records_with_tfdv(tmp_path):
    good = [
        plain(example_id=b"id%d" % i, prediction=i / 20, timestamp=1_700_000_000 + i, hidden_norm=1.0)
        for i in range(20)
    ]
    files = {
        "good": good,
        # 3 records without an id, one NaN prediction, one negative hidden norm
        "bad_values": good[:10]
        + [plain(prediction=0.5) for _ in range(3)]
        + [plain(example_id=b"i", prediction=float("nan"), hidden_norm=-1.0)],
        "wrong_type": [plain(example_id=b"id%d" % i, prediction=1) for i in range(5)],  # int64 prediction
    }
    for name, raws in files.items():
        write_tfrecords(str(tmp_path / f"{name}.gz"), raws)
    assert anomaly_types(records.validate_plain_records(str(tmp_path / "good.gz"))) == {}
    bad_values = anomaly_types(records.validate_plain_records(str(tmp_path / "bad_values.gz")))
    assert bad_values["example_id"] == {"FEATURE_TYPE_LOW_FRACTION_PRESENT"}  # missing id
    assert set(bad_values) == {"example_id", "prediction", "hidden_norm"}
    assert anomaly_types(records.validate_plain_records(str(tmp_path / "wrong_type.gz"))) == {
        "prediction": {"UNEXPECTED_DATA_TYPE"}
    }


def test_schema_file_is_shipped():
    assert os.path.exists(records.forward_record_schema_path())
