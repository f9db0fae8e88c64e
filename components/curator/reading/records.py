"""Forward records: decode serving logs into constant-size records (pure functions, no Beam).

A forward record is what the serving path leaves for every served instance (GUIDE section 1). Decoded, it
is a plain tuple, cheap for Beam to shuffle::

    (example_id: bytes, (prediction: float, hidden_norm: float, timestamp: float, model_version: bytes))

``hidden_norm`` and ``timestamp`` (seconds since the Unix epoch) are NaN when absent; ``model_version`` is
``b""`` when absent. Two sources are understood:

* ``PredictionLog`` protos (``tensorflow_serving.apis.prediction_log_pb2``), as TFX's BulkInferrer writes
  them (``InferenceResult/prediction_logs-*.gz``) and tfx_bsl's ``RunInference`` returns them: classify,
  regress, predict and multi_inference logs. See :func:`decode_prediction_log`.
* The plain forward-record format: one ``tf.train.Example`` per served instance, for serving stacks that
  are not TF Serving. See :data:`PLAIN_FEATURES`, ``schemas/forward_record.pbtxt`` and
  ``docs/forward_record_format.md``.

Records are untrusted input: they are only ever parsed as protocol buffers (no pickle, no eval), ids are
capped at :data:`MAX_ID_BYTES`, tensors at :data:`MAX_TENSOR_ELEMENTS` elements, and non-finite or
out-of-range values are rejected with a :class:`RecordError` whose ``reason`` is one of
:data:`REJECT_REASONS`.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import tensorflow as tf
from google.protobuf import message as pb_message
from tensorflow_serving.apis import prediction_log_pb2

MAX_ID_BYTES = 1024
# Guard against a TensorProto whose shape claims billions of elements (make_ndarray would broadcast it).
MAX_TENSOR_ELEMENTS = 1 << 20

TASKS = ("binary", "regression")

# Plain format field names that are not configurable.
MODEL_VERSION_FEATURE = "model_version"
TIMESTAMP_FEATURE = "timestamp"

# Predict-request input aliases that hold serialized tf.Examples, in order of preference (TF Serving's
# and tfx_bsl's conventions).
_EXAMPLE_INPUT_ALIASES = ("examples", "inputs", "input")

# Every reason a record can be rejected with: short, stable snake_case codes (also Beam counter suffixes).
REJECT_REASONS = (
    "unparseable",  # not a protobuf of the expected type
    "empty_log",  # PredictionLog with no log type set
    "unsupported_log_type",  # session_run_log / predict_streamed_log
    "no_request_example",  # the log holds no request example (and no id tensor)
    "unparseable_request_example",  # a serialized tf.Example in a predict request does not parse
    "example_count_mismatch",  # response size differs from the number of request examples
    "bad_tensor",  # TensorProto that cannot be decoded or is larger than MAX_TENSOR_ELEMENTS
    "missing_id",
    "bad_id_type",  # e.g. a float id; plain format: anything but bytes
    "bad_id_count",  # more than one id value for one example
    "id_too_long",  # longer than MAX_ID_BYTES
    "missing_prediction",
    "bad_prediction_type",
    "bad_prediction_count",  # plain format: more than one value
    "bad_prediction_shape",  # predict output that is neither [n], [n, 1] nor (binary) [n, 2]
    "missing_class_label",  # classify result without the configured class label
    "non_finite_prediction",
    "prediction_out_of_range",  # binary task: outside [0, 1]
    "bad_hidden_norm_type",
    "bad_hidden_norm_count",
    "bad_hidden_norm_shape",
    "non_finite_hidden_norm",  # +-inf (NaN means "not logged")
    "negative_hidden_norm",
    "bad_timestamp_type",
    "bad_timestamp_count",
    "bad_model_version_type",
    "bad_model_version_count",
    "model_version_too_long",  # longer than MAX_ID_BYTES
)


class RecordError(ValueError):
    """A record that cannot be used; ``reason`` is one of :data:`REJECT_REASONS`."""

    def __init__(self, reason: str, detail: str = ""):
        super().__init__(f"{reason}: {detail}" if detail else reason)
        self.reason = reason


@dataclass(frozen=True)
class RecordConfig:
    """Where the forward-record fields live in the logs.

    Attributes:
      id_feature: feature of the logged request tf.Example holding the example id (a single bytes value;
        a single int64 value is turned into its decimal ASCII bytes). In the plain format: the id feature.
      id_output_key: a predict output holding the echoed id. When None, a predict output named
        ``id_feature`` is used if present (the recorder echoes the id under that key), else the request.
      prediction_key: predict output key (predict_log), signature name of the prediction result
        (multi_inference_log), or plain-format feature name.
      hidden_norm_key: optional predict output key / multi_inference regression signature name / plain
        feature holding the L2 norm of the last hidden layer; absent -> NaN. None: never read.
      class_label: classify logs: the prediction is the score of the class with this label. When the
        classes carry no labels (a classify signature without a ``classes`` output), two classes are read
        as [negative, positive] and the score at index 1 is used; one class: its score.
      task: "binary" -> the prediction must be a probability in [0, 1]; "regression" -> any finite float.
    """

    id_feature: str = "example_id"
    id_output_key: str | None = None
    prediction_key: str = "prediction"
    hidden_norm_key: str | None = "hidden_norm"
    class_label: str = "1"
    task: str = "binary"

    def __post_init__(self):
        if self.task not in TASKS:
            raise ValueError(f"task must be one of {TASKS}, got {self.task!r}")
        if not self.id_feature or not self.prediction_key:
            raise ValueError("id_feature and prediction_key must be non-empty")
        reserved = {MODEL_VERSION_FEATURE, TIMESTAMP_FEATURE}
        names = [self.id_feature, self.prediction_key] + (
            [self.hidden_norm_key] if self.hidden_norm_key else []
        )
        if len(set(names)) != len(names) or reserved & set(names):
            raise ValueError(f"feature names must be distinct and not in {sorted(reserved)}: {names}")


# A decoded record: (example_id, (prediction, hidden_norm, timestamp, model_version)).
Record = tuple


# --------------------------------------------------------------------------------------------------
# Shared checks
# --------------------------------------------------------------------------------------------------


def _parse(message_class, serialized: bytes, reason: str):
    """Parses untrusted bytes as `message_class`; RecordError(reason) unless they parse completely.

    The C++ protobuf runtime stops at a stray end-group tag with only a RuntimeWarning and returns the
    number of bytes it consumed: a short count is a reject too.
    """
    message = message_class()
    try:
        consumed = message.ParseFromString(serialized)
    except (pb_message.DecodeError, RuntimeWarning, ValueError, TypeError):
        raise RecordError(reason) from None
    if consumed is not None and consumed < len(serialized):
        raise RecordError(reason, f"parsed {consumed} of {len(serialized)} bytes")
    return message


def _check_id(value: bytes) -> bytes:
    if not value:
        raise RecordError("missing_id", "empty id")
    if len(value) > MAX_ID_BYTES:
        raise RecordError("id_too_long", f"{len(value)} bytes > {MAX_ID_BYTES}")
    return value


def _check_prediction(value: float, config: RecordConfig) -> float:
    value = float(value)
    if not math.isfinite(value):
        raise RecordError("non_finite_prediction", repr(value))
    if config.task == "binary" and not 0.0 <= value <= 1.0:
        raise RecordError("prediction_out_of_range", f"{value} not a probability")
    return value


def _check_hidden_norm(value: float) -> float:
    value = float(value)
    if math.isnan(value):  # NaN means "not logged"
        return value
    if math.isinf(value):
        raise RecordError("non_finite_hidden_norm", repr(value))
    if value < 0.0:
        raise RecordError("negative_hidden_norm", repr(value))
    return value


def _check_model_version(value: bytes) -> bytes:
    if len(value) > MAX_ID_BYTES:
        raise RecordError("model_version_too_long", f"{len(value)} bytes")
    return value


def _id_from_feature(feature) -> bytes:
    """The id held by one tf.train.Feature (bytes, or int64 -> decimal ASCII)."""
    kind = feature.WhichOneof("kind")
    if kind == "bytes_list":
        values = feature.bytes_list.value
    elif kind == "int64_list":
        values = [str(v).encode() for v in feature.int64_list.value]
    elif kind is None:
        values = []
    else:
        raise RecordError("bad_id_type", kind)
    if not values:
        raise RecordError("missing_id")
    if len(values) > 1:
        raise RecordError("bad_id_count", str(len(values)))
    return _check_id(values[0])


def _id_from_value(value) -> bytes:
    """The id held by one element of a decoded tensor."""
    if isinstance(value, bytes):
        return _check_id(value)
    if isinstance(value, (int, np.integer)):
        return _check_id(str(int(value)).encode())
    raise RecordError("bad_id_type", type(value).__name__)


# --------------------------------------------------------------------------------------------------
# PredictionLog
# --------------------------------------------------------------------------------------------------


_DT_STRING = tf.string.as_datatype_enum
_NUMERIC_DTYPES = frozenset(
    tf.as_dtype(d).as_datatype_enum
    for d in (
        tf.float16,
        tf.bfloat16,
        tf.float32,
        tf.float64,
        tf.int8,
        tf.int16,
        tf.int32,
        tf.int64,
        tf.uint8,
    )
)
_INTEGER_DTYPES = frozenset(
    tf.as_dtype(d).as_datatype_enum for d in (tf.int8, tf.int16, tf.int32, tf.int64, tf.uint8)
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


def _model_spec_version(model_spec) -> bytes:
    which = model_spec.WhichOneof("version_choice")
    if which == "version":
        return str(model_spec.version.value).encode()
    if which == "version_label":
        return _check_model_version(model_spec.version_label.encode())
    return b""


def _log_metadata(log, response_model_spec) -> tuple[float, bytes]:
    """(timestamp, model_version) from log_metadata, the version falling back to the response's spec."""
    metadata = log.log_metadata
    timestamp = float(metadata.timestamp_secs) if metadata.timestamp_secs else math.nan
    version = b""
    if metadata.HasField("model_spec"):
        version = _model_spec_version(metadata.model_spec)
    if not version and response_model_spec is not None:
        version = _model_spec_version(response_model_spec)
    return timestamp, version


def _request_examples(input_proto) -> list:
    """[(example, context_or_None)] of a tensorflow_serving Input."""
    kind = input_proto.WhichOneof("kind")
    if kind == "example_list":
        return [(e, None) for e in input_proto.example_list.examples]
    if kind == "example_list_with_context":
        lst = input_proto.example_list_with_context
        context = lst.context if lst.HasField("context") else None
        return [(e, context) for e in lst.examples]
    return []


def _id_from_example(example, context, config: RecordConfig) -> bytes:
    feature_map = example.features.feature
    if config.id_feature in feature_map:
        return _id_from_feature(feature_map[config.id_feature])
    if context is not None and config.id_feature in context.features.feature:
        return _id_from_feature(context.features.feature[config.id_feature])
    raise RecordError("missing_id")


def _class_score(classifications, config: RecordConfig) -> float:
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


def _per_example_ids(examples, config: RecordConfig) -> list:
    """One id (bytes) or RecordError per request example."""
    out = []
    for example, context in examples:
        try:
            out.append(_id_from_example(example, context, config))
        except RecordError as e:
            out.append(e)
    return out


def _pick_inference_result(results, config: RecordConfig):
    """The multi_inference result holding the prediction."""
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


def _result_values(result, config: RecordConfig) -> list:
    kind = result.WhichOneof("result")
    if kind == "classification_result":
        out = []
        for classifications in result.classification_result.classifications:
            try:
                out.append(_class_score(classifications, config))
            except RecordError as e:
                out.append(e)
        return out
    if kind == "regression_result":
        return [r.value for r in result.regression_result.regressions]
    raise RecordError("missing_prediction", "empty inference result")


def _find_example_input(inputs):
    """The serialized-tf.Example input tensor of a predict request, or None."""
    for alias in _EXAMPLE_INPUT_ALIASES:
        if alias in inputs and inputs[alias].dtype == _DT_STRING:
            return inputs[alias]
    strings = [inputs[k] for k in sorted(inputs.keys()) if inputs[k].dtype == _DT_STRING]
    return strings[0] if len(strings) == 1 else None


def _predict_ids(predict_log, config: RecordConfig) -> list:
    outputs = predict_log.response.outputs
    id_key = config.id_output_key
    if id_key is None and config.id_feature in outputs:
        id_key = config.id_feature  # echoed by the recorder
    inputs = None
    if id_key is not None:
        if id_key not in outputs:
            raise RecordError("missing_id", f"no output {id_key!r}")
        tensor = outputs[id_key]
    else:  # the request is only touched when needed: each nested message access costs
        inputs = predict_log.request.inputs
        # a raw-feature request carries the id as an input tensor
        tensor = inputs[config.id_feature] if config.id_feature in inputs else None
    if tensor is not None:
        if tensor.dtype != _DT_STRING and tensor.dtype not in _INTEGER_DTYPES:
            raise RecordError("bad_id_type", _dtype_name(tensor.dtype))
        out = []
        for value in _tensor_values(tensor, one_per_element=True)[0]:
            try:
                out.append(_id_from_value(value))
            except RecordError as e:
                out.append(e)
        return out
    tensor = _find_example_input(inputs)
    if tensor is None:
        raise RecordError("no_request_example", "no serialized tf.Example input")
    examples = []
    for serialized in _tensor_values(tensor, one_per_element=True)[0]:
        try:
            examples.append((_parse(tf.train.Example, serialized, "unparseable_request_example"), None))
        except RecordError as e:
            examples.append((e, None))
    out = []
    for example, _ in examples:
        if isinstance(example, RecordError):
            out.append(example)
            continue
        try:
            out.append(_id_from_example(example, None, config))
        except RecordError as e:
            out.append(e)
    return out


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


def _decode_predict(predict_log, config: RecordConfig):
    ids = _predict_ids(predict_log, config)
    n = len(ids)
    if n == 0:
        raise RecordError("no_request_example")
    outputs = predict_log.response.outputs
    if config.prediction_key not in outputs:
        raise RecordError("missing_prediction", f"no output {config.prediction_key!r}")
    predictions = _per_row(outputs[config.prediction_key], n, "prediction", config, True)
    if config.hidden_norm_key and config.hidden_norm_key in outputs:
        hidden = _per_row(outputs[config.hidden_norm_key], n, "hidden_norm", config, False)
    else:
        hidden = [math.nan] * n
    return ids, predictions, hidden


def _decode_examples_and_values(input_proto, values: list, hidden: list | None, config: RecordConfig):
    examples = _request_examples(input_proto)
    if not examples:
        raise RecordError("no_request_example")
    if len(values) != len(examples) or (hidden is not None and len(hidden) != len(examples)):
        raise RecordError("example_count_mismatch", f"{len(values)} results for {len(examples)} examples")
    return (
        _per_example_ids(examples, config),
        values,
        hidden if hidden is not None else [math.nan] * len(values),
    )


def decode_prediction_log_lenient(serialized: bytes, config: RecordConfig) -> tuple[list[Record], list[str]]:
    """Decodes one serialized PredictionLog; never raises RecordError.

    Returns (records, reasons): one record per valid request example, one reason per rejected example (or
    a single reason when the whole log is unusable). A multi-example request yields one record per example.
    """
    try:
        log = _parse(prediction_log_pb2.PredictionLog, serialized, "unparseable")
        kind = log.WhichOneof("log_type")
        if kind == "classify_log":
            sub = log.classify_log
            values = []
            for classifications in sub.response.result.classifications:
                try:
                    values.append(_class_score(classifications, config))
                except RecordError as e:
                    values.append(e)
            ids, values, hidden = _decode_examples_and_values(sub.request.input, values, None, config)
            spec = sub.response.model_spec
        elif kind == "regress_log":
            sub = log.regress_log
            values = [r.value for r in sub.response.result.regressions]
            ids, values, hidden = _decode_examples_and_values(sub.request.input, values, None, config)
            spec = sub.response.model_spec
        elif kind == "multi_inference_log":
            sub = log.multi_inference_log
            chosen = _pick_inference_result(sub.response.results, config)
            if chosen is None:
                raise RecordError("missing_prediction", "no inference result")
            values = _result_values(chosen, config)
            hidden = None
            if config.hidden_norm_key:
                for result in sub.response.results:
                    if (
                        result is not chosen
                        and result.model_spec.signature_name == config.hidden_norm_key
                        and result.WhichOneof("result") == "regression_result"
                    ):
                        hidden = [r.value for r in result.regression_result.regressions]
                        break
            ids, values, hidden = _decode_examples_and_values(sub.request.input, values, hidden, config)
            spec = chosen.model_spec
        elif kind == "predict_log":
            ids, values, hidden = _decode_predict(log.predict_log, config)
            spec = log.predict_log.response.model_spec
        elif kind is None:
            raise RecordError("empty_log")
        else:
            raise RecordError("unsupported_log_type", kind)
        timestamp, version = _log_metadata(log, spec)
    except RecordError as e:
        return [], [e.reason]

    records, reasons = [], []
    for example_id, value, norm in zip(ids, values, hidden):
        try:
            if isinstance(example_id, RecordError):
                raise example_id
            if isinstance(value, RecordError):
                raise value
            records.append(
                (example_id, (_check_prediction(value, config), _check_hidden_norm(norm), timestamp, version))
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


# --------------------------------------------------------------------------------------------------
# Plain forward-record format
# --------------------------------------------------------------------------------------------------

# Plain format (default names; id / prediction / hidden_norm names follow RecordConfig):
#   feature        kind        values  required  meaning
PLAIN_FEATURES = (
    ("example_id", "bytes_list", "1", True, "id joining the record to the labelled example, <= 1 KiB"),
    ("prediction", "float_list", "1", True, "model output: probability (binary) or value (regression)"),
    ("model_version", "bytes_list", "0..1", False, "version of the serving model, e.g. b'1700000000'"),
    ("timestamp", "int64_list", "0..1", False, "serving time, whole seconds since the Unix epoch (UTC)"),
    ("hidden_norm", "float_list", "0..1", False, "L2 norm of the last hidden layer, >= 0; NaN = absent"),
)

_TIMESTAMP_ABSENT = -(2**63)  # parse_example default; INT64_MIN also reads as "absent"


def plain_feature_spec(config: RecordConfig) -> dict:
    """tf.io.parse_example spec of the plain format (optional fields get "absent" defaults)."""
    spec = {
        config.id_feature: tf.io.FixedLenFeature([], tf.string),
        config.prediction_key: tf.io.FixedLenFeature([], tf.float32),
        MODEL_VERSION_FEATURE: tf.io.FixedLenFeature([], tf.string, default_value=b""),
        TIMESTAMP_FEATURE: tf.io.FixedLenFeature([], tf.int64, default_value=_TIMESTAMP_ABSENT),
    }
    if config.hidden_norm_key:
        spec[config.hidden_norm_key] = tf.io.FixedLenFeature([], tf.float32, default_value=math.nan)
    return spec


def _single_value(feature_map, name: str, kind: str, field: str, required: bool):
    """The one value of feature `name` of the expected kind, or None when absent/empty (optional)."""
    if name not in feature_map:
        if required:
            raise RecordError(f"missing_{field}")
        return None
    feature = feature_map[name]
    actual = feature.WhichOneof("kind")
    if actual is None:
        values = ()
    elif actual != kind:
        raise RecordError(f"bad_{field}_type", actual)
    else:
        values = getattr(feature, kind).value
    if not values:
        if required:
            raise RecordError(f"missing_{field}")
        return None
    if len(values) > 1:
        raise RecordError(f"bad_{field}_count", str(len(values)))
    return values[0]


def decode_plain_record(serialized: bytes, config: RecordConfig) -> Record:
    """Decodes one serialized plain-format tf.Example; raises RecordError."""
    example = _parse(tf.train.Example, serialized, "unparseable")
    features = example.features.feature
    example_id = _check_id(_single_value(features, config.id_feature, "bytes_list", "id", True))
    prediction = _check_prediction(
        _single_value(features, config.prediction_key, "float_list", "prediction", True), config
    )
    hidden = math.nan
    if config.hidden_norm_key:
        value = _single_value(features, config.hidden_norm_key, "float_list", "hidden_norm", False)
        hidden = math.nan if value is None else _check_hidden_norm(value)
    value = _single_value(features, TIMESTAMP_FEATURE, "int64_list", "timestamp", False)
    timestamp = math.nan if value is None or value == _TIMESTAMP_ABSENT else float(value)
    value = _single_value(features, MODEL_VERSION_FEATURE, "bytes_list", "model_version", False)
    version = b"" if value is None else _check_model_version(value)
    return (example_id, (prediction, hidden, timestamp, version))


def decode_plain_batch(
    serialized: Sequence[bytes], config: RecordConfig
) -> tuple[list[Record], list[tuple[bytes, str]]]:
    """Vectorised decoding of a batch of plain records: (records, [(raw, reason)]).

    One ``tf.io.parse_example`` call for the batch and numpy checks; when the batch does not parse (some
    record is malformed) or a row fails a check, the affected records are decoded one by one with
    :func:`decode_plain_record`, which is the reference behaviour (both paths give identical results).
    """
    serialized = list(serialized)
    if not serialized:
        return [], []
    spec = plain_feature_spec(config)
    try:
        parsed = tf.io.parse_example(serialized, spec)
    except (tf.errors.InvalidArgumentError, tf.errors.OpError, ValueError):
        return _decode_one_by_one(serialized, config)
    ids = parsed[config.id_feature].numpy()
    predictions = parsed[config.prediction_key].numpy().astype(np.float64)
    versions = parsed[MODEL_VERSION_FEATURE].numpy()
    raw_timestamps = parsed[TIMESTAMP_FEATURE].numpy()
    timestamps = np.where(raw_timestamps == _TIMESTAMP_ABSENT, np.nan, raw_timestamps.astype(np.float64))
    if config.hidden_norm_key:
        hidden = parsed[config.hidden_norm_key].numpy().astype(np.float64)
    else:
        hidden = np.full(len(serialized), np.nan)

    id_lengths = np.fromiter(map(len, ids), dtype=np.int64, count=len(ids))
    version_lengths = np.fromiter(map(len, versions), dtype=np.int64, count=len(versions))
    ok = (id_lengths > 0) & (id_lengths <= MAX_ID_BYTES) & (version_lengths <= MAX_ID_BYTES)
    ok &= np.isfinite(predictions)
    if config.task == "binary":
        ok &= (predictions >= 0.0) & (predictions <= 1.0)
    with np.errstate(invalid="ignore"):
        ok &= np.isnan(hidden) | (np.isfinite(hidden) & (hidden >= 0.0))

    if ok.all():
        values = zip(predictions.tolist(), hidden.tolist(), timestamps.tolist(), versions.tolist())
        return list(zip(ids.tolist(), values)), []
    records, rejects = [], []
    ids_l, pred_l, hid_l, ts_l, ver_l = (a.tolist() for a in (ids, predictions, hidden, timestamps, versions))
    for i, good in enumerate(ok.tolist()):
        if good:
            records.append((ids_l[i], (pred_l[i], hid_l[i], ts_l[i], ver_l[i])))
        else:
            sub_records, sub_rejects = _decode_one_by_one([serialized[i]], config)
            records.extend(sub_records)
            rejects.extend(sub_rejects)
    return records, rejects


def _decode_one_by_one(serialized: Sequence[bytes], config: RecordConfig):
    records, rejects = [], []
    for raw in serialized:
        try:
            records.append(decode_plain_record(raw, config))
        except RecordError as e:
            if e.reason == "unparseable" and len(serialized) > 1:
                # TensorFlow's parser takes a few things protobuf refuses (a feature name that is not UTF-8):
                # decide as a batch of this record alone would, so that its neighbours never matter.
                alone_records, alone_rejects = decode_plain_batch([raw], config)
                records.extend(alone_records)
                rejects.extend(alone_rejects)
            else:
                rejects.append((raw, e.reason))
    return records, rejects


# --------------------------------------------------------------------------------------------------
# Format detection
# --------------------------------------------------------------------------------------------------

FORMAT_PREDICTION_LOG = "predictionlog"
FORMAT_PLAIN = "plain"


def is_prediction_log(serialized: bytes) -> bool:
    """Whether bytes parse completely as a PredictionLog with a log type set. A tf.Example never does: its only
    field (features, number 1) reads as PredictionLog's log_metadata, and no log type is set."""
    try:
        log = _parse(prediction_log_pb2.PredictionLog, serialized, "unparseable")
    except RecordError:
        return False
    return log.WhichOneof("log_type") is not None


def detect_format(samples: Sequence[bytes]) -> str | None:
    """The record format of the first records of the files: "predictionlog" when most of them are PredictionLogs,
    else "plain"; None when there is no record to look at."""
    if not samples:
        return None
    logs = sum(is_prediction_log(raw) for raw in samples)
    return FORMAT_PREDICTION_LOG if 2 * logs > len(samples) else FORMAT_PLAIN


# --------------------------------------------------------------------------------------------------
# TFDV
# --------------------------------------------------------------------------------------------------


def forward_record_schema_path() -> str:
    """Path of schemas/forward_record.pbtxt (installed as package data of tfx_curator.schemas)."""
    from tfx_curator import schemas

    return schemas.schema_file(schemas.FORWARD_RECORD_SCHEMA)


def forward_record_schema(config: RecordConfig | None = None):
    """The TFDV schema (tensorflow_metadata Schema proto) of the plain format for `config`.

    The file holds the default names and the binary task; feature names follow `config`, the [0, 1]
    prediction range is dropped for task "regression", and hidden_norm is dropped when
    ``hidden_norm_key`` is None.
    """
    import tensorflow_data_validation as tfdv

    config = config or RecordConfig()
    schema = tfdv.load_schema_text(forward_record_schema_path())
    defaults = RecordConfig()
    renames = {
        defaults.id_feature: config.id_feature,
        defaults.prediction_key: config.prediction_key,
        defaults.hidden_norm_key: config.hidden_norm_key,
    }
    for feature in list(schema.feature):
        if feature.name in renames:
            if renames[feature.name] is None:
                schema.feature.remove(feature)
                continue
            new_name = renames[feature.name]
            if feature.name == defaults.prediction_key and config.task == "regression":
                feature.float_domain.ClearField("min")
                feature.float_domain.ClearField("max")
            feature.name = new_name
    return schema


def validate_plain_records(file_pattern: str, config: RecordConfig | None = None, stats_options=None):
    """Computes TFDV statistics of plain-format TFRecord files and validates them against the schema.

    Gzip files are recognised by a ``.gz`` suffix. Returns a tensorflow_metadata ``Anomalies`` proto
    (``anomalies.anomaly_info`` is empty when the records conform), keyed by feature name. Runs a small
    Beam pipeline (DirectRunner) to compute the statistics. A feature whose type differs between records (one
    int64 ``prediction`` among floats), which TFDV cannot compute statistics of, is reported as an anomaly too.
    """
    import tensorflow_data_validation as tfdv

    schema = forward_record_schema(config)
    beam_log = logging.getLogger("apache_beam.runners.common")  # it logs the failure with its traceback
    level = beam_log.level
    beam_log.setLevel(logging.CRITICAL)
    try:
        stats = tfdv.generate_statistics_from_tfrecord(
            data_location=file_pattern, stats_options=stats_options or tfdv.StatsOptions()
        )
    except Exception:  # noqa: BLE001 - TFDV's decoder fails the whole job on the first mixed type
        anomalies = feature_kind_anomalies(tf.io.gfile.glob(file_pattern))
        if not anomalies.anomaly_info:
            raise
        return anomalies
    finally:
        beam_log.setLevel(level)
    return tfdv.validate_statistics(stats, schema)


def feature_kinds(paths: Sequence[str]) -> tuple[dict, dict, int]:
    """({feature: {kind: records}}, {feature: (kind, path, index) of its first record of a minority kind},
    unparseable records) over every record of the files (plain Python: slow, for diagnosis only)."""
    from collections import Counter, defaultdict

    from tensorflow.core.example import example_pb2

    kinds: dict = defaultdict(Counter)
    where: dict = defaultdict(dict)
    unparseable = 0
    for path in paths:
        compression = "GZIP" if path.endswith(".gz") else ""
        for index, raw in enumerate(
            tf.data.TFRecordDataset(path, compression_type=compression).as_numpy_iterator()
        ):
            example = example_pb2.Example()
            try:
                example.ParseFromString(raw)
            except (pb_message.DecodeError, RuntimeError, ValueError):
                unparseable += 1
                continue
            for name, feature in example.features.feature.items():
                kind = feature.WhichOneof("kind") or "empty"
                kinds[name][kind] += 1
                where[name].setdefault(kind, (path, index))
    return dict(kinds), dict(where), unparseable


def feature_kind_anomalies(paths: Sequence[str]):
    """An Anomalies proto with one entry per feature holding values of several types (and unparseable records)."""
    from tensorflow_metadata.proto.v0 import anomalies_pb2

    kinds, where, unparseable = feature_kinds(paths)
    anomalies = anomalies_pb2.Anomalies()
    for name, counts in sorted(kinds.items()):
        typed = {k: n for k, n in counts.items() if k != "empty"}
        if len(typed) < 2:
            continue
        major = max(typed, key=typed.get)
        minor = ", ".join(
            f"{k} in {n} record(s) (first: {where[name][k][0]} record {where[name][k][1]})"
            for k, n in sorted(typed.items())
            if k != major
        )
        info = anomalies.anomaly_info[name]
        info.severity = anomalies_pb2.AnomalyInfo.ERROR
        info.short_description = "Mixed types"
        info.description = f"{major} in {typed[major]} record(s), {minor}: one type per feature"
    if unparseable:
        info = anomalies.anomaly_info["(records)"]
        info.severity = anomalies_pb2.AnomalyInfo.ERROR
        info.short_description = "Unparseable records"
        info.description = f"{unparseable} record(s) are not tf.Examples"
    return anomalies
