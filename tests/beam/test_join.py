"""join.py on small in-memory data: keying examples by id (KeyExamples), resolving duplicate records
(resolve_duplicates) and joining examples with their forward records (JoinForwardRecords): TestPipeline +
assert_that, and a hypothesis property for the duplicate policies."""

import math

import apache_beam as beam
import helpers
import numpy as np
import pytest
import tensorflow as tf
from apache_beam.testing.test_pipeline import TestPipeline
from apache_beam.testing.util import assert_that, equal_to
from hypothesis import given, settings
from hypothesis import strategies as st

from tfx_curator.components.curator.beam import join, rows
from tfx_curator.components.curator.options import CurationOptions
from tfx_curator.components.curator.policy import passes
from tfx_curator.components.curator.reading import example_keys
from tfx_curator.components.curator.reporting import unbiasedness


def test_key_examples_rejects_each_bad_example_with_its_reason():
    options = CurationOptions()
    good = [helpers.make_example(b"g1", 1), helpers.make_example(b"g2", 0)]
    wrong_type = tf.train.Example()
    wrong_type.features.feature["example_id"].float_list.value.append(1.0)
    wrong_type.features.feature["label"].int64_list.value.append(1)
    text_label = tf.train.Example()
    text_label.features.feature["example_id"].bytes_list.value.append(b"t")
    text_label.features.feature["label"].bytes_list.value.append(b"yes")
    bad = {
        b"\x08\x96garbage": example_keys.UNPARSEABLE,
        helpers.make_example(None, 1): example_keys.MISSING_ID,
        wrong_type.SerializeToString(): example_keys.BAD_ID_TYPE,
        helpers.make_example(b"x" * 1025, 1): example_keys.ID_TOO_LONG,
        helpers.make_example(b"nolabel"): example_keys.MISSING_LABEL,
        text_label.SerializeToString(): example_keys.BAD_LABEL_TYPE,
        helpers.make_example(b"three", 3): example_keys.LABEL_OUT_OF_DOMAIN,
    }
    with TestPipeline() as p:
        out = p | beam.Create(good + list(bad)) | join.KeyExamples(0, options)
        assert_that(
            out.examples | beam.Map(lambda kv: (kv[0], kv[1][2])),
            equal_to([(b"g1", 1.0), (b"g2", 0.0)]),
            label="Good",
        )
        assert_that(
            out[rows.REJECTS] | beam.Map(lambda r: (r[2], r[3])),
            equal_to([(reason, raw) for raw, reason in bad.items()]),
            label="Rejects",
        )


def test_int64_ids_are_decimal_ascii():
    ex = tf.train.Example()
    ex.features.feature["example_id"].int64_list.value.append(42)
    ex.features.feature["label"].float_list.value.append(1.0)
    with TestPipeline() as p:
        out = p | beam.Create([ex.SerializeToString()]) | join.KeyExamples(0, CurationOptions())
        assert_that(out.examples | beam.Keys(), equal_to([b"42"]))


@pytest.mark.parametrize("budget", [0.05, 0.5, 300])  # raw sample rates 0.2, 1 (capped), 1 (a count)
def test_accepted_batches_hold_exactly_the_raw_sample_of_the_accepted_examples(budget):
    """The raw statistics' input: every accepted example whose id is in the raw sample (a hash of id and seed),
    whatever the batching; no reject, no unsampled example."""
    options = CurationOptions(budget=budget, seed=5)
    ids = [f"s{i:04d}".encode() for i in range(600)]
    good = [helpers.make_example(i, k % 2, x=float(k)) for k, i in enumerate(ids)]
    bad = [helpers.make_example(None, 1), b"\x08\x96garbage", helpers.make_example(b"three", 3)]
    keep = unbiasedness.raw_sample(ids, options.seed, unbiasedness.raw_sample_rate(options))
    expected = [raw for raw, k in zip(good, keep) if k]
    assert 0 < len(expected) < len(good) if budget == 0.05 else len(expected) == len(good)
    batches = [good[:250] + bad[:2], good[250:251], [], good[251:] + bad[2:]]
    with TestPipeline() as p:
        out = p | beam.Create(batches) | join.KeyExamples(0, options, batched=True)
        assert_that(
            out[join.ACCEPTED_BATCHES] | beam.FlatMap(lambda b: b), equal_to(expected), label="Sampled"
        )
        unbatched = p | "Unbatched" >> beam.Create(good + bad) | "Key1" >> join.KeyExamples(0, options)
        assert_that(
            unbatched[join.ACCEPTED_BATCHES] | "Flat1" >> beam.FlatMap(lambda b: b),
            equal_to(expected),
            label="SampledUnbatched",
        )
        assert_that(out.examples | beam.Keys(), equal_to(ids), label="AllKeyed")
        lists = (
            p | "Lists" >> beam.Create(batches) | "Key2" >> join.KeyExamples(0, options, True, as_lists=True)
        )
        assert_that(  # window mode's input: one ExampleColumns per batch with an accepted example
            lists.examples | "Lengths" >> beam.Map(lambda c: len(c.ids)),
            equal_to([250, 1, 349]),
            label="OneColumnsPerBatch",
        )
        assert_that(
            lists.examples | "Unlist" >> beam.FlatMap(lambda c: zip(c.ids, map(join.KeyedExample, *c[1:]))),
            equal_to(
                [(i, join.KeyedExample(0, raw, float(k % 2))) for k, (i, raw) in enumerate(zip(ids, good))]
            ),
            label="SameKeyed",
        )


REC = {  # (prediction, hidden_norm, timestamp, model_version)
    "old": (0.9, 1.0, 100.0, b"1"),
    "new": (0.2, 2.0, 200.0, b"2"),
    "undated": (0.5, math.nan, math.nan, b"3"),
}


@pytest.mark.parametrize(
    "policy, expected",
    [
        ("latest", (0.2, 2.0)),
        ("mean", (pytest.approx((0.9 + 0.2 + 0.5) / 3), pytest.approx(1.5))),
        ("max", (0.9, 1.0)),  # label 0: the largest loss is the highest prediction
    ],
)
def test_duplicate_record_policies(policy, expected):
    options = CurationOptions(duplicate_policy=policy)
    got = join.resolve_duplicates(list(REC.values()), policy, 0.0, options)
    assert (got[0], got[1]) == expected


def test_mean_std_policy_scores_the_mean_loss_plus_the_spread_of_the_records():
    """Three served versions of one example: the mean record, scored by mean loss + beta * std (passes.py)."""
    options = CurationOptions(duplicate_policy="mean_std")
    got = join.resolve_duplicates(list(REC.values()), "mean_std", 0.0, options)
    losses = -np.log1p(-np.array([0.9, 0.2, 0.5]))  # label 0
    assert got.score == pytest.approx(losses.mean() + passes.DISAGREEMENT_BETA * losses.std())
    assert (got.prediction, got.hidden_norm) == (pytest.approx((0.9 + 0.2 + 0.5) / 3), pytest.approx(1.5))
    for policy in ("latest", "mean", "max"):  # only mean_std carries a combined score
        assert math.isnan(join.resolve_duplicates(list(REC.values()), policy, 0.0, options).score)


def _join(p, examples, records, options):
    return (
        p | "Ex" >> beam.Create([(k, rows.KeyedExample(*v)) for k, v in examples]),
        p | "Rec" >> beam.Create([(k, rows.ForwardRecord(*v)) for k, v in records]),
    ) | join.JoinForwardRecords(options)


def test_join_counts_orphans_duplicates_and_missing_records():
    options = CurationOptions()
    examples = [
        (b"a", (0, b"raw-a", 1.0)),
        (b"b", (0, b"raw-b", 0.0)),
        (b"dup", (0, b"raw-dup-1", 0.0)),
        (b"dup", (0, b"raw-dup-2", 0.0)),
    ]
    records = [
        (b"a", REC["old"]),
        (b"a", REC["new"]),
        (b"dup", REC["old"]),
        (b"orphan", REC["old"]),
        (b"orphan", REC["new"]),
    ]
    with TestPipeline() as p:
        out = _join(p, examples, records, options)
        assert_that(
            out.joined | beam.Map(lambda r: (r[1], r[2], None if math.isnan(r[4]) else r[4])),
            equal_to([(b"a", b"raw-a", 0.2), (b"b", b"raw-b", None), (b"dup", b"raw-dup-1", 0.9)]),
            label="Joined",
        )
        assert_that(
            out[rows.EVENTS],
            equal_to(
                [
                    ((rows.RECORDS_SPLIT, rows.ORPHAN_RECORDS), 2),
                    ((0, rows.DUPLICATE_RECORDS), 1),
                    ((0, rows.IDS_WITH_DUPLICATE_RECORDS), 1),
                ]
            ),
            label="Events",
        )
        assert_that(
            out[rows.REJECTS],
            equal_to([(0, rows.REJECT_SOURCE_EXAMPLES, example_keys.DUPLICATE_EXAMPLE_ID, b"raw-dup-2")]),
            label="Rejects",
        )


def test_duplicate_ids_with_conflicting_labels_reject_every_copy():
    """Issue 12, bug 9: one copy was kept (smallest bytes) whatever the labels said."""
    options = CurationOptions()
    examples = [
        (b"same", (0, b"raw-same-1", 1.0)),
        (b"same", (0, b"raw-same-2", 1.0)),
        (b"clash", (0, b"raw-clash-1", 0.0)),
        (b"clash", (0, b"raw-clash-2", 1.0)),
        (b"clash", (1, b"raw-clash-3", 1.0)),
    ]
    records = [(b"same", REC["old"]), (b"clash", REC["old"]), (b"clash", REC["new"])]
    with TestPipeline() as p:
        out = _join(p, examples, records, options)
        assert_that(out.joined | beam.Map(lambda r: (r[1], r[2])), equal_to([(b"same", b"raw-same-1")]))
        conflict = example_keys.CONFLICTING_DUPLICATE
        assert_that(
            out[rows.REJECTS] | beam.Map(lambda r: (r[0], r[2], r[3])),
            equal_to(
                [
                    (0, example_keys.DUPLICATE_EXAMPLE_ID, b"raw-same-2"),
                    (0, conflict, b"raw-clash-1"),
                    (0, conflict, b"raw-clash-2"),
                    (1, conflict, b"raw-clash-3"),
                ]
            ),
            label="Rejects",
        )
        assert_that(
            out[rows.EVENTS],
            equal_to([((rows.RECORDS_SPLIT, rows.ORPHAN_RECORDS), 2)]),
            label="Events",
        )


_maybe_nan = st.one_of(st.just(math.nan), st.floats(0.0, 1e6, allow_nan=False))
_records = st.lists(
    st.tuples(
        st.floats(0.0, 1.0, allow_nan=False),  # prediction
        _maybe_nan,  # hidden_norm
        _maybe_nan,  # timestamp
        st.sampled_from([b"", b"1", b"2"]),  # model_version
    ),
    min_size=2,
    max_size=6,
)


def _same(a, b) -> bool:
    return all(x == y or (isinstance(x, float) and math.isnan(x) and math.isnan(y)) for x, y in zip(a, b))


@settings(max_examples=100, deadline=None)
@given(
    records=_records,
    data=st.data(),
    policy=st.sampled_from(["latest", "mean", "max", "mean_std"]),
    strategy=st.sampled_from(["loss", "grad_norm"]),
    label=st.sampled_from([0.0, 1.0]),
)
def test_resolve_duplicates_ignores_the_order_of_the_records(records, data, policy, strategy, label):
    """The grouped records of one id arrive in any order: every permutation resolves to the same record."""
    options = CurationOptions(duplicate_policy=policy, strategy=strategy)
    shuffled = data.draw(st.permutations(records))
    first = join.resolve_duplicates(records, policy, label, options)
    second = join.resolve_duplicates(shuffled, policy, label, options)
    assert _same(first, second), (first, second)


def test_max_policy_tie_ignores_the_order_of_the_records():
    """Two records of one id with the same prediction and model version but different hidden norms tie under the
    loss signal; the record kept (hence the hidden norm joined) must not depend on arrival order (it did)."""
    options = CurationOptions(duplicate_policy="max", strategy="loss")
    records = [(0.5, 1.0, 100.0, b"1"), (0.5, 2.0, 100.0, b"1")]
    first = join.resolve_duplicates(records, "max", 0.0, options)
    second = join.resolve_duplicates(records[::-1], "max", 0.0, options)
    assert _same(first, second), (first, second)
