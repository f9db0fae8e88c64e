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


def _example(carrier: bytes, tail: bytes, weight: float | None, distance: float | None = None) -> bytes:
    feature = {
        "carrier": tf.train.Feature(bytes_list=tf.train.BytesList(value=[carrier])),
        "tail": tf.train.Feature(bytes_list=tf.train.BytesList(value=[tail])),
    }
    if weight is not None:
        feature["sample_weight"] = tf.train.Feature(float_list=tf.train.FloatList(value=[weight]))
    if distance is not None:
        feature["distance"] = tf.train.Feature(float_list=tf.train.FloatList(value=[distance]))
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
        examples = p | beam.Create([_example(c, t, w) for c, t, w in zip(carriers, tails, weights)])
        _ = {"curated": examples} | writers.WriteStatistics({"curated": path}, "sample_weight")
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


def _summary(dataset) -> dict:
    """What the unbiasedness check reads of a dataset's statistics, per feature (rounded: float sums)."""
    out = {"num_examples": dataset.num_examples}
    for f in dataset.features:
        kind = f.WhichOneof("stats")
        stats = getattr(f, kind)
        common = stats.common_stats
        row = {"present": common.num_non_missing, "missing": common.num_missing}
        if kind == "num_stats":
            row.update(mean=round(stats.mean, 6), min=stats.min, max=stats.max)
            row["quantiles"] = [
                round(b.high_value, 6) for h in stats.histograms if h.type == 1 for b in h.buckets
            ]
        else:
            row["top"] = sorted((v.value, v.frequency) for v in stats.top_values)
        out[f.path.step[0]] = row
    return out


def test_statistics_of_several_slices_come_from_one_pass_as_from_one_pass_each(tmp_path):
    """One TFDV pass over several inputs writes, per input, what tfdv.GenerateStatistics writes for it alone:
    unweighted for lists of raw examples (batched) beside an input with no examples (an empty dataset), weighted
    for the curated examples."""
    import tensorflow_data_validation as tfdv
    from tfx_bsl.coders import example_coder

    rng = np.random.default_rng(5)
    raw = [_example(b"c%d" % rng.integers(8), b"t", None, rng.gamma(2.0)) for _ in range(900)]
    curated = [
        _example(b"c%d" % rng.integers(8), b"t", float(w), rng.gamma(2.0))
        for w in rng.choice([1.0, 4.0], 300)
    ]
    paths = {name: str(tmp_path / f"{name}.pb") for name in ("a/raw", "b/raw", "curated")}
    alone = {name: str(tmp_path / f"{name}_alone.pb") for name in ("raw", "curated")}
    with TestPipeline() as p:
        raw_lists = p | "Raw" >> beam.Create([raw[:500], raw[500:], []])
        cur = p | "Curated" >> beam.Create(curated)
        none = p | "None" >> beam.Create([[]], reshuffle=False)
        _ = {"a/raw": raw_lists, "b/raw": none} | "Unweighted" >> writers.WriteStatistics(
            {k: paths[k] for k in ("a/raw", "b/raw")}, batched=["a/raw", "b/raw"]
        )
        _ = {"curated": cur} | "Weighted" >> writers.WriteStatistics(
            {"curated": paths["curated"]}, "sample_weight"
        )
        for name, pcoll, weight in (("raw", raw_lists, None), ("curated", cur, "sample_weight")):
            stats = tfdv.StatsOptions(
                weight_feature=weight,
                num_quantiles_histogram_buckets=20,
                num_rank_histogram_buckets=200,
                use_sketch_based_topk_uniques=True,
            )
            _ = (
                pcoll
                | f"Flat[{name}]" >> beam.FlatMap(lambda b: b if isinstance(b, list) else [b])
                | f"Batch[{name}]" >> beam.BatchElements(min_batch_size=1000, max_batch_size=1000)
                | f"Decode[{name}]" >> beam.Map(example_coder.ExamplesToRecordBatchDecoder().DecodeBatch)
                | f"Alone[{name}]" >> tfdv.GenerateStatistics(stats)
                | f"Write[{name}]" >> tfdv.WriteStatisticsToBinaryFile(alone[name])
            )
    one_pass = {name: tfdv.load_stats_binary(path) for name, path in paths.items()}
    assert all(len(s.datasets) == 1 and not s.datasets[0].name for s in one_pass.values())
    raw_stats = one_pass["a/raw"].datasets[0]
    assert "weighted_" not in str(raw_stats)
    assert _summary(raw_stats) == _summary(tfdv.load_stats_binary(alone["raw"]).datasets[0])
    cur_stats, cur_alone = (
        one_pass["curated"].datasets[0],
        tfdv.load_stats_binary(alone["curated"]).datasets[0],
    )
    assert _summary(cur_stats) == _summary(cur_alone)
    assert cur_stats.weighted_num_examples == pytest.approx(cur_alone.weighted_num_examples)
    assert cur_alone.weighted_num_examples > 300  # weights 1 and 4: the weighted statistics are there
    assert one_pass["b/raw"].datasets[0].num_examples == 0
