"""transforms.py on small in-memory data: TestPipeline + assert_that.

The whole chain (Curate) is tested in test_curate.py against the pure library; here, its steps.
"""

import math

import apache_beam as beam
import helpers
import numpy as np
import tensorflow as tf
from apache_beam.testing.test_pipeline import TestPipeline
from apache_beam.testing.util import assert_that, equal_to

from tfx_curator.components.curator.beam import rows, transforms
from tfx_curator.components.curator.options import CurationOptions
from tfx_curator.components.curator.policy import plan
from tfx_curator.components.curator.reading import example_keys


def test_weight_suffix_merges_into_the_original_example():
    raw = helpers.make_example(b"id", 1, x=2.5, sample_weight=9.0)
    merged = tf.train.Example.FromString(raw + example_keys.weight_suffix("sample_weight", 3.25))
    f = merged.features.feature
    assert list(f["sample_weight"].float_list.value) == [3.25]  # the appended value wins
    assert f["example_id"].bytes_list.value[0] == b"id" and f["x"].float_list.value[0] == 2.5
    assert merged.SerializeToString(deterministic=True) != raw


def _scores_by_id(batch: transforms.ScoredBatch):
    for example_id, score in zip(batch.ids, batch.scores.tolist()):
        yield example_id, None if math.isnan(score) else round(score, 9)


def test_score_examples_scores_each_row_as_the_pure_library_does():
    """Batching is invisible: every joined row gets plan.example_scores of its own record (NaN = no record)."""
    options = CurationOptions(strategy="grad_norm")
    joined = [
        rows.JoinedRow(i % 2, b"id%d" % i, b"raw", float(i % 3 == 0), p, n, b"1")
        for i, (p, n) in enumerate([(0.1, 1.0), (0.9, 2.0), (math.nan, math.nan), (0.5, 0.5), (0.3, 3.0)])
    ]
    expected = []
    for r in joined:
        score = plan.example_scores(
            options, np.array([r.prediction]), np.array([r.label]), np.array([r.hidden_norm])
        )[0]
        expected.append((r.example_id, None if math.isnan(score) else round(float(score), 9)))
    with TestPipeline() as p:
        out = p | beam.Create(joined) | transforms.ScoreExamples(options) | beam.FlatMap(_scores_by_id)
        assert_that(out, equal_to(expected))
