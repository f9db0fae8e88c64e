"""Forward records: what one is, where its fields live, the checks on its values, and its two formats.

A forward record is what the serving path leaves for every served instance. Decoded, it is a plain tuple, cheap
for Beam to shuffle::

    (example_id: bytes, (prediction: float, hidden_norm: float, timestamp: float, model_version: bytes))

``hidden_norm`` and ``timestamp`` (seconds since the Unix epoch) are NaN when absent; ``model_version`` is
``b""`` when absent. Two formats are understood:

* ``PredictionLog`` protos, as TFX's BulkInferrer writes them and tfx_bsl's ``RunInference`` returns them:
  decoded by :mod:`prediction_log`.
* The plain forward-record format, one ``tf.train.Example`` per served instance: decoded by :mod:`plain_format`
  (schema: ``schemas/forward_record.pbtxt``, validated by ``tfx_curator.schemas.forward_record``).

Records are untrusted: only ever parsed as protocol buffers, ids capped at ``MAX_ID_BYTES``, tensors at
``MAX_TENSOR_ELEMENTS`` elements (see :mod:`parsing`); a record that breaks a rule raises :class:`RecordError`
with a ``reason`` in :data:`REJECT_REASONS`. This module imports no TensorFlow.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from tfx_curator.components.curator.policy.signals import TASKS
from tfx_curator.components.curator.reading.parsing import (
    ID_REASONS,
    MAX_ID_BYTES,
    RecordError,
    parse_proto,
)

# Plain format field names that are not configurable.
MODEL_VERSION_FEATURE = "model_version"
TIMESTAMP_FEATURE = "timestamp"
# Predict output of k forward passes per example ([n, k], the recorder's `passes=k`): read as k records of each
# example (same id, version and timestamp; the pass index is the column), in place of the prediction output.
PASSES_OUTPUT = "prediction_passes"

FORMAT_PREDICTION_LOG = "predictionlog"
FORMAT_PLAIN = "plain"
RECORD_FORMATS = (FORMAT_PREDICTION_LOG, FORMAT_PLAIN)

# Every reason a record can be rejected with: short, stable snake_case codes (also Beam counter suffixes).
REJECT_REASONS = (
    "unparseable",  # not a protobuf of the expected type
    "empty_log",  # PredictionLog with no log type set
    "unsupported_log_type",  # session_run_log / predict_streamed_log
    "no_request_example",  # the log holds no request example (and no id tensor)
    "unparseable_request_example",  # a serialized tf.Example in a predict request does not parse
    "example_count_mismatch",  # response size differs from the number of request examples
    "bad_tensor",  # TensorProto that cannot be decoded or is larger than MAX_TENSOR_ELEMENTS
    *ID_REASONS,  # missing_id, empty_id, bad_id_type, bad_id_count, id_too_long (parsing.py)
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
        reserved = {MODEL_VERSION_FEATURE, TIMESTAMP_FEATURE, PASSES_OUTPUT}
        names = [self.id_feature, self.prediction_key] + (
            [self.hidden_norm_key] if self.hidden_norm_key else []
        )
        if len(set(names)) != len(names) or reserved & set(names):
            raise ValueError(f"feature names must be distinct and not in {sorted(reserved)}: {names}")


# A decoded record: (example_id, (prediction, hidden_norm, timestamp, model_version)).
Record = tuple


# --------------------------------------------------------------------------------------------------
# Value checks (each with a vectorised twin for the plain format's batch path)
# --------------------------------------------------------------------------------------------------


def check_prediction(value: float, config: RecordConfig) -> float:
    value = float(value)
    if not math.isfinite(value):
        raise RecordError("non_finite_prediction", repr(value))
    if config.task == "binary" and not 0.0 <= value <= 1.0:
        raise RecordError("prediction_out_of_range", f"{value} not a probability")
    return value


def predictions_ok(predictions: np.ndarray, config: RecordConfig) -> np.ndarray:
    ok = np.isfinite(predictions)
    if config.task == "binary":
        ok &= (predictions >= 0.0) & (predictions <= 1.0)
    return ok


def check_hidden_norm(value: float) -> float:
    value = float(value)
    if math.isnan(value):  # NaN means "not logged"
        return value
    if math.isinf(value):
        raise RecordError("non_finite_hidden_norm", repr(value))
    if value < 0.0:
        raise RecordError("negative_hidden_norm", repr(value))
    return value


def hidden_norms_ok(hidden: np.ndarray) -> np.ndarray:
    with np.errstate(invalid="ignore"):
        return np.isnan(hidden) | (np.isfinite(hidden) & (hidden >= 0.0))


def check_model_version(value: bytes) -> bytes:
    if len(value) > MAX_ID_BYTES:
        raise RecordError("model_version_too_long", f"{len(value)} bytes")
    return value


def model_versions_ok(versions: Sequence[bytes]) -> np.ndarray:
    return np.fromiter(map(len, versions), dtype=np.int64, count=len(versions)) <= MAX_ID_BYTES


# --------------------------------------------------------------------------------------------------
# Format detection
# --------------------------------------------------------------------------------------------------


def is_prediction_log(serialized: bytes) -> bool:
    """Whether bytes parse completely as a PredictionLog with a log type set. A tf.Example never does: its only
    field (features, number 1) reads as PredictionLog's log_metadata, and no log type is set."""
    from tensorflow_serving.apis import prediction_log_pb2

    try:
        log = parse_proto(prediction_log_pb2.PredictionLog, serialized, "unparseable")
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
