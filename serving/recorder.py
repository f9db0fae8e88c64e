"""Serving-side recorder: export a Keras model whose signatures also emit the forward-record fields.

:func:`export_recording_model` wraps a trained functional Keras model (dict of feature tensors in) into a
SavedModel with these signatures, all taking serialized ``tf.Example`` strings, as TFX's BulkInferrer
(tfx_bsl ``RunInference``) and TF Serving's Predict / Classify / Regress APIs expect:

``serving_default`` (method ``tensorflow/serving/predict``, input ``examples``)
    outputs ``prediction`` (float32 [n, 1], or [n, k] for a k-column output), ``hidden_norm`` (float32
    [n, 1], L2 norm of the hidden layer) and ``example_id`` (string [n, 1], the request's id echoed back).
    Rank 2 because tfx_bsl's RunInference splits predict outputs per example with ``output[i]`` and needs
    an array (not a bare bytes object) for each example. With ``passes=k > 1`` also ``prediction_passes``
    (float32 [n, k]): k stochastic forward passes, the model's Dropout layers dropping (everything else in
    inference mode, e.g. batch normalisation), which the Curator reads as k records of each example.
``classification`` (method ``tensorflow/serving/classify``, input ``inputs``; only for a sigmoid or
softmax output) outputs ``scores`` (float32 [n, 2] = [1 - p, p] for a sigmoid; the softmax as is) and
``classes`` (string [n, k] = "0", "1", ...).
``regression`` (method ``tensorflow/serving/regress``, input ``inputs``; only for a single-column output)
outputs ``outputs`` (float32 [n] = the prediction).

The prediction and the hidden activation come from one sub-model that outputs both, so serving costs one
forward pass plus one norm per instance. Classify and regress signatures must have exactly the output keys
above (TF Serving and tfx_bsl check them), so only the predict signature carries ``hidden_norm`` and the
id; ``RecordConfig()`` defaults read it (the id from the echoed ``example_id`` output).

TF2's ``tf.saved_model.save`` writes every signature with the predict method name; the classify and
regress method names are set afterwards in ``saved_model.pb`` (and the fingerprint is recomputed).

Both Keras 3 (``keras``, what ``tf.keras`` is in TF 2.16) and Keras 2 (``tf_keras``) functional models
work; the project's Trainer uses ``tf_keras`` because TFX 1.16's Transform and Model Analysis are
Keras-2-only (see docs/forward_record_format.md).
"""

from __future__ import annotations

import os

import tensorflow as tf

from tfx_curator.components.curator.reading.records import PASSES_OUTPUT

SERVING_SIGNATURE = tf.saved_model.DEFAULT_SERVING_SIGNATURE_DEF_KEY  # "serving_default"
CLASSIFICATION_SIGNATURE = "classification"
REGRESSION_SIGNATURE = "regression"
PREDICT_INPUT_KEY = "examples"


def _keras_module_of(model):
    """The Keras package (keras 3 or tf_keras) that built `model`."""
    if type(model).__module__.startswith("tf_keras") or any(
        c.__module__.startswith("tf_keras") for c in type(model).__mro__
    ):
        import tf_keras

        return tf_keras
    import keras

    return keras


def _producing_layer(tensor):
    history = getattr(tensor, "_keras_history", None)
    if history is None:
        raise ValueError("model must be a functional Keras model (built from keras.Input)")
    return history[0]


def _hidden_tensor(model, hidden_layer: str | None):
    if hidden_layer is not None:
        return model.get_layer(hidden_layer).output
    dense = [layer for layer in model.layers if type(layer).__name__ == "Dense"]
    if not dense:
        raise ValueError("model has no Dense layer: pass hidden_layer")
    return dense[-1].input


def _output_activation(model) -> str:
    layer = _producing_layer(model.outputs[0])
    activation = getattr(layer, "activation", None)
    return getattr(activation, "__name__", "") if activation is not None else ""


def _input_names(model) -> tuple[list[str], bool]:
    """(feature names the model takes, whether it takes a dict)."""
    structure = model.input
    if isinstance(structure, dict):
        return list(structure.keys()), True
    names = getattr(model, "input_names", None) or [t.name.split(":")[0] for t in model.inputs]
    return list(names), False


def _dropping_copy(model, keras_module):
    """A copy of `model` sharing all its layers and weights, except that its Dropout layers (and subclasses)
    drop at inference too: one call is one stochastic forward pass (MC dropout)."""
    base = keras_module.layers.Dropout
    replaced = []

    def clone(layer):
        if not isinstance(layer, base):
            return layer  # the same layer: shared weights, inference behaviour
        cls = type(layer)
        dropping = type(f"Dropping{cls.__name__}", (cls,), {"call": _dropping_call})
        replaced.append(layer.name)
        return dropping.from_config(layer.get_config())

    copy = keras_module.models.clone_model(model, clone_function=clone)
    if not replaced:
        raise ValueError("passes > 1 needs a Dropout layer in the model: without one every pass is the same")
    return copy


def _dropping_call(self, inputs, training=None):
    return super(type(self), self).call(inputs, training=True)


def _patch_method_names(export_dir: str, method_names: dict[str, str]) -> None:
    """Sets signature method names in saved_model.pb and recomputes fingerprint.pb."""
    from tensorflow.core.protobuf import saved_model_pb2

    path = os.path.join(export_dir, "saved_model.pb")
    saved_model = saved_model_pb2.SavedModel()
    with tf.io.gfile.GFile(path, "rb") as f:
        saved_model.ParseFromString(f.read())
    for meta_graph in saved_model.meta_graphs:
        for name, method in method_names.items():
            meta_graph.signature_def[name].method_name = method
    with tf.io.gfile.GFile(path, "wb") as f:
        f.write(saved_model.SerializeToString())
    fingerprint_path = os.path.join(export_dir, "fingerprint.pb")
    if tf.io.gfile.exists(fingerprint_path):
        from tensorflow.python.saved_model.pywrap_saved_model import fingerprinting

        with tf.io.gfile.GFile(fingerprint_path, "wb") as f:
            f.write(fingerprinting.CreateFingerprintDef(export_dir))


def export_recording_model(
    model,
    export_dir: str,
    feature_spec: dict,
    id_feature: str = "example_id",
    hidden_layer: str | None = None,
    prediction_key: str = "prediction",
    hidden_norm_key: str = "hidden_norm",
    classification: bool | None = None,
    passes: int = 1,
) -> str:
    """Exports `model` as a SavedModel whose signatures also emit the forward-record fields.

    Args:
      model: a trained functional Keras model (keras 3 or tf_keras) taking a dict of feature tensors as
        parsed from tf.Example with `feature_spec` (list inputs are matched by input name).
      export_dir: where to write the SavedModel (a new or empty directory).
      feature_spec: tf.io.parse_example spec of the model's features. `id_feature` need not be in it
        (then it is read as a single string, default ""); an int64 id is echoed as decimal ASCII.
      id_feature: feature holding the example id, echoed as the `id_feature` predict output.
      hidden_layer: name of the layer whose output's L2 norm is `hidden_norm`; default: the input of the
        last Dense layer (the last hidden layer, whose norm enters the last layer's gradient norm).
      prediction_key: predict output key of the model's output.
      hidden_norm_key: predict output key of the hidden norm.
      classification: export the "classification" signature; default: when the output layer's
        activation is sigmoid (1 column) or softmax.
      passes: k > 1 adds the predict output `prediction_passes` [n, k]: k stochastic forward passes with the
        model's Dropout layers on (training=True for dropout only), for the Curator's `mean_std` duplicate
        policy. Needs a one-column output and a Dropout layer. 1: the signatures are exactly as without it.

    Returns:
      export_dir.
    """
    if len(model.outputs) != 1:
        raise ValueError(f"model must have one output, has {len(model.outputs)}")
    if len({id_feature, prediction_key, hidden_norm_key, PASSES_OUTPUT}) != 4:
        raise ValueError(
            f"id_feature, prediction_key, hidden_norm_key and {PASSES_OUTPUT!r} must be distinct"
        )
    if isinstance(passes, bool) or not isinstance(passes, int) or passes < 1:
        raise ValueError(f"passes must be an integer >= 1, got {passes!r}")
    keras_module = _keras_module_of(model)
    recording_model = keras_module.Model(
        inputs=model.input, outputs=[_hidden_tensor(model, hidden_layer), model.outputs[0]]
    )
    input_names, dict_input = _input_names(model)
    missing = [name for name in input_names if name not in feature_spec]
    if missing:
        raise ValueError(f"feature_spec lacks model inputs {missing}")
    spec = dict(feature_spec)
    if id_feature not in spec:
        spec[id_feature] = tf.io.FixedLenFeature([], tf.string, default_value="")
    output_columns = model.outputs[0].shape[-1] if len(model.outputs[0].shape) > 1 else 1
    activation = _output_activation(model)
    if classification is None:
        classification = activation == "softmax" or (activation == "sigmoid" and output_columns == 1)
    if passes > 1 and output_columns != 1:
        raise ValueError(f"passes > 1 needs a one-column output, the model has {output_columns} columns")

    def parse(serialized):
        """(parsed features, the model's inputs)."""
        features = tf.io.parse_example(serialized, spec)
        inputs = {name: features[name] for name in input_names}
        return features, inputs if dict_input else [inputs[name] for name in input_names]

    def forward(serialized, parsed=None):
        features, inputs = parsed or parse(serialized)
        hidden, prediction = recording_model(inputs, training=False)
        hidden = tf.cast(hidden, tf.float32)
        batch = tf.shape(hidden)[0]
        hidden_norm = tf.norm(tf.reshape(hidden, [batch, -1]), axis=1, keepdims=True)
        prediction = tf.reshape(tf.cast(prediction, tf.float32), [batch, output_columns])
        example_id = features[id_feature]
        if example_id.dtype != tf.string:
            example_id = tf.strings.as_string(example_id)
        example_id = tf.reshape(example_id, [batch, 1])
        return prediction, hidden_norm, example_id

    module = tf.Module()
    module.recording_model = recording_model

    @tf.function(input_signature=[tf.TensorSpec([None], tf.string, name=PREDICT_INPUT_KEY)])
    def predict(examples):
        prediction, hidden_norm, example_id = forward(examples)
        return {prediction_key: prediction, hidden_norm_key: hidden_norm, id_feature: example_id}

    if passes > 1:
        module.passes_model = _dropping_copy(model, keras_module)
        # Keras 3 keeps a Dropout's random state in a seed-generator variable outside the layer's weights
        module.passes_state = list(module.passes_model.variables)

        @tf.function(input_signature=[tf.TensorSpec([None], tf.string, name=PREDICT_INPUT_KEY)])
        def predict(examples):  # noqa: F811 - the predict signature with the passes
            parsed = parse(examples)
            prediction, hidden_norm, example_id = forward(examples, parsed)
            # one call on each example repeated k times: every row draws its own dropout mask
            repeated = tf.nest.map_structure(lambda t: tf.repeat(t, passes, axis=0), parsed[1])
            out = module.passes_model(repeated, training=False)
            batch = tf.shape(prediction)[0]
            return {
                prediction_key: prediction,
                hidden_norm_key: hidden_norm,
                id_feature: example_id,
                PASSES_OUTPUT: tf.reshape(tf.cast(out, tf.float32), [batch, passes]),
            }

    signatures = {SERVING_SIGNATURE: predict.get_concrete_function()}
    method_names = {}

    if classification:

        @tf.function(input_signature=[tf.TensorSpec([None], tf.string, name="inputs")])
        def classify(inputs):
            prediction, _, _ = forward(inputs)
            if output_columns == 1:
                scores = tf.concat([1.0 - prediction, prediction], axis=1)
                columns = 2
            else:
                scores = prediction
                columns = output_columns
            labels = tf.constant([str(i) for i in range(columns)])
            classes = tf.tile(tf.expand_dims(labels, 0), [tf.shape(scores)[0], 1])
            return {
                tf.saved_model.CLASSIFY_OUTPUT_SCORES: scores,
                tf.saved_model.CLASSIFY_OUTPUT_CLASSES: classes,
            }

        signatures[CLASSIFICATION_SIGNATURE] = classify.get_concrete_function()
        method_names[CLASSIFICATION_SIGNATURE] = tf.saved_model.CLASSIFY_METHOD_NAME

    if output_columns == 1:

        @tf.function(input_signature=[tf.TensorSpec([None], tf.string, name="inputs")])
        def regress(inputs):
            prediction, _, _ = forward(inputs)
            return {tf.saved_model.REGRESS_OUTPUTS: tf.reshape(prediction, [-1])}

        signatures[REGRESSION_SIGNATURE] = regress.get_concrete_function()
        method_names[REGRESSION_SIGNATURE] = tf.saved_model.REGRESS_METHOD_NAME

    tf.saved_model.save(module, export_dir, signatures=signatures)
    _patch_method_names(export_dir, method_names)
    return export_dir
