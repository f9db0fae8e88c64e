"""The report's served-model section: quality on the new span, the curated cross-check, drift vs the last run.

Pure Python + numpy (no TFX, no Beam). Inputs are `quality.QualityStats` built by the curation job: `full` (every
joined example of the split) and `curated` (the kept examples with their 1/p weights).

- Cross-check: the curated sample weighted by 1/p estimates the full span's figures, so each figure computed on
  it must agree with the full-span one within the noise its effective sample size (ESS) explains:
  ``noise = NOISE_Z * sd / sqrt(ESS)`` with `sd` the per-example standard deviation of the quantity on the full
  span (AUC: the Hanley-McNeil standard error at ESS * label rate positives). Another unbiasedness check, read
  like the TFDV one; `top_k` keeps an unweighted, biased sample, where a mismatch is expected.
- Drift: given the previous run's report.json, the change in label rate, mean prediction and quality, and the
  population stability index (PSI) of the prediction distribution over the deciles of the previous one; a
  plain-language flag when calibration, AUC or PSI moved beyond the thresholds in CurationOptions.
"""

from __future__ import annotations

import math

import numpy as np

from tfx_curator.components.curator.reporting import quality

NOISE_Z = 3.0  # cross-check: a figure is flagged beyond 3 standard errors (several figures per split)
PSI_BINS = 10
PSI_FLOOR = 1e-4  # share given to an empty PSI bin (keeps the index finite)
SECTION = "served_model"


def _binary_noise(m: dict, ess: float) -> dict[str, float]:
    rate, calibration = m["label_rate"], m["calibration"]
    out = {
        "label_rate": math.sqrt(rate * (1 - rate) / ess),
        "mean_prediction": m["sd_prediction"] / math.sqrt(ess),
        "log_loss": m["sd_log_loss"] / math.sqrt(ess),
    }
    if calibration is not None and m["mean_prediction"] > 0:
        rel = (m["sd_prediction"] / m["mean_prediction"]) ** 2 + (1 - rate) / rate
        out["calibration"] = calibration * math.sqrt(rel / ess)
    if m["auc"] is not None:
        out["auc"] = hanley_mcneil_se(m["auc"], ess * rate, ess * (1 - rate))
    return out


def _regression_noise(m: dict, ess: float) -> dict[str, float]:
    root = math.sqrt(ess)
    out = {
        "label_rate": m["sd_label"] / root,
        "mean_prediction": m["sd_prediction"] / root,
        "mse": m["sd_sq_error"] / root,
        "mae": m["sd_abs_error"] / root,
        "mean_residual": m["sd_residual"] / root,
    }
    if m["calibration"] is not None and m["mean_prediction"] and m["label_rate"]:
        rel = (m["sd_prediction"] / m["mean_prediction"]) ** 2 + (m["sd_label"] / m["label_rate"]) ** 2
        out["calibration"] = abs(m["calibration"]) * math.sqrt(rel / ess)
    return out


def hanley_mcneil_se(auc: float, n_pos: float, n_neg: float) -> float:
    """Standard error of an AUC estimated from n_pos positives and n_neg negatives (Hanley & McNeil 1982)."""
    if n_pos <= 0 or n_neg <= 0:
        return math.inf
    q1, q2 = auc / (2 - auc), 2 * auc * auc / (1 + auc)
    var = (auc * (1 - auc) + (n_pos - 1) * (q1 - auc * auc) + (n_neg - 1) * (q2 - auc * auc)) / (
        n_pos * n_neg
    )
    return math.sqrt(max(var, 0.0))


def cross_check(full: dict, curated: dict, ess: float, strategy: str) -> dict:
    """Figures of the weighted curated sample vs the full span, each with its noise level and a mismatch flag."""
    if not full.get("weight") or not curated.get("weight") or not ess:
        return {
            "rows": [],
            "mismatched": [],
            "note": "no scored example in the span or in the curated sample",
        }
    noise = (_binary_noise if "auc" in full else _regression_noise)(full, ess)
    rows = []
    for name, level in noise.items():
        a, b = full.get(name), curated.get(name)
        if a is None or b is None:
            continue
        level = NOISE_Z * level
        rows.append(
            {
                "metric": name,
                "full_span": a,
                "curated_weighted": b,
                "difference": b - a,
                "noise": level,
                "mismatch": bool(abs(b - a) > level + 1e-9),
            }
        )
    out = {
        "rows": rows,
        "mismatched": [r["metric"] for r in rows if r["mismatch"]],
        "noise_z": NOISE_Z,
        "ess": ess,
    }
    if strategy == "top_k":
        out["note"] = "top_k keeps an unweighted, biased sample: mismatches are expected"
    return out


# ---------------------------------------------------------------------------------------------------------
# Drift against the previous run
# ---------------------------------------------------------------------------------------------------------


def psi(previous: np.ndarray, current: np.ndarray, bins: int = PSI_BINS) -> float | None:
    """Population stability index between two fine histograms (same bins), over the previous one's deciles:
    sum (c - p) ln(c / p) over the grouped shares, empty groups floored at PSI_FLOOR. < 0.1 stable, 0.1-0.25
    moderate, > 0.25 a large shift (the usual reading)."""
    previous, current = np.asarray(previous, dtype=float), np.asarray(current, dtype=float)
    if previous.sum() <= 0 or current.sum() <= 0:
        return None
    cum = np.cumsum(previous) / previous.sum()
    cuts = np.unique(np.searchsorted(cum, np.arange(1, bins) / bins, side="left")) + 1
    group = np.searchsorted(cuts, np.arange(previous.size), side="right")
    p = np.bincount(group, weights=previous, minlength=cuts.size + 1) / previous.sum()
    c = np.bincount(group, weights=current, minlength=cuts.size + 1) / current.sum()
    p, c = np.maximum(p, PSI_FLOOR), np.maximum(c, PSI_FLOOR)
    return float(np.sum((c - p) * np.log(c / p)))


QUALITY_FIGURES = {
    "binary": ("label_rate", "mean_prediction", "calibration", "auc", "average_precision", "log_loss"),
    "regression": ("label_rate", "mean_prediction", "calibration", "rmse", "mae", "mean_residual"),
}


def drift(previous: quality.QualityStats, current: quality.QualityStats, thresholds: dict) -> dict:
    """Changes from the previous run's span to this one, with plain-language flags.

    thresholds: drift_max_auc_change, drift_max_calibration_change, drift_max_psi (absolute changes)."""
    if previous.task != current.task:
        return {"note": f"previous run's task {previous.task!r} differs: not compared", "flags": []}
    prev_all, cur_all = previous.combined(), current.combined()
    a, b = quality.metrics(prev_all), quality.metrics(cur_all)
    changes = {}
    for name in QUALITY_FIGURES[current.task]:
        x, y = a.get(name), b.get(name)
        changes[name] = {"previous": x, "current": y, "change": None if x is None or y is None else y - x}
    index = psi(quality.marginal_histogram(prev_all), quality.marginal_histogram(cur_all))
    flags = []
    cal = changes["calibration"]
    limit = thresholds["drift_max_calibration_change"]
    if cal["change"] is not None and abs(cal["change"]) > limit:
        direction = "over" if cal["current"] > 1 else "under"
        flags.append(
            f"calibration moved from {cal['previous']:.3f} to {cal['current']:.3f} (mean prediction / mean "
            f"label; threshold {limit:g}): the served model now {direction}-predicts by "
            f"{abs(cal['current'] - 1):.0%} on this span"
        )
    auc = changes.get("auc")
    limit = thresholds["drift_max_auc_change"]
    if auc and auc["change"] is not None and abs(auc["change"]) > limit:
        verb = "fell" if auc["change"] < 0 else "rose"
        flags.append(
            f"AUC {verb} from {auc['previous']:.4f} to {auc['current']:.4f} (threshold {limit:g}): the served "
            "model ranks this span's examples "
            + ("worse" if auc["change"] < 0 else "better")
            + " than the last"
        )
    limit = thresholds["drift_max_psi"]
    if index is not None and index > limit:
        flags.append(
            f"the served model's predictions shifted: PSI {index:.3f} over the previous span's deciles "
            f"(threshold {limit:g})"
        )
    out = {"changes": changes, "psi": index, "flags": flags}
    before, now = sorted(previous.versions), sorted(current.versions)
    if before != now and any(before) and any(now):
        out["note"] = (
            f"the served model changed since the previous run (model versions {before} -> {now}): the changes "
            "mix the new model's behaviour with data drift"
        )
    return out


def section(
    full: quality.QualityStats | None,
    curated: quality.QualityStats | None,
    ess: float,
    options: dict,
    previous: quality.QualityStats | None = None,
    previous_note: str | None = None,
) -> dict:
    """report.json's served-model section of one split (`options`: the CurationOptions as a dict)."""
    if full is None:
        full = quality.QualityStats(options["task"])
    out = full.report()
    out["log_loss_eps"] = quality.LOG_LOSS_EPS if options["task"] == "binary" else None
    curated_figures = quality.metrics((curated or quality.QualityStats(options["task"], True)).combined())
    out["curated_cross_check"] = cross_check(out["all"], curated_figures, ess, options["strategy"])
    if previous is not None:
        out["drift"] = drift(previous, full, options)
    elif previous_note:
        out["drift"] = {"note": previous_note, "flags": []}
    out["flags"] = list(out.get("drift", {}).get("flags", []))
    out["accumulator"] = full.to_dict()  # lossless: the next run's drift check reads it
    return out


def previous_stats(
    previous_report: dict | None, split: str
) -> tuple[quality.QualityStats | None, str | None]:
    """The previous run's full-span accumulator for `split`, or (None, why not)."""
    if previous_report is None:
        return None, None
    entry = previous_report.get("splits", {}).get(split, {}).get(SECTION)
    if not entry or "accumulator" not in entry:
        return None, f"the previous report has no served-model figures for split {split!r}: no drift check"
    return quality.QualityStats.from_dict(entry["accumulator"]), None
