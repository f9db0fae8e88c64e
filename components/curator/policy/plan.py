"""The selection rules: from curation options and a split's aggregates to each example's inclusion probability.

The one owner of every rule (numpy only). The Beam job cannot see a whole split at once, so it computes small
aggregates with the functions below (counts, a score summary, a top-k threshold), turns them into a `SplitPlan`
(a side input) with `make_plan`, and samples batch by batch with `sample`; in window mode it solves and samples
each window where it is grouped (see Windows below).
`reference_selection` calls the same functions on in-memory arrays: it is the pure twin the equivalence tests
hold the Beam job to, and the function the statistical tests run.

Windows (the paper's mini-batch approximation): a window is a random mini-batch of about `window_size`
examples, chosen by a hash of (seed, id) into `n_windows = max(1, round(n_read / window_size))` buckets, where
`n_read` is the number of serialized examples read from the files of ALL curated splits (before ids are parsed,
rejects are taken out and records are joined: a `WindowBasis`). The buckets are common to all splits; the
examples of one split in one bucket form a window, water-filled on its own, at the split's rate
`split_rate(options, n_read of the split)`. This is the paper's "consecutive instances of a shuffled stream",
made independent of order and partitioning, so a retried bundle or a re-run on another runner selects the same
examples. Because the window of an id is known before the join, the Beam job keys examples and forward records
by window and joins, scores, water-fills and samples each window in one group (one shuffle). For one split of
clean data (every example parsed, unique and with a record) n_read is the scored count, as it was before.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Mapping, Sequence

import numpy as np

from tfx_curator.components.curator.options import CurationOptions
from tfx_curator.components.curator.policy import classes, sampling, signals, strategies, waterfill
from tfx_curator.components.curator.policy.summary import ScoreSummary, solve_scaled_lambda

WINDOW_SALT = 0x5BD1E9955BD1E995  # decorrelates window membership from the sampling hash

Thresholds = dict  # {window: lam} (importance) or {class_key(window, positive): (lam, rate)} (per class)


@dataclasses.dataclass(frozen=True)
class SplitCounts:
    """Aggregates of one split's accepted examples (rejects excluded)."""

    n: int = 0  # examples
    n_scored: int = 0  # examples with a forward record
    n_positive: int = 0  # label == 1 (binary)

    def __add__(self, other: SplitCounts) -> SplitCounts:
        return SplitCounts(
            self.n + other.n, self.n_scored + other.n_scored, self.n_positive + other.n_positive
        )


@dataclasses.dataclass(frozen=True)
class WindowBasis:
    """What window mode's windows and rate are based on: serialized examples read, known before the join."""

    n_split: int  # read from the split's files: its rate is split_rate(options, n_split)
    n_total: int  # read from the files of all curated splits: n_windows(n_total, window_size), common to all

    @classmethod
    def of(cls, read: Mapping[int, int], split: int) -> WindowBasis:
        """The basis of `split` from {split: examples read} of every curated split."""
        return cls(read.get(split, 0), sum(read.values()))


@dataclasses.dataclass(frozen=True)
class SplitPlan:
    """Everything needed to compute p for any example of one split (small: a side input)."""

    strategy: str
    rate: float  # budget / n
    budget: float  # expected count asked for
    p_min: float
    mix: float
    missing_p: float  # p for examples without a forward record (policy), when the strategy needs scores
    n_windows: int = 1
    lams: Mapping[int, float] = dataclasses.field(default_factory=dict)  # window (or 0 = global) -> lambda
    # per-class strategies: class_key(window, positive) -> (lam, rate) of that class (classes.ClassThreshold)
    class_thresholds: Mapping[int, tuple[float, float]] = dataclasses.field(default_factory=dict)
    positive_p: float = 1.0  # negative_downsampling
    negative_p: float = 1.0
    top_k: tuple[float, int] | None = None  # (score, tiebreak hash) of the k-th kept example; None: keep none
    notes: tuple[str, ...] = ()


# ---------------------------------------------------------------------------------------------------------
# Rules on options and counts
# ---------------------------------------------------------------------------------------------------------


def strategy_of(options: CurationOptions) -> strategies.Strategy:
    """The registry entry of the options' strategy (its kind decides every rule below)."""
    return strategies.get(options.strategy)


def split_rate(options: CurationOptions, n: int) -> float:
    """The split's sampling rate: its budget count over its size `n` (0 for an empty split). `n` is the split's
    serialized examples read in window mode (`WindowBasis.n_split`), its accepted examples otherwise."""
    return waterfill.budget_count(options.budget, n) / n if n else 0.0


def example_scores(
    options: CurationOptions,
    predictions: np.ndarray,
    labels: np.ndarray,
    hidden_norms: np.ndarray,
    combined: np.ndarray | None = None,
) -> np.ndarray:
    """The strategy's signal per example; NaN where the prediction is NaN (no forward record).

    `combined`: a score already combined from several records of the example (duplicate_policy `mean_std`,
    policy/passes.py); where it is not NaN it is the example's score."""
    scores = np.full(predictions.size, math.nan)
    has = ~np.isnan(predictions)
    if has.any():
        scores[has] = signals.compute_scores(
            strategy_of(options).signal,
            predictions[has],
            labels[has],
            options.task,
            hidden_norm=hidden_norms[has],
        )
    if combined is not None:
        given = has & ~np.isnan(combined)
        scores[given] = combined[given]
    return scores


def missing_record_probability(options: CurationOptions, rate: float) -> float:
    """p of an example without a forward record, by the missing-record policy."""
    return {"uniform": rate, "drop": 0.0, "keep": 1.0}[options.missing_record_policy]


def is_balanced(options: CurationOptions) -> bool:
    """The class-balanced variant (classes.balanced_thresholds) rather than positives first."""
    return strategy_of(options).kind == strategies.BALANCED


def per_class(options: CurationOptions) -> bool:
    """Thresholds per (window, class): the stratified and balanced strategies."""
    return strategy_of(options).kind in (strategies.STRATIFIED, strategies.BALANCED)


def negative_downsampling_rates(
    n_pos: int, n_neg: int, budget: float, p_min: float
) -> tuple[float, float, str]:
    """(p for positives, p for negatives, note): positives p = 1, negatives share the rest of the budget.

    When that is not possible (one class absent, more positives than budget, or the negatives' rate below
    p_min), uniform at the budget rate (p_min if larger), so that no class gets p = 0 (a weighted estimate
    would be biased); the note says why.
    """
    n = n_pos + n_neg
    if n == 0:
        return 1.0, 1.0, "empty split"
    if n_pos == 0 or n_neg == 0 or budget - n_pos <= 0 or (budget - n_pos) / n_neg < p_min:
        rate = max(budget / n, p_min)
        reason = (
            "one class absent"
            if n_pos == 0 or n_neg == 0
            else f"{n_pos} positives exceed the budget {budget:g}"
        )
        return rate, rate, f"negative down-sampling not possible ({reason}): uniform p = {rate:g}"
    q = (budget - n_pos) / n_neg
    return 1.0, min(q, 1.0), f"positives p = 1, negatives p = {min(q, 1.0):g}"


# ---------------------------------------------------------------------------------------------------------
# Windows
# ---------------------------------------------------------------------------------------------------------


def n_windows(n_read: int, window_size: int) -> int:
    """How many windows ids are hashed into: about `window_size` each, `n_read` = the serialized examples read
    from all curated splits' files (`WindowBasis.n_total`)."""
    return max(1, int(round(n_read / window_size)))


def window_index(ids: Sequence[bytes], seed: int, windows: int) -> np.ndarray:
    """The window of each id: hash64(id, seed ^ WINDOW_SALT) mod windows."""
    return (sampling.hash64(ids, seed ^ WINDOW_SALT) % np.uint64(windows)).astype(np.int64)


def windows_of(ids: Sequence[bytes], options: CurationOptions, n_read: int) -> np.ndarray:
    """The window of each id when `n_read` examples were read from all curated splits (all 0 for one window)."""
    windows = n_windows(n_read, options.window_size)
    return window_index(ids, options.seed, windows) if windows > 1 else np.zeros(len(ids), dtype=np.int64)


def class_key(window, positive):
    """Key of a (window, class) threshold of a per-class plan: 2 * window + (1 for positives)."""
    return 2 * np.asarray(window, dtype=np.int64) + np.asarray(positive, dtype=np.int64)


def thresholds_by_key(window: int, thresholds) -> dict[int, tuple[float, float]]:
    """{class_key: (lam, rate)} of one window's (negatives, positives) thresholds."""
    return {int(class_key(window, c)): tuple(thresholds[c]) for c in (0, 1)}


def window_lambda(scores: np.ndarray, rate: float, p_min: float) -> float:
    """Threshold of one window: water-filling with the window's share of the budget.

    The scores are sorted first: a runner hands them over in any order, and float sums in another order could
    change lambda in its last bits, so a re-run would not be byte-identical.
    """
    return waterfill.water_fill(np.sort(scores), rate * scores.size, p_min).lam


def window_class_thresholds(
    scores: np.ndarray, positive: np.ndarray, rate: float, p_min: float, balanced: bool = False
) -> tuple[classes.ClassThreshold, classes.ClassThreshold]:
    """(negatives, positives) thresholds of one window of a stratified (or `balanced`) strategy, budget rate *
    window size.

    Each class's scores are sorted before solving, as in `window_lambda`, so the result does not depend on the
    order a runner hands them over in.
    """
    positive = np.asarray(positive, dtype=bool)
    n_neg = int(np.count_nonzero(~positive))
    if balanced:
        scaled = np.sort(classes.class_scaled(scores, positive))
        return classes.balanced_thresholds(
            n_neg,
            scores.size - n_neg,
            rate,
            lambda: waterfill.water_fill(scaled, rate * scaled.size, p_min).lam,
        )
    neg, every = np.sort(scores[~positive]), np.sort(scores)
    return classes.stratified_thresholds(
        neg.size,
        every.size - neg.size,
        rate * every.size,
        p_min,
        lambda b: waterfill.water_fill(neg, b, p_min).lam,
        lambda b: waterfill.water_fill(every, b, p_min).lam,
    )


def solve_window(
    options: CurationOptions, rate: float, window: int, scores: np.ndarray, positive: np.ndarray | None
) -> Thresholds:
    """Thresholds of one window's scored examples (`positive`: their classes, per-class strategies only)."""
    if per_class(options):
        thresholds = window_class_thresholds(scores, positive, rate, options.p_min, is_balanced(options))
        return thresholds_by_key(window, thresholds)
    return {window: window_lambda(scores, rate, options.p_min)}


# ---------------------------------------------------------------------------------------------------------
# Global mode and top-k
# ---------------------------------------------------------------------------------------------------------


def summary_groups(options: CurationOptions, positive: np.ndarray) -> np.ndarray:
    """The score summary each scored example goes to in global mode: its class (per-class strategies) or 0."""
    positive = np.asarray(positive, dtype=bool)
    return positive.astype(np.int64) if per_class(options) else np.zeros(positive.size, dtype=np.int64)


def global_class_thresholds(
    negatives: ScoreSummary, positives: ScoreSummary, rate: float, p_min: float, balanced: bool = False
) -> tuple[classes.ClassThreshold, classes.ClassThreshold]:
    """(negatives, positives) thresholds of a whole split from one score summary per class (exact, mergeable)."""
    if balanced:
        n_neg, n_pos = negatives.n, positives.n
        return classes.balanced_thresholds(
            n_neg,
            n_pos,
            rate,
            lambda: solve_scaled_lambda(
                [negatives, positives],
                [1.0 / max(n_neg, 1), 1.0 / max(n_pos, 1)],
                rate * (n_neg + n_pos),
                p_min,
            ),
        )
    return classes.stratified_thresholds(
        negatives.n,
        positives.n,
        rate * (negatives.n + positives.n),
        p_min,
        lambda b: negatives.solve_lambda(b, p_min),
        lambda b: ScoreSummary.merge([negatives, positives]).solve_lambda(b, p_min),
    )


def solve_global(options: CurationOptions, rate: float, summaries: Mapping[int, ScoreSummary]) -> Thresholds:
    """Thresholds of a whole split from its score summaries by `summary_groups` (a missing group is empty)."""
    if per_class(options):
        negatives, positives = (summaries.get(c, ScoreSummary()) for c in (0, 1))
        return thresholds_by_key(
            0, global_class_thresholds(negatives, positives, rate, options.p_min, is_balanced(options))
        )
    summary = summaries[0]
    return {0: summary.solve_lambda(rate * summary.n, options.p_min)}


def top_k_tiebreak(ids: Sequence[bytes]) -> np.ndarray:
    """Tie-break key of top_k (hash64(id, 0)), as int64 bits for cheap shuffling."""
    return sampling.hash64(ids, 0).view(np.int64)


def top_k_threshold(scores: np.ndarray, tiebreaks: np.ndarray, k: int) -> tuple[float, int] | None:
    """The (score, tiebreak) of the k-th largest by (score desc, tiebreak as uint64 asc); None when k == 0."""
    if k <= 0 or scores.size == 0:
        return None
    order = np.lexsort((tiebreaks.view(np.uint64), -scores))
    last = order[min(k, scores.size) - 1]
    return float(scores[last]), int(tiebreaks[last])


def solve_top_k(rate: float, scores: np.ndarray, tiebreaks: np.ndarray) -> tuple[float, int] | None:
    """top_k's threshold for a split's scored examples: it keeps round(rate * n_scored) of them."""
    return top_k_threshold(scores, tiebreaks, int(math.floor(rate * scores.size + 0.5)))


# ---------------------------------------------------------------------------------------------------------
# The plan and the probabilities
# ---------------------------------------------------------------------------------------------------------


def make_plan(
    options: CurationOptions,
    counts: SplitCounts,
    thresholds: Thresholds | None = None,
    top_k: tuple[float, int] | None = None,
    basis: WindowBasis | None = None,
) -> SplitPlan:
    """The split's plan from its aggregates: `thresholds` of every window (`solve_window`) or of the split
    (`solve_global`), `top_k` from `solve_top_k`; window mode: the `basis` of the rate and the windows."""
    strategy = strategy_of(options)
    window_mode = strategy.water_filled and options.mode == "window"
    n = basis.n_split if window_mode and basis is not None else counts.n
    budget = waterfill.budget_count(options.budget, n)
    rate = budget / n if n else 0.0
    notes: list[str] = []
    plan = dict(
        strategy=options.strategy,
        rate=rate,
        budget=budget,
        p_min=options.p_min,
        mix=options.mix if strategy.water_filled else 0.0,
        missing_p=max(missing_record_probability(options, rate), 0.0),
    )
    if strategy.kind == strategies.NEGATIVE_DOWNSAMPLING:
        pos, neg, note = negative_downsampling_rates(
            counts.n_positive, counts.n - counts.n_positive, budget, options.p_min
        )
        plan.update(positive_p=pos, negative_p=neg)
        notes.append(note)
    if strategy.water_filled:
        if window_mode:
            read = basis.n_total if basis is not None else counts.n
            plan.update(n_windows=n_windows(read, options.window_size))
        plan["class_thresholds" if per_class(options) else "lams"] = dict(thresholds or {})
    if strategy.kind == strategies.TOP_K:
        plan["top_k"] = top_k
    if strategy.needs_scores and counts.n_scored < counts.n:
        notes.append(
            f"{counts.n - counts.n_scored} examples without a forward record: policy "
            f"{options.missing_record_policy!r}, p = {plan['missing_p']:g}"
        )
    return SplitPlan(notes=tuple(notes), **plan)


def plan_probabilities(
    plan: SplitPlan, ids: Sequence[bytes], scores: np.ndarray, labels: np.ndarray, seed: int
) -> np.ndarray:
    """p for a batch of one split's examples; scores are NaN where the example has no forward record."""
    kind = strategies.get(plan.strategy).kind
    scores = np.asarray(scores, dtype=np.float64)
    has = ~np.isnan(scores)
    if kind == strategies.FULL:
        return np.ones(scores.size)
    if kind == strategies.UNIFORM:
        return np.full(scores.size, max(plan.rate, plan.p_min))
    if kind == strategies.NEGATIVE_DOWNSAMPLING:
        return np.where(np.asarray(labels) == 1.0, plan.positive_p, plan.negative_p)
    p = np.full(scores.size, plan.missing_p)
    if not has.any():
        return p
    s = scores[has]
    if kind == strategies.TOP_K:
        if plan.top_k is None:
            p[has] = 0.0
        else:
            ts, tt = plan.top_k
            tb = top_k_tiebreak([ids[i] for i in np.flatnonzero(has)]).view(np.uint64)
            p[has] = ((s > ts) | ((s == ts) & (tb <= np.uint64(tt & 0xFFFFFFFFFFFFFFFF)))).astype(np.float64)
        return p
    if kind in (strategies.STRATIFIED, strategies.BALANCED):
        p[has] = _class_probabilities(
            plan, [ids[i] for i in np.flatnonzero(has)], s, np.asarray(labels)[has], seed
        )
        return p
    if plan.n_windows > 1:
        table = np.full(plan.n_windows, math.nan)
        for k, value in plan.lams.items():
            table[k] = value
        lam = table[window_index([ids[i] for i in np.flatnonzero(has)], seed, plan.n_windows)]
    else:
        lam = np.full(s.size, plan.lams.get(0, math.nan))
    if np.isnan(lam).any():
        raise ValueError(
            "no threshold for a window of scored examples: the plan is inconsistent with the data"
        )
    out = waterfill.probabilities_from_lambda(s, lam, plan.p_min)
    if plan.mix > 0.0:
        out = waterfill.defensive_mix(out, plan.rate, plan.mix)
    p[has] = out
    return p


def _class_probabilities(
    plan: SplitPlan, ids, scores: np.ndarray, labels: np.ndarray, seed: int
) -> np.ndarray:
    positive = np.asarray(labels) == 1.0
    window = window_index(ids, seed, plan.n_windows) if plan.n_windows > 1 else np.zeros(len(ids), np.int64)
    keys = class_key(window, positive)
    table = np.full((2 * plan.n_windows, 2), math.nan)
    for k, value in plan.class_thresholds.items():
        table[k] = value
    lam, rate = table[keys, 0], table[keys, 1]
    if np.isnan(lam).any():
        raise ValueError(
            "no threshold for a (window, class) of scored examples: the plan is inconsistent with the data"
        )
    return classes.class_probabilities(scores, positive, ((lam, rate), (lam, rate)), plan.p_min, plan.mix)


def sample(
    plan: SplitPlan, ids: Sequence[bytes], scores: np.ndarray, labels: np.ndarray, options: CurationOptions
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(p, keep, weight) of a batch of one split's examples: `plan_probabilities`, then Poisson sampling."""
    p = plan_probabilities(plan, ids, scores, labels, options.seed)
    keep, weight = sampling.poisson_sample(ids, p, options.seed, options.max_weight)
    return p, keep, weight


# ---------------------------------------------------------------------------------------------------------
# The whole split in memory
# ---------------------------------------------------------------------------------------------------------


def reference_selection(
    options: CurationOptions,
    ids: Sequence[bytes],
    scores: np.ndarray,
    labels: np.ndarray,
    basis: WindowBasis | None = None,
) -> tuple[np.ndarray, np.ndarray, SplitPlan]:
    """The whole split in memory: (keep, weight, plan). The Beam job must select exactly this.

    The same rule functions as the job, on the same aggregates: windows by `windows_of`, thresholds by
    `solve_window` / `solve_global`, `solve_top_k`, `make_plan`, then `sample`. `basis`: the examples read that
    window mode's rate and windows are based on; default: the split alone, `len(ids)` read (no reject).
    """
    ids = list(ids)
    scores = np.asarray(scores, dtype=np.float64)
    labels = np.asarray(labels, dtype=np.float64)
    has = ~np.isnan(scores)
    counts = SplitCounts(len(ids), int(has.sum()), int((labels == 1.0).sum()))
    strategy = strategy_of(options)
    if strategy.water_filled and options.mode == "window":
        basis = basis or WindowBasis(counts.n, counts.n)
        rate = split_rate(options, basis.n_split)
    else:
        basis, rate = None, split_rate(options, counts.n)
    scored_ids = [ids[i] for i in np.flatnonzero(has)]
    s, positive = scores[has], labels[has] == 1.0
    thresholds, top = None, None
    if strategy.water_filled and options.mode == "global":
        groups = summary_groups(options, positive)
        summaries = {int(g): ScoreSummary().add(s[groups == g]) for g in np.unique(groups)}
        thresholds = solve_global(options, rate, summaries) if summaries else None
    elif strategy.water_filled:
        w = windows_of(scored_ids, options, basis.n_total)
        thresholds = {}
        for k in np.unique(w).tolist():
            at = w == k
            thresholds.update(solve_window(options, rate, k, s[at], positive[at]))
    elif strategy.kind == strategies.TOP_K:
        top = solve_top_k(rate, s, top_k_tiebreak(scored_ids))
    plan = make_plan(options, counts, thresholds, top, basis)
    _, keep, weight = sample(plan, ids, scores, labels, options)
    return keep, weight, plan
