"""Fuzzing every reader of untrusted bytes (issue 8): random bytes, mutated messages and random protos.

The documented outcomes, and nothing else (no other exception, no crash, no hang: the hypothesis deadline
catches a reader that takes too long):

- `example_keys.ExampleKeyParser.parse_one`: `(id, label)` or `KeyError(reason)`, reason in REJECT_REASONS;
- `ExampleKeyParser.parse`: never raises; each example is decided as it is alone in a batch, whatever the
  other examples of its batch (batching is the runner's choice), with parse_one's reason when rejected;
- `prediction_log.decode_prediction_log` / `plain_format.decode_plain_record`: records or `RecordError` with a
  reason in `records.REJECT_REASONS`; `decode_prediction_log_lenient` / `decode_plain_batch` never raise, and
  the batch decoder agrees with the one-by-one decoder.

Accepted values always satisfy the documented limits (id 1..1024 bytes, finite label in {0, 1} for binary,
prediction in [0, 1], hidden norm >= 0 or NaN).
"""

from __future__ import annotations

import datetime
import math
import os
import time

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from tensorflow.core.example import example_pb2
from tensorflow.core.framework import tensor_pb2, types_pb2
from tensorflow_serving.apis import prediction_log_pb2

from tfx_curator.components.curator.reading import (
    example_keys,
    parsing,
    plain_format,
    prediction_log,
    records,
)
from tfx_curator.components.curator.reading.records import RecordConfig, RecordError

# TFX_CURATOR_FUZZ_EXAMPLES=5000 explores with random seeds; by default the same modest set of cases every run.
_EXPLORE = int(os.environ.get("TFX_CURATOR_FUZZ_EXAMPLES", "0"))
FUZZ = settings(
    max_examples=_EXPLORE or 100,
    # Exploring (an unloaded machine, run by hand): a case slower than 2 s is a pathological slowdown and fails.
    # The default set has no wall-clock limit (CI machines are shared and slow; only the hang guard applies).
    deadline=datetime.timedelta(seconds=2) if _EXPLORE else None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
    derandomize=not _EXPLORE,  # CI must not flake
)
BINARY = RecordConfig()
REGRESSION = RecordConfig(task="regression")
CONFIGS = st.sampled_from([BINARY, REGRESSION, RecordConfig(id_output_key="ids", hidden_norm_key=None)])
PARSERS = {
    task: example_keys.ExampleKeyParser("example_id", "label", task) for task in ("binary", "regression")
}
NAMES = ["example_id", "label", "prediction", "hidden_norm", "timestamp", "model_version", "x", "ids"]


@pytest.fixture(scope="module", autouse=True)
def warm_up():
    """First TensorFlow calls build kernels: keep that out of the per-example deadline (exploration)."""
    for parser in PARSERS.values():
        parser.parse([b"", b"\x00"])
    plain_format.decode_plain_batch([b"", b"\x00"], BINARY)


# ---------------------------------------------------------------------------------------------------------
# Strategies
# ---------------------------------------------------------------------------------------------------------

_ids = st.one_of(
    st.binary(min_size=1, max_size=12),
    st.just(b""),
    st.sampled_from([b"k" * 1024, b"k" * 1025]),
)
_floats = st.one_of(
    st.floats(width=32),
    st.sampled_from([0.0, 1.0, 0.5, -0.0, math.nan, math.inf, -math.inf, 1e-45, 2.0, -1.0]),
)
_ints = st.one_of(st.integers(-(2**63), 2**63 - 1), st.sampled_from([0, 1, 2, -1, -(2**63)]))


@st.composite
def feature_values(draw, feature: example_pb2.Feature) -> None:
    kind = draw(st.sampled_from(["bytes", "int64", "float", "unset"]))
    n = draw(st.sampled_from([1, 1, 1, 0, 2, 3]))
    if kind == "bytes":
        feature.bytes_list.value.extend(draw(st.lists(_ids, min_size=n, max_size=n)))
    elif kind == "int64":
        feature.int64_list.value.extend(draw(st.lists(_ints, min_size=n, max_size=n)))
    elif kind == "float":
        feature.float_list.value.extend(draw(st.lists(_floats, min_size=n, max_size=n)))
    # "unset": a feature with no kind at all


@st.composite
def examples(draw, names=tuple(NAMES)) -> example_pb2.Example:
    """Random tf.Example: random feature names, kinds, value counts and values (often the valid ones)."""
    ex = example_pb2.Example()
    f = ex.features.feature
    if draw(st.booleans()):  # a well-formed core, so that the fast paths are exercised too
        f["example_id"].bytes_list.value.append(draw(st.binary(min_size=1, max_size=8)))
        f["label"].int64_list.value.append(draw(st.sampled_from([0, 1])))
        f["prediction"].float_list.value.append(draw(st.floats(0, 1, width=32)))
    for name in draw(st.lists(st.sampled_from(names), unique=True, max_size=4)):
        f[name].Clear()
        draw(feature_values(f[name]))
    return ex


@st.composite
def mutated(draw, raw: bytes) -> bytes:
    """Byte flips, insertions, truncation or appended garbage of a serialized message."""
    data = bytearray(raw)
    for _ in range(draw(st.integers(0, 3))):
        op = draw(st.sampled_from(["flip", "insert", "delete"]))
        at = draw(st.integers(0, len(data)))
        if op == "flip" and at < len(data):
            data[at] = draw(st.integers(0, 255))
        elif op == "insert":
            data[at:at] = draw(st.binary(min_size=1, max_size=4))
        elif at < len(data):
            del data[at]
    if draw(st.booleans()):
        data = data[: draw(st.integers(0, len(data)))]
    return bytes(data) + draw(st.binary(max_size=3))


@st.composite
def serialized_examples(draw) -> bytes:
    raw = draw(examples()).SerializeToString()
    return draw(st.one_of(st.just(raw), mutated(raw), st.binary(max_size=64)))


_DTYPES = st.one_of(
    st.sampled_from(
        [
            types_pb2.DT_FLOAT,
            types_pb2.DT_DOUBLE,
            types_pb2.DT_INT64,
            types_pb2.DT_INT32,
            types_pb2.DT_STRING,
            types_pb2.DT_BOOL,
            types_pb2.DT_HALF,
            types_pb2.DT_UINT8,
            types_pb2.DT_COMPLEX64,
            types_pb2.DT_VARIANT,
            types_pb2.DT_RESOURCE,
            types_pb2.DT_INVALID,
        ]
    ),
    st.integers(0, 1000),  # an open enum: any number parses
)


@st.composite
def tensors(draw, n_hint: int) -> tensor_pb2.TensorProto:
    """Random TensorProto: dtype (also unknown ones), shape (also huge or negative), values or raw content."""
    t = tensor_pb2.TensorProto()
    t.dtype = draw(_DTYPES)
    dims = draw(
        st.one_of(
            st.just([n_hint]),
            st.just([n_hint, 1]),
            st.just([n_hint, 2]),
            st.lists(st.integers(-2, 5), max_size=3),
            st.sampled_from([[1 << 20, 2], [1 << 40], [-1, 3], [1 << 19]]),
        )
    )
    for d in dims:
        t.tensor_shape.dim.add().size = d
    fill = draw(st.sampled_from(["float", "double", "int64", "int", "string", "content", "none"]))
    count = draw(st.integers(0, 5))
    if fill == "float":
        t.float_val.extend(draw(st.lists(_floats, min_size=count, max_size=count)))
    elif fill == "double":
        t.double_val.extend(draw(st.lists(st.floats(), min_size=count, max_size=count)))
    elif fill == "int64":
        t.int64_val.extend(draw(st.lists(_ints, min_size=count, max_size=count)))
    elif fill == "int":
        t.int_val.extend(draw(st.lists(st.integers(-(2**31), 2**31 - 1), min_size=count, max_size=count)))
    elif fill == "string":
        values = [
            draw(examples()).SerializeToString() if draw(st.booleans()) else draw(_ids) for _ in range(count)
        ]
        t.string_val.extend(values)
    elif fill == "content":
        t.tensor_content = draw(st.binary(max_size=64))
    return t


@st.composite
def inputs(draw, input_proto, n: int) -> None:
    kind = draw(st.sampled_from(["list", "context", "none"]))
    if kind == "none":
        return
    target = (
        input_proto.example_list.examples
        if kind == "list"
        else input_proto.example_list_with_context.examples
    )
    for _ in range(n):
        target.add().CopyFrom(draw(examples()))
    if kind == "context" and draw(st.booleans()):
        input_proto.example_list_with_context.context.CopyFrom(draw(examples()))


@st.composite
def prediction_logs(draw) -> prediction_log_pb2.PredictionLog:
    """Random PredictionLog: a random oneof choice, filled with random (often inconsistent) content."""
    log = prediction_log_pb2.PredictionLog()
    n = draw(st.integers(0, 3))
    kind = draw(
        st.sampled_from(
            ["classify", "regress", "predict", "multi_inference", "session_run", "predict_streamed", "none"]
        )
    )
    if kind == "classify":
        sub = log.classify_log
        draw(inputs(sub.request.input, n))
        for _ in range(draw(st.integers(0, 3))):
            c = sub.response.result.classifications.add()
            for _ in range(draw(st.integers(0, 3))):
                klass = c.classes.add()
                klass.label = draw(st.sampled_from(["", "0", "1", "yes"]))
                klass.score = draw(_floats)
        sub.response.model_spec.version.value = draw(_ints)
    elif kind == "regress":
        sub = log.regress_log
        draw(inputs(sub.request.input, n))
        for _ in range(draw(st.integers(0, 3))):
            sub.response.result.regressions.add().value = draw(_floats)
    elif kind == "multi_inference":
        sub = log.multi_inference_log
        draw(inputs(sub.request.input, n))
        for _ in range(draw(st.integers(0, 3))):
            result = sub.response.results.add()
            result.model_spec.signature_name = draw(st.sampled_from(["", "prediction", "hidden_norm", "x"]))
            if draw(st.booleans()):
                for _ in range(draw(st.integers(0, 3))):
                    c = result.classification_result.classifications.add()
                    klass = c.classes.add()
                    klass.label = draw(st.sampled_from(["", "1"]))
                    klass.score = draw(_floats)
            elif draw(st.booleans()):
                for _ in range(draw(st.integers(0, 3))):
                    result.regression_result.regressions.add().value = draw(_floats)
    elif kind == "predict":
        sub = log.predict_log
        for key in draw(
            st.lists(st.sampled_from(["examples", "inputs", "example_id", "x"]), unique=True, max_size=2)
        ):
            sub.request.inputs[key].CopyFrom(draw(tensors(n)))
        for key in draw(
            st.lists(
                st.sampled_from(["prediction", "hidden_norm", "example_id", "ids"]), unique=True, max_size=3
            )
        ):
            sub.response.outputs[key].CopyFrom(draw(tensors(n)))
        if draw(st.booleans()):
            sub.response.model_spec.version_label = draw(st.sampled_from(["", "v", "l" * 2000]))
    elif kind == "session_run":
        log.session_run_log.SetInParent()
    elif kind == "predict_streamed":
        log.predict_streamed_log.SetInParent()
    if draw(st.booleans()):
        log.log_metadata.timestamp_secs = draw(_ints)
        if draw(st.booleans()):
            log.log_metadata.model_spec.version.value = draw(_ints)
    return log


@st.composite
def serialized_logs(draw) -> bytes:
    raw = draw(prediction_logs()).SerializeToString()
    return draw(st.one_of(st.just(raw), mutated(raw), st.binary(max_size=64)))


# ---------------------------------------------------------------------------------------------------------
# Checks
# ---------------------------------------------------------------------------------------------------------


def _check_example_result(example_id: bytes, label: float, task: str) -> None:
    assert isinstance(example_id, bytes) and 0 < len(example_id) <= parsing.MAX_ID_BYTES
    assert math.isfinite(label)
    if task == "binary":
        assert label in (0.0, 1.0)


def _parse_one(parser, raw):
    try:
        example_id, label = parser.parse_one(raw)
    except KeyError as e:
        assert e.args[0] in example_keys.REJECT_REASONS, e
        return e.args[0]
    _check_example_result(example_id, label, parser.task)
    return example_id, label


def _check_record(record, config: RecordConfig) -> None:
    example_id, (prediction, hidden_norm, timestamp, version) = record
    assert isinstance(example_id, bytes) and 0 < len(example_id) <= parsing.MAX_ID_BYTES
    assert math.isfinite(prediction)
    if config.task == "binary":
        assert 0.0 <= prediction <= 1.0
    assert math.isnan(hidden_norm) or (math.isfinite(hidden_norm) and hidden_norm >= 0.0)
    assert isinstance(timestamp, float) and isinstance(version, bytes)
    assert len(version) <= parsing.MAX_ID_BYTES


def _decode_plain(raw, config):
    try:
        record = plain_format.decode_plain_record(raw, config)
    except RecordError as e:
        assert e.reason in records.REJECT_REASONS, e
        return e.reason
    _check_record(record, config)
    return record


def _with_a_feature_name_not_utf8(**values) -> bytes:
    """A serialized tf.Example with id b"a", the given float/int features and a feature named b"\\xff\\xfe"."""
    ex = example_pb2.Example()
    ex.features.feature["example_id"].bytes_list.value.append(b"a")
    for name, value in values.items():
        feature = ex.features.feature[name]
        (feature.int64_list if isinstance(value, int) else feature.float_list).value.append(value)
    ex.features.feature["zz"].float_list.value.append(1.0)
    raw = ex.SerializeToString()
    at = raw.index(b"\x0a\x02zz")
    return raw[:at] + b"\x0a\x02\xff\xfe" + raw[at + 4 :]


def _comparable(record):
    example_id, values = record
    return example_id, tuple("nan" if isinstance(v, float) and math.isnan(v) else v for v in values)


# ---------------------------------------------------------------------------------------------------------
# Examples: example_keys
# ---------------------------------------------------------------------------------------------------------


@FUZZ
@given(raw=serialized_examples(), task=st.sampled_from(["binary", "regression"]))
def test_parse_one_only_rejects_with_a_reason(raw, task):
    _parse_one(PARSERS[task], raw)


@FUZZ
@given(raw=st.binary(max_size=256))
def test_parse_one_on_random_bytes(raw):
    _parse_one(PARSERS["binary"], raw)


@FUZZ
@given(
    batch=st.lists(serialized_examples(), min_size=1, max_size=8),
    task=st.sampled_from(["binary", "regression"]),
)
def test_parse_batch_decides_each_example_as_alone_and_as_parse_one(batch, task):
    """Batching is the runner's choice: an example's fate must not depend on the rest of its batch."""
    parser = PARSERS[task]
    ids, labels, rejects = parser.parse(batch)
    assert len(ids) == len(labels) == len(batch) - len(rejects)
    rejected = dict(rejects)
    assert len(rejected) == len(rejects) and all(0 <= i < len(batch) for i in rejected)
    accepted = iter(zip(ids, labels.tolist()))
    for i, raw in enumerate(batch):
        one = _parse_one(parser, raw)
        alone_ids, alone_labels, alone_rejects = parser.parse([raw])
        if i in rejected:
            assert rejected[i] == one and alone_rejects == [(0, one)]
            continue
        got = next(accepted)
        _check_example_result(*got, task)
        assert [got] == list(zip(alone_ids, alone_labels.tolist()))
        # protobuf and TensorFlow's parser agree, except on what only protobuf refuses (see below)
        assert got == one or one == example_keys.UNPARSEABLE


@FUZZ
@given(good=st.lists(examples(names=("x",)), min_size=1, max_size=4), bad=serialized_examples())
def test_a_bad_neighbour_does_not_change_the_others(good, bad):
    """A clean batch takes the fast path; one bad example sends the batch one by one: same decisions."""
    parser = PARSERS["binary"]
    raws = [g.SerializeToString() for g in good]
    alone = parser.parse(raws)
    with_neighbour = parser.parse(raws + [bad])
    n_good = len(raws) - len(alone[2])
    assert with_neighbour[0][:n_good] == alone[0]
    assert with_neighbour[1][:n_good].tolist() == alone[1].tolist()
    assert [r for r in with_neighbour[2] if r[0] < len(raws)] == alone[2]


def test_feature_name_that_is_not_utf8_is_decided_the_same_in_any_batch():
    """Found by fuzzing: TensorFlow's parser accepts a feature name protobuf refuses (not UTF-8), so the
    example was accepted in a clean batch and rejected as unparseable next to a bad one."""
    bad_name = _with_a_feature_name_not_utf8(label=1)
    parser = PARSERS["binary"]
    assert _parse_one(parser, bad_name) == example_keys.UNPARSEABLE  # protobuf refuses it
    alone = parser.parse([bad_name])
    with_garbage = parser.parse([bad_name, b"garbage"])
    assert alone[0] == with_garbage[0] == [b"a"] and alone[1].tolist() == with_garbage[1].tolist() == [1.0]
    assert alone[2] == [] and with_garbage[2] == [(1, example_keys.UNPARSEABLE)]


# ---------------------------------------------------------------------------------------------------------
# Forward records: prediction_log, plain_format
# ---------------------------------------------------------------------------------------------------------


@FUZZ
@given(raw=serialized_logs(), config=CONFIGS)
def test_prediction_log_decoding_only_rejects_with_a_reason(raw, config):
    got, reasons = prediction_log.decode_prediction_log_lenient(raw, config)
    assert set(reasons) <= set(records.REJECT_REASONS)
    for record in got:
        _check_record(record, config)
    try:
        strict = prediction_log.decode_prediction_log(raw, config)
    except RecordError as e:
        assert e.reason in records.REJECT_REASONS
        assert reasons and e.reason == reasons[0]
    else:
        assert not reasons and strict == got


@FUZZ
@given(raw=st.binary(max_size=256), config=CONFIGS)
def test_prediction_log_decoding_on_random_bytes(raw, config):
    got, reasons = prediction_log.decode_prediction_log_lenient(raw, config)
    assert set(reasons) <= set(records.REJECT_REASONS)
    for record in got:
        _check_record(record, config)


@FUZZ
@given(raw=serialized_examples(), config=CONFIGS)
def test_plain_record_decoding_only_rejects_with_a_reason(raw, config):
    _decode_plain(raw, config)


@FUZZ
@given(batch=st.lists(serialized_examples(), min_size=1, max_size=8), config=CONFIGS)
def test_plain_batch_decodes_each_record_as_alone_and_as_one_by_one(batch, config):
    got, rejects = plain_format.decode_plain_batch(batch, config)
    for record in got:
        _check_record(record, config)
    alone = [plain_format.decode_plain_batch([raw], config) for raw in batch]
    assert [_comparable(r) for r in got] == [_comparable(r) for a in alone for r in a[0]]
    assert rejects == [r for a in alone for r in a[1]]
    # the one-by-one decoder agrees, except on what only protobuf refuses (see below)
    for raw, (decoded, rejected) in zip(batch, alone):
        one = _decode_plain(raw, config)
        if rejected:
            assert rejected == [(raw, one)]
        else:
            assert one == "unparseable" or [_comparable(decoded[0])] == [_comparable(one)]


def test_plain_record_with_a_feature_name_that_is_not_utf8_is_decided_the_same_in_any_batch():
    """As for examples: TensorFlow's parser takes what protobuf refuses; the neighbours must not matter."""
    bad_name = _with_a_feature_name_not_utf8(prediction=0.5)
    assert _decode_plain(bad_name, BINARY) == "unparseable"  # protobuf refuses it
    alone = plain_format.decode_plain_batch([bad_name], BINARY)
    with_junk = plain_format.decode_plain_batch([bad_name, b"junk"], BINARY)
    assert [_comparable(r) for r in alone[0]] == [_comparable(r) for r in with_junk[0]]
    assert len(alone[0]) == 1 and alone[1] == [] and with_junk[1] == [(b"junk", "unparseable")]


@FUZZ
@given(raw=st.binary(max_size=256))
def test_plain_batch_on_random_bytes(raw):
    got, rejects = plain_format.decode_plain_batch([raw, raw], BINARY)
    assert len(got) + len(rejects) == 2
    assert {reason for _, reason in rejects} <= set(records.REJECT_REASONS)


def test_a_broadcast_string_tensor_is_rejected_not_parsed_half_a_million_times():
    """Found by fuzzing (a deadline exceeded): a 30-byte predict log whose request tensor claims 2**19 empty
    serialized examples took 4 s to decode; strings must come one per element."""
    raw = (
        b"2,\n*\x12\x14\n\x06inputs\x12\n\x08\x07\x12\x06\x12\x04\x08\x80\x80 "
        b"\x12\x12\n\x08examples\x12\x06\x08\x01\x12\x02\x12\x00"
    )
    started = time.monotonic()
    assert prediction_log.decode_prediction_log_lenient(raw, BINARY) == ([], ["bad_tensor"])
    assert time.monotonic() - started < 0.5


def test_a_broadcast_prediction_is_checked_against_the_examples_before_it_is_decoded():
    """A 63-byte log whose prediction claims 2**20 broadcast floats for one id took ~90 ms to reject."""
    log = prediction_log_pb2.PredictionLog()
    prediction = log.predict_log.response.outputs["prediction"]
    prediction.dtype = types_pb2.DT_FLOAT
    prediction.tensor_shape.dim.add().size = parsing.MAX_TENSOR_ELEMENTS
    prediction.float_val.append(0.5)
    ids = log.predict_log.response.outputs["example_id"]
    ids.dtype = types_pb2.DT_INT64
    ids.tensor_shape.dim.add().size = 1
    ids.int64_val.append(7)
    started = time.monotonic()
    assert prediction_log.decode_prediction_log_lenient(log.SerializeToString(), BINARY) == (
        [],
        ["bad_prediction_shape"],
    )
    ids.tensor_shape.dim[0].size = parsing.MAX_TENSOR_ELEMENTS  # a broadcast id: 2**20 records of one id
    assert prediction_log.decode_prediction_log_lenient(log.SerializeToString(), BINARY) == (
        [],
        ["bad_tensor"],
    )
    assert time.monotonic() - started < 0.5


def test_huge_tensor_shapes_are_rejected_without_allocating():
    """A TensorProto may claim 2**40 elements in a few bytes: rejected by the size guard, fast."""
    log = prediction_log_pb2.PredictionLog()
    t = log.predict_log.response.outputs["prediction"]
    t.dtype = types_pb2.DT_FLOAT
    t.tensor_shape.dim.add().size = 1 << 40
    t.float_val.append(0.5)
    ids = log.predict_log.response.outputs["example_id"]
    ids.dtype = types_pb2.DT_STRING
    ids.tensor_shape.dim.add().size = 1
    ids.string_val.append(b"a")
    with pytest.raises(RecordError) as e:
        prediction_log.decode_prediction_log(log.SerializeToString(), BINARY)
    assert e.value.reason == "bad_tensor"
