"""Recorder: a Keras model exported with forward-record outputs, served by tfx_bsl RunInference (the engine
inside TFX's BulkInferrer), logs written like BulkInferrer writes them and read back with
ReadForwardRecords: every record matches model.predict and a direct hidden-norm computation."""

import math
import os

import apache_beam as beam
import numpy as np
import pytest
import tensorflow as tf
from apache_beam.testing.test_pipeline import TestPipeline as BeamTestPipeline
from apache_beam.testing.util import BeamAssertException, assert_that, equal_to
from tensorflow.core.protobuf import saved_model_pb2
from tensorflow_serving.apis import prediction_log_pb2
from tfx_bsl.public.beam import RunInference
from tfx_bsl.public.proto import model_spec_pb2

from tfx_curator.components.curator.reading import record_io
from tfx_curator.components.curator.reading.records import RecordConfig
from tfx_curator.serving import recorder

N_EXAMPLES = 48
CARRIERS = ["AA", "DL", "UA", "B6"]
FEATURE_SPEC = {
    "distance": tf.io.FixedLenFeature([1], tf.float32),
    "hour": tf.io.FixedLenFeature([1], tf.float32),
    "month": tf.io.FixedLenFeature([1], tf.int64),
    "carrier": tf.io.FixedLenFeature([1], tf.string),
}


def feature_columns(rng, n, with_ids=False):
    columns = {
        "distance": rng.uniform(100, 3000, (n, 1)).astype(np.float32) / 1000.0,
        "hour": rng.integers(5, 23, (n, 1)).astype(np.float32) / 24.0,
        "month": rng.integers(1, 13, (n, 1)).astype(np.int64),
        "carrier": rng.choice(CARRIERS, (n, 1)).astype(object),
    }
    if with_ids:
        columns["example_id"] = np.array([[b"flight-%04d" % i] for i in range(n)], dtype=object)
    return columns


def build_model(keras, rng, id_input=False):
    """Dict inputs over numeric and categorical features; sigmoid head.

    id_input: the model also takes `example_id` as an input and ignores it (a passthrough feature, as
    when the Trainer feeds the whole parsed example); the recorder echoes it either way.
    """
    inputs = {
        "distance": keras.Input(shape=(1,), name="distance", dtype="float32"),
        "hour": keras.Input(shape=(1,), name="hour", dtype="float32"),
        "month": keras.Input(shape=(1,), name="month", dtype="int64"),
        "carrier": keras.Input(shape=(1,), name="carrier", dtype="string"),
    }
    carrier = keras.layers.StringLookup(vocabulary=CARRIERS, output_mode="one_hot", name="carrier_lookup")(
        inputs["carrier"]
    )
    month = keras.layers.Flatten()(keras.layers.Embedding(13, 3, name="month_embedding")(inputs["month"]))
    x = keras.layers.Concatenate()(
        [inputs["distance"], inputs["hour"], month, keras.layers.Reshape((len(CARRIERS) + 1,))(carrier)]
    )
    x = keras.layers.Dense(16, activation="relu", name="dense_1")(x)
    x = keras.layers.Dense(8, activation="tanh", name="last_hidden")(x)
    output = keras.layers.Dense(1, activation="sigmoid", name="head")(x)
    if id_input:
        inputs["example_id"] = keras.Input(shape=(1,), name="example_id", dtype="string")
    model = keras.Model(inputs=inputs, outputs=output)
    # Perturb the initial weights instead of training (fit() costs ~10-25 s here): any weights do for
    # checking that serving reproduces model.predict.
    model.set_weights([w + rng.normal(0, 0.3, w.shape).astype(w.dtype) for w in model.get_weights()])
    return model


def to_examples(columns, ids):
    examples = []
    for i, example_id in enumerate(ids):
        example = tf.train.Example()
        features = example.features.feature
        features["distance"].float_list.value.append(columns["distance"][i, 0])
        features["hour"].float_list.value.append(columns["hour"][i, 0])
        features["month"].int64_list.value.append(columns["month"][i, 0])
        features["carrier"].bytes_list.value.append(columns["carrier"][i, 0].encode())
        if isinstance(example_id, int):
            features["example_id"].int64_list.value.append(example_id)
        else:
            features["example_id"].bytes_list.value.append(example_id)
        examples.append(example)
    return examples


def expected_records(keras, model, columns, ids):
    """{id: (prediction, hidden_norm)} from model.predict and the last hidden layer's output directly."""
    predictions = model.predict(columns, verbose=0)[:, 0]
    hidden_model = keras.Model(inputs=model.input, outputs=model.get_layer("last_hidden").output)
    norms = np.sqrt(np.sum(np.square(hidden_model.predict(columns, verbose=0).astype(np.float64)), axis=1))
    keys = [str(i).encode() if isinstance(i, int) else i for i in ids]
    return {k: (float(p), float(h)) for k, p, h in zip(keys, predictions, norms)}


def run_inference_to_logs(examples, model_dir, signature, out_dir):
    """RunInference + WriteToTFRecord exactly as BulkInferrer's executor does."""
    spec = model_spec_pb2.InferenceSpecType(
        saved_model_spec=model_spec_pb2.SavedModelSpec(model_path=model_dir, signature_name=[signature])
    )
    with BeamTestPipeline() as pipeline:
        _ = (
            pipeline
            | beam.Create(examples)
            | RunInference(spec)
            | beam.io.WriteToTFRecord(
                os.path.join(out_dir, "prediction_logs"),
                file_name_suffix=".gz",
                coder=beam.coders.ProtoCoder(prediction_log_pb2.PredictionLog),
            )
        )
    return os.path.join(out_dir, "prediction_logs-*.gz")


def matches(expected, check_hidden):
    def _match(actual):
        if sorted(k for k, _ in actual) != sorted(expected):
            raise BeamAssertException(f"ids differ: {sorted(k for k, _ in actual)[:5]}...")
        for example_id, (prediction, hidden_norm, timestamp, version) in actual:
            want_p, want_h = expected[example_id]
            if abs(prediction - want_p) > 1e-5:
                raise BeamAssertException(f"{example_id}: prediction {prediction} != {want_p}")
            if check_hidden and abs(hidden_norm - want_h) > 1e-5:
                raise BeamAssertException(f"{example_id}: hidden_norm {hidden_norm} != {want_h}")
            if not check_hidden and not math.isnan(hidden_norm):
                raise BeamAssertException(f"{example_id}: unexpected hidden_norm {hidden_norm}")
            if not math.isnan(timestamp) or version != b"":
                raise BeamAssertException("RunInference logs carry no log_metadata")

    return _match


def read_and_check(pattern, expected, check_hidden, config=None):
    pipeline = BeamTestPipeline()
    outputs = pipeline | record_io.ReadForwardRecords(pattern, "predictionlog", config or RecordConfig())
    assert_that(outputs[record_io.RECORDS_TAG], matches(expected, check_hidden), label="CheckRecords")
    assert_that(outputs[record_io.REJECT_TAG], equal_to([]), label="NoRejects")
    pipeline.run().wait_until_finish()


@pytest.fixture(scope="module")
def tf_keras_export(tmp_path_factory):
    import tf_keras

    rng = np.random.default_rng(0)
    model = build_model(tf_keras, rng, id_input=True)
    spec = dict(FEATURE_SPEC, example_id=tf.io.FixedLenFeature([1], tf.string))
    model_dir = recorder.export_recording_model(model, str(tmp_path_factory.mktemp("model") / "1"), spec)
    columns = feature_columns(rng, N_EXAMPLES, with_ids=True)
    ids = [b"flight-%04d" % i for i in range(N_EXAMPLES)]
    return tf_keras, model, model_dir, columns, ids


@pytest.mark.parametrize("signature", ["serving_default", "classification", "regression"])
def test_run_inference_logs_round_trip(tf_keras_export, tmp_path, signature):
    keras, model, model_dir, columns, ids = tf_keras_export
    pattern = run_inference_to_logs(to_examples(columns, ids), model_dir, signature, str(tmp_path))
    # The predict signature carries hidden_norm and the echoed id; classify/regress carry the prediction
    # only, and the id is read from the logged request example.
    read_and_check(
        pattern, expected_records(keras, model, columns, ids), check_hidden=signature == "serving_default"
    )


def test_signature_method_names_and_outputs(tf_keras_export):
    _, _, model_dir, _, _ = tf_keras_export
    with open(os.path.join(model_dir, "saved_model.pb"), "rb") as f:
        signatures = saved_model_pb2.SavedModel.FromString(f.read()).meta_graphs[0].signature_def
    assert signatures["serving_default"].method_name == tf.saved_model.PREDICT_METHOD_NAME
    assert set(signatures["serving_default"].inputs) == {"examples"}
    assert set(signatures["serving_default"].outputs) == {"prediction", "hidden_norm", "example_id"}
    assert signatures["classification"].method_name == tf.saved_model.CLASSIFY_METHOD_NAME
    assert set(signatures["classification"].outputs) == {"scores", "classes"}
    assert signatures["regression"].method_name == tf.saved_model.REGRESS_METHOD_NAME
    assert set(signatures["regression"].outputs) == {"outputs"}
    tf.saved_model.experimental.read_fingerprint(model_dir)  # recomputed after the method-name patch


def test_keras3_model_int_ids_and_named_hidden_layer(tmp_path):
    import keras

    rng = np.random.default_rng(1)
    model = build_model(keras, rng)
    spec = dict(FEATURE_SPEC, example_id=tf.io.FixedLenFeature([1], tf.int64))
    model_dir = recorder.export_recording_model(
        model,
        str(tmp_path / "model"),
        spec,
        hidden_layer="last_hidden",
        prediction_key="p",
        hidden_norm_key="h",
    )
    columns = feature_columns(rng, 16)
    ids = list(range(1000, 1016))
    serialized = [e.SerializeToString() for e in to_examples(columns, ids)]
    outputs = tf.saved_model.load(model_dir).signatures["serving_default"](examples=tf.constant(serialized))
    expected = expected_records(keras, model, columns, ids)
    assert outputs["example_id"].numpy()[:, 0].tolist() == list(expected)
    np.testing.assert_allclose(outputs["p"].numpy()[:, 0], [p for p, _ in expected.values()], atol=1e-5)
    np.testing.assert_allclose(outputs["h"].numpy()[:, 0], [h for _, h in expected.values()], atol=1e-5)


def test_default_hidden_layer_is_input_of_last_dense(tmp_path):
    import keras

    inputs = {"x": keras.Input(shape=(2,), name="x")}
    hidden = keras.layers.Dense(3, name="h")(inputs["x"])
    model = keras.Model(inputs, keras.layers.Dense(1, name="out")(hidden))  # linear head: regression
    model_dir = recorder.export_recording_model(
        model, str(tmp_path / "m"), {"x": tf.io.FixedLenFeature([2], tf.float32)}
    )
    example = tf.train.Example()
    example.features.feature["x"].float_list.value.extend([1.0, -2.0])
    example.features.feature["example_id"].bytes_list.value.append(b"e1")
    loaded = tf.saved_model.load(model_dir)
    assert "classification" not in loaded.signatures  # no sigmoid/softmax head
    out = loaded.signatures["serving_default"](examples=tf.constant([example.SerializeToString()]))
    want_hidden = model.get_layer("h")(np.array([[1.0, -2.0]], np.float32)).numpy()
    np.testing.assert_allclose(
        out["hidden_norm"].numpy()[:, 0], np.linalg.norm(want_hidden, axis=1), atol=1e-5
    )
    assert out["example_id"].numpy().tolist() == [[b"e1"]]
    with pytest.raises(ValueError, match="lacks model inputs"):
        recorder.export_recording_model(model, str(tmp_path / "m2"), {})


def dropout_model(keras, rng):
    """x -> Dense -> BatchNormalization (moving statistics far from a batch's) -> Dropout(0.5) -> linear head:
    inverted dropout before a linear layer, so the mean of MC-dropout passes is the deterministic output."""
    x = keras.Input(shape=(4,), name="x")
    h = keras.layers.Dense(32, activation="relu", name="dense")(x)
    h = keras.layers.BatchNormalization(name="norm")(h)
    h = keras.layers.Dropout(0.5, name="drop")(h)
    model = keras.Model({"x": x}, keras.layers.Dense(1, name="head")(h))
    model.set_weights([w + rng.normal(0, 0.5, w.shape).astype(w.dtype) for w in model.get_weights()])
    norm = model.get_layer("norm")
    gamma, beta, mean, var = norm.get_weights()
    norm.set_weights([gamma, beta, mean + 3.0, np.abs(var) * 10 + 1.0])
    return model


def x_examples(x):
    out = []
    for i, row in enumerate(x):
        example = tf.train.Example()
        example.features.feature["x"].float_list.value.extend(row.tolist())
        example.features.feature["example_id"].bytes_list.value.append(b"e%d" % i)
        out.append(example)
    return out


@pytest.mark.parametrize("keras_name", ["tf_keras", "keras"])
def test_passes_are_dropout_passes_whose_mean_approaches_the_deterministic_output(tmp_path, keras_name):
    import importlib

    keras = importlib.import_module(keras_name)
    rng = np.random.default_rng(3)
    model = dropout_model(keras, rng)
    k = 256
    model_dir = recorder.export_recording_model(
        model, str(tmp_path / "m"), {"x": tf.io.FixedLenFeature([4], tf.float32)}, passes=k
    )
    x = rng.normal(size=(12, 4)).astype(np.float32)
    serialized = [e.SerializeToString() for e in x_examples(x)]
    out = tf.saved_model.load(model_dir).signatures["serving_default"](examples=tf.constant(serialized))
    passes = out[recorder.PASSES_OUTPUT].numpy()
    deterministic = model(x, training=False).numpy()[:, 0]
    assert passes.shape == (12, k) and passes.dtype == np.float32
    np.testing.assert_allclose(out["prediction"].numpy()[:, 0], deterministic, rtol=1e-5, atol=1e-5)
    spread = passes.std(axis=1)
    assert (spread > 1e-3).all()  # every example's passes differ (dropout is on) ...
    assert len({tuple(passes[:, j]) for j in range(k)}) == k  # ... and no two passes are the same draw
    # ... while batch normalisation stays in inference mode: the passes' mean is the deterministic output
    error = np.abs(passes.mean(axis=1) - deterministic)
    assert (error <= 5 * spread / np.sqrt(k) + 1e-4).all(), (error, spread)


def test_one_pass_keeps_the_signatures_and_passes_need_dropout(tmp_path):
    import tf_keras

    rng = np.random.default_rng(4)
    model = dropout_model(tf_keras, rng)
    spec = {"x": tf.io.FixedLenFeature([4], tf.float32)}

    def signature_defs(path):
        with open(os.path.join(path, "saved_model.pb"), "rb") as f:
            defs = saved_model_pb2.SavedModel.FromString(f.read()).meta_graphs[0].signature_def
        return {name: defs[name].SerializeToString(deterministic=True) for name in defs}

    without = recorder.export_recording_model(model, str(tmp_path / "a"), spec)
    one = recorder.export_recording_model(model, str(tmp_path / "b"), spec, passes=1)
    assert signature_defs(one) == signature_defs(without)  # byte for byte
    three = recorder.export_recording_model(model, str(tmp_path / "c"), spec, passes=3)
    outputs = saved_model_pb2.SavedModel.FromString(open(os.path.join(three, "saved_model.pb"), "rb").read())
    assert set(outputs.meta_graphs[0].signature_def["serving_default"].outputs) == {
        "prediction",
        "hidden_norm",
        "example_id",
        recorder.PASSES_OUTPUT,
    }
    plain = tf_keras.Model(model.input, model.get_layer("head")(model.get_layer("norm").output))
    with pytest.raises(ValueError, match="needs a Dropout layer"):
        recorder.export_recording_model(plain, str(tmp_path / "d"), spec, passes=3)
    with pytest.raises(ValueError, match="passes must be an integer >= 1"):
        recorder.export_recording_model(model, str(tmp_path / "e"), spec, passes=0)


def test_bulk_inferrer_logs_of_passes_are_read_as_k_records_of_each_example(tmp_path):
    """RunInference over the predict signature with passes=3: the Curator's reader turns each logged example into
    3 records (one per pass, the logged values, the same version), which the mean_std policy combines."""
    import tf_keras

    rng = np.random.default_rng(5)
    model = dropout_model(tf_keras, rng)
    model_dir = recorder.export_recording_model(
        model, str(tmp_path / "m"), {"x": tf.io.FixedLenFeature([4], tf.float32)}, passes=3
    )
    x = rng.normal(size=(10, 4)).astype(np.float32)
    pattern = run_inference_to_logs(x_examples(x), model_dir, "serving_default", str(tmp_path / "logs"))
    logged = {}
    for raw in tf.data.TFRecordDataset(tf.io.gfile.glob(pattern), compression_type="GZIP"):
        outputs = prediction_log_pb2.PredictionLog.FromString(raw.numpy()).predict_log.response.outputs
        ids = tf.make_ndarray(outputs["example_id"]).reshape(-1)
        passes = tf.make_ndarray(outputs[recorder.PASSES_OUTPUT])
        for i, row in zip(ids, passes):
            logged[i] = sorted(float(v) for v in row)
    config = RecordConfig(task="regression")

    def check(records):
        by_id = {}
        for example_id, (prediction, _, _, _) in records:
            by_id.setdefault(example_id, []).append(prediction)
        if {i: sorted(v) for i, v in by_id.items()} != logged or len(logged) != 10:
            raise BeamAssertException(f"records {by_id} != logged passes {logged}")

    pipeline = BeamTestPipeline()
    outputs = pipeline | record_io.ReadForwardRecords(pattern, "predictionlog", config)
    assert_that(outputs[record_io.RECORDS_TAG], check, label="KRecordsPerExample")
    assert_that(outputs[record_io.REJECT_TAG], equal_to([]), label="NoRejects")
    pipeline.run().wait_until_finish()
