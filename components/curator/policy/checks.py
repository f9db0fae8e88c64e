"""Input checks shared by the policy modules: each raises ValueError naming the argument and the bad value."""

from __future__ import annotations

import math

import numpy as np


def as_1d_float(name: str, x, allow_nan: bool = False) -> np.ndarray:
    """``x`` as a 1-D float64 array; ValueError on another shape or a non-finite value (NaN too unless allowed)."""
    arr = np.asarray(x, dtype=np.float64)
    if arr.ndim != 1:
        raise ValueError(f"{name} must be one-dimensional, got shape {arr.shape}")
    bad = ~np.isfinite(arr)
    if allow_nan:
        bad &= ~np.isnan(arr)
    if bad.any():
        idx = int(np.flatnonzero(bad)[0])
        raise ValueError(f"{name} has {int(bad.sum())} non-finite value(s), first at index {idx}: {arr[idx]}")
    return arr


def check_scores(scores) -> np.ndarray:
    """Scores as a 1-D float64 array of finite values >= 0."""
    s = as_1d_float("scores", scores)
    neg = s < 0
    if neg.any():
        idx = int(np.flatnonzero(neg)[0])
        raise ValueError(f"scores must be >= 0; {int(neg.sum())} negative, first at index {idx}: {s[idx]}")
    return s


def check_unit(name: str, value: float) -> float:
    """A float in [0, 1]."""
    value = float(value)
    if not (0.0 <= value <= 1.0):  # also rejects NaN
        raise ValueError(f"{name} must be in [0, 1], got {value}")
    return value


def check_probabilities(p) -> np.ndarray:
    """Probabilities as a 1-D float64 array in [0, 1]."""
    arr = as_1d_float("p", p)
    if arr.size and (arr.min() < 0.0 or arr.max() > 1.0):
        raise ValueError(f"p must lie in [0, 1], got range [{arr.min()}, {arr.max()}]")
    return arr


def check_budget(budget: float) -> float:
    """A budget count: a finite float >= 0."""
    budget = float(budget)
    if not math.isfinite(budget) or budget < 0:
        raise ValueError(f"budget must be a finite count >= 0, got {budget}")
    return budget
