"""The parsing kit shared by the example reader and the forward-record readers (protobuf and numpy, no TensorFlow).

Input bytes are untrusted. This module holds the limits, the reject codes of ids and labels, the one id check and
the one label check (each with a vectorised twin for batch fast paths), strict protobuf parsing, and the
fallback that decides one by one what a fast batch parse could not. A rejected input raises :class:`RecordError`, whose
``reason`` is a stable snake_case code (also a Beam counter suffix and the reason written to ``rejects/``).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
from google.protobuf import message as pb_message

MAX_ID_BYTES = 1024
# Guard against a TensorProto whose shape claims billions of elements (make_ndarray would broadcast it).
MAX_TENSOR_ELEMENTS = 1 << 20

# Ids: the same codes for examples and forward records.
MISSING_ID = "missing_id"  # no id feature, or one without a value
EMPTY_ID = "empty_id"  # a zero-length id
BAD_ID_TYPE = "bad_id_type"  # e.g. a float id; plain format: anything but bytes
BAD_ID_COUNT = "bad_id_count"  # more than one id value for one example
ID_TOO_LONG = "id_too_long"  # longer than MAX_ID_BYTES
ID_REASONS = (MISSING_ID, EMPTY_ID, BAD_ID_TYPE, BAD_ID_COUNT, ID_TOO_LONG)

# Labels (examples).
MISSING_LABEL = "missing_label"
BAD_LABEL_TYPE = "bad_label_type"  # bytes: neither int64 nor float
BAD_LABEL_COUNT = "bad_label_count"  # more than one value
NON_FINITE_LABEL = "non_finite_label"
LABEL_OUT_OF_DOMAIN = "label_out_of_domain"  # task "binary": neither 0 nor 1
LABEL_REASONS = (MISSING_LABEL, BAD_LABEL_TYPE, BAD_LABEL_COUNT, NON_FINITE_LABEL, LABEL_OUT_OF_DOMAIN)


class RecordError(ValueError):
    """Serialized input that cannot be used; ``reason`` is a stable reject code."""

    def __init__(self, reason: str, detail: str = ""):
        super().__init__(f"{reason}: {detail}" if detail else reason)
        self.reason = reason


def parse_proto(message_class, serialized: bytes, reason: str, complete: bool = True):
    """Parses untrusted bytes as `message_class`; RecordError(reason) when they do not parse.

    The C++ protobuf runtime stops at a stray end-group tag with only a RuntimeWarning and returns the number of
    bytes it consumed: with `complete`, a short count is a reject too; without, the parsed prefix is kept (the
    example reader's historical behaviour).
    """
    message = message_class()
    try:
        consumed = message.ParseFromString(serialized)
    except (pb_message.DecodeError, RuntimeError, RuntimeWarning, ValueError, TypeError):
        raise RecordError(reason) from None
    if complete and consumed is not None and consumed < len(serialized):
        raise RecordError(reason, f"parsed {consumed} of {len(serialized)} bytes")
    return message


def or_error(fn: Callable, *args) -> Any:
    """fn(*args), or the RecordError it raised (to keep one outcome per example of a multi-example input)."""
    try:
        return fn(*args)
    except RecordError as e:
        return e


# --------------------------------------------------------------------------------------------------
# Ids
# --------------------------------------------------------------------------------------------------


def check_id(value) -> bytes:
    """An id as bytes: bytes as they are, an integer as its decimal ASCII; RecordError when unusable."""
    if not isinstance(value, bytes):
        if not isinstance(value, (int, np.integer)):
            raise RecordError(BAD_ID_TYPE, type(value).__name__)
        value = str(int(value)).encode()
    if not value:
        raise RecordError(EMPTY_ID)
    if len(value) > MAX_ID_BYTES:
        raise RecordError(ID_TOO_LONG, f"{len(value)} bytes > {MAX_ID_BYTES}")
    return value


def id_from_feature(feature, int_ids: bool = True) -> bytes:
    """The id held by one tf.train.Feature: one bytes value, or (`int_ids`) one int64 value."""
    kind = feature.WhichOneof("kind")
    if kind == "bytes_list":
        values = feature.bytes_list.value
    elif kind == "int64_list" and int_ids:
        values = feature.int64_list.value
    elif kind is None:
        values = ()
    else:
        raise RecordError(BAD_ID_TYPE, kind)
    if not values:
        raise RecordError(MISSING_ID)
    if len(values) > 1:
        raise RecordError(BAD_ID_COUNT, str(len(values)))
    return check_id(values[0])


def id_from_features(feature_map, name: str, int_ids: bool = True) -> bytes:
    """The id in feature `name` of a tf.train.Features map; RecordError(MISSING_ID) when there is none."""
    if name not in feature_map:
        raise RecordError(MISSING_ID, f"no feature {name!r}")
    return id_from_feature(feature_map[name], int_ids)


def ids_ok(ids: Sequence[bytes]) -> np.ndarray:
    """Vectorised :func:`check_id` of bytes ids: True where the id is usable."""
    lengths = np.fromiter(map(len, ids), dtype=np.int64, count=len(ids))
    return (lengths > 0) & (lengths <= MAX_ID_BYTES)


# --------------------------------------------------------------------------------------------------
# Labels
# --------------------------------------------------------------------------------------------------


def check_label(value: float, task: str) -> float:
    """A label as float: finite, and 0 or 1 for task "binary"; RecordError otherwise."""
    value = float(value)
    if not math.isfinite(value):
        raise RecordError(NON_FINITE_LABEL, repr(value))
    if task == "binary" and value not in (0.0, 1.0):
        raise RecordError(LABEL_OUT_OF_DOMAIN, repr(value))
    return value


def label_from_features(feature_map, name: str, task: str) -> float:
    """The label in feature `name` (one int64 or float value) of a tf.train.Features map."""
    if name not in feature_map:
        raise RecordError(MISSING_LABEL, f"no feature {name!r}")
    feature = feature_map[name]
    kind = feature.WhichOneof("kind")
    if kind == "bytes_list":
        raise RecordError(BAD_LABEL_TYPE, kind)
    values = feature.int64_list.value if kind == "int64_list" else feature.float_list.value if kind else ()
    if not values:
        raise RecordError(MISSING_LABEL)
    if len(values) > 1:
        raise RecordError(BAD_LABEL_COUNT, str(len(values)))
    return check_label(values[0], task)


def labels_ok(labels: np.ndarray, task: str) -> np.ndarray:
    """Vectorised :func:`check_label`: True where the label is usable."""
    ok = np.isfinite(labels)
    if task == "binary":
        ok &= (labels == 0.0) | (labels == 1.0)
    return ok


# --------------------------------------------------------------------------------------------------
# Batch, then one by one
# --------------------------------------------------------------------------------------------------


def decide_one_by_one(
    rows: Sequence[bytes],
    batch: list | None,
    parse_one: Callable[[bytes], Any],
    parse_alone: Callable[[bytes], Any],
    unparseable: str,
) -> tuple[list, list[tuple[int, str]]]:
    """Completes a fast batch parse: decides one by one the rows it left.

    Args:
      rows: serialized inputs.
      batch: the batch parser's value per row, None for a row it left; or None when the batch did not parse
        (every row is left).
      parse_one: raw -> value, or RecordError(reason); the reference behaviour.
      parse_alone: raw -> the batch parser's value for a batch of that row alone, or None. TensorFlow's batch
        parser takes a few inputs protobuf refuses (a feature name that is not UTF-8): a row `parse_one` finds
        `unparseable` is decided as it would be alone, so that its outcome never depends on its neighbours.
      unparseable: the reason `parse_one` gives bytes that protobuf refuses.

    Returns:
      (values of the accepted rows in order, [(index in rows, reason)] of the rejected ones).
    """
    values, rejects = [], []
    for i, raw in enumerate(rows):
        value = None if batch is None else batch[i]
        if value is None:
            try:
                value = parse_one(raw)
            except RecordError as e:
                value = parse_alone(raw) if e.reason == unparseable and len(rows) > 1 else None
                if value is None:
                    rejects.append((i, e.reason))
                    continue
        values.append(value)
    return values, rejects
