"""The plain forward-record format: one record at a time, the batch path, rejects with a reason."""

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from record_builders import PLAIN_REJECTS, plain

from tfx_curator.components.curator.reading import plain_format, records
from tfx_curator.components.curator.reading.records import RecordConfig, RecordError

BINARY = RecordConfig()


def reason_of(fn, *args) -> str:
    with pytest.raises(RecordError) as info:
        fn(*args)
    assert info.value.reason in records.REJECT_REASONS
    return info.value.reason


def test_plain_record_full_and_minimal():
    full = plain(
        example_id=b"a", prediction=0.25, model_version=b"v3", timestamp=1_700_000_000, hidden_norm=2.0
    )
    assert plain_format.decode_plain_record(full, BINARY) == (b"a", (0.25, 2.0, 1.7e9, b"v3"))
    got = plain_format.decode_plain_record(plain(example_id=b"b", prediction=0.5), BINARY)
    assert got[0] == b"b" and got[1][0] == 0.5 and math.isnan(got[1][1]) and math.isnan(got[1][2])
    assert got[1][3] == b""
    renamed = RecordConfig(id_feature="uid", prediction_key="y_hat", hidden_norm_key=None, task="regression")
    assert plain_format.decode_plain_record(plain(uid=b"u", y_hat=-7.0, hidden_norm=-1.0), renamed)[1][
        :1
    ] == (-7.0,)


@pytest.mark.parametrize("raw, reason", PLAIN_REJECTS)
def test_plain_rejects(raw, reason):
    assert reason_of(plain_format.decode_plain_record, raw, BINARY) == reason
    got, rejects = plain_format.decode_plain_batch([plain(example_id=b"ok", prediction=0.5), raw], BINARY)
    assert [r[0] for r in got] == [b"ok"] and rejects == [(raw, reason)]


def test_plain_empty_optional_feature_reads_as_absent():
    raw = plain(example_id=b"a", prediction=0.5, hidden_norm=[])
    assert math.isnan(plain_format.decode_plain_record(raw, BINARY)[1][1])
    assert math.isnan(plain_format.decode_plain_batch([raw], BINARY)[0][0][1][1])


_field = st.sampled_from(["ok", "absent", "nan", "negative", "big", "wrong_type", "two"])


@st.composite
def plain_records(draw):
    feats = {}
    id_kind = draw(_field)
    if id_kind != "absent":
        feats["example_id"] = {
            "ok": draw(st.binary(min_size=1, max_size=12)),
            "nan": b"",
            "negative": b"",
            "big": b"i" * 1025,
            "wrong_type": 5,
            "two": [b"a", b"b"],
        }[id_kind]
    for name, ok in (("prediction", st.floats(0, 1, width=32)), ("hidden_norm", st.floats(0, 1e6, width=32))):
        kind = draw(_field)
        if kind != "absent":
            feats[name] = {
                "ok": draw(ok),
                "nan": float("nan"),
                "negative": -1.0,
                "big": 1e30,
                "wrong_type": b"x",
                "two": [0.1, 0.2],
            }[kind]
    if draw(st.booleans()):
        feats["timestamp"] = draw(st.integers(-(2**63), 2**63 - 1))
    if draw(st.booleans()):
        feats["model_version"] = draw(st.binary(max_size=8))
    return plain(**feats)


@settings(max_examples=60, deadline=None)
@given(st.lists(plain_records(), min_size=1, max_size=12))
def test_plain_batch_matches_record_by_record(batch):
    got, rejects = plain_format.decode_plain_batch(batch, BINARY)
    expected, expected_rejects = [], []
    for raw in batch:
        try:
            expected.append(plain_format.decode_plain_record(raw, BINARY))
        except RecordError as e:
            expected_rejects.append((raw, e.reason))
    assert len(got) == len(expected)
    for a, e in zip(got, expected):
        assert a[0] == e[0] and a[1][3] == e[1][3]
        np.testing.assert_array_equal(a[1][:3], e[1][:3])
    assert sorted(rejects) == sorted(expected_rejects)


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=200))
def test_arbitrary_bytes_never_crash_the_decoder(raw):
    got, rejects = plain_format.decode_plain_batch([raw], BINARY)
    assert len(got) + len(rejects) == 1
    assert {reason for _, reason in rejects} <= set(records.REJECT_REASONS)


def test_plain_features_follow_the_record_config():
    spec = plain_format.plain_feature_spec(RecordConfig(id_feature="uid", hidden_norm_key=None))
    assert set(spec) == {"uid", "prediction", "model_version", "timestamp"}
    names = [name for name, *_ in plain_format.PLAIN_FEATURES]
    assert set(plain_format.plain_feature_spec(BINARY)) == set(names)
