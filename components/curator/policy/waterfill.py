"""Water-filling: the inclusion probabilities that minimise the variance of the estimate at a budget.

The method (Dong et al. 2021, "One Backward from Ten Forward"): given importance scores ``s_i >= 0``
(signals.py), ``water_fill`` finds the probabilities minimising ``sum_i s_i^2 (1/p_i - 1)`` (the variance of
the Horvitz-Thompson estimate of ``sum s`` under Poisson sampling) subject to ``sum_i p_i = B`` and
``p_min <= p_i <= 1``, i.e. ``p_i = clip(s_i / lam, p_min, 1)``. The job solves ``lam`` per window (the paper's
mini-batch approximation, plan.py) or once per split from a mergeable summary (summary.py), and turns it into
each element's ``p`` with ``probabilities_from_lambda``; ``defensive_mix`` bounds the weights.

Budgets are counts (expected number of kept examples, a float); ``budget_count`` turns a user's budget
(a rate in [0, 1] or an integer count) into one.

Lambda semantics (one float fully determines ``p`` given the scores and ``p_min``; ``water_fill``,
``ScoreSummary.solve_lambda`` and ``probabilities_from_lambda`` all use it):

- ``0 < lam < inf``: ``p = clip(s / lam, p_min, 1)`` (the regular water-filling solution);
- ``lam == inf``: every ``p = p_min`` (the floor binds: ``budget <= n * p_min``);
- ``lam == 0``: every ``p = 1`` (``budget >= n``);
- ``lam < 0``: "zero fill": ``p = 1`` where ``s > 0`` and ``p = -lam`` where ``s == 0``. Used when the budget
  exceeds what the positive scores can take (``budget > n_positive + n_zero * p_min``): every positive score
  is kept surely and the zero-score elements share the rest of the budget uniformly, so the budget is still
  met and no example is left with ``p = 0``. All-zero scores are the special case ``n_positive == 0``,
  giving the uniform ``p = budget / n``.
"""

from __future__ import annotations

import math
import sys
from dataclasses import dataclass, field

import numpy as np

from tfx_curator.components.curator.policy.checks import (
    check_budget,
    check_probabilities,
    check_scores,
    check_unit,
)


@dataclass(frozen=True)
class WaterFillResult:
    """Result of ``water_fill``.

    ``p``: inclusion probabilities (same order as the scores). ``lam``: the threshold, see the module
    docstring for its degenerate values (0, inf, negative). ``n_saturated``: elements with ``p == 1``.
    ``floor_bound``: ``budget <= n * p_min``, so every ``p == p_min`` and the budget may be exceeded.
    ``note``: a human-readable account of the case taken.
    """

    p: np.ndarray = field(repr=False)
    lam: float
    n_saturated: int
    floor_bound: bool
    note: str


def probabilities_from_lambda(scores, lam, p_min: float = 0.0) -> np.ndarray:
    """Probabilities for ``scores`` given a threshold ``lam`` (module docstring: lambda semantics).

    ``lam`` is one float, or an array with one threshold per score (window mode: each example's window).
    This is how the Beam job turns thresholds (side inputs) into per-element probabilities; it is also how
    ``water_fill`` computes its own ``p``, so both agree exactly.
    """
    s = check_scores(scores)
    p_min = check_unit("p_min", p_min)
    lam = np.asarray(lam, dtype=np.float64)
    if lam.ndim and lam.shape != s.shape:
        raise ValueError(
            f"lam must be a float or one threshold per score, got shape {lam.shape} for {s.shape}"
        )
    if np.isnan(lam).any():
        raise ValueError("lam must not be NaN")
    if (lam < -1.0).any():
        raise ValueError(f"a negative lam encodes the zero-score probability -lam in (0, 1], got {lam.min()}")
    lam = np.broadcast_to(lam, s.shape)
    with np.errstate(over="ignore", divide="ignore", invalid="ignore"):
        p = s / lam
    np.clip(p, p_min, 1.0, out=p)
    special = ~((lam > 0.0) & np.isfinite(lam))
    if special.any():
        p[lam == math.inf] = p_min
        p[lam == 0.0] = 1.0
        zero_fill = lam < 0.0
        p[zero_fill] = np.where(s[zero_fill] > 0.0, 1.0, -lam[zero_fill])
    return p


class _Cumulative:
    """Prefix sums over ascending values (optionally weighted by counts) to evaluate the budget used.

    Sums are taken from the small end, unscaled, so tiny values keep full precision. Only when the total
    overflows is a second, scaled-down copy (by a power of two, exact) kept; it is used for the brackets
    whose middle sum overflows, where the values that underflow in it are negligible anyway.
    """

    def __init__(self, values: np.ndarray, counts: np.ndarray | None = None):
        self.values = values
        weighted = values if counts is None else values * counts
        with np.errstate(over="ignore"):
            self.cum_sum = np.concatenate([[0.0], np.cumsum(weighted)])
        self.cum_count = (
            None if counts is None else np.concatenate([[0.0], np.cumsum(counts, dtype=np.float64)])
        )
        self.total = float(values.size) if counts is None else float(self.cum_count[-1])
        self.down = 1.0
        self.cum_scaled = self.cum_sum
        if not math.isfinite(self.cum_sum[-1]):
            exponent = math.frexp(float(values[-1]))[1] + math.frexp(self.total)[1]
            self.down = 2.0 ** (1000 - exponent)
            self.cum_scaled = np.concatenate([[0.0], np.cumsum(weighted * self.down)])

    def count_below(self, i: int) -> float:
        """Number of elements among the first ``i`` values (weighted by counts)."""
        return float(i) if self.cum_count is None else float(self.cum_count[i])

    def split(self, lam: float, p_min: float) -> tuple[int, int]:
        """Indices (lo, hi): values[:lo] are floored (<= p_min*lam), values[hi:] saturated (>= lam)."""
        lo = int(np.searchsorted(self.values, p_min * lam, side="right"))
        hi = int(np.searchsorted(self.values, lam, side="left"))
        return lo, max(lo, hi)

    def middle(self, lo: int, hi: int) -> tuple[float, float]:
        """(sum of values[lo:hi] * down, down): down == 1 unless that sum overflows unscaled."""
        if math.isfinite(self.cum_sum[hi]):
            return float(self.cum_sum[hi] - self.cum_sum[lo]), 1.0
        return float(self.cum_scaled[hi] - self.cum_scaled[lo]), self.down

    def fixed(self, lo: int, hi: int, p_min: float) -> float:
        """Budget taken by the saturated (p = 1) and floored (p = p_min) elements."""
        return (self.total - self.count_below(hi)) + p_min * self.count_below(lo)

    def used(self, lam: float, p_min: float) -> float:
        """Budget used, sum(clip(v / lam, p_min, 1)) (weighted), for a finite lam > 0."""
        lo, hi = self.split(lam, p_min)
        middle, down = self.middle(lo, hi)
        return self.fixed(lo, hi, p_min) + middle / (lam * down)

    def last_at_least(self, candidates: np.ndarray, lo: int, hi: int, budget: float, p_min: float) -> int:
        """Largest i in [lo, hi) with used(candidates[i]) >= budget (candidates ascending), or lo - 1."""
        # used() is non-increasing in lam, so this is a binary search over O(log n) evaluations.
        left, right = lo, hi  # invariant: answer in [left - 1, right - 1]
        while left < right:
            mid = (left + right) // 2
            if self.used(float(candidates[mid]), p_min) >= budget:
                left = mid + 1
            else:
                right = mid
        return left - 1


def solve_sorted(values: np.ndarray, counts: np.ndarray | None, budget: float, p_min: float) -> float:
    """lam > 0 with ``sum(counts * clip(values / lam, p_min, 1)) == budget`` for ascending, non-negative
    ``values`` (counts None = all ones), in the regular case ``total * p_min < budget <= n_positive +
    n_zero * p_min``.

    ``used(lam)`` is continuous, non-increasing, and of the form ``a + b / lam`` between breakpoints (the
    saturation points ``lam = v`` and the floor points ``lam = v / p_min``). Two binary searches over
    the breakpoints (each evaluation O(log n) with prefix sums) bracket the answer; inside the bracket the
    saturated and floored sets are fixed and ``lam = b / (budget - a)`` in closed form.
    """
    cum = _Cumulative(values, counts)
    n = values.size
    first_pos = int(np.searchsorted(values, 0.0, side="right"))
    # Step 1: saturation breakpoints. used(v_first_pos) = n_pos + n_zero * p_min >= budget, so j exists.
    j = max(cum.last_at_least(values, first_pos, n, budget, p_min), first_pos)
    lower = float(values[j])
    upper = float(values[j + 1]) if j + 1 < n else math.inf
    # Step 2: floor breakpoints v_i / p_min inside (lower, upper).
    if p_min > 0.0:
        i_lo = max(int(np.searchsorted(values, p_min * lower, side="right")), first_pos)
        i_hi = n if upper == math.inf else int(np.searchsorted(values, p_min * upper, side="left"))
        if i_hi > i_lo:
            with np.errstate(over="ignore"):
                candidates = values[i_lo:i_hi] / p_min
            k = cum.last_at_least(candidates, 0, candidates.size, budget, p_min)
            if k >= 0:
                lower = max(lower, float(candidates[k]))
            if k + 1 < candidates.size:
                upper = min(upper, float(candidates[k + 1]))
    # Step 3: no breakpoint inside (lower, upper): read the fixed sets at a probe inside and solve.
    if upper < math.inf:
        probe = 0.5 * lower + 0.5 * upper
    else:
        probe = 2.0 * lower if 2.0 * lower < math.inf else math.nextafter(lower, math.inf)
    lo, hi = cum.split(probe, p_min)
    fixed = cum.fixed(lo, hi, p_min)
    middle, down = cum.middle(lo, hi)
    if middle <= 0.0 or budget - fixed <= 0.0:
        return lower  # only reachable through rounding at a breakpoint, where used(lower) == budget
    with np.errstate(over="ignore"):
        return middle / (budget - fixed) / down


def degenerate_lambda(n: int, n_pos: int, budget: float, p_min: float) -> float | None:
    """lam for the cases decided by counts alone (module docstring), or None for the regular case."""
    if n == 0 or budget >= n:
        return 0.0
    if budget <= n * p_min:
        return math.inf
    n_zero = n - n_pos
    if budget > n_pos + n_zero * p_min:
        fill = (budget - n_pos) / n_zero
        # A subnormal surplus can underflow to 0: then the smallest positive float as lam gives every
        # positive score p = 1 and the zero scores p_min = 0, which meets the budget to fp precision.
        return -fill if fill > 0.0 else 5e-324
    return None


def _degenerate_note(lam: float, n: int, n_pos: int, budget: float, p_min: float) -> str:
    if n == 0:
        return "no elements"
    if lam == 0.0:
        return f"budget {budget:g} >= n={n}: every p = 1"
    if lam == math.inf:
        note = f"budget {budget:g} <= n*p_min = {n * p_min:g}: every p = p_min = {p_min:g} (floor bound)"
        over = n * p_min - budget
        if over > 1e-12 * max(budget, 1.0):
            note += f"; the floor exceeds the budget by {over:g}"
        return note
    if n_pos == 0:
        return f"all {n} scores are zero: uniform p = {-lam:g}"
    return (
        f"budget {budget:g} > positive scores ({n_pos}) + zero scores * p_min: positive scores get p = 1, "
        f"the {n - n_pos} zero scores share the rest, p = {max(-lam, 0.0):g}"
    )


def water_fill(scores, budget: float, p_min: float = 0.0) -> WaterFillResult:
    """Optimal inclusion probabilities ``p = clip(s / lam, p_min, 1)`` with ``sum(p) == budget``.

    ``budget`` is a count (expected number kept; a float is fine). ``O(n log n)``: one sort, prefix sums,
    an ``O(log^2 n)`` search for the bracket of ``lam``, one closed-form solve and one Newton polish on
    the actual probabilities so that ``sum(p)`` meets the budget to floating-point precision.

    Cases (lambda semantics in the module docstring):

    - ``n == 0``: empty ``p``, ``lam = 0``.
    - ``budget >= n``: all ones, ``lam = 0``.
    - ``budget <= n * p_min``: all ``p_min``, ``lam = inf``, ``floor_bound=True`` (the budget is exceeded
      when ``budget < n * p_min``: the floor wins, and the note says so).
    - ``budget > n_positive + n_zero * p_min`` (includes all-zero scores): zero fill, ``lam = -q``:
      positive scores get 1, zero scores share the rest, ``q = (budget - n_positive) / n_zero``.
    - otherwise the regular solution; ties get equal probabilities; zero scores get ``p_min``.

    Raises ValueError on NaN/inf/negative scores, a negative or non-finite budget, ``p_min`` outside [0, 1].
    """
    s = check_scores(scores)
    p_min = check_unit("p_min", p_min)
    budget = check_budget(budget)
    n = s.size
    n_pos = int(np.count_nonzero(s))
    lam = degenerate_lambda(n, n_pos, budget, p_min)
    if lam is not None:
        p = probabilities_from_lambda(s, lam, p_min)
        n_sat = int(np.count_nonzero(p >= 1.0))
        return WaterFillResult(p, lam, n_sat, lam == math.inf, _degenerate_note(lam, n, n_pos, budget, p_min))

    lam = solve_sorted(np.sort(s), None, budget, p_min)
    p = probabilities_from_lambda(s, lam, p_min)
    # Newton polish: used(lam) = fixed + middle/lam is exact while the sets stay the same.
    middle = (p > p_min) & (p < 1.0)
    middle_sum = float(p[middle].sum())
    target = middle_sum + (budget - float(p.sum()))
    if middle_sum > 0.0 and target > 0.0:
        polished = lam * (middle_sum / target)
        p_polished = probabilities_from_lambda(s, polished, p_min)
        if abs(float(p_polished.sum()) - budget) <= abs(float(p.sum()) - budget):
            lam, p = polished, p_polished
    check_lambda_range(lam, float(p.sum()), budget)
    n_sat = int(np.count_nonzero(p >= 1.0))
    return WaterFillResult(p, float(lam), n_sat, False, f"regular: {n_sat} saturated at p = 1")


def check_lambda_range(lam: float, used: float, budget: float) -> None:
    """ValueError when lam left the normal float64 range and the budget is missed because of it."""
    in_range = sys.float_info.min <= lam < math.inf
    if not in_range and abs(used - budget) > 1e-9 * budget + 1e-12:  # a count: 1e-12 examples is nothing
        raise ValueError(
            f"the water-filling threshold lam={lam:g} falls outside the normal float64 range, so the budget "
            f"{budget:g} cannot be met (got {used:g}): the scores are too large or too small for this budget; "
            "multiply them by a constant (p depends only on the ratios of the scores)"
        )


# ----------------------------------------------------------------------------------------------------------
# Budgets and the defensive mixture
# ----------------------------------------------------------------------------------------------------------


def budget_count(budget: float, n: int) -> float:
    """Turn a user budget into a count: a value in [0, 1] is a rate (``rate * n``; 1 means everything),
    a value > 1 must be an integer count (``min(count, n)``). ValueError otherwise."""
    if int(n) != n or n < 0:
        raise ValueError(f"n must be a non-negative integer, got {n}")
    budget = float(budget)
    if not math.isfinite(budget) or budget < 0:
        raise ValueError(f"budget must be a rate in [0, 1] or an integer count > 1, got {budget}")
    if budget <= 1.0:
        return budget * n
    if budget != math.floor(budget):
        raise ValueError(f"a budget > 1 is a count and must be an integer, got {budget}")
    return float(min(budget, n))


def defensive_mix(p: np.ndarray, rate: float, a: float) -> np.ndarray:
    """``(1 - a) * p + a * rate`` with ``rate = budget / n``.

    Keeps ``sum(p)`` when ``sum(p) == rate * n``, and bounds every weight ``1 / p`` by ``1 / (a * rate)``.
    """
    arr = check_probabilities(p)
    rate = check_unit("rate", rate)
    a = check_unit("a", a)
    if a == 0.0:
        return arr.copy()
    return (1.0 - a) * arr + a * rate
