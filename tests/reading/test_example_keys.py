"""The example reader: (id, label) per serialized tf.Example, in batches, with the kit's reject codes."""

import subprocess
import sys

import numpy as np
import pytest
import tensorflow as tf
from hypothesis import given, settings
from hypothesis import strategies as st

from tfx_curator.components.curator.reading import example_keys, parsing
from tfx_curator.components.curator.reading.example_keys import ExampleKeyParser

BINARY = ExampleKeyParser("example_id", "label", "binary")
REGRESSION = ExampleKeyParser("example_id", "label", "regression")


def example(example_id=None, label=None, **features) -> bytes:
    """bytes -> bytes_list, int -> int64_list, float -> float_list; a list gives several values."""
    ex = tf.train.Example()
    for name, value in dict(features, example_id=example_id, label=label).items():
        if value is None:
            continue
        values = value if isinstance(value, list) else [value]
        kind = "bytes_list" if isinstance(values[0], bytes) else "int64_list"
        kind = "float_list" if isinstance(values[0], float) else kind
        getattr(ex.features.feature[name], kind).value.extend(values)
    return ex.SerializeToString()


def reason_of(parser, raw) -> str:
    with pytest.raises(KeyError) as info:
        parser.parse_one(raw)
    return info.value.args[0]


@pytest.mark.parametrize(
    "raw, reason",
    [
        (b"\x0a\xff\xff\xff\xff garbage", example_keys.UNPARSEABLE),
        (example(label=1), parsing.MISSING_ID),
        (example(1.5, 1), parsing.BAD_ID_TYPE),
        (example([b"a", b"b"], 1), parsing.BAD_ID_COUNT),
        (example(b"", 1), parsing.EMPTY_ID),
        (example(b"k" * 1025, 1), parsing.ID_TOO_LONG),
        (example(b"a"), parsing.MISSING_LABEL),
        (example(b"a", b"1"), parsing.BAD_LABEL_TYPE),
        (example(b"a", [0, 1]), parsing.BAD_LABEL_COUNT),
        (example(b"a", float("nan")), parsing.NON_FINITE_LABEL),
        (example(b"a", 3), parsing.LABEL_OUT_OF_DOMAIN),
    ],
    ids=lambda value: value if isinstance(value, str) else "",
)
def test_rejects_carry_the_kit_codes(raw, reason):
    assert reason in example_keys.REJECT_REASONS
    assert reason_of(BINARY, raw) == reason
    ids, labels, rejects = BINARY.parse([example(b"ok", 0), raw])
    assert ids == [b"ok"] and labels.tolist() == [0.0] and rejects == [(1, reason)]


def test_ids_and_labels_of_every_supported_type():
    assert BINARY.parse_one(example(b"a", 1)) == (b"a", 1.0)
    assert BINARY.parse_one(example(-42, 0.0)) == (b"-42", 0.0)  # int id as decimal ASCII, float label
    assert REGRESSION.parse_one(example(b"r", 2.5)) == (b"r", 2.5)
    assert reason_of(BINARY, example(b"r", 2.5)) == parsing.LABEL_OUT_OF_DOMAIN
    # each batch through the fast path, whichever id and label types it holds
    for batch in (
        [example(b"a", 1), example(b"b", 0)],
        [example(7, 1.0)],
        [example(b"c", 0.0), example(b"d", 1.0)],
    ):
        ids, labels, rejects = BINARY.parse(batch)
        assert rejects == [] and list(zip(ids, labels.tolist())) == [BINARY.parse_one(raw) for raw in batch]
    ids, labels, rejects = BINARY.parse([])
    assert ids == [] and labels.shape == (0,) and rejects == []


def test_a_stray_end_group_tag_keeps_the_parsed_prefix():
    """The reader's historical behaviour, unlike the strict record decoders (see parsing.parse_proto)."""
    raw = example(b"a", 1)
    with pytest.warns(RuntimeWarning):
        assert BINARY.parse([raw + b"\x0cjunk"])[:2] == ([b"a"], pytest.approx(np.array([1.0])))


_IDS = st.one_of(st.binary(min_size=1, max_size=6), st.integers(-(2**63), 2**63 - 1), st.just(b""))
_LABELS = st.one_of(st.sampled_from([0, 1, 2]), st.sampled_from([0.0, 1.0, 0.5, float("inf")]), st.none())


@settings(max_examples=100, deadline=None)
@given(st.lists(st.tuples(_IDS, _LABELS), min_size=1, max_size=8), st.sampled_from([BINARY, REGRESSION]))
def test_batch_parse_matches_parse_one(rows, parser):
    batch = [example(i, label) for i, label in rows]
    ids, labels, rejects = parser.parse(batch)
    expected, expected_rejects = [], []
    for index, raw in enumerate(batch):
        try:
            expected.append(parser.parse_one(raw))
        except KeyError as e:
            expected_rejects.append((index, e.args[0]))
    assert list(zip(ids, labels.tolist())) == expected and rejects == expected_rejects


def test_weight_suffix_sets_the_weight_and_keeps_the_bytes():
    raw = example(b"a", 1, sample_weight=9.0, x=0.5)
    merged = tf.train.Example.FromString(raw + example_keys.weight_suffix("sample_weight", 2.5))
    assert merged.features.feature["sample_weight"].float_list.value == [2.5]  # the last entry wins
    assert merged.features.feature["x"].float_list.value == [0.5]


def test_import_does_not_load_tensorflow():
    code = (
        "import sys; from tfx_curator.components.curator.reading import example_keys; "
        "print(sorted(m for m in ('tensorflow', 'tensorflow_serving') if m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"
