"""Several forward records of one example -> one score: the mean per-record score plus a disagreement term.

"One backward from ten forward": an example scored by several forward passes (the served models of the last k
versions, or k stochastic passes with dropout on) gets ``mean(s) + beta * std(s)`` of its per-record scores
``s`` (the strategy's signal, e.g. the loss of each record), so the examples the passes disagree on are kept
more often. ``std`` is the population standard deviation (ddof 0): one record gives exactly its own score.

Deterministic: the scores of a row are sorted before the float sums, so the result never depends on the order
the records arrive in (a Beam group delivers them in any order).
"""

from __future__ import annotations

import numpy as np

# The weight of the disagreement term, fixed before any measurement (issue 14: not tuned on the reported spans).
DISAGREEMENT_BETA = 1.0


def combine(scores: np.ndarray, beta: float = DISAGREEMENT_BETA) -> np.ndarray:
    """Per row of ``scores`` [n, k] (NaN = no record in that column): mean + beta * std over its records.

    A row without any record gives NaN. Raises ValueError for a negative or non-finite beta or a score that is
    negative or infinite.
    """
    if not (np.isfinite(beta) and beta >= 0):
        raise ValueError(f"beta must be finite and >= 0, got {beta}")
    s = np.asarray(scores, dtype=np.float64)
    if s.ndim != 2:
        raise ValueError(f"scores must be 2-D [examples, records], got shape {s.shape}")
    if np.isinf(s).any() or (s < 0).any():
        raise ValueError("scores must be finite and >= 0 (NaN marks a missing record)")
    s = np.sort(s, axis=1)  # NaN sorts last; the order of the records no longer matters
    present = ~np.isnan(s)
    count = present.sum(axis=1)
    filled = np.where(present, s, 0.0)
    total = np.zeros(s.shape[0])
    for j in range(s.shape[1]):  # column by column: the same float sums for a row alone or in a batch
        total = total + filled[:, j]
    with np.errstate(invalid="ignore", divide="ignore"):
        mean = total / count
        spread = np.zeros(s.shape[0])
        for j in range(s.shape[1]):
            spread = spread + np.where(present[:, j], (filled[:, j] - mean) ** 2, 0.0)
        std = np.sqrt(spread / count)
    return np.where(count > 0, mean + beta * std, np.nan)


def combine_one(scores, beta: float = DISAGREEMENT_BETA) -> float:
    """The combined score of one example from its per-record scores (a list), as `combine` gives for its row."""
    return float(combine(np.asarray(scores, dtype=np.float64).reshape(1, -1), beta)[0])
