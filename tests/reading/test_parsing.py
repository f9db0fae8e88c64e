"""The parsing kit: the id and label checks (scalar and vectorised agree), strict parsing, batch-then-each."""

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from tensorflow.core.example import example_pb2, feature_pb2

from tfx_curator.components.curator.reading import parsing
from tfx_curator.components.curator.reading.parsing import RecordError


def reason_of(fn, *args) -> str:
    with pytest.raises(RecordError) as info:
        fn(*args)
    return info.value.reason


def feature(kind: str | None, values=()) -> feature_pb2.Feature:
    f = feature_pb2.Feature()
    if kind is not None:
        getattr(f, kind).value.extend(values)
        getattr(f, kind).SetInParent()
    return f


# ---------------------------------------------------------------------------------------------- ids


@pytest.mark.parametrize(
    "f, int_ids, expected",
    [
        (feature("bytes_list", [b"a"]), True, b"a"),
        (feature("int64_list", [-12]), True, b"-12"),
        (feature("int64_list", [12]), False, parsing.BAD_ID_TYPE),  # the plain format: bytes only
        (feature("float_list", [1.0]), True, parsing.BAD_ID_TYPE),
        (feature("float_list"), True, parsing.BAD_ID_TYPE),  # the kind decides before the count
        (feature(None), True, parsing.MISSING_ID),
        (feature("bytes_list"), True, parsing.MISSING_ID),
        (feature("bytes_list", [b"a", b"b"]), True, parsing.BAD_ID_COUNT),
        (feature("bytes_list", [b""]), True, parsing.EMPTY_ID),
        (feature("bytes_list", [b"k" * 1024]), True, b"k" * 1024),
        (feature("bytes_list", [b"k" * 1025]), True, parsing.ID_TOO_LONG),
    ],
)
def test_id_from_feature(f, int_ids, expected):
    if isinstance(expected, bytes):
        assert parsing.id_from_feature(f, int_ids) == expected
    else:
        assert reason_of(parsing.id_from_feature, f, int_ids) == expected


def test_id_from_features_and_tensor_values():
    features = example_pb2.Example().features.feature
    assert reason_of(parsing.id_from_features, features, "example_id") == parsing.MISSING_ID
    features["example_id"].bytes_list.value.append(b"x")
    assert parsing.id_from_features(features, "example_id") == b"x"
    assert parsing.check_id(np.int32(7)) == b"7"
    assert reason_of(parsing.check_id, 1.5) == parsing.BAD_ID_TYPE
    assert reason_of(parsing.check_id, "text") == parsing.BAD_ID_TYPE


@settings(max_examples=200, deadline=None)
@given(st.lists(st.one_of(st.binary(max_size=8), st.integers(1020, 1030).map(b"k".__mul__)), max_size=10))
def test_ids_ok_agrees_with_check_id(ids):
    expected = []
    for value in ids:
        try:
            expected.append(parsing.check_id(value) == value)
        except RecordError as e:
            assert e.reason in parsing.ID_REASONS
            expected.append(False)
    assert parsing.ids_ok(ids).tolist() == expected


# ---------------------------------------------------------------------------------------------- labels


@pytest.mark.parametrize(
    "f, task, expected",
    [
        (feature("int64_list", [1]), "binary", 1.0),
        (feature("float_list", [0.0]), "binary", 0.0),
        (feature("float_list", [2.5]), "regression", 2.5),
        (feature("int64_list", [3]), "binary", parsing.LABEL_OUT_OF_DOMAIN),
        (feature("float_list", [0.5]), "binary", parsing.LABEL_OUT_OF_DOMAIN),
        (feature("float_list", [math.nan]), "regression", parsing.NON_FINITE_LABEL),
        (feature("float_list", [math.inf]), "binary", parsing.NON_FINITE_LABEL),
        (feature("bytes_list", [b"1"]), "binary", parsing.BAD_LABEL_TYPE),
        (feature("int64_list", [0, 1]), "binary", parsing.BAD_LABEL_COUNT),
        (feature("float_list"), "binary", parsing.MISSING_LABEL),
        (feature(None), "binary", parsing.MISSING_LABEL),
    ],
)
def test_label_from_features(f, task, expected):
    features = example_pb2.Example().features.feature
    features["label"].CopyFrom(f)
    if isinstance(expected, float):
        assert parsing.label_from_features(features, "label", task) == expected
    else:
        assert reason_of(parsing.label_from_features, features, "label", task) == expected
    assert reason_of(parsing.label_from_features, features, "other", task) == parsing.MISSING_LABEL


@settings(max_examples=200, deadline=None)
@given(
    st.lists(st.one_of(st.floats(), st.sampled_from([0.0, 1.0, -0.0])), max_size=10),
    st.sampled_from(["binary", "regression"]),
)
def test_labels_ok_agrees_with_check_label(labels, task):
    expected = []
    for value in labels:
        try:
            expected.append(parsing.check_label(value, task) == value)
        except RecordError as e:
            assert e.reason in parsing.LABEL_REASONS
            expected.append(False)
    assert parsing.labels_ok(np.asarray(labels, dtype=np.float64), task).tolist() == expected


# ---------------------------------------------------------------------------------------------- protobuf


def test_parse_proto_strict_and_prefix():
    ex = example_pb2.Example()
    ex.features.feature["example_id"].bytes_list.value.append(b"a")
    raw = ex.SerializeToString()
    assert parsing.parse_proto(example_pb2.Example, raw, "bad") == ex
    assert reason_of(parsing.parse_proto, example_pb2.Example, b"\xff\xff\xff", "bad") == "bad"
    # a stray end-group tag: protobuf stops there with only a warning
    with pytest.warns(RuntimeWarning):
        assert reason_of(parsing.parse_proto, example_pb2.Example, raw + b"\x0cjunk", "bad") == "bad"
    with pytest.warns(RuntimeWarning):
        prefix = parsing.parse_proto(example_pb2.Example, raw + b"\x0cjunk", "bad", complete=False)
    assert prefix == ex


def test_or_error_keeps_the_reject():
    assert parsing.or_error(parsing.check_id, b"a") == b"a"
    outcome = parsing.or_error(parsing.check_id, b"")
    assert isinstance(outcome, RecordError) and outcome.reason == parsing.EMPTY_ID


# ---------------------------------------------------------------------------------------------- one by one

# A toy format: b"v<digit>" is a value, b"x" a reject; b"?" the batch parser leaves (None for that row); b"!"
# makes the whole batch fail; b"u" is "unparseable" one by one but accepted by a batch of it alone (as TensorFlow
# takes a feature name that is not UTF-8 and protobuf does not).
_ROWS = st.lists(st.sampled_from([b"v1", b"v2", b"x", b"?", b"!", b"u"]), max_size=8)


def _one(raw: bytes):
    if raw.startswith(b"v"):
        return int(raw[1:])
    if raw == b"?":
        return 0
    raise RecordError("unparseable" if raw in (b"!", b"u") else "bad")


def _batch(rows):
    if b"!" in rows or (b"u" in rows and len(rows) > 1):
        return None
    return [None if raw in (b"x", b"?") else (9 if raw == b"u" else int(raw[1:])) for raw in rows]


def _decode(rows):
    """How the readers use the kit: the fast batch parse, then decide_one_by_one for what it left."""
    return parsing.decide_one_by_one(
        rows, _batch(rows), _one, lambda raw: (_batch([raw]) or [None])[0], "unparseable"
    )


@settings(max_examples=300, deadline=None)
@given(_ROWS)
def test_each_row_is_decided_as_it_is_alone(rows):
    values, rejects = _decode(rows)
    alone = [_decode([raw]) for raw in rows]
    assert values == [v for a in alone for v in a[0]]
    assert rejects == [(i, r) for i, a in enumerate(alone) for _, r in a[1]]
    assert len(values) + len(rejects) == len(rows)


def test_decide_one_by_one_outcomes():
    assert _decode([]) == ([], [])
    assert _decode([b"v1", b"x", b"?"]) == ([1, 0], [(1, "bad")])  # the batch parsed; two rows left
    assert _decode([b"u", b"!"]) == ([9], [(1, "unparseable")])  # the batch failed; b"u" decided alone
    assert _decode([b"u"]) == ([9], [])
