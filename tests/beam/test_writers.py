"""writers.py: rejects as tf.Examples with their untouched payload, split folders, the figures file."""

from __future__ import annotations

import os

import apache_beam as beam
import helpers
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
