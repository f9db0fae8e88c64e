"""Decode TF Serving ``PredictionLog`` protos into forward records: one typed function per log type.

BulkInferrer writes them (``InferenceResult/prediction_logs-*.gz``) and tfx_bsl's ``RunInference`` returns
them. Each supported log type (classify, regress, multi_inference, predict) has a decoder in :data:`DECODERS`
that returns :class:`Columns`: one id, one prediction and one hidden norm per request example, each a value or
the :class:`RecordError` that example is rejected with, so that a multi-example request keeps its good
examples. ``session_run_log`` and ``predict_streamed_log`` are rejected as ``unsupported_log_type``.

Tensors are untrusted too: a shape is checked against ``MAX_TENSOR_ELEMENTS`` before anything is allocated,
and ids and serialized requests must come one value per element (no broadcast).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import NamedTuple

import tensorflow as tf
from tensorflow_serving.apis import classification_pb2, input_pb2, model_pb2, prediction_log_pb2

from tfx_curator.components.curator.reading.parsing import (
    MAX_TENSOR_ELEMENTS,
    MISSING_ID,
    RecordError,
    check_id,
    id_from_feature,
    or_error,
    parse_proto,
)
from tfx_curator.components.curator.reading.records import (
    PASSES_OUTPUT,
    Record,
    RecordConfig,
    check_hidden_norm,
    check_model_version,
    check_prediction,
)

# Predict-request input aliases that hold serialized tf.Examples, in order of preference (TF Serving's
# and tfx_bsl's conventions).
_EXAMPLE_INPUT_ALIASES = ("examples", "inputs", "input")


class Columns(NamedTuple):
    """What a log decoder reads: per request example, a value or the RecordError that example is rejected with."""

    ids: list  # bytes | RecordError
    predictions: list  # float | RecordError
    hidden_norms: list  # float (NaN: not logged)
    model_spec: model_pb2.ModelSpec | None  # of the response, for the model version


# --------------------------------------------------------------------------------------------------
# Tensors
# --------------------------------------------------------------------------------------------------

_DT_STRING = tf.string.as_datatype_enum
_INTEGER_DTYPES = frozenset(
    tf.as_dtype(d).as_datatype_enum for d in (tf.int8, tf.int16, tf.int32, tf.int64, tf.uint8)
)
_NUMERIC_DTYPES = _INTEGER_DTYPES | frozenset(
    tf.as_dtype(d).as_datatype_enum for d in (tf.float16, tf.bfloat16, tf.float32, tf.float64)
)
# dtype -> repeated field holding one value per element (the common encoding of small tensors).
_VALUE_FIELDS = {
    tf.float32.as_datatype_enum: "float_val",
    tf.float64.as_datatype_enum: "double_val",
    tf.int64.as_datatype_enum: "int64_val",
    tf.int32.as_datatype_enum: "int_val",
    tf.string.as_datatype_enum: "string_val",
}


def _dtype_name(dtype_enum: int) -> str:
    """Name of a TensorProto dtype; the enum is open, so an untrusted proto may hold any number."""
    try:
        return tf.dtypes.as_dtype(dtype_enum).name
    except TypeError:
        return f"dtype {dtype_enum}"


def _tensor_shape(tensor_proto) -> tuple[tuple, int]:
    """(shape, number of elements) of a TensorProto; RecordError for unknown dimensions or too many elements."""
    shape = tuple(dim.size for dim in tensor_proto.tensor_shape.dim)
    size = 1
    for dim in shape:
        if dim < 0:
            raise RecordError("bad_tensor", "unknown dimension")
        size *= dim
        if size > MAX_TENSOR_ELEMENTS:
            raise RecordError("bad_tensor", "too many elements")
    return shape, size


def _tensor_values(tensor_proto, one_per_element: bool = False) -> tuple[list, tuple]:
    """(flat list of values, shape) of a TensorProto, with a size guard (the proto is untrusted).

    Tensors with one explicit value per element are read directly; everything else (tensor_content,
    broadcast values, other dtypes) goes through tf.make_ndarray. `one_per_element` refuses broadcast values
    (fewer values than elements), as ids and serialized requests must come: a broadcast would turn a few
    bytes into up to MAX_TENSOR_ELEMENTS examples (seconds of CPU for one record).
    """
    shape, size = _tensor_shape(tensor_proto)
    field = _VALUE_FIELDS.get(tensor_proto.dtype)
    if field is None and tensor_proto.dtype in _INTEGER_DTYPES:
        field = "int_val"  # int8, int16, uint8
    if field is not None and not tensor_proto.tensor_content:
        values = getattr(tensor_proto, field)
        if len(values) == size:
            return list(values), shape
    if one_per_element and not tensor_proto.tensor_content:
        raise RecordError("bad_tensor", f"fewer values than the {size} elements (a broadcast)")
    try:
        return tf.make_ndarray(tensor_proto).reshape(-1).tolist(), shape
    except Exception as e:  # noqa: BLE001 - any failure of an untrusted tensor is a reject
        raise RecordError("bad_tensor", str(e)[:200]) from None


def _per_row(tensor_proto, n: int, field: str, config: RecordConfig, allow_two_columns: bool) -> list:
    """One value per example from a predict output: [n], [n, 1], ... or (binary) [n, 2] -> column 1."""
    if tensor_proto.dtype not in _NUMERIC_DTYPES:
        raise RecordError(f"bad_{field}_type", _dtype_name(tensor_proto.dtype))
    shape, size = _tensor_shape(tensor_proto)  # checked before decoding: a broadcast may claim 2**20 values
    two_columns = allow_two_columns and config.task == "binary" and size == 2 * n and shape and shape[-1] == 2
    if size != n and not two_columns:
        raise RecordError(f"bad_{field}_shape", f"shape {shape} for {n} examples")
    values, shape = _tensor_values(tensor_proto)
    return values[1::2] if two_columns else values


# --------------------------------------------------------------------------------------------------
# Request examples and classification scores
# --------------------------------------------------------------------------------------------------


def _example_id(example: tf.train.Example, context: tf.train.Example | None, config: RecordConfig) -> bytes:
    """The id of a request example, else of its context (ExampleListWithContext)."""
    feature_map = example.features.feature  # each nested access builds a wrapper: read once
    if config.id_feature in feature_map:
        return id_from_feature(feature_map[config.id_feature])
    if context is not None and config.id_feature in context.features.feature:
        return id_from_feature(context.features.feature[config.id_feature])
    raise RecordError(MISSING_ID)


def _request_examples(input_proto: input_pb2.Input) -> list:
    """[(example, context_or_None)] of a tensorflow_serving Input."""
    kind = input_proto.WhichOneof("kind")
    if kind == "example_list":
        return [(e, None) for e in input_proto.example_list.examples]
    if kind == "example_list_with_context":
        lst = input_proto.example_list_with_context
        context = lst.context if lst.HasField("context") else None
        return [(e, context) for e in lst.examples]
    return []


def _class_score(classifications: classification_pb2.Classifications, config: RecordConfig) -> float:
    classes = classifications.classes
    for klass in classes:
        if klass.label == config.class_label:
            return klass.score
    if not any(klass.label for klass in classes):
        if len(classes) == 2:
            return classes[1].score  # unlabelled binary scores: [negative, positive]
        if len(classes) == 1:
            return classes[0].score
    raise RecordError("missing_class_label", f"no class {config.class_label!r}")


def _class_scores(result: classification_pb2.ClassificationResult, config: RecordConfig) -> list:
    return [or_error(_class_score, c, config) for c in result.classifications]


def _columns(input_proto: input_pb2.Input, values: list, hidden: list | None, model_spec, config) -> Columns:
    """Columns of a log whose request is an Input of tf.Examples, one result per example."""
    examples = _request_examples(input_proto)
    if not examples:
        raise RecordError("no_request_example")
    if len(values) != len(examples) or (hidden is not None and len(hidden) != len(examples)):
        raise RecordError("example_count_mismatch", f"{len(values)} results for {len(examples)} examples")
    ids = [or_error(_example_id, example, context, config) for example, context in examples]
    return Columns(ids, values, hidden if hidden is not None else [math.nan] * len(values), model_spec)


# --------------------------------------------------------------------------------------------------
# One decoder per log type
# --------------------------------------------------------------------------------------------------


def decode_classify(log: prediction_log_pb2.ClassifyLog, config: RecordConfig) -> Columns:
    """Classify log: the score of the class ``class_label`` per request example."""
    values = _class_scores(log.response.result, config)
    return _columns(log.request.input, values, None, log.response.model_spec, config)


def decode_regress(log: prediction_log_pb2.RegressLog, config: RecordConfig) -> Columns:
    """Regress log: the regression value per request example."""
    values = [r.value for r in log.response.result.regressions]
    return _columns(log.request.input, values, None, log.response.model_spec, config)


def _pick_inference_result(results, config: RecordConfig):
    """The multi_inference result holding the prediction: signature ``prediction_key``, else the first
    classification (binary) / regression result that is not the hidden norm's, else any result."""
    for result in results:
        if result.model_spec.signature_name == config.prediction_key:
            return result
    preferred = "classification_result" if config.task == "binary" else "regression_result"
    candidates = [
        r
        for r in results
        if r.model_spec.signature_name != config.hidden_norm_key or not config.hidden_norm_key
    ]
    for result in candidates:
        if result.WhichOneof("result") == preferred:
            return result
    for result in candidates:
        if result.WhichOneof("result") is not None:
            return result
    return None


def decode_multi_inference(log: prediction_log_pb2.MultiInferenceLog, config: RecordConfig) -> Columns:
    """Multi-inference log: the prediction from one result, the hidden norm from the regression result whose
    signature is ``hidden_norm_key``."""
    chosen = _pick_inference_result(log.response.results, config)
    if chosen is None:
        raise RecordError("missing_prediction", "no inference result")
    kind = chosen.WhichOneof("result")
    if kind == "classification_result":
        values = _class_scores(chosen.classification_result, config)
    elif kind == "regression_result":
        values = [r.value for r in chosen.regression_result.regressions]
    else:
        raise RecordError("missing_prediction", "empty inference result")
    hidden = None
    if config.hidden_norm_key:
        for result in log.response.results:
            if (
                result is not chosen
                and result.model_spec.signature_name == config.hidden_norm_key
                and result.WhichOneof("result") == "regression_result"
            ):
                hidden = [r.value for r in result.regression_result.regressions]
                break
    return _columns(log.request.input, values, hidden, chosen.model_spec, config)


def _find_example_input(inputs):
    """The serialized-tf.Example input tensor of a predict request, or None."""
    for alias in _EXAMPLE_INPUT_ALIASES:
        if alias in inputs and inputs[alias].dtype == _DT_STRING:
            return inputs[alias]
    strings = [inputs[k] for k in sorted(inputs.keys()) if inputs[k].dtype == _DT_STRING]
    return strings[0] if len(strings) == 1 else None


def _request_example_id(serialized: bytes, config: RecordConfig) -> bytes:
    example = parse_proto(tf.train.Example, serialized, "unparseable_request_example")
    return _example_id(example, None, config)


def _predict_ids(log: prediction_log_pb2.PredictLog, config: RecordConfig) -> list:
    """Ids from an echoed id output, else a raw id input, else the serialized tf.Examples of the request."""
    outputs = log.response.outputs
    id_key = config.id_output_key
    if id_key is None and config.id_feature in outputs:
        id_key = config.id_feature  # echoed by the recorder
    inputs = None
    if id_key is not None:
        if id_key not in outputs:
            raise RecordError(MISSING_ID, f"no output {id_key!r}")
        tensor = outputs[id_key]
    else:  # the request is only touched when needed: each nested message access costs
        inputs = log.request.inputs
        # a raw-feature request carries the id as an input tensor
        tensor = inputs[config.id_feature] if config.id_feature in inputs else None
    if tensor is not None:
        if tensor.dtype != _DT_STRING and tensor.dtype not in _INTEGER_DTYPES:
            raise RecordError("bad_id_type", _dtype_name(tensor.dtype))
        return [or_error(check_id, v) for v in _tensor_values(tensor, one_per_element=True)[0]]
    tensor = _find_example_input(inputs)
    if tensor is None:
        raise RecordError("no_request_example", "no serialized tf.Example input")
    serialized = _tensor_values(tensor, one_per_element=True)[0]
    return [or_error(_request_example_id, raw, config) for raw in serialized]


def decode_predict(log: prediction_log_pb2.PredictLog, config: RecordConfig) -> Columns:
    """Predict log: outputs ``prediction_key`` and (optional) ``hidden_norm_key``, one row per example; with a
    ``prediction_passes`` output [n, k] (the recorder's ``passes=k``), k rows per example, one per pass."""
    ids = _predict_ids(log, config)
    n = len(ids)
    if n == 0:
        raise RecordError("no_request_example")
    outputs = log.response.outputs
    if config.prediction_key not in outputs:
        raise RecordError("missing_prediction", f"no output {config.prediction_key!r}")
    predictions = _per_row(outputs[config.prediction_key], n, "prediction", config, True)
    if config.hidden_norm_key and config.hidden_norm_key in outputs:
        hidden = _per_row(outputs[config.hidden_norm_key], n, "hidden_norm", config, False)
    else:
        hidden = [math.nan] * n
    if PASSES_OUTPUT in outputs:  # k passes per example: k records of it, pass by pass
        k, passes = _passes(outputs[PASSES_OUTPUT], n)
        return Columns(
            [i for i in ids for _ in range(k)],
            passes,
            [h for h in hidden for _ in range(k)],
            log.response.model_spec,
        )
    return Columns(ids, predictions, hidden, log.response.model_spec)


def _passes(tensor_proto, n: int) -> tuple[int, list]:
    """(k, values row by row) of a [n, k] predict output of k forward passes per example."""
    if tensor_proto.dtype not in _NUMERIC_DTYPES:
        raise RecordError("bad_prediction_type", f"{PASSES_OUTPUT}: {_dtype_name(tensor_proto.dtype)}")
    shape, size = _tensor_shape(tensor_proto)
    if len(shape) != 2 or shape[0] != n or shape[1] < 1:
        raise RecordError("bad_prediction_shape", f"{PASSES_OUTPUT} shape {shape} for {n} examples")
    return shape[1], _tensor_values(tensor_proto)[0]


# The PredictionLog ``log_type`` oneof -> its decoder. A log type missing here is "unsupported_log_type".
DECODERS: dict[str, Callable[..., Columns]] = {
    "classify_log": decode_classify,
    "regress_log": decode_regress,
    "multi_inference_log": decode_multi_inference,
    "predict_log": decode_predict,
}


# --------------------------------------------------------------------------------------------------
# Metadata and the whole log
# --------------------------------------------------------------------------------------------------


def _model_spec_version(model_spec: model_pb2.ModelSpec) -> bytes:
    which = model_spec.WhichOneof("version_choice")
    if which == "version":
        return str(model_spec.version.value).encode()
    if which == "version_label":
        return check_model_version(model_spec.version_label.encode())
    return b""


def _log_metadata(log: prediction_log_pb2.PredictionLog, response_model_spec) -> tuple[float, bytes]:
    """(timestamp, model_version) from log_metadata, the version falling back to the response's spec."""
    metadata = log.log_metadata
    timestamp = float(metadata.timestamp_secs) if metadata.timestamp_secs else math.nan
    version = b""
    if metadata.HasField("model_spec"):
        version = _model_spec_version(metadata.model_spec)
    if not version and response_model_spec is not None:
        version = _model_spec_version(response_model_spec)
    return timestamp, version


def decode_prediction_log_lenient(serialized: bytes, config: RecordConfig) -> tuple[list[Record], list[str]]:
    """Decodes one serialized PredictionLog; never raises RecordError.

    Returns (records, reasons): one record per valid request example, one reason per rejected example (or
    a single reason when the whole log is unusable).
    """
    try:
        log = parse_proto(prediction_log_pb2.PredictionLog, serialized, "unparseable")
        kind = log.WhichOneof("log_type")
        if kind is None:
            raise RecordError("empty_log")
        if kind not in DECODERS:
            raise RecordError("unsupported_log_type", kind)
        columns = DECODERS[kind](getattr(log, kind), config)
        timestamp, version = _log_metadata(log, columns.model_spec)
    except RecordError as e:
        return [], [e.reason]
    records, reasons = [], []
    for example_id, value, norm in zip(columns.ids, columns.predictions, columns.hidden_norms):
        try:
            if isinstance(example_id, RecordError):
                raise example_id
            if isinstance(value, RecordError):
                raise value
            records.append(
                (example_id, (check_prediction(value, config), check_hidden_norm(norm), timestamp, version))
            )
        except RecordError as e:
            reasons.append(e.reason)
    return records, reasons


def decode_prediction_log(serialized: bytes, config: RecordConfig) -> list[Record]:
    """Decodes one serialized PredictionLog into records, one per request example.

    Raises RecordError (the first problem found) when the log or any of its examples is unusable; use
    :func:`decode_prediction_log_lenient` to keep the good examples of a multi-example request.
    """
    records, reasons = decode_prediction_log_lenient(serialized, config)
    if reasons:
        raise RecordError(reasons[0])
    return records
