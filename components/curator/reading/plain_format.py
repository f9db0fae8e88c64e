"""Decode the plain forward-record format: one ``tf.train.Example`` per served instance.

For serving stacks that are not TF Serving (see ``docs/forward_record_format.md``; TFDV schema in
``schemas/forward_record.pbtxt``). :func:`decode_plain_record` is the reference, one record at a time;
:func:`decode_plain_batch` parses a whole batch with one ``tf.io.parse_example`` call and numpy checks, and
gives identical results.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
import tensorflow as tf

from tfx_curator.components.curator.reading.parsing import (
    RecordError,
    decide_one_by_one,
    id_from_features,
    ids_ok,
    parse_proto,
)
from tfx_curator.components.curator.reading.records import (
    MODEL_VERSION_FEATURE,
    TIMESTAMP_FEATURE,
    Record,
    RecordConfig,
    check_hidden_norm,
    check_model_version,
    check_prediction,
    hidden_norms_ok,
    model_versions_ok,
    predictions_ok,
)

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
    example = parse_proto(tf.train.Example, serialized, "unparseable")
    features = example.features.feature
    example_id = id_from_features(features, config.id_feature, int_ids=False)
    prediction = check_prediction(
        _single_value(features, config.prediction_key, "float_list", "prediction", True), config
    )
    hidden = math.nan
    if config.hidden_norm_key:
        value = _single_value(features, config.hidden_norm_key, "float_list", "hidden_norm", False)
        hidden = math.nan if value is None else check_hidden_norm(value)
    value = _single_value(features, TIMESTAMP_FEATURE, "int64_list", "timestamp", False)
    timestamp = math.nan if value is None or value == _TIMESTAMP_ABSENT else float(value)
    value = _single_value(features, MODEL_VERSION_FEATURE, "bytes_list", "model_version", False)
    version = b"" if value is None else check_model_version(value)
    return (example_id, (prediction, hidden, timestamp, version))


def _parse_plain_batch(serialized: Sequence[bytes], config: RecordConfig) -> list | None:
    """One record per row (None for a row failing a check), or None when the batch does not parse."""
    try:
        parsed = tf.io.parse_example(list(serialized), plain_feature_spec(config))
    except (tf.errors.InvalidArgumentError, tf.errors.OpError, ValueError):
        return None
    ids = parsed[config.id_feature].numpy()
    predictions = parsed[config.prediction_key].numpy().astype(np.float64)
    versions = parsed[MODEL_VERSION_FEATURE].numpy()
    raw_timestamps = parsed[TIMESTAMP_FEATURE].numpy()
    timestamps = np.where(raw_timestamps == _TIMESTAMP_ABSENT, np.nan, raw_timestamps.astype(np.float64))
    if config.hidden_norm_key:
        hidden = parsed[config.hidden_norm_key].numpy().astype(np.float64)
    else:
        hidden = np.full(len(serialized), np.nan)
    ok = (
        ids_ok(ids)
        & model_versions_ok(versions)
        & predictions_ok(predictions, config)
        & hidden_norms_ok(hidden)
    )
    values = zip(predictions.tolist(), hidden.tolist(), timestamps.tolist(), versions.tolist())
    records = list(zip(ids.tolist(), values))
    if not ok.all():
        for i in np.flatnonzero(~ok).tolist():
            records[i] = None
    return records


def decode_plain_batch(
    serialized: Sequence[bytes], config: RecordConfig
) -> tuple[list[Record], list[tuple[bytes, str]]]:
    """Vectorised decoding of a batch of plain records: (records, [(raw, reason)]).

    One ``tf.io.parse_example`` call for the batch and numpy checks; the records the batch cannot decide (it
    does not parse, or a row fails a check) are decoded one by one with :func:`decode_plain_record`, the
    reference behaviour (both paths give identical results).
    """
    serialized = list(serialized)
    batch = _parse_plain_batch(serialized, config) if serialized else []
    if batch is not None and None not in batch:
        return batch, []
    records, rejects = decide_one_by_one(
        serialized,
        batch,
        lambda raw: decode_plain_record(raw, config),
        lambda raw: (_parse_plain_batch([raw], config) or [None])[0],
        "unparseable",
    )
    return records, [(serialized[i], reason) for i, reason in rejects]
