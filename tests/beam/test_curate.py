"""curate.py on small in-memory data: the whole Curate composite (TestPipeline + assert_that) and the record
format resolution.

The central property: for every strategy, mode and missing-record policy, the Beam job selects exactly the ids
and weights that the pure library (plan.reference_selection) selects on the same inputs and seed.
"""

import dataclasses
import math

import apache_beam as beam
import helpers
import numpy as np
import pytest
import tensorflow as tf
from apache_beam.testing.test_pipeline import TestPipeline
from apache_beam.testing.util import assert_that, equal_to

from tfx_curator.components.curator.beam import curate, transforms, windowed
from tfx_curator.components.curator.options import CurationOptions
from tfx_curator.components.curator.policy import passes, plan, signals
from tfx_curator.components.curator.reading import example_keys, parsing
from tfx_curator.components.curator.reading import records as records_lib

N = 1200


def _id_and_weight(serialized: bytes):
    f = tf.train.Example.FromString(serialized).features.feature
    return f["example_id"].bytes_list.value[0], round(f["sample_weight"].float_list.value[0], 4)


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    root = str(tmp_path_factory.mktemp("transforms"))
    data = helpers.write_synthetic(root, N, seed=11, missing=0.15, splits=("a", "b"))
    return root, data


def _expected(options, split_data, signal_hidden=True, n_read_total=None):
    """The reference's selection; window mode: windows over `n_read_total` examples read from all splits."""
    ids, labels, preds, norms = split_data
    scores = np.full(len(ids), math.nan)
    has = ~np.isnan(preds)
    signal = transforms.score_signal(options)
    scores[has] = signals.compute_scores(
        signal, preds[has], labels[has], options.task, hidden_norm=norms[has] if signal_hidden else None
    )
    basis = plan.WindowBasis(len(ids), n_read_total or len(ids))
    keep, weight, _ = plan.reference_selection(options, ids, scores, labels, basis)
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
            expected = _expected(options, data[split], n_read_total=sum(len(d[0]) for d in data.values()))
            assert_that(got, equal_to(expected), label=f"Equal{i}")


@pytest.mark.parametrize("mode", ["window", "global"])
def test_mean_std_policy_selects_what_the_pure_rule_selects_on_the_combined_scores(tmp_path, mode):
    """Ids with 0 to 3 records (served versions): the job keeps what `plan.reference_selection` keeps on the
    scores `passes.combine` gives from each id's per-record losses (one record: its own loss)."""
    rng = np.random.default_rng(4)
    n = 900
    ids = [b"ex-%d" % i for i in range(n)]
    labels = (rng.random(n) < 0.2).astype(np.int64)
    preds = np.round(rng.beta(2, 5, size=(n, 3)), 3).astype(np.float32)
    counts = rng.integers(0, 4, n)  # records per id
    records, scores = [], np.full(n, math.nan)
    for i in range(n):
        k = int(counts[i])
        records += [
            helpers.make_record(ids[i], float(preds[i, j]), 1.0, 1000 + j, b"%d" % j) for j in range(k)
        ]
        if k:
            p = preds[i, :k].astype(np.float64)
            losses = signals.compute_scores("loss", p, np.full(k, float(labels[i])), "binary")
            scores[i] = passes.combine_one(losses)
    helpers.write_tfrecords(
        str(tmp_path / "examples" / "data.gz"), [helpers.make_example(i, y) for i, y in zip(ids, labels)]
    )
    helpers.write_tfrecords(str(tmp_path / "records" / "records.gz"), records[::-1])  # arrival order varies
    options = CurationOptions(
        duplicate_policy="mean_std", budget=0.2, seed=3, mode=mode, window_size=300, mix=0.1
    )
    keep, weight, _ = plan.reference_selection(options, ids, scores, labels.astype(np.float64))
    expected = [(ids[i], round(float(np.float32(weight[i])), 4)) for i in np.flatnonzero(keep)]
    with TestPipeline() as p:
        out = p | curate.Curate([str(tmp_path / "examples" / "*")], str(tmp_path / "records" / "*"), options)
        assert_that(out.curated[0] | beam.Map(_id_and_weight), equal_to(expected))


def test_resolve_record_format_keeps_a_given_format(tmp_path):
    options = CurationOptions(record_format=records_lib.FORMAT_PLAIN)
    assert curate.resolve_record_format(options, str(tmp_path / "none*")) == (options, None)


def test_resolve_record_format_detects_plain_records_and_says_so(tmp_path):
    records = [helpers.make_record(b"id%d" % i, 0.5) for i in range(3)]
    helpers.write_tfrecords(str(tmp_path / "records" / "part-0.gz"), records)
    options = CurationOptions(budget=0.3)
    resolved, detection = curate.resolve_record_format(options, str(tmp_path / "records" / "*"))
    assert resolved == dataclasses.replace(options, record_format=records_lib.FORMAT_PLAIN)
    assert detection == "auto: detected from the first 3 records (0 PredictionLogs)"


@pytest.mark.parametrize("pack_rows", [windowed.PACK_ROWS, 7], ids=["packed", "pack_every_7_rows"])
@pytest.mark.parametrize("strategy", ["loss", "stratified_loss"])
def test_window_mode_bases_windows_and_rate_on_the_examples_read(tmp_path, monkeypatch, strategy, pack_rows):
    """Rejects, an id in two splits, examples without a record and orphan records: the Beam job selects what
    the reference selects on each split's accepted examples with windows over the examples read in both splits
    and the rate over the split's read; the report's plan says so. Whether the packers before the window
    shuffle hand on their rows at the end of the bundle or every few rows (one window's rows then arrive in
    many chunks) changes nothing."""
    monkeypatch.setattr(windowed, "PACK_ROWS", pack_rows)
    rng = np.random.default_rng(7)
    raws, data, records = {}, {}, []
    for split, n in (("a", 900), ("b", 500)):
        ids = [f"{split}{i:04d}".encode() for i in range(n)]
        labels = (rng.random(n) < 0.3).astype(float)
        preds = rng.beta(1, 3, n)
        preds[rng.random(n) < 0.2] = math.nan  # no record
        raws[split] = [helpers.make_example(i, y, x=1.0) for i, y in zip(ids, labels)]
        records += [helpers.make_record(i, float(p), 1.0, 1000, b"1") for i, p in zip(ids, preds) if p == p]
        data[split] = (ids, labels, np.float32(preds).astype(np.float64), np.ones(n))
    raws["a"] += [b"\xffnot an example", helpers.make_example(None, 1)]  # two rejects, read
    raws["b"].append(raws["a"][0])  # a0000 again in b: b's copy is rejected (the split a copy is kept)
    records += [helpers.make_record(b"orphan", 0.5, 1.0, 1000, b"1")]
    for split, serialized in raws.items():
        helpers.write_tfrecords(str(tmp_path / "examples" / split / "data.gz"), serialized)
    helpers.write_tfrecords(str(tmp_path / "records" / "r.gz"), records)
    read = {0: len(raws["a"]), 1: len(raws["b"])}
    options = CurationOptions(budget=120, strategy=strategy, window_size=300, seed=5, splits=("a", "b"))
    with TestPipeline() as p:
        out = p | curate.Curate(
            [str(tmp_path / "examples" / s / "*") for s in ("a", "b")],
            str(tmp_path / "records" / "*"),
            options,
        )
        for i, split in enumerate(("a", "b")):
            ids, labels, preds, norms = data[split]
            scores = np.full(len(ids), math.nan)
            has = ~np.isnan(preds)
            signal = transforms.score_signal(options)
            scores[has] = signals.compute_scores(
                signal, preds[has], labels[has], "binary", hidden_norm=norms[has]
            )
            keep, weight, _ = plan.reference_selection(
                options, ids, scores, labels, plan.WindowBasis.of(read, i)
            )
            expected = [(ids[k], round(float(np.float32(weight[k])), 4)) for k in np.flatnonzero(keep)]
            got = out.curated[i] | f"IdWeight{i}" >> beam.Map(_id_and_weight)
            assert_that(got, equal_to(expected), label=f"Equal{i}")
        expected_plans = {
            i: (plan.n_windows(sum(read.values()), 300), plan.split_rate(options, read[i])) for i in (0, 1)
        }
        plans = out.plans | beam.Map(lambda ps: {i: (q.n_windows, q.rate) for i, q in ps.items()})
        assert_that(plans, equal_to([expected_plans]), label="Plans")
        reasons = out.rejects | beam.Map(lambda r: (r.split, r.reason))
        assert_that(
            reasons,
            equal_to(
                [
                    (0, example_keys.UNPARSEABLE),
                    (0, parsing.MISSING_ID),
                    (1, example_keys.DUPLICATE_EXAMPLE_ID),
                ]
            ),
            label="Rejects",
        )
