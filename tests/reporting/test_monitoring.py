"""monitoring.py: drift flags fire on real shifts and stay quiet on a resample; the weighted curated sample agrees
with the full span within its noise."""

from __future__ import annotations

import numpy as np
import pytest

from tfx_curator.components.curator.options import CurationOptions
from tfx_curator.components.curator.policy import plan, signals
from tfx_curator.components.curator.reporting import monitoring, quality

THRESHOLDS = {"drift_max_auc_change": 0.02, "drift_max_calibration_change": 0.1, "drift_max_psi": 0.25}


def _span(rng, n=20_000, shift=-1.2, label_scale=1.0, noise=0.0):
    """Calibrated predictions of a logistic model; labels drawn from p * label_scale, optionally with a share
    `noise` of labels replaced by coin flips (the model ranks worse)."""
    z = rng.normal(size=n) * 1.4 + shift
    p = 1.0 / (1.0 + np.exp(-z))
    y = (rng.random(n) < np.clip(p * label_scale, 0, 1)).astype(float)
    flip = rng.random(n) < noise
    y[flip] = (rng.random(int(flip.sum())) < y.mean()).astype(float)
    return p, y


def _stats(p, y):
    return quality.QualityStats().add(p, y)


@pytest.mark.parametrize("seed", range(5))
def test_no_flag_on_a_resample_of_the_same_span(seed):
    rng = np.random.default_rng(seed)
    p, y = _span(rng)
    previous = _stats(p, y)
    idx = rng.integers(0, p.size, p.size)  # bootstrap resample: same span, sampling noise only
    d = monitoring.drift(previous, _stats(p[idx], y[idx]), THRESHOLDS)
    assert d["flags"] == []
    assert d["psi"] < 0.01
    assert abs(d["changes"]["auc"]["change"]) < 0.02


@pytest.mark.parametrize("seed", range(3))
def test_flag_on_a_calibration_shift(seed):
    rng = np.random.default_rng(seed)
    previous = _stats(*_span(rng))
    p, y = _span(rng, label_scale=0.7)  # labels now 30% rarer than predicted: the model over-predicts
    d = monitoring.drift(previous, _stats(p, y), THRESHOLDS)
    calibration = [f for f in d["flags"] if f.startswith("calibration moved from")]
    assert len(calibration) == 1 and "over-predicts" in calibration[0]
    assert d["changes"]["calibration"]["change"] > 0.3
    assert d["changes"]["label_rate"]["change"] < 0
    loose = dict(THRESHOLDS, drift_max_calibration_change=1.0)
    assert not any(
        f.startswith("calibration") for f in monitoring.drift(previous, _stats(p, y), loose)["flags"]
    )


def test_flag_on_an_auc_drop_and_on_a_prediction_shift():
    rng = np.random.default_rng(7)
    previous = _stats(*_span(rng))
    d = monitoring.drift(previous, _stats(*_span(rng, noise=0.5)), THRESHOLDS)
    assert any(f.startswith("AUC fell from") for f in d["flags"])
    d = monitoring.drift(previous, _stats(*_span(rng, shift=0.5)), THRESHOLDS)
    assert d["psi"] > 0.25 and any("PSI" in f for f in d["flags"])
    never = dict.fromkeys(THRESHOLDS, float("inf"))
    assert monitoring.drift(previous, _stats(*_span(rng, shift=0.5, noise=0.5)), never)["flags"] == []


def test_psi_of_identical_histograms_is_zero_and_grows_with_the_shift():
    rng = np.random.default_rng(1)
    base = _stats(*_span(rng))
    h = quality.marginal_histogram(base.combined())
    assert monitoring.psi(h, h) == 0.0
    shifted = [
        monitoring.psi(h, quality.marginal_histogram(_stats(*_span(rng, shift=-1.2 + s)).combined()))
        for s in (0.1, 0.5, 1.0)
    ]
    assert shifted == sorted(shifted) and shifted[0] < 0.1 < shifted[2]


def test_regression_drift_flags_calibration():
    rng = np.random.default_rng(2)
    y = rng.gamma(3.0, 100.0, 20_000)
    previous = quality.QualityStats("regression").add(y + rng.normal(0, 30, y.size), y)
    idx = rng.integers(0, y.size, y.size)
    same = quality.QualityStats("regression").add(y[idx] + rng.normal(0, 30, y.size), y[idx])
    assert monitoring.drift(previous, same, THRESHOLDS)["flags"] == []
    biased = quality.QualityStats("regression").add(1.3 * y + rng.normal(0, 30, y.size), y)
    flags = monitoring.drift(previous, biased, THRESHOLDS)["flags"]
    assert any(f.startswith("calibration moved") for f in flags)


def _curate(p, y, options: CurationOptions, weighted=True):
    """The job's selection on one span (pure library), returning the weighted curated QualityStats and ESS."""
    ids = [f"id-{i}".encode() for i in range(p.size)]
    scores = signals.compute_scores("loss", p, y)
    keep, weight, _ = plan.reference_selection(options, ids, scores, y)
    w = weight[keep] if weighted else np.ones(int(keep.sum()))
    curated = quality.QualityStats(weighted=True).add(p[keep], y[keep], weights=w)
    ess = w.sum() ** 2 / np.sum(w**2)
    return curated, ess


@pytest.mark.parametrize("seed", range(4))
def test_weighted_curated_sample_agrees_with_the_full_span(seed):
    rng = np.random.default_rng(seed)
    p, y = _span(rng, n=30_000)
    options = CurationOptions(budget=0.1, seed=seed, mode="global")
    curated, ess = _curate(p, y, options)
    full = quality.metrics(_stats(p, y).combined())
    check = monitoring.cross_check(full, quality.metrics(curated.combined()), ess, options.strategy)
    assert {r["metric"] for r in check["rows"]} == {
        "label_rate",
        "mean_prediction",
        "log_loss",
        "calibration",
        "auc",
    }
    assert check["mismatched"] == [], check["rows"]


def test_unweighted_high_loss_sample_is_a_mismatch():
    rng = np.random.default_rng(11)
    p, y = _span(rng, n=30_000)
    options = CurationOptions(budget=0.1, mix=0.0, mode="global")
    curated, ess = _curate(p, y, options, weighted=False)  # the 1/p weights forgotten: biased
    full = quality.metrics(_stats(p, y).combined())
    check = monitoring.cross_check(full, quality.metrics(curated.combined()), ess, options.strategy)
    assert "log_loss" in check["mismatched"]


def test_section_without_records_or_previous_report():
    opts = {"task": "binary", "strategy": "loss", **THRESHOLDS}
    s = monitoring.section(None, None, 0.0, opts)
    assert s["examples_scored"] == 0 and s["flags"] == [] and "drift" not in s
    assert s["curated_cross_check"]["rows"] == []
    prev, note = monitoring.previous_stats({"splits": {"train": {}}}, "train")
    assert prev is None and "no served-model figures" in note
    s = monitoring.section(None, None, 0.0, opts, previous_note=note)
    assert s["drift"]["note"] == note


def test_drift_notes_a_change_of_served_model_version():
    rng = np.random.default_rng(5)
    p, y = _span(rng)
    previous = quality.QualityStats().add(p, y, [b"100"] * p.size)
    same = monitoring.drift(previous, quality.QualityStats().add(p, y, [b"100"] * p.size), THRESHOLDS)
    assert "note" not in same and same["flags"] == []
    new = monitoring.drift(previous, quality.QualityStats().add(p, y, [b"200"] * p.size), THRESHOLDS)
    assert "model versions ['100'] -> ['200']" in new["note"] and new["flags"] == []
