"""Builders of test inputs for the reading room (and tests that need forward records): tf.Examples, plain records
and PredictionLogs of each type."""

import numpy as np
import tensorflow as tf
from tensorflow_serving.apis import prediction_log_pb2


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


# Plain records that break one rule each, with the reject reason.
PLAIN_REJECTS = [
    (b"\xff\xff\xff", "unparseable"),
    (b"\x0c" + plain(example_id=b"a", prediction=0.5), "unparseable"),
    (plain(prediction=0.5), "missing_id"),
    (plain(example_id=[], prediction=0.5), "bad_id_type"),  # an empty float_list
    (b"\n\x12\n\x10\n\nexample_id\x12\x02\n\x00" + plain(prediction=0.5), "missing_id"),  # empty bytes_list
    (plain(example_id=7, prediction=0.5), "bad_id_type"),
    (plain(example_id=[b"a", b"b"], prediction=0.5), "bad_id_count"),
    (plain(example_id=b"x" * 1025, prediction=0.5), "id_too_long"),
    (plain(example_id=b"", prediction=0.5), "empty_id"),
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


def write_tfrecords(path: str, serialized) -> str:
    """TFRecord file, gzip when the name ends in .gz."""
    options = "GZIP" if path.endswith(".gz") else None
    with tf.io.TFRecordWriter(path, options=options) as writer:
        for raw in serialized:
            writer.write(raw)
    return path
