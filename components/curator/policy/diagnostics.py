"""Diagnostics of one selection: effective sample size and the variance of the estimate against uniform."""

from __future__ import annotations

import math

import numpy as np

from tfx_curator.components.curator.policy.checks import as_1d_float, check_probabilities, check_scores


def expected_squared_error(scores, p) -> float:
    """``sum s^2 (1/p - 1)``: the variance of the Horvitz-Thompson estimate of ``sum s`` under Poisson
    sampling with probabilities ``p``; inf if some ``p == 0`` has ``s > 0`` (those terms are never seen)."""
    s = check_scores(scores)
    prob = check_probabilities(p)
    if s.size != prob.size:
        raise ValueError(f"scores and p must have the same length, got {s.size} and {prob.size}")
    unseen = (prob == 0.0) & (s > 0.0)
    if unseen.any():
        return math.inf
    seen = prob > 0.0
    with np.errstate(over="ignore"):
        return float(np.sum(s[seen] ** 2 * (1.0 / prob[seen] - 1.0)))


def diagnostics(scores, p, weights_kept) -> dict:
    """Report figures for one selection.

    ``weights_kept``: the weights of the kept examples (zeros for dropped ones are ignored).
    Returns ess ``(sum w)^2 / sum w^2``, n_kept, expected_kept (``sum p``), expected_sq_error
    ``sum s^2 (1/p - 1)`` (inf when a positive score has ``p == 0``), the same for uniform sampling at the
    same budget (``p = sum(p) / n``), and their ratio (< 1: the strategy beats uniform; nan for inf/inf).
    """
    s = check_scores(scores)
    prob = check_probabilities(p)
    w = as_1d_float("weights_kept", weights_kept)
    if (w < 0).any():
        raise ValueError("weights must be >= 0")
    w = w[w > 0.0]
    ess = float(w.sum() ** 2 / np.sum(w**2)) if w.size else 0.0
    n = s.size
    expected_kept = float(prob.sum())
    error = expected_squared_error(s, prob)
    uniform_rate = min(expected_kept / n, 1.0) if n else 0.0
    error_uniform = expected_squared_error(s, np.full(n, uniform_rate))
    if error_uniform == 0.0:
        ratio = 1.0 if error == 0.0 else math.inf
    elif math.isinf(error) and math.isinf(error_uniform):
        ratio = math.nan
    else:
        ratio = error / error_uniform
    return {
        "n": n,
        "n_kept": int(w.size),
        "expected_kept": expected_kept,
        "ess": ess,
        "expected_sq_error": error,
        "expected_sq_error_uniform": error_uniform,
        "error_ratio_vs_uniform": ratio,
        "n_zero_p_positive_score": int(np.count_nonzero((prob == 0.0) & (s > 0.0))),
    }
