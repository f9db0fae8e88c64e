"""quality.py: the served model's figures equal scikit-learn's (AUC/AP within the reported bound), exact merges."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st
from sklearn.metrics import average_precision_score, log_loss, mean_absolute_error, roc_auc_score

from tfx_curator.components.curator.reporting import quality as Q

EPS = Q.LOG_LOSS_EPS

probabilities = st.one_of(
    st.floats(0.0, 1.0, allow_nan=False),
    st.sampled_from([0.0, 1e-9, 0.1, 0.25, 0.5, 0.9, 1.0 - 1e-9, 1.0]),  # ties and clipped values
)


@st.composite
def binary_data(draw, min_size=2, max_size=300):
    n = draw(st.integers(min_size, max_size))
    p = np.array(draw(st.lists(probabilities, min_size=n, max_size=n)))
    y = np.array(draw(st.lists(st.sampled_from([0.0, 1.0]), min_size=n, max_size=n)))
    y[0], y[1] = 0.0, 1.0  # both classes present
    return p, y


def _check_against_sklearn(m: dict, p: np.ndarray, y: np.ndarray, w: np.ndarray | None = None) -> None:
    assert abs(m["auc"] - roc_auc_score(y, p, sample_weight=w)) <= m["auc_error_bound"] + 1e-9
    ap = average_precision_score(y, p, sample_weight=w)
    assert abs(m["average_precision"] - ap) <= m["average_precision_error_bound"] + 1e-9
    pc = np.clip(p, EPS, 1 - EPS)
    assert m["log_loss"] == pytest.approx(log_loss(y, pc, sample_weight=w, labels=[0, 1]), abs=1e-6)
    ww = np.ones_like(p) if w is None else w
    expected_calibration = np.sum(ww * p) / np.sum(ww * y)
    assert m["calibration"] == pytest.approx(expected_calibration, rel=1e-6)
    assert m["label_rate"] == pytest.approx(np.sum(ww * y) / np.sum(ww), abs=1e-6)


@settings(max_examples=150, deadline=None)
@given(binary_data())
def test_binary_figures_equal_sklearn(data):
    p, y = data
    m = Q.metrics(Q.QualityStats().add(p, y).combined())
    _check_against_sklearn(m, p, y)
    assert m["n"] == p.size and m["positives"] == y.sum()


@settings(max_examples=50, deadline=None)
@given(binary_data(), st.data())
def test_weighted_figures_equal_sklearn_with_sample_weight(data, draw):
    p, y = data
    w = np.array(
        draw.draw(st.lists(st.sampled_from([1.0, 2.0, 4.0, 10.0, 0.5]), min_size=p.size, max_size=p.size))
    )
    m = Q.metrics(Q.QualityStats(weighted=True).add(p, y, weights=w).combined())
    _check_against_sklearn(m, p, y, w)


@pytest.mark.parametrize("seed", range(3))
def test_bins_are_exact_enough_on_realistic_predictions(seed):
    """The stated claim: AUC and AP within 1e-3 of scikit-learn (and within the reported bound) on a span of
    100k calibrated predictions, including a rare label (5%)."""
    rng = np.random.default_rng(seed)
    for shift in (-1.0, -3.5):
        z = rng.normal(size=100_000) * 1.3 + shift
        p = 1.0 / (1.0 + np.exp(-z))
        y = (rng.random(p.size) < p).astype(float)
        m = Q.metrics(Q.QualityStats().add(p, y).combined())
        assert m["auc_error_bound"] <= 1e-3 and m["average_precision_error_bound"] <= 1e-3
        assert abs(m["auc"] - roc_auc_score(y, p)) <= 1e-3
        assert abs(m["average_precision"] - average_precision_score(y, p)) <= 1e-3
        _check_against_sklearn(m, p, y)


def test_reliability_table():
    p = np.array([0.05, 0.05, 0.15, 0.95, 1.0, 0.95])
    y = np.array([0.0, 1.0, 0.0, 1.0, 1.0, 0.0])
    rel = Q.metrics(Q.QualityStats().add(p, y).combined())["reliability"]
    assert len(rel) == 10
    assert rel[0] == {
        "bin": [0.0, 0.1],
        "weight": 2.0,
        "mean_prediction": pytest.approx(0.05),
        "observed_rate": 0.5,
    }
    assert rel[1]["weight"] == 1.0 and rel[1]["observed_rate"] == 0.0
    assert rel[9]["weight"] == 3.0 and rel[9]["mean_prediction"] == pytest.approx((0.95 + 1.0 + 0.95) / 3)
    assert rel[5] == {"bin": [0.5, 0.6], "weight": 0.0, "mean_prediction": None, "observed_rate": None}


@settings(max_examples=60, deadline=None)
@given(binary_data(max_size=200), st.data())
def test_merge_in_any_order_is_bit_identical(data, draw):
    p, y = data
    versions = np.array(draw.draw(st.lists(st.sampled_from([b"1", b"2"]), min_size=p.size, max_size=p.size)))
    cuts = sorted(draw.draw(st.lists(st.integers(0, p.size), max_size=6)))
    bounds = [0, *cuts, p.size]
    parts = [Q.QualityStats().add(p[a:b], y[a:b], versions[a:b]) for a, b in zip(bounds[:-1], bounds[1:])]
    order = draw.draw(st.permutations(range(len(parts))))
    whole = Q.QualityStats().add(p, y, versions).to_dict()
    merged = Q.QualityStats.merge([parts[i] for i in order]).to_dict()
    assert json.dumps(merged, sort_keys=True) == json.dumps(whole, sort_keys=True)


def test_weighted_merge_order_independent():
    rng = np.random.default_rng(1)
    p, y, w = rng.random(5000), (rng.random(5000) < 0.3).astype(float), 1.0 / rng.uniform(0.01, 1, 5000)
    parts = [Q.QualityStats(weighted=True).add(p[i::7], y[i::7], weights=w[i::7]) for i in range(7)]
    a = Q.QualityStats.merge(parts).to_dict()
    b = Q.QualityStats.merge(parts[::-1]).to_dict()
    assert json.dumps(a, sort_keys=True) == json.dumps(b, sort_keys=True)


def test_missing_records_are_counted_not_scored():
    rng = np.random.default_rng(2)
    p, y = rng.random(1000), (rng.random(1000) < 0.4).astype(float)
    missing = rng.random(1000) < 0.2
    with_nan = np.where(missing, np.nan, p)
    q = Q.QualityStats().add(with_nan, y)
    report = q.report()
    assert report["examples_without_record"] == missing.sum()
    assert report["examples_scored"] == (~missing).sum()
    _check_against_sklearn(report["all"], p[~missing], y[~missing])
    empty = Q.QualityStats().add(np.full(3, np.nan), np.ones(3)).report()
    assert empty["examples_without_record"] == 3 and empty["all"] == {"n": 0, "weight": 0.0}


def test_several_model_versions():
    rng = np.random.default_rng(3)
    n = 3000
    versions = rng.choice([b"100", b"200", b"300"], size=n)
    y = (rng.random(n) < 0.3).astype(float)
    p = np.where(versions == b"100", 0.3, rng.random(n))  # one version constant (AUC 0.5)
    report = Q.QualityStats().add(p, y, list(versions)).report()
    assert set(report["by_model_version"]) == {"100", "200", "300"}
    for v, m in report["by_model_version"].items():
        at = versions == v.encode()
        _check_against_sklearn(m, p[at], y[at])
    assert report["by_model_version"]["100"]["auc"] == 0.5
    _check_against_sklearn(report["all"], p, y)
    single = Q.QualityStats().add(p, y, [b"7"] * n).report()
    assert "by_model_version" not in single


@settings(max_examples=80, deadline=None)
@given(
    st.lists(
        st.tuples(st.floats(-1e6, 1e6, allow_nan=False), st.floats(-1e6, 1e6, allow_nan=False)),
        min_size=1,
        max_size=200,
    )
)
@example(rows=[(0.0, 1e-05)])  # a mean square below the grid's resolution (found by hypothesis)
def test_regression_figures(rows):
    pred, label = np.array(rows).T
    m = Q.metrics(Q.QualityStats("regression").add(pred, label).combined())
    scale = max(1.0, float(np.max(np.abs(label - pred)))) ** 2
    assert m["mse"] == pytest.approx(np.mean((label - pred) ** 2), rel=1e-9, abs=1e-6 * scale)
    # The mean square is exact to 2^-33 (the fixed-point grid); its square root to sqrt(2^-33) ~ 1.1e-5.
    assert m["rmse"] == pytest.approx(
        math.sqrt(np.mean((label - pred) ** 2)), rel=1e-6, abs=math.sqrt(2**-33)
    )
    assert m["mae"] == pytest.approx(mean_absolute_error(label, pred), rel=1e-9, abs=1e-6)
    assert m["mean_residual"] == pytest.approx(np.mean(label - pred), rel=1e-9, abs=1e-6)
    assert m["mean_prediction"] == pytest.approx(np.mean(pred), rel=1e-9, abs=1e-6)


def test_json_round_trip():
    rng = np.random.default_rng(4)
    for task, weighted in (("binary", False), ("binary", True), ("regression", False)):
        q = Q.QualityStats(task, weighted)
        q.add(
            rng.random(500),
            (rng.random(500) < 0.5).astype(float),
            [b"a", b"b"] * 250,
            rng.uniform(1, 5, 500) if weighted else None,
        )
        back = Q.QualityStats.from_dict(json.loads(json.dumps(q.to_dict())))
        assert json.dumps(back.to_dict(), sort_keys=True) == json.dumps(q.to_dict(), sort_keys=True)
        assert back.report() == q.report()


def test_predictions_the_sums_cannot_hold_are_counted_not_scored():
    q = Q.QualityStats("regression").add(np.array([1.0, 1e200, 2.0]), np.array([1.5, 0.0, 1e70]))
    report = q.report()
    assert report["examples_out_of_range"] == 2 and report["examples_scored"] == 1
    assert report["all"]["mae"] == pytest.approx(0.5)
    binary = Q.QualityStats().add(np.array([0.2, 1.5, -0.1, 0.7]), np.array([0.0, 1.0, 0.0, 1.0])).report()
    assert binary["examples_out_of_range"] == 2 and binary["all"]["auc"] == 1.0
    assert q.to_dict()["n_out_of_range"] == 2
