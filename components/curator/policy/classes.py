"""Label-aware water-filling: thresholds per class for the ``stratified_*`` and ``balanced_*`` strategies.

``stratified_thresholds``. Objective: minimise ``V = sum_i s_i^2 (1/p_i - 1)`` subject to ``sum_i p_i = B``,
``p_min <= p_i <= 1`` **and** ``p_i = 1`` for every positive whenever that is feasible (``n_pos < B`` and the
negatives' share ``q = (B - n_pos) / n_neg >= p_min``). Without that floor the optimum is one global water
level for both classes (per-class levels ``lam_c`` with budgets ``B_c`` summing to ``B`` are optimal only when
the marginal variance reductions ``s^2 / p^2 = lam_c^2`` are equal, i.e. ``lam_c = lam``: the unstratified
solution), so stratifying the variance of the total loss alone buys nothing; what it buys is the floor:
positives at ``p = 1`` (what negative down-sampling gets right), and loss- or gradient-proportional
probabilities within the negatives (what it cannot do). The defensive mixture mixes within each class at that
class's rate. Exact property (tests/policy/test_classes.py): ``V(loss IS) <= V(stratified, any mix) <=
V(negative down-sampling)`` at equal budget; it is **not** below the *defensive* loss IS at the same mix in
general (IS is the unconstrained minimum only at mix 0). When the floor is infeasible (more positives than
budget, one class absent) the floor is dropped: one joint level, i.e. the (defensive) loss IS solution, where
negative down-sampling falls back to uniform.

``balanced_thresholds``: water-filling on the class-normalised scores ``s_i / N_c`` (the least-variance
estimate of the class-balanced loss).
"""

from __future__ import annotations

import math
from collections.abc import Callable

import numpy as np

from tfx_curator.components.curator.policy.waterfill import probabilities_from_lambda

ClassThreshold = tuple[float, float]  # (lam, rate): p = (1 - mix) * clip(s / lam, p_min, 1) + mix * rate


def stratified_thresholds(
    n_negative: int,
    n_positive: int,
    budget: float,
    p_min: float,
    solve_negatives: Callable[[float], float],
    solve_all: Callable[[float], float],
) -> tuple[ClassThreshold, ClassThreshold]:
    """``((lam, rate) of the negatives, (lam, rate) of the positives)`` for a label-aware selection.

    Objective: minimise ``V = sum_i s_i^2 (1/p_i - 1)`` (the variance of the Horvitz-Thompson estimate of the
    total loss under Poisson sampling) subject to ``sum_i p_i = budget``, ``p_min <= p_i <= 1`` and the floor
    ``p_i = 1`` for every positive, whenever that floor is feasible (``n_positive < budget`` and the negatives'
    share ``q = (budget - n_positive) / n_negative >= p_min``). Its solution: positives ``lam = 0`` (p = 1),
    negatives water-filled on their own (``solve_negatives(budget - n_positive)``, their own water level). The
    defensive mixture then mixes within each class at that class's rate (negatives ``q``, positives 1), so the
    positives stay at p = 1 and the class budgets are kept. When the floor is not feasible (more positives than
    budget, one class absent), the floor is dropped: one joint water level ``solve_all(budget)`` (plain
    importance sampling; negative down-sampling falls back to uniform there), mixed at ``budget / n``.

    ``solve_*(b)`` return the water-filling ``lam`` of that class (or of all) for a budget count ``b``: exact
    arrays in window mode, ``ScoreSummary.solve_lambda`` in global mode, so both modes share this rule.
    """
    n = n_negative + n_positive
    spare = budget - n_positive
    if n_positive and n_negative and spare > 0 and spare >= p_min * n_negative:
        q = min(spare / n_negative, 1.0)
        return (float(solve_negatives(min(spare, float(n_negative)))), q), (0.0, 1.0)
    rate = budget / n if n else 0.0
    lam = float(solve_all(budget)) if n else 0.0
    return (lam, rate), (lam, rate)


def balanced_thresholds(
    n_negative: int, n_positive: int, rate: float, solve_scaled: Callable[[], float]
) -> tuple[ClassThreshold, ClassThreshold]:
    """Thresholds of the class-balanced variant (``balanced_*`` strategies), same shape as
    ``stratified_thresholds``.

    Objective: minimise the variance of the HT estimate of the class-balanced loss ``sum_c L_c / N_c`` (each
    class's mean loss), ``sum_c (1 / N_c^2) sum_{i in c} s_i^2 (1/p_i - 1)``, subject to ``sum_i p_i = B`` and
    ``p_min <= p_i <= 1``. It is plain water-filling on the class-normalised scores ``s_i / N_c``: one level
    ``lam`` (``solve_scaled()``, the water level of those scores for the budget), i.e. the class level
    ``lam_c = lam * N_c`` on the raw scores. A rare class gets a level ``N_neg / N_pos`` times lower: its
    examples are kept far more often, in proportion to their own loss, without a hard floor. The mixture uses
    the split's (window's) rate for both classes.
    """
    lam = float(solve_scaled()) if n_negative + n_positive else 0.0

    def level(n_c: int) -> float:
        return lam * n_c if 0.0 < lam < math.inf else lam

    return (level(n_negative), rate), (level(n_positive), rate)


def class_scaled(scores: np.ndarray, positive: np.ndarray) -> np.ndarray:
    """``s_i / N_c`` of each score (N_c: the size of its class in this array)."""
    n_pos = int(np.count_nonzero(positive))
    return np.where(positive, scores / max(n_pos, 1), scores / max(scores.size - n_pos, 1))


def class_probabilities(scores, positive, thresholds, p_min: float, mix: float) -> np.ndarray:
    """p of each score from its class's ``(lam, rate)`` (``stratified_thresholds``; ``thresholds`` may also be
    per-element arrays ``(lam_negative, rate_negative, lam_positive, rate_positive)`` for windows)."""
    (lam_n, rate_n), (lam_p, rate_p) = thresholds
    pos = np.asarray(positive, dtype=bool)
    lam = np.where(pos, lam_p, lam_n)
    p = probabilities_from_lambda(scores, lam, p_min)
    if mix > 0.0:
        p = (1.0 - mix) * p + mix * np.where(pos, rate_p, rate_n)
    return p
