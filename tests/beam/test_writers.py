"""writers.py: rejects as tf.Examples with their untouched payload, split folders, the figures file, the
statistics' category frequencies."""

from __future__ import annotations

import os
from collections import Counter

import apache_beam as beam
import helpers
import numpy as np
import pytest
import tensorflow as tf
from apache_beam.testing.test_pipeline import TestPipeline

from tfx_curator.components.curator.beam import figures, rows, writers

REJECTS = [
    rows.Reject(0, rows.REJECT_SOURCE_EXAMPLES, "missing_id", b"\x08\x96garbage"),
    rows.Reject(rows.RECORDS_SPLIT, rows.REJECT_SOURCE_RECORDS, "unparseable", b""),
]


def _decoded(serialized: bytes) -> rows.Reject:
    f = tf.train.Example.FromString(serialized).features.feature
    return rows.Reject(
        f["split_index"].int64_list.value[0],
        f["source"].bytes_list.value[0].decode(),
        f["reason"].bytes_list.value[0].decode(),
        f["payload"].bytes_list.value[0],
    )


def test_reject_example_keeps_every_field_and_the_payload_bytes():
    for reject in REJECTS:
        assert _decoded(writers.reject_example(reject)) == reject


def test_rejects_are_written_under_the_report(tmp_path):
    with TestPipeline() as p:
        _ = p | beam.Create(REJECTS) | writers.WriteRejects(str(tmp_path))
    written = helpers.read_tfrecords(
        os.path.join(str(tmp_path), writers.REJECTS_DIR, "rejects-*.tfrecord.gz")
    )
    assert sorted(map(_decoded, written)) == sorted(REJECTS)


def test_split_dir_is_exampleGen_layout():
    assert writers.split_dir("/out", "train") == os.path.join("/out", "Split-train")


def test_figures_are_one_json_file_read_back_as_written(tmp_path):
    job_figures = figures.JobFigures(
        options={"budget": 0.1},
        splits={},
        records=figures.RecordFigures(events={rows.RECORDS_READ: 3}, rejects={}, corrupt_files=[]),
    )
    with TestPipeline() as p:
        _ = p | beam.Create([job_figures]) | writers.WriteFigures(str(tmp_path))
    assert os.listdir(os.path.join(str(tmp_path), figures.FIGURES_DIR)) == [figures.FIGURES_FILE]
    assert figures.read(str(tmp_path)) == job_figures


def _example(carrier: bytes, tail: bytes, weight: float) -> bytes:
    feature = {
        "carrier": tf.train.Feature(bytes_list=tf.train.BytesList(value=[carrier])),
        "tail": tf.train.Feature(bytes_list=tf.train.BytesList(value=[tail])),
        "sample_weight": tf.train.Feature(float_list=tf.train.FloatList(value=[weight])),
    }
    return tf.train.Example(features=tf.train.Features(feature=feature)).SerializeToString()


def test_statistics_category_frequencies_are_exact_up_to_1024_values_and_close_beyond(tmp_path):
    """The sketches' promise (WriteStatistics' docstring): a feature of 30 values has its exact counts and weighted
    counts; one of 3,000 values has each top count low by at most 1/1,025 of the examples."""
    import tensorflow_data_validation as tfdv

    rng = np.random.default_rng(3)
    n = 6000
    carriers = [b"c%02d" % c for c in np.minimum(rng.geometric(0.15, n), 30)]
    tails = [b"t%04d" % t for t in np.minimum(rng.geometric(0.002, n), 3000)]
    weights = rng.choice([1.0, 2.5, 10.0], n)
    path = str(tmp_path / "stats.pb")
    with TestPipeline() as p:
        _ = (
            p
            | beam.Create([_example(c, t, w) for c, t, w in zip(carriers, tails, weights)])
            | writers.WriteStatistics(path, weight_feature="sample_weight")
        )
    features = {f.path.step[0]: f.string_stats for f in tfdv.load_stats_binary(path).datasets[0].features}
    exact, weighted = Counter(carriers), Counter()
    for c, w in zip(carriers, weights):
        weighted[c] += w
    rank = {b.label.encode(): b.sample_count for b in features["carrier"].rank_histogram.buckets}
    assert rank == exact
    rank_w = {
        b.label.encode(): b.sample_count
        for b in features["carrier"].weighted_string_stats.rank_histogram.buckets
    }
    assert rank_w == pytest.approx(weighted)
    exact_tails = Counter(tails)
    assert len(exact_tails) > 1024
    tops = features["tail"].top_values
    assert tops and all(0 <= exact_tails[t.value.encode()] - t.frequency <= n / 1025 for t in tops)
