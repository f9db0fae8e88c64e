"""Importance signals: one registry entry per signal (name, score function, help, report note).

A score ``s_i >= 0`` per example from the served prediction and the label. The strategies ``x``,
``stratified_x`` and ``balanced_x`` are derived from every importance signal (strategies.py), so adding a
signal is one `Signal` entry in `REGISTRY` (plus its test): options, the CLI help, the report and the job
take it from there.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

TASKS = ("binary", "regression")

# (prediction, label, task, hidden_norm or None, eps) -> scores; inputs already validated by compute_scores.
ScoreFn = Callable[[np.ndarray, np.ndarray, str, "np.ndarray | None", float], np.ndarray]


@dataclass(frozen=True)
class Signal:
    """An importance signal.

    ``help``: one line for the CLI and the strategies' help. ``note``: what the scores are, for the report.
    ``importance``: water-filled strategies are derived from it (False for ``uniform``, a constant).
    """

    name: str
    score: ScoreFn
    help: str
    note: str
    importance: bool = True


def _loss(pred: np.ndarray, y: np.ndarray, task: str, hidden_norm, eps: float) -> np.ndarray:
    if task == "regression":
        return (y - pred) ** 2
    p = np.clip(pred, eps, 1.0 - eps)
    # np.maximum guards against -0.0 and rounding just below zero for soft labels.
    return np.maximum(-(y * np.log(p) + (1.0 - y) * np.log1p(-p)), 0.0)


def _grad_norm(pred: np.ndarray, y: np.ndarray, task: str, hidden_norm, eps: float) -> np.ndarray:
    residual = np.abs(y - pred)
    if hidden_norm is None:
        return residual
    h = np.asarray(hidden_norm, dtype=np.float64)
    factor = np.where(np.isnan(h), 1.0, np.sqrt(np.nan_to_num(h) ** 2 + 1.0))
    return residual * factor


def _ones(pred: np.ndarray, y: np.ndarray, task: str, hidden_norm, eps: float) -> np.ndarray:
    return np.ones_like(pred)


REGISTRY: tuple[Signal, ...] = (
    Signal(
        "loss",
        _loss,
        "the served loss (log loss; squared error for regression)",
        "scores are the served prediction's log loss, p clipped to [1e-7, 1 - 1e-7] (squared error for "
        "regression)",
    ),
    Signal(
        "grad_norm",
        _grad_norm,
        "the last layer's gradient norm |y - p| * sqrt(hidden_norm^2 + 1)",
        "scores are the last layer's loss-gradient norm |y - p| * sqrt(hidden_norm^2 + 1); |y - p| where "
        "no hidden_norm was logged",
    ),
    Signal("uniform", _ones, "a constant (every example alike)", "scores are all ones", importance=False),
)
SIGNALS = tuple(s.name for s in REGISTRY)
IMPORTANCE_SIGNALS = tuple(s.name for s in REGISTRY if s.importance)
_BY_NAME = {s.name: s for s in REGISTRY}


def get(name: str) -> Signal:
    """The registered signal ``name``; ValueError naming the known ones otherwise."""
    if name not in _BY_NAME:
        raise ValueError(f"unknown signal {name!r}; expected one of {SIGNALS}")
    return _BY_NAME[name]


def invalid_inputs(
    prediction: np.ndarray,
    label: np.ndarray,
    task: str = "binary",
    hidden_norm: np.ndarray | None = None,
) -> np.ndarray:
    """Boolean mask of rows ``compute_scores`` would reject (for counting and dropping them upstream).

    A row is invalid when its prediction or label is not finite, when ``task == "binary"`` and the
    prediction or label lies outside [0, 1], or when its ``hidden_norm`` is infinite or negative (NaN means
    "not logged" and is valid).
    """
    if task not in TASKS:
        raise ValueError(f"unknown task {task!r}; expected one of {TASKS}")
    pred = np.asarray(prediction, dtype=np.float64)
    lab = np.asarray(label, dtype=np.float64)
    if pred.ndim != 1 or pred.shape != lab.shape:
        raise ValueError(
            f"prediction and label must be 1-D of equal length, got {pred.shape} and {lab.shape}"
        )
    with np.errstate(invalid="ignore"):
        bad = ~(np.isfinite(pred) & np.isfinite(lab))
        if task == "binary":
            bad |= (pred < 0) | (pred > 1) | (lab < 0) | (lab > 1)
        if hidden_norm is not None:
            h = np.asarray(hidden_norm, dtype=np.float64)
            if h.shape != pred.shape:
                raise ValueError(f"hidden_norm must have shape {pred.shape}, got {h.shape}")
            bad |= np.isinf(h) | (h < 0)
    return bad


def compute_scores(
    signal: str,
    prediction: np.ndarray,
    label: np.ndarray,
    task: str = "binary",
    hidden_norm: np.ndarray | None = None,
    eps: float = 1e-7,
) -> np.ndarray:
    """Importance score per example from the served prediction and the label (the registered signal's).

    - ``loss``: binary log loss ``-(y log p + (1 - y) log(1 - p))`` with ``p`` clipped to ``[eps, 1 - eps]``
      (soft labels in [0, 1] allowed); regression squared error ``(y - yhat)^2``.
    - ``grad_norm``: ``abs(y - p) * sqrt(hidden_norm^2 + 1)``, the norm of the loss gradient w.r.t. the last
      layer (weights and bias) of a sigmoid/identity head; ``abs(y - p)`` where ``hidden_norm`` is None or
      NaN for that element.
    - ``uniform``: ones.

    Raises ValueError for unknown signal/task, mismatched shapes, and any row ``invalid_inputs`` flags.
    """
    entry = get(signal)
    eps = float(eps)
    if not (0.0 < eps < 0.5):
        raise ValueError(f"eps must be in (0, 0.5), got {eps}")
    bad = invalid_inputs(prediction, label, task, hidden_norm)
    if bad.any():
        idx = int(np.flatnonzero(bad)[0])
        raise ValueError(
            f"{int(bad.sum())} invalid input row(s) for task {task!r} (non-finite, out of range, or bad "
            f"hidden_norm), first at index {idx}"
        )
    pred = np.asarray(prediction, dtype=np.float64)
    y = np.asarray(label, dtype=np.float64)
    return entry.score(pred, y, task, hidden_norm, eps)
