"""policy/checks.py: valid input comes back as float64 arrays or floats; bad input is a ValueError that names the
argument and the first bad value."""

import math

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from tfx_curator.components.curator.policy import checks

finite = st.floats(-1e300, 1e300)


@given(st.lists(finite, max_size=30))
def test_as_1d_float_returns_the_values_as_float64(values):
    got = checks.as_1d_float("x", values)
    assert got.dtype == np.float64 and got.shape == (len(values),)
    np.testing.assert_array_equal(got, np.asarray(values, dtype=np.float64))


@given(st.lists(finite, max_size=10), st.integers(0, 10), st.sampled_from([math.nan, math.inf, -math.inf]))
def test_a_non_finite_value_is_named_with_its_index(values, at, bad):
    at = min(at, len(values))
    values = values[:at] + [bad] + values[at:]
    allowed = math.isnan(bad)
    with pytest.raises(ValueError, match=rf"scores has 1 non-finite value\(s\), first at index {at}"):
        checks.as_1d_float("scores", values)
    if allowed:  # NaN only where the caller allows it (no forward record)
        assert np.isnan(checks.as_1d_float("scores", values, allow_nan=True)[at])
    else:
        with pytest.raises(ValueError, match="non-finite"):
            checks.as_1d_float("scores", values, allow_nan=True)


def test_shape_is_checked():
    with pytest.raises(ValueError, match=r"x must be one-dimensional, got shape \(2, 2\)"):
        checks.as_1d_float("x", [[1.0, 2.0], [3.0, 4.0]])
    with pytest.raises(ValueError, match=r"one-dimensional, got shape \(\)"):
        checks.as_1d_float("x", 1.0)


@given(st.lists(st.floats(0, 1e300), max_size=20), st.floats(-1e300, -1e-300))
def test_scores_must_be_non_negative(values, negative):
    np.testing.assert_array_equal(checks.check_scores(values), np.asarray(values, dtype=np.float64))
    with pytest.raises(ValueError, match=rf"scores must be >= 0; 1 negative, first at index {len(values)}"):
        checks.check_scores([*values, negative])


@given(st.floats(allow_nan=True, allow_infinity=True))
def test_unit_interval_probabilities_and_budgets(value):
    inside = 0.0 <= value <= 1.0
    if inside:
        assert checks.check_unit("mix", value) == value
        assert checks.check_probabilities([value]).tolist() == [value]
    else:
        with pytest.raises(ValueError, match="mix must be in"):
            checks.check_unit("mix", value)
        with pytest.raises(ValueError, match="p "):
            checks.check_probabilities([value])
    if math.isfinite(value) and value >= 0:
        assert checks.check_budget(value) == value
    else:
        with pytest.raises(ValueError, match="budget must be a finite count >= 0"):
            checks.check_budget(value)


def test_empty_probabilities_are_fine():
    assert checks.check_probabilities([]).size == 0
