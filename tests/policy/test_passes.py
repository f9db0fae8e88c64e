"""passes.py: several forward records of one example -> mean score + beta * std, order-independent."""

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tfx_curator.components.curator.policy import passes

_score = st.floats(0.0, 50.0, allow_nan=False, allow_subnormal=False)
_scores = st.lists(_score, min_size=1, max_size=10)


@settings(max_examples=200, deadline=None)
@given(scores=_scores, data=st.data(), beta=st.sampled_from([0.0, 0.5, 1.0, 3.0]))
def test_order_of_the_records_never_matters(scores, data, beta):
    shuffled = data.draw(st.permutations(scores))
    assert passes.combine_one(scores, beta) == passes.combine_one(shuffled, beta)  # bit for bit


@given(score=_score, beta=st.sampled_from([0.0, 1.0, 7.0]))
def test_one_record_gives_its_own_score(score, beta):
    assert passes.combine_one([score], beta) == score


@given(mean=st.floats(2.0, 10.0), spread=st.floats(0.0, 1.0), more=st.floats(0.01, 1.0), k=st.integers(2, 6))
def test_more_disagreement_at_the_same_mean_scores_higher(mean, spread, more, k):
    """Records spread symmetrically around the same mean: the wider spread scores higher (beta > 0)."""
    offsets = np.linspace(-1.0, 1.0, k)
    narrow = passes.combine_one(mean + spread * offsets)
    wide = passes.combine_one(mean + (spread + more) * offsets)
    assert wide > narrow
    assert passes.combine_one(mean + spread * offsets, beta=0.0) == pytest.approx(mean)


@given(rows=st.lists(_scores, min_size=1, max_size=20))
def test_a_row_in_a_nan_padded_batch_equals_the_row_alone(rows):
    """The Beam job combines each id alone; the benchmark a whole [n, k] matrix: the same floats."""
    k = max(len(r) for r in rows)
    batch = np.full((len(rows), k), math.nan)
    for i, r in enumerate(rows):
        batch[i, : len(r)] = r
    got = passes.combine(batch)
    assert [float(x) for x in got] == [passes.combine_one(r) for r in rows]


def test_the_rule_by_hand():
    # losses 1 and 3: mean 2, population std 1
    assert passes.combine_one([1.0, 3.0]) == pytest.approx(2.0 + passes.DISAGREEMENT_BETA * 1.0)
    assert passes.combine_one([1.0, 3.0], beta=2.0) == pytest.approx(4.0)
    assert math.isnan(passes.combine(np.full((1, 3), math.nan))[0])


@pytest.mark.parametrize(
    "scores, beta, message",
    [
        ([[1.0, -0.5]], 1.0, "scores must be finite and >= 0"),
        ([[1.0, math.inf]], 1.0, "scores must be finite and >= 0"),
        ([[1.0]], -1.0, "beta must be finite and >= 0"),
        ([[1.0]], math.nan, "beta must be finite and >= 0"),
        ([1.0, 2.0], 1.0, "must be 2-D"),
    ],
)
def test_bad_input_is_refused(scores, beta, message):
    with pytest.raises(ValueError, match=message):
        passes.combine(np.asarray(scores), beta)
