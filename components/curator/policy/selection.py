"""Selection algorithms for tfx-curator: signals, water-filling, deterministic Poisson sampling, baselines.

Pure numpy (no TensorFlow, TFX or Beam), so the Beam job and the tests share one implementation.
The method is GUIDE.md section 1 (Dong et al. 2021, "One Backward from Ten Forward"):

1. ``compute_scores``: an importance score ``s_i >= 0`` per example (``loss``, ``grad_norm`` or ``uniform``).
2. ``water_fill``: the inclusion probabilities minimising ``sum_i s_i^2 (1/p_i - 1)`` subject to
   ``sum_i p_i = B`` and ``p_min <= p_i <= 1``, i.e. ``p_i = clip(s_i / lam, p_min, 1)``.
3. ``poisson_sample``: keep ``i`` iff ``hash_uniform(id_i, seed) < p_i``, weight ``1 / p_i``.
4. ``window_probabilities``: the paper's mini-batch approximation (water-filling per window).
5. ``ScoreSummary``: a mergeable summary from which the global ``lam`` is solved (exact global mode);
   ``probabilities_from_lambda`` then gives each element's ``p`` from that ``lam`` alone.

6. ``stratified_thresholds``: label-aware water-filling (strategies ``stratified_loss`` and
   ``stratified_grad_norm``). Objective: minimise ``V = sum_i s_i^2 (1/p_i - 1)`` subject to
   ``sum_i p_i = B``, ``p_min <= p_i <= 1`` **and** ``p_i = 1`` for every positive whenever that is feasible
   (``n_pos < B`` and the negatives' share ``q = (B - n_pos) / n_neg >= p_min``). Without that floor the
   optimum is one global water level for both classes (per-class levels ``lam_c`` with budgets ``B_c``
   summing to ``B`` are optimal only when the marginal variance reductions ``s^2 / p^2 = lam_c^2`` are equal,
   i.e. ``lam_c = lam``: the unstratified solution), so stratifying the variance of the total loss alone buys
   nothing; what it buys is the floor: positives at ``p = 1`` (what negative down-sampling gets right), and
   loss- or gradient-proportional probabilities within the negatives (what it cannot do). The defensive
   mixture mixes within each class at that class's rate. Exact property (tests/policy/test_stratified.py):
   ``V(loss IS) <= V(stratified, any mix) <= V(negative down-sampling)`` at equal budget; it is **not** below
   the *defensive* loss IS at the same mix in general (IS is the unconstrained minimum only at mix 0). When the
   floor is infeasible (more positives than budget, one class absent) the floor is dropped: one joint level,
   i.e. the (defensive) loss IS solution, where negative down-sampling falls back to uniform.

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
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field

import numpy as np

SIGNALS = ("loss", "grad_norm", "uniform")
STRATEGIES = (
    "loss",
    "grad_norm",
    "uniform",
    "negative_downsampling",
    "top_k",
    "full",
    "stratified_loss",
    "stratified_grad_norm",
    "balanced_loss",
    "balanced_grad_norm",
)
TASKS = ("binary", "regression")
# Strategies whose probabilities come from water-filling an importance signal.
IMPORTANCE_STRATEGIES = ("loss", "grad_norm")
# Label-aware water-filling, thresholds per class: ``stratified_*`` (``stratified_thresholds``: positives first,
# then the signal within the negatives) and ``balanced_*`` (``balanced_thresholds``: class-normalised variance).
STRATIFIED_STRATEGIES = ("stratified_loss", "stratified_grad_norm", "balanced_loss", "balanced_grad_norm")


def strategy_signal(strategy: str) -> str:
    """The signal a strategy water-fills (``stratified_loss`` -> ``loss``); ``loss`` for the others (top_k,
    and the report's score column for the baselines)."""
    if strategy in IMPORTANCE_STRATEGIES:
        return strategy
    if strategy in STRATIFIED_STRATEGIES:
        return strategy.split("_", 1)[1]
    return "loss"


_MASK64 = (1 << 64) - 1


# ----------------------------------------------------------------------------------------------------------
# Validation helpers
# ----------------------------------------------------------------------------------------------------------


def _as_1d_float(name: str, x, allow_nan: bool = False) -> np.ndarray:
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


def _check_scores(scores) -> np.ndarray:
    s = _as_1d_float("scores", scores)
    neg = s < 0
    if neg.any():
        idx = int(np.flatnonzero(neg)[0])
        raise ValueError(f"scores must be >= 0; {int(neg.sum())} negative, first at index {idx}: {s[idx]}")
    return s


def _check_unit(name: str, value: float) -> float:
    value = float(value)
    if not (0.0 <= value <= 1.0):  # also rejects NaN
        raise ValueError(f"{name} must be in [0, 1], got {value}")
    return value


def _check_probabilities(p) -> np.ndarray:
    arr = _as_1d_float("p", p)
    if arr.size and (arr.min() < 0.0 or arr.max() > 1.0):
        raise ValueError(f"p must lie in [0, 1], got range [{arr.min()}, {arr.max()}]")
    return arr


def _check_budget(budget: float) -> float:
    budget = float(budget)
    if not math.isfinite(budget) or budget < 0:
        raise ValueError(f"budget must be a finite count >= 0, got {budget}")
    return budget


# ----------------------------------------------------------------------------------------------------------
# 1. Importance signals
# ----------------------------------------------------------------------------------------------------------


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
    """Importance score per example from the served prediction and the label.

    - ``loss``: binary log loss ``-(y log p + (1 - y) log(1 - p))`` with ``p`` clipped to ``[eps, 1 - eps]``
      (soft labels in [0, 1] allowed); regression squared error ``(y - yhat)^2``.
    - ``grad_norm``: ``abs(y - p) * sqrt(hidden_norm^2 + 1)``, the norm of the loss gradient w.r.t. the last
      layer (weights and bias) of a sigmoid/identity head; ``abs(y - p)`` where ``hidden_norm`` is None or
      NaN for that element.
    - ``uniform``: ones.

    Raises ValueError for unknown signal/task, mismatched shapes, and any row ``invalid_inputs`` flags.
    """
    if signal not in SIGNALS:
        raise ValueError(f"unknown signal {signal!r}; expected one of {SIGNALS}")
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
    if signal == "uniform":
        return np.ones_like(pred)
    if signal == "loss":
        if task == "regression":
            return (y - pred) ** 2
        p = np.clip(pred, eps, 1.0 - eps)
        # np.maximum guards against -0.0 and rounding just below zero for soft labels.
        return np.maximum(-(y * np.log(p) + (1.0 - y) * np.log1p(-p)), 0.0)
    residual = np.abs(y - pred)
    if hidden_norm is None:
        return residual
    h = np.asarray(hidden_norm, dtype=np.float64)
    factor = np.where(np.isnan(h), 1.0, np.sqrt(np.nan_to_num(h) ** 2 + 1.0))
    return residual * factor


# ----------------------------------------------------------------------------------------------------------
# 2. Water-filling
# ----------------------------------------------------------------------------------------------------------


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
    s = _check_scores(scores)
    p_min = _check_unit("p_min", p_min)
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


def _solve_sorted(values: np.ndarray, counts: np.ndarray | None, budget: float, p_min: float) -> float:
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


def _degenerate_lambda(n: int, n_pos: int, budget: float, p_min: float) -> float | None:
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
    s = _check_scores(scores)
    p_min = _check_unit("p_min", p_min)
    budget = _check_budget(budget)
    n = s.size
    n_pos = int(np.count_nonzero(s))
    lam = _degenerate_lambda(n, n_pos, budget, p_min)
    if lam is not None:
        p = probabilities_from_lambda(s, lam, p_min)
        n_sat = int(np.count_nonzero(p >= 1.0))
        return WaterFillResult(p, lam, n_sat, lam == math.inf, _degenerate_note(lam, n, n_pos, budget, p_min))

    lam = _solve_sorted(np.sort(s), None, budget, p_min)
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
    _check_lambda_range(lam, float(p.sum()), budget)
    n_sat = int(np.count_nonzero(p >= 1.0))
    return WaterFillResult(p, float(lam), n_sat, False, f"regular: {n_sat} saturated at p = 1")


def _check_lambda_range(lam: float, used: float, budget: float) -> None:
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
    arr = _check_probabilities(p)
    rate = _check_unit("rate", rate)
    a = _check_unit("a", a)
    if a == 0.0:
        return arr.copy()
    return (1.0 - a) * arr + a * rate


# ----------------------------------------------------------------------------------------------------------
# Label-aware water-filling
# ----------------------------------------------------------------------------------------------------------

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


# ----------------------------------------------------------------------------------------------------------
# 3. Deterministic hashing and Poisson sampling
# ----------------------------------------------------------------------------------------------------------

FNV64_OFFSET = 0xCBF29CE484222325
FNV64_PRIME = 0x100000001B3
_GOLDEN_GAMMA = 0x9E3779B97F4A7C15
_MIX1 = 0xBF58476D1CE4E5B9
_MIX2 = 0x94D049BB133111EB


def splitmix64(x: int) -> int:
    """SplitMix64 (Steele, Lea, Flood 2014) output for state ``x``: ``mix64(x + golden gamma)``."""
    return _mix64_int((x + _GOLDEN_GAMMA) & _MASK64)


def _mix64_int(z: int) -> int:
    z = ((z ^ (z >> 30)) * _MIX1) & _MASK64
    z = ((z ^ (z >> 27)) * _MIX2) & _MASK64
    return z ^ (z >> 31)


def _fnv1a_int(state: int, data: bytes) -> int:
    for byte in data:
        state = ((state ^ byte) * FNV64_PRIME) & _MASK64
    return state


def _mix64_array(z: np.ndarray) -> np.ndarray:
    z = z ^ (z >> np.uint64(30))
    z *= np.uint64(_MIX1)
    z ^= z >> np.uint64(27)
    z *= np.uint64(_MIX2)
    z ^= z >> np.uint64(31)
    return z


def _id_matrix(ids: Sequence[bytes]) -> tuple[np.ndarray, np.ndarray]:
    """(lengths int64[n], bytes uint8[n, width] zero-padded) from a sequence of bytes ids.

    The padded matrix comes from numpy's 'S' conversion (fast, C level); it pads with NULs and cannot tell
    b"a" from b"a\\x00", so the true lengths come from ``len`` of each id and only bytes before the
    length are hashed.
    """
    if isinstance(ids, np.ndarray) and ids.dtype.kind in "SU":
        raise TypeError(
            "ids must be a list or object array of bytes: numpy 'S'/'U' arrays drop trailing NULs"
        )
    if isinstance(ids, (bytes, str)):
        raise TypeError("ids must be a sequence of bytes, not a single bytes/str object")
    if not isinstance(ids, (list, tuple, np.ndarray)):
        ids = list(ids)
    n = len(ids)
    if n == 0:
        return np.zeros(0, dtype=np.int64), np.zeros((0, 0), dtype=np.uint8)
    types = set(map(type, ids))
    if not types <= {bytes}:
        raise TypeError(f"every id must be bytes, got {sorted(t.__name__ for t in types - {bytes})}")
    lengths = np.fromiter(map(len, ids), dtype=np.int64, count=n)
    width = int(lengths.max())
    if width == 0:
        return lengths, np.zeros((n, 0), dtype=np.uint8)
    padded = np.array(ids, dtype=f"S{width}")
    return lengths, padded.view(np.uint8).reshape(n, width)


def hash64(ids: Sequence[bytes], seed: int) -> np.ndarray:
    """The 64-bit hash behind ``hash_uniform`` (uint64 per id). Definition, fixed forever::

        state = FNV64_OFFSET ^ splitmix64(seed mod 2^64)
        for byte in len(id).to_bytes(8, "little") + id:      # FNV-1a-64 over length prefix and bytes
            state = ((state ^ byte) * FNV64_PRIME) mod 2^64
        hash = mix64(state)                                   # SplitMix64 finaliser, for avalanche

    with ``FNV64_OFFSET = 0xcbf29ce484222325``, ``FNV64_PRIME = 0x100000001b3``,
    ``mix64(z)``: ``z = (z ^ z >> 30) * 0xbf58476d1ce4e5b9; z = (z ^ z >> 27) * 0x94d049bb133111eb;
    z ^ z >> 31`` and ``splitmix64(x) = mix64(x + 0x9e3779b97f4a7c15)`` (all mod 2^64). Integer-only, so
    identical on every platform; vectorised over ids one byte column at a time.
    """
    seed = int(seed)
    lengths, matrix = _id_matrix(ids)
    start = FNV64_OFFSET ^ splitmix64(seed & _MASK64)
    prime = np.uint64(FNV64_PRIME)
    if matrix.shape[1] <= 65536:  # the state after the length prefix depends on the length only: a table
        prefixes = [_fnv1a_int(start, n.to_bytes(8, "little")) for n in range(matrix.shape[1] + 1)]
        state = np.array(prefixes, dtype=np.uint64)[lengths]
    else:
        state = np.full(lengths.size, start, dtype=np.uint64)
        length_bits = lengths.astype(np.uint64)
        for shift in range(0, 64, 8):
            state ^= (length_bits >> np.uint64(shift)) & np.uint64(0xFF)
            state *= prime
    same_length = lengths.size == 0 or bool((lengths == lengths[0]).all())
    for j in range(matrix.shape[1]):
        if same_length:
            state ^= matrix[:, j]
            state *= prime
        else:  # ids shorter than j + 1 bytes keep their state
            state = np.where(lengths > j, (state ^ matrix[:, j]) * prime, state)
    return _mix64_array(state)


def hash_uniform(ids: Sequence[bytes], seed: int) -> np.ndarray:
    """Deterministic uniform numbers in [0, 1): ``(hash64(id, seed) >> 11) * 2^-53`` per id (float64).

    Same id and seed give the same number on any platform, in any order and in any partition of the ids.
    ``ids`` is a list/tuple/object array of bytes (any bytes, including trailing NULs; numpy 'S' arrays are
    refused because they drop trailing NULs).
    """
    return (hash64(ids, seed) >> np.uint64(11)).astype(np.float64) * (2.0**-53)


def poisson_sample(ids, p, seed: int, max_weight: float | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Poisson sampling: keep ``i`` iff ``hash_uniform(id_i, seed) < p_i``; weight ``1 / p_i`` if kept, else 0.

    ``max_weight`` (>= 1) caps the weights: it lowers the variance contributed by rare, low-probability
    examples at the price of a downward bias of the weighted sums (a bias/variance trade); None = no cap,
    the Horvitz-Thompson weights, unbiased. Returns ``(keep bool[n], weight float64[n])``.
    """
    prob = _check_probabilities(p)
    if max_weight is not None:
        max_weight = float(max_weight)
        if not max_weight >= 1.0 or math.isnan(max_weight):
            raise ValueError(f"max_weight must be >= 1 (or None), got {max_weight}")
    u = hash_uniform(ids, seed)
    if u.size != prob.size:
        raise ValueError(f"ids and p must have the same length, got {u.size} and {prob.size}")
    keep = u < prob
    weight = np.zeros(prob.size)
    weight[keep] = 1.0 / prob[keep]
    if max_weight is not None:
        np.minimum(weight, max_weight, out=weight)
    return keep, weight


# ----------------------------------------------------------------------------------------------------------
# 4. The paper's mini-batch approximation
# ----------------------------------------------------------------------------------------------------------


def window_probabilities(scores, rate: float, window_size: int, p_min: float = 0.0) -> np.ndarray:
    """Water-filling within each window of ``window_size`` consecutive elements, budget ``rate * len``.

    The last window may be shorter; it gets ``rate * len(window)``, so every window (and the total) meets
    the budget of its own size.
    """
    s = _check_scores(scores)
    rate = _check_unit("rate", rate)
    p_min = _check_unit("p_min", p_min)
    if int(window_size) != window_size or window_size < 1:
        raise ValueError(f"window_size must be an integer >= 1, got {window_size}")
    window_size = int(window_size)
    p = np.empty_like(s)
    for start in range(0, s.size, window_size):
        chunk = s[start : start + window_size]
        p[start : start + chunk.size] = water_fill(chunk, rate * chunk.size, p_min).p
    return p


# ----------------------------------------------------------------------------------------------------------
# 5. Exact global mode: a mergeable score summary
# ----------------------------------------------------------------------------------------------------------


class ScoreSummary:
    """Mergeable summary of scores for solving the global ``lam`` (a Beam CombineFn wraps it).

    Positive scores go to log-spaced bins ``k = floor(log2(s) * bins_per_octave)`` with an exact count and
    sum per bin, stored sparsely (only non-empty bins: memory is bounded by the number of possible bins,
    independent of n); zero scores are counted exactly.

    Error bound: every score lies within a factor ``1 + d`` of its bin's mean, ``d = 2^(1/bins_per_octave)
    - 1`` (6.77e-4 for the default 1024). ``solve_lambda`` solves water-filling exactly on the bin means
    (weighted by counts). ``clip(x / lam, p_min, 1)`` maps values within a factor ``1 + d`` of each other to
    values within the same factor, so for every lam the summary's budget and the true one
    ``sum(clip(s / lam, p_min, 1))`` differ by a factor within ``[1 / (1 + d), 1 + d]``: the ``lam`` solved
    on the summary meets the budget on the real data to within ``d`` (< 0.07%) relative, on any data.
    The degenerate cases (floor bound, budget >= n, zero fill) depend only on exact counts and are exact.

    The per-bin sums are exact integers (each score's mantissa in the bin's unit), so merging in any order
    or partitioning gives the same summary and the same ``lam``, bit for bit.

    Memory: 32 bytes per non-empty bin, about ``bins_per_octave`` bins per octave spanned by the positive
    scores (scores in [1e-3, 1e3]: at most 20,400 bins, 490 KB); the hard ceiling is the float64 range,
    ~2.15 million bins, whatever n is. Merging costs O(bins log bins).
    """

    def __init__(self, bins_per_octave: int = 1024):
        if int(bins_per_octave) != bins_per_octave or bins_per_octave < 1:
            raise ValueError(f"bins_per_octave must be an integer >= 1, got {bins_per_octave}")
        self.bins_per_octave = int(bins_per_octave)
        self.keys = np.zeros(0, dtype=np.int64)
        self.counts = np.zeros(0, dtype=np.int64)
        # Exact per-bin sums as integers: sum = (hi * 2^32 + lo) * 2^unit(key), lo < 2^32 after each merge.
        # Integer addition is associative, so the summary (and lambda) never depends on merge order.
        self.sum_hi = np.zeros(0, dtype=np.int64)
        self.sum_lo = np.zeros(0, dtype=np.int64)
        self.n_zero = 0

    @property
    def relative_bin_width(self) -> float:
        """``d``: the largest ratio - 1 between two scores in one bin; also the budget error bound."""
        return 2.0 ** (1.0 / self.bins_per_octave) - 1.0

    @property
    def n(self) -> int:
        """Number of scores added (zero scores included)."""
        return int(self.counts.sum()) + self.n_zero

    @property
    def n_bins(self) -> int:
        return int(self.keys.size)

    def __repr__(self) -> str:
        return f"ScoreSummary(n={self.n}, n_zero={self.n_zero}, bins={self.n_bins})"

    def _unit_exponents(self, keys: np.ndarray) -> np.ndarray:
        """Exponent of the integer unit of each bin's sum: floor(key / bins_per_octave) - 54."""
        return np.floor_divide(keys, self.bins_per_octave) - 54

    @property
    def sums(self) -> np.ndarray:
        """Per-bin sums as float64: a deterministic function of the exact integer sums."""
        total = self.sum_hi.astype(np.float64) * 4294967296.0 + self.sum_lo.astype(np.float64)
        return np.ldexp(total, self._unit_exponents(self.keys).astype(np.int32))

    def _combine(self, keys: np.ndarray, counts: np.ndarray, hi: np.ndarray, lo: np.ndarray) -> None:
        """Merge sparse (keys, counts, hi, lo) into self (keys need not be unique or sorted); exact."""
        keys = np.concatenate([self.keys, keys])
        if not keys.size:
            return
        counts = np.concatenate([self.counts, counts])
        hi = np.concatenate([self.sum_hi, hi])
        lo = np.concatenate([self.sum_lo, lo])
        order = np.argsort(keys, kind="stable")
        keys = keys[order]
        starts = np.flatnonzero(np.concatenate([[True], keys[1:] != keys[:-1]]))
        self.keys = keys[starts]
        self.counts = np.add.reduceat(counts[order], starts)
        lo_sum = np.add.reduceat(lo[order], starts)
        self.sum_hi = np.add.reduceat(hi[order], starts) + (lo_sum >> 32)
        self.sum_lo = lo_sum & 0xFFFFFFFF

    def add(self, scores: np.ndarray) -> ScoreSummary:
        """Add a batch of scores (vectorised). Returns self. ValueError on NaN/inf/negative scores."""
        s = _check_scores(np.ravel(np.asarray(scores, dtype=np.float64)))
        positive = s[s > 0.0]
        self.n_zero += int(s.size - positive.size)
        if positive.size == 0:
            return self
        keys = np.floor(np.log2(positive) * self.bins_per_octave).astype(np.int64)
        # Each score as an exact integer in its bin's unit: its 53-bit mantissa shifted by 0..3.
        mantissa, exponent = np.frexp(positive)
        shift = exponent - np.floor_divide(keys, self.bins_per_octave) + 1
        if shift.min() < 0 or shift.max() > 3:  # log2 rounding moves a score at most one binade
            raise AssertionError("a score fell outside its bin's binades")
        value = (mantissa * 2.0**53).astype(np.int64) << shift
        self._combine(keys, np.ones(keys.size, dtype=np.int64), value >> 32, value & 0xFFFFFFFF)
        return self

    @staticmethod
    def merge(summaries: Iterable[ScoreSummary]) -> ScoreSummary:
        """A new summary of the union of the summaries' scores (they must share bins_per_octave)."""
        summaries = list(summaries)
        bins = {s.bins_per_octave for s in summaries} or {1024}
        if len(bins) != 1:
            raise ValueError(f"cannot merge summaries with different bins_per_octave: {sorted(bins)}")
        merged = ScoreSummary(bins.pop())
        if summaries:
            merged.n_zero = sum(s.n_zero for s in summaries)
            merged._combine(
                np.concatenate([s.keys for s in summaries]),
                np.concatenate([s.counts for s in summaries]),
                np.concatenate([s.sum_hi for s in summaries]),
                np.concatenate([s.sum_lo for s in summaries]),
            )
        return merged

    def solve_lambda(self, budget: float, p_min: float = 0.0) -> float:
        """The global ``lam`` for a budget (count), with the semantics of ``probabilities_from_lambda``.

        ``sum(probabilities_from_lambda(all_scores, lam, p_min))`` is within ``relative_bin_width`` of the
        budget (relative) in the regular case, and equals water_fill's in the degenerate ones.
        """
        p_min = _check_unit("p_min", p_min)
        budget = _check_budget(budget)
        n = self.n
        lam = _degenerate_lambda(n, n - self.n_zero, budget, p_min)
        if lam is not None:
            return lam
        sums = self.sums
        order = np.argsort(sums / self.counts, kind="stable")  # increasing with the keys, up to rounding
        means = (sums / self.counts)[order]
        # Bin keys are increasing, so are the means; zero scores enter as value 0 with their count.
        values = np.concatenate([[0.0], means]) if self.n_zero else means
        counts = np.concatenate([[self.n_zero], self.counts[order]]) if self.n_zero else self.counts[order]
        lam = _solve_sorted(values, counts, budget, p_min)
        used = float(np.dot(counts, probabilities_from_lambda(values, lam, p_min)))
        _check_lambda_range(lam, used, budget)
        return lam


def solve_scaled_lambda(
    summaries: Sequence[ScoreSummary], scales: Sequence[float], budget: float, p_min: float = 0.0
) -> float:
    """``lam`` with ``sum_c sum_{i in c} clip(scale_c * s_i / lam, p_min, 1) == budget`` from one summary per
    class (the class-balanced variant's global mode: ``scale_c = 1 / N_c``); semantics of ``solve_lambda``."""
    p_min = _check_unit("p_min", p_min)
    budget = _check_budget(budget)
    n = sum(s.n for s in summaries)
    n_zero = sum(s.n_zero for s in summaries)
    lam = _degenerate_lambda(n, n - n_zero, budget, p_min)
    if lam is not None:
        return lam
    values = [np.zeros(1)] if n_zero else []
    counts = [np.array([n_zero], dtype=np.int64)] if n_zero else []
    for summary, scale in zip(summaries, scales):
        if summary.n_bins:
            values.append(summary.sums / summary.counts * scale)
            counts.append(summary.counts)
    values, counts = np.concatenate(values), np.concatenate(counts)
    order = np.argsort(values, kind="stable")
    lam = _solve_sorted(values[order], counts[order], budget, p_min)
    used = float(np.dot(counts, probabilities_from_lambda(values, lam, p_min)))
    _check_lambda_range(lam, used, budget)
    return lam


# ----------------------------------------------------------------------------------------------------------
# Strategies (importance sampling and baselines) behind one interface
# ----------------------------------------------------------------------------------------------------------


def _top_k_order(scores: np.ndarray, ids) -> np.ndarray:
    """Indices by decreasing score; ties broken by hash64(id, 0) then id position (no ids: by position)."""
    index = np.arange(scores.size)
    if ids is None:
        return np.lexsort((index, -scores))
    tie = hash64(ids, 0)
    if tie.size != scores.size:
        raise ValueError(f"ids and scores must have the same length, got {tie.size} and {scores.size}")
    return np.lexsort((index, tie, -scores))


def strategy_probabilities(
    strategy: str,
    scores,
    labels=None,
    budget_count: float = 0.0,
    p_min: float = 0.0,
    mix: float = 0.0,
    ids: Sequence[bytes] | None = None,
) -> tuple[np.ndarray, dict]:
    """Inclusion probabilities for any strategy at the same budget (count in [0, n]).

    - ``loss`` / ``grad_norm``: ``water_fill(scores, budget, p_min)``, then ``defensive_mix(p, budget/n,
      mix)``. Weighted (``1 / p``).
    - ``uniform``: ``p = budget / n`` (``p_min`` if that is larger: floor bound). Weighted.
    - ``negative_downsampling``: labels in {0, 1}; positives ``p = 1``, negatives ``p = (budget - n_pos) /
      n_neg`` when that is > 0 and >= p_min. When it is not possible (``n_pos >= budget``, or the negatives'
      rate would fall below ``p_min``) or one class is absent, it falls back to uniform so that no class gets
      ``p = 0`` (a weighted estimate would be biased): ``info["possible"]`` is False and a note says why.
    - ``top_k``: the ``round(budget)`` highest scores get ``p = 1``, the others 0; ties by ``hash64(id, 0)``
      when ``ids`` are given (so the choice does not depend on the order), else by position. Unweighted
      (weight 1), biased by design.
    - ``full``: all ones.

    ``info``: strategy, n, budget, expected_kept (sum p), lam (None when not applicable), n_saturated,
    floor_bound, weighted, notes (list of str); ``possible`` for negative_downsampling.
    ``mix`` applies to loss/grad_norm only (the baselines are returned as defined).
    """
    if strategy not in STRATEGIES:
        raise ValueError(f"unknown strategy {strategy!r}; expected one of {STRATEGIES}")
    s = _check_scores(scores)
    n = s.size
    p_min = _check_unit("p_min", p_min)
    mix = _check_unit("mix", mix)
    budget = _check_budget(budget_count)
    if budget > n:
        raise ValueError(f"budget_count {budget:g} exceeds n={n}; use budget_count(budget, n)")
    rate = budget / n if n else 0.0
    info: dict = {
        "strategy": strategy,
        "n": n,
        "budget": budget,
        "lam": None,
        "n_saturated": 0,
        "floor_bound": False,
        "weighted": True,
        "notes": [],
    }
    if mix > 0.0 and strategy not in IMPORTANCE_STRATEGIES + STRATIFIED_STRATEGIES:
        info["notes"].append(f"mix={mix:g} ignored: it applies to importance strategies only")

    if strategy in IMPORTANCE_STRATEGIES:
        result = water_fill(s, budget, p_min)
        p = defensive_mix(result.p, rate, mix) if mix > 0.0 else result.p
        info.update(
            lam=result.lam, n_saturated=int(np.count_nonzero(p >= 1.0)), floor_bound=result.floor_bound
        )
        info["notes"].append(result.note)
        if mix > 0.0 and mix * rate > 0.0:
            info["notes"].append(f"defensive mixture a={mix:g}: weights <= {1.0 / (mix * rate):g}")
    elif strategy in STRATIFIED_STRATEGIES:
        p = _stratified(s, labels, budget, p_min, mix, info)
    elif strategy == "uniform":
        p = _uniform(n, rate, p_min, info)
    elif strategy == "negative_downsampling":
        p = _negative_downsampling(s, labels, budget, rate, p_min, info)
    elif strategy == "top_k":
        k = min(int(math.floor(budget + 0.5)), n)
        p = np.zeros(n)
        p[_top_k_order(s, ids)[:k]] = 1.0
        info.update(n_saturated=k, weighted=False)
        info["notes"].append(f"top {k} by score, deterministic; unweighted (weight 1), biased by design")
    else:  # full
        p = np.ones(n)
        info.update(n_saturated=n)
        info["notes"].append("all data")
    info["expected_kept"] = float(p.sum())
    return p, info


def _uniform(n: int, rate: float, p_min: float, info: dict) -> np.ndarray:
    if rate < p_min:
        info["floor_bound"] = True
        info["notes"].append(f"rate {rate:g} < p_min {p_min:g}: every p = p_min")
        rate = p_min
    else:
        info["notes"].append(f"uniform p = {rate:g}")
    info["n_saturated"] = n if rate >= 1.0 else 0
    return np.full(n, rate)


def _binary_labels(labels, n: int, strategy: str) -> np.ndarray:
    """The positive mask of binary labels in {0, 1}; ValueError otherwise."""
    if labels is None:
        raise ValueError(f"{strategy} needs labels")
    y = _as_1d_float("labels", labels)
    if y.size != n:
        raise ValueError(f"labels and scores must have the same length, got {y.size} and {n}")
    if not np.isin(y, (0.0, 1.0)).all():
        raise ValueError(f"{strategy} needs binary labels in {{0, 1}}")
    return y == 1.0


def _stratified(s, labels, budget: float, p_min: float, mix: float, info: dict) -> np.ndarray:
    positive = _binary_labels(labels, s.size, info["strategy"])
    neg = s[~positive]
    if info["strategy"].startswith("balanced_"):
        scaled = np.sort(class_scaled(s, positive))
        thresholds = balanced_thresholds(
            neg.size,
            s.size - neg.size,
            budget / s.size if s.size else 0.0,
            lambda: water_fill(scaled, budget, p_min).lam,
        )
    else:
        thresholds = stratified_thresholds(
            neg.size,
            s.size - neg.size,
            budget,
            p_min,
            lambda b: water_fill(np.sort(neg), b, p_min).lam,
            lambda b: water_fill(np.sort(s), b, p_min).lam,
        )
    p = class_probabilities(s, positive, thresholds, p_min, mix)
    floor = thresholds[1] == (0.0, 1.0)
    info.update(
        n_positive=int(positive.sum()),
        positives_kept=bool(floor),
        class_thresholds=thresholds,
        n_saturated=int(np.count_nonzero(p >= 1.0)),
        floor_bound=thresholds[0][0] == math.inf,
    )
    info["notes"].append(
        f"positives p = 1, negatives water-filled at rate {thresholds[0][1]:g}"
        if floor
        else "positives cannot all be kept: one water level for both classes"
    )
    return p


def _negative_downsampling(s, labels, budget: float, rate: float, p_min: float, info: dict) -> np.ndarray:
    positive = _binary_labels(labels, s.size, "negative_downsampling")
    n_pos = int(positive.sum())
    n_neg = s.size - n_pos
    info["n_positive"] = n_pos
    if n_pos == 0 or n_neg == 0:
        info["possible"] = False
        info["notes"].append(f"only one class present ({n_pos} positives, {n_neg} negatives): uniform")
        return _uniform(s.size, rate, p_min, info)
    q = (budget - n_pos) / n_neg
    if q <= 0.0 or q < p_min:
        info["possible"] = False
        info["notes"].append(
            f"not possible: {n_pos} positives at p = 1 leave negatives the rate {max(q, 0.0):g} "
            f"(needs > 0 and >= p_min={p_min:g}) for budget {budget:g}: fell back to uniform"
        )
        return _uniform(s.size, rate, p_min, info)
    info["possible"] = True
    info["negative_rate"] = q
    info["n_saturated"] = n_pos + (n_neg if q >= 1.0 else 0)
    info["notes"].append(f"positives p = 1, negatives p = {q:g}")
    return np.where(positive, 1.0, q)


# ----------------------------------------------------------------------------------------------------------
# Diagnostics for the report
# ----------------------------------------------------------------------------------------------------------


def expected_squared_error(scores, p) -> float:
    """``sum s^2 (1/p - 1)``: the variance of the Horvitz-Thompson estimate of ``sum s`` under Poisson
    sampling with probabilities ``p``; inf if some ``p == 0`` has ``s > 0`` (those terms are never seen)."""
    s = _check_scores(scores)
    prob = _check_probabilities(p)
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
    s = _check_scores(scores)
    prob = _check_probabilities(p)
    w = _as_1d_float("weights_kept", weights_kept)
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
