"""Mergeable per-split statistics of a selection (numpy only): counts, sums and fixed-bin histograms.

Each Beam batch produces one `SplitStats`; a CombineFn merges them. Fixed bins make merging exact and the
report's plots (score histogram, inclusion probability vs score, weight distribution) need nothing else.
"""

from __future__ import annotations

import dataclasses
import math

import numpy as np

SCORE_BINS = np.logspace(-8, 4, 49)  # log10 edges for positive scores; zeros and missing counted apart
P_BINS = np.logspace(-6, 0, 25)
WEIGHT_BINS = np.logspace(0, 6, 25)


def _hist(values: np.ndarray, edges: np.ndarray) -> np.ndarray:
    """Counts per bin with values below/above the edges clamped into the first/last bin."""
    idx = np.clip(np.searchsorted(edges, values, side="right") - 1, 0, edges.size - 2)
    return np.bincount(idx, minlength=edges.size - 1).astype(np.int64)


@dataclasses.dataclass
class SplitStats:
    n: int
    n_scored: int
    n_kept: int
    expected_kept: float  # sum p
    sum_w: float
    sum_w2: float
    max_w: float
    min_p_kept: float
    n_label: np.ndarray  # [negative, positive] (binary labels; regression: [n, 0])
    kept_label: np.ndarray
    sum_w_label: np.ndarray
    sum_label: float
    sum_w_times_label: float
    score_hist: np.ndarray
    score_zero: int
    p_sum_by_score_bin: np.ndarray
    p_hist: np.ndarray
    p_zero: int
    weight_hist: np.ndarray
    sq_error: float  # sum s^2 (1/p - 1) over scored examples (inf when some p == 0 with s > 0)
    sum_s2: float  # for the uniform error at the same budget: sum s^2 (1/r - 1)
    sum_s: float
    n_zero_p_positive_score: int
    min_s: float = math.inf  # smallest and largest score (equal: the scores cannot tell examples apart)
    max_s: float = -math.inf

    @classmethod
    def empty(cls) -> SplitStats:
        z = np.zeros
        return cls(
            0,
            0,
            0,
            0.0,
            0.0,
            0.0,
            0.0,
            math.inf,
            z(2, np.int64),
            z(2, np.int64),
            z(2),
            0.0,
            0.0,
            z(SCORE_BINS.size - 1, np.int64),
            0,
            z(SCORE_BINS.size - 1),
            z(P_BINS.size - 1, np.int64),
            0,
            z(WEIGHT_BINS.size - 1, np.int64),
            0.0,
            0.0,
            0.0,
            0,
        )

    @classmethod
    def from_batch(cls, scores, labels, p, keep, weight) -> SplitStats:
        scores, labels, p = np.asarray(scores), np.asarray(labels), np.asarray(p)
        has = ~np.isnan(scores)
        s = scores[has]
        positive = s > 0
        w = weight[keep]
        label_idx = (labels == 1.0).astype(np.int64)
        score_idx = np.clip(
            np.searchsorted(SCORE_BINS, s[positive], side="right") - 1, 0, SCORE_BINS.size - 2
        )
        ps = p[has]
        unseen = (ps == 0) & (s > 0)
        seen = ps > 0
        with np.errstate(divide="ignore", over="ignore"):
            sq = math.inf if unseen.any() else float(np.sum(s[seen] ** 2 * (1.0 / ps[seen] - 1.0)))
        return cls(
            n=int(scores.size),
            n_scored=int(has.sum()),
            n_kept=int(keep.sum()),
            expected_kept=float(p.sum()),
            sum_w=float(w.sum()),
            sum_w2=float(np.sum(w**2)),
            max_w=float(w.max()) if w.size else 0.0,
            min_p_kept=float(p[keep].min()) if keep.any() else math.inf,
            n_label=np.bincount(label_idx, minlength=2),
            kept_label=np.bincount(label_idx[keep], minlength=2),
            sum_w_label=np.bincount(label_idx[keep], weights=w, minlength=2),
            sum_label=float(labels.sum()),
            sum_w_times_label=float(np.sum(w * labels[keep])),
            score_hist=np.bincount(score_idx, minlength=SCORE_BINS.size - 1),
            score_zero=int((s == 0).sum()),
            p_sum_by_score_bin=np.bincount(score_idx, weights=ps[positive], minlength=SCORE_BINS.size - 1),
            p_hist=_hist(p[p > 0], P_BINS),
            p_zero=int((p == 0).sum()),
            weight_hist=_hist(w, WEIGHT_BINS),
            sq_error=sq,
            sum_s2=float(np.sum(s**2)),
            sum_s=float(np.sum(s)),
            n_zero_p_positive_score=int(unseen.sum()),
            min_s=float(s.min()) if s.size else math.inf,
            max_s=float(s.max()) if s.size else -math.inf,
        )

    def merge(self, other: SplitStats) -> SplitStats:
        out = {}
        for f in dataclasses.fields(self):
            a, b = getattr(self, f.name), getattr(other, f.name)
            if f.name in ("max_w", "max_s"):
                out[f.name] = max(a, b)
            elif f.name in ("min_p_kept", "min_s"):
                out[f.name] = min(a, b)
            else:
                out[f.name] = a + b
        return SplitStats(**out)

    def summary(self) -> dict:
        """Report figures: ESS, estimator-error ratio vs uniform at the same budget, weight sums."""
        uniform_rate = min(self.expected_kept / self.n, 1.0) if self.n else 0.0
        if self.n_scored == 0:
            err_uniform = 0.0
        elif uniform_rate == 0.0:
            err_uniform = math.inf if self.sum_s2 > 0 else 0.0
        else:
            err_uniform = self.sum_s2 * (1.0 / uniform_rate - 1.0)
        if err_uniform == 0.0:
            ratio = 1.0 if self.sq_error == 0.0 else math.inf
        elif math.isinf(err_uniform):
            ratio = math.nan
        else:
            ratio = self.sq_error / err_uniform
        return {
            "ess": self.sum_w**2 / self.sum_w2 if self.sum_w2 else 0.0,
            "expected_sq_error": self.sq_error,
            "expected_sq_error_uniform": err_uniform,
            "error_ratio_vs_uniform": ratio,
            "sum_of_weights": self.sum_w,
            "sum_of_weights_over_examples": self.sum_w / self.n if self.n else math.nan,
            "max_weight": self.max_w,
            "min_p_kept": self.min_p_kept if self.n_kept else None,
        }

    def to_dict(self) -> dict:
        out = {}
        for f in dataclasses.fields(self):
            v = getattr(self, f.name)
            out[f.name] = v.tolist() if isinstance(v, np.ndarray) else v
        return out
