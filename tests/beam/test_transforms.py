"""The curation Beam transforms on small in-memory data: TestPipeline + assert_that.

The central property: for every strategy, mode and missing-record policy, the Beam job selects exactly the ids
and weights that the pure library (plan.reference_selection) selects on the same inputs and seed.
"""

import math

import apache_beam as beam
import helpers
import numpy as np
import pytest
import tensorflow as tf
from apache_beam.testing.test_pipeline import TestPipeline
from apache_beam.testing.util import assert_that, equal_to

from tfx_curator.components.curator.beam import curate, join, rows, transforms
from tfx_curator.components.curator.options import CurationOptions
from tfx_curator.components.curator.policy import plan, signals
from tfx_curator.components.curator.reading import example_keys

N = 1200


def _id_and_weight(serialized: bytes):
    f = tf.train.Example.FromString(serialized).features.feature
    return f["example_id"].bytes_list.value[0], round(f["sample_weight"].float_list.value[0], 4)


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    root = str(tmp_path_factory.mktemp("transforms"))
    data = helpers.write_synthetic(root, N, seed=11, missing=0.15, splits=("a", "b"))
    return root, data


def _expected(options, split_data, signal_hidden=True):
    ids, labels, preds, norms = split_data
    scores = np.full(len(ids), math.nan)
    has = ~np.isnan(preds)
    signal = transforms.score_signal(options)
    scores[has] = signals.compute_scores(
        signal, preds[has], labels[has], options.task, hidden_norm=norms[has] if signal_hidden else None
    )
    keep, weight, _ = plan.reference_selection(options, ids, scores, labels)
    return [(ids[i], round(float(np.float32(weight[i])), 4)) for i in np.flatnonzero(keep)]


CASES = [
    dict(strategy="loss", mode="window", window_size=200, mix=0.0),
    dict(strategy="loss", mode="window", window_size=5000, mix=0.3),  # one window: the exact solution
    dict(strategy="loss", mode="global", mix=0.5, p_min=0.01),
    dict(strategy="grad_norm", mode="global", mix=0.0, max_weight=8.0),
    dict(strategy="grad_norm", mode="window", window_size=300, missing_record_policy="drop"),
    dict(strategy="loss", mode="global", missing_record_policy="keep", budget=150),
    dict(strategy="uniform", budget=0.25),
    dict(strategy="negative_downsampling", budget=0.4),
    dict(strategy="top_k", budget=0.1),
    dict(strategy="full"),
    dict(strategy="loss", budget=0.0),
    dict(strategy="loss", budget=1.0, mode="global"),
    # label-aware water-filling; the synthetic splits hold ~24% positives, so budgets above that keep them all
    dict(strategy="stratified_loss", mode="window", window_size=200, budget=0.4),
    dict(strategy="stratified_loss", mode="window", window_size=300, mix=0.0, budget=0.3),
    dict(
        strategy="stratified_grad_norm", mode="global", p_min=0.01, missing_record_policy="drop", budget=0.5
    ),
    dict(strategy="stratified_loss", mode="global", mix=0.3, max_weight=8.0, budget=400),
    dict(strategy="stratified_loss", mode="window", window_size=250),  # fewer slots than positives: joint
    dict(strategy="stratified_loss", mode="global", budget=0.02),
    dict(strategy="balanced_loss", mode="window", window_size=250, p_min=0.01),
    dict(strategy="balanced_grad_norm", mode="global", mix=0.0, missing_record_policy="drop", budget=0.3),
]


@pytest.mark.parametrize("case", CASES, ids=lambda c: "-".join(f"{k}={v}" for k, v in c.items()))
def test_beam_selection_equals_pure_library(files, case):
    root, data = files
    options = CurationOptions(**{"budget": 0.15, "seed": 5, "splits": ("a", "b"), **case})
    with TestPipeline() as p:
        out = p | curate.Curate(
            [f"{root}/examples/Split-{s}/*" for s in ("a", "b")], f"{root}/records/*", options
        )
        for i, split in enumerate(("a", "b")):
            got = out.curated[i] | f"IdWeight{i}" >> beam.Map(_id_and_weight)
            assert_that(got, equal_to(_expected(options, data[split])), label=f"Equal{i}")


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


def test_weight_suffix_merges_into_the_original_example():
    raw = helpers.make_example(b"id", 1, x=2.5, sample_weight=9.0)
    merged = tf.train.Example.FromString(raw + example_keys.weight_suffix("sample_weight", 3.25))
    f = merged.features.feature
    assert list(f["sample_weight"].float_list.value) == [3.25]  # the appended value wins
    assert f["example_id"].bytes_list.value[0] == b"id" and f["x"].float_list.value[0] == 2.5
    assert merged.SerializeToString(deterministic=True) != raw


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
