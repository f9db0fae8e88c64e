"""Report diagnostics (diagnostics.py)."""

import math

import numpy as np
import pytest

from tfx_curator.components.curator.policy import diagnostics


def test_diagnostics_values():
    s = np.array([1.0, 2.0, 3.0, 4.0])
    p = np.array([0.25, 0.5, 0.75, 1.0])
    w = np.array([0.0, 2.0, 0.0, 1.0])
    d = diagnostics.diagnostics(s, p, w)
    assert d["ess"] == pytest.approx(9.0 / 5.0) and d["n_kept"] == 2
    err = 1 * 3 + 4 * 1 + 9 * (1 / 3)
    err_u = 30.0 * (1 / 0.625 - 1)
    assert d["expected_sq_error"] == pytest.approx(err)
    assert d["expected_sq_error_uniform"] == pytest.approx(err_u)
    assert d["error_ratio_vs_uniform"] == pytest.approx(err / err_u)
    same = diagnostics.diagnostics(s, np.full(4, 0.5), np.array([2.0, 2.0, 0.0, 0.0]))
    assert same["error_ratio_vs_uniform"] == 1.0 and same["ess"] == 2.0


def test_diagnostics_with_unseen_positive_scores_is_infinite_not_a_crash():
    d = diagnostics.diagnostics(
        np.array([1.0, 2.0, 0.0]), np.array([0.0, 1.0, 0.0]), np.array([0.0, 1.0, 0.0])
    )
    assert d["expected_sq_error"] == math.inf and d["n_zero_p_positive_score"] == 1
    assert math.isfinite(d["expected_sq_error_uniform"]) and d["error_ratio_vs_uniform"] == math.inf
    d = diagnostics.diagnostics(np.array([1.0, 2.0]), np.zeros(2), np.zeros(2))
    assert d["ess"] == 0.0 and math.isnan(d["error_ratio_vs_uniform"])
    d = diagnostics.diagnostics(np.zeros(3), np.full(3, 0.5), np.zeros(3))
    assert d["error_ratio_vs_uniform"] == 1.0


def test_diagnostics_rejects_bad_input():
    with pytest.raises(ValueError):
        diagnostics.diagnostics(np.ones(2), np.ones(3), np.ones(2))
    with pytest.raises(ValueError):
        diagnostics.diagnostics(np.ones(2), np.ones(2), np.array([1.0, -1.0]))
