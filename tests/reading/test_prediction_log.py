"""PredictionLog decoding: one decoder per log type, rejects with a reason, multi-example logs."""

import math

import numpy as np
import pytest
import tensorflow as tf
from hypothesis import given, settings
from hypothesis import strategies as st
from record_builders import classify_log, f32, make_example, multi_inference_log, predict_log, regress_log
from tensorflow_serving.apis import prediction_log_pb2

from tfx_curator.components.curator.reading import parsing, prediction_log, records
from tfx_curator.components.curator.reading.records import RecordConfig, RecordError

NAN = math.nan
BINARY = RecordConfig()
REGRESSION = RecordConfig(task="regression")


def decode(log, config=BINARY):
    return prediction_log.decode_prediction_log(log.SerializeToString(), config)


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


# ------------------------------------------------------------------------------------ one decoder per log type


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


def test_predict_log_passes_are_k_records_of_each_example():
    """The recorder's `prediction_passes` [n, k]: k records per example, pass by pass, same version and time."""
    log = predict_log([b"a", b"b"], [[0.5], [0.5]], hidden_norms=[1.5, 2.5])
    log.log_metadata.timestamp_secs = 42
    log.log_metadata.model_spec.version.value = 7
    passes = np.array([[0.1, 0.2, 0.3], [0.7, 0.8, 0.9]], np.float32)
    log.predict_log.response.outputs[records.PASSES_OUTPUT].CopyFrom(tf.make_tensor_proto(passes))
    want = [(i, (f32(p), h, 42.0, b"7")) for i, row, h in zip((b"a", b"b"), passes, (1.5, 2.5)) for p in row]
    assert_records_close(decode(log), want)
    bad = predict_log([b"a", b"b"], [[0.5], [0.5]])
    bad.predict_log.response.outputs[records.PASSES_OUTPUT].CopyFrom(tf.make_tensor_proto(passes.reshape(-1)))
    assert reason_of(decode, bad) == "bad_prediction_shape"
    bad.predict_log.response.outputs[records.PASSES_OUTPUT].CopyFrom(tf.make_tensor_proto([[b"x"]] * 2))
    assert reason_of(decode, bad) == "bad_prediction_type"


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
    log = classify_log([b"good", b"x" * (parsing.MAX_ID_BYTES + 1), b"good2"], [0.1, 0.2, float("nan")])
    got, reasons = prediction_log.decode_prediction_log_lenient(log.SerializeToString(), BINARY)
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
        (regress_log([b""], [0.5]), BINARY, "empty_id"),
        (predict_log([b"a"], [0.5], hidden_norms=[-1.0]), BINARY, "negative_hidden_norm"),
        (predict_log([b"a"], [0.5], hidden_norms=[float("inf")]), BINARY, "non_finite_hidden_norm"),
        (predict_log([b"a", b"b"], [0.5]), BINARY, "bad_prediction_shape"),
    ],
)
def test_prediction_log_rejects(log, config, reason):
    assert reason_of(decode, log, config) == reason


def test_prediction_log_structural_rejects():
    assert reason_of(prediction_log.decode_prediction_log, b"\xff\xff\xff", BINARY) == "unparseable"
    valid = classify_log([b"a"], [0.5]).SerializeToString()
    assert (
        reason_of(prediction_log.decode_prediction_log, b"\x0c" + valid, BINARY) == "unparseable"
    )  # stray end-group
    assert reason_of(prediction_log.decode_prediction_log, valid + b"\x0cjunk", BINARY) == "unparseable"
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


def test_every_log_type_is_dispatched_or_rejected_as_unsupported():
    log_types = [
        f.name for f in prediction_log_pb2.PredictionLog.DESCRIPTOR.oneofs_by_name["log_type"].fields
    ]
    assert set(prediction_log.DECODERS) <= set(log_types)
    for kind in set(log_types) - set(prediction_log.DECODERS):
        log = prediction_log_pb2.PredictionLog()
        getattr(log, kind).SetInParent()
        assert reason_of(decode, log) == "unsupported_log_type", kind


def test_typed_decoders_return_one_column_entry_per_example():
    log = classify_log([b"a", b""], [0.25, 0.75], version=7)
    columns = prediction_log.decode_classify(log.classify_log, BINARY)
    assert columns.ids[0] == b"a" and columns.ids[1].reason == parsing.EMPTY_ID
    assert columns.predictions == [0.25, 0.75] and all(math.isnan(h) for h in columns.hidden_norms)
    columns = prediction_log.decode_regress(regress_log([b"a"], [2.0]).regress_log, REGRESSION)
    assert columns.ids == [b"a"] and columns.predictions == [2.0]
    columns = prediction_log.decode_multi_inference(
        multi_inference_log([b"a"], [0.5], [3.0]).multi_inference_log, BINARY
    )
    assert columns.hidden_norms == [3.0] and columns.model_spec.version.value == 12
    columns = prediction_log.decode_predict(predict_log([b"a"], [0.5]).predict_log, BINARY)
    assert columns.ids == [b"a"] and columns.predictions == [0.5]


# ------------------------------------------------------------------------------------ robustness


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
    got, reasons = prediction_log.decode_prediction_log_lenient(raw, BINARY)
    assert set(reasons) <= set(records.REJECT_REASONS)
    for example_id, (prediction, hidden_norm, _, _) in got:
        assert 0 < len(example_id) <= parsing.MAX_ID_BYTES and 0.0 <= prediction <= 1.0
        assert math.isnan(hidden_norm) or hidden_norm >= 0.0
