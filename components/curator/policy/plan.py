"""From curation options and a split's aggregates to each example's inclusion probability (numpy only).

The Beam job cannot see a whole split at once, so it computes small aggregates (counts, a score summary, one
threshold per window, a top-k threshold), turns them into a `SplitPlan` (a side input), and evaluates
`plan_probabilities` batch by batch. `reference_selection` runs the same steps on in-memory arrays: it is the
pure twin the equivalence tests hold the Beam job to.

Windows (the paper's mini-batch approximation): a window is a random mini-batch of about `window_size` scored
examples, chosen by a hash of (seed, id) into `n_windows = max(1, round(n_scored / window_size))` buckets. This
is the paper's "consecutive instances of a shuffled stream", made independent of order and partitioning, so a
retried bundle or a re-run on another runner selects the same examples.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Mapping, Sequence

import numpy as np

from tfx_curator.components.curator import options as options_lib
from tfx_curator.components.curator.options import CurationOptions
from tfx_curator.components.curator.policy import selection

WINDOW_SALT = 0x5BD1E9955BD1E995  # decorrelates window membership from the sampling hash
STRATEGIES_WITH_SCORES = options_lib.STRATEGIES_WITH_SCORES
# Water-filled strategies: thresholds per window (or one global), and the defensive mixture applies.
WATER_FILLED = selection.IMPORTANCE_STRATEGIES + selection.STRATIFIED_STRATEGIES


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
    # stratified strategies: class_key(window, positive) -> (lam, rate) of that class (selection.ClassThreshold)
    class_thresholds: Mapping[int, tuple[float, float]] = dataclasses.field(default_factory=dict)
    positive_p: float = 1.0  # negative_downsampling
    negative_p: float = 1.0
    top_k: tuple[float, int] | None = None  # (score, tiebreak hash) of the k-th kept example; None: keep none
    notes: tuple[str, ...] = ()

    @property
    def needs_scores(self) -> bool:
        return self.strategy in STRATEGIES_WITH_SCORES


def needs_scores(options: CurationOptions) -> bool:
    return options.strategy in STRATEGIES_WITH_SCORES


def n_windows(n_scored: int, window_size: int) -> int:
    return max(1, int(round(n_scored / window_size)))


def window_index(ids: Sequence[bytes], seed: int, windows: int) -> np.ndarray:
    """The window of each id: hash64(id, seed ^ WINDOW_SALT) mod windows."""
    return (selection.hash64(ids, seed ^ WINDOW_SALT) % np.uint64(windows)).astype(np.int64)


def top_k_tiebreak(ids: Sequence[bytes]) -> np.ndarray:
    """Tie-break key of top_k, the same as selection's (hash64(id, 0)), as int64 bits for cheap shuffling."""
    return selection.hash64(ids, 0).view(np.int64)


def class_key(window, positive):
    """Key of a (window, class) threshold of a stratified plan: 2 * window + (1 for positives)."""
    return 2 * np.asarray(window, dtype=np.int64) + np.asarray(positive, dtype=np.int64)


def window_class_thresholds(
    scores: np.ndarray, positive: np.ndarray, rate: float, p_min: float, balanced: bool = False
) -> tuple[selection.ClassThreshold, selection.ClassThreshold]:
    """(negatives, positives) thresholds of one window of a stratified (or `balanced`) strategy, budget rate *
    window size.

    Each class's scores are sorted before solving, as in `window_lambda`, so the result does not depend on the
    order a runner hands them over in.
    """
    positive = np.asarray(positive, dtype=bool)
    n_neg = int(np.count_nonzero(~positive))
    if balanced:
        scaled = np.sort(selection.class_scaled(scores, positive))
        return selection.balanced_thresholds(
            n_neg,
            scores.size - n_neg,
            rate,
            lambda: selection.water_fill(scaled, rate * scaled.size, p_min).lam,
        )
    neg, every = np.sort(scores[~positive]), np.sort(scores)
    return selection.stratified_thresholds(
        neg.size,
        every.size - neg.size,
        rate * every.size,
        p_min,
        lambda b: selection.water_fill(neg, b, p_min).lam,
        lambda b: selection.water_fill(every, b, p_min).lam,
    )


def global_class_thresholds(
    negatives: selection.ScoreSummary,
    positives: selection.ScoreSummary,
    rate: float,
    p_min: float,
    balanced: bool = False,
) -> tuple[selection.ClassThreshold, selection.ClassThreshold]:
    """(negatives, positives) thresholds of a whole split from one score summary per class (exact, mergeable)."""
    if balanced:
        n_neg, n_pos = negatives.n, positives.n
        return selection.balanced_thresholds(
            n_neg,
            n_pos,
            rate,
            lambda: selection.solve_scaled_lambda(
                [negatives, positives],
                [1.0 / max(n_neg, 1), 1.0 / max(n_pos, 1)],
                rate * (n_neg + n_pos),
                p_min,
            ),
        )
    return selection.stratified_thresholds(
        negatives.n,
        positives.n,
        rate * (negatives.n + positives.n),
        p_min,
        lambda b: negatives.solve_lambda(b, p_min),
        lambda b: selection.ScoreSummary.merge([negatives, positives]).solve_lambda(b, p_min),
    )


def is_balanced(options: CurationOptions) -> bool:
    """The class-balanced variant (selection.balanced_thresholds) rather than positives first."""
    return options.strategy.startswith("balanced_")


def thresholds_by_key(window: int, thresholds) -> dict[int, tuple[float, float]]:
    """{class_key: (lam, rate)} of one window's (negatives, positives) thresholds."""
    return {int(class_key(window, c)): tuple(thresholds[c]) for c in (0, 1)}


def missing_record_probability(options: CurationOptions, rate: float) -> float:
    return {"uniform": rate, "drop": 0.0, "keep": 1.0}[options.missing_record_policy]


def window_lambda(scores: np.ndarray, rate: float, p_min: float) -> float:
    """Threshold of one window: water-filling with the window's share of the budget.

    The scores are sorted first: a runner hands them over in any order, and float sums in another order could
    change lambda in its last bits, so a re-run would not be byte-identical.
    """
    return selection.water_fill(np.sort(scores), rate * scores.size, p_min).lam


def top_k_threshold(scores: np.ndarray, tiebreaks: np.ndarray, k: int) -> tuple[float, int] | None:
    """The (score, tiebreak) of the k-th largest by (score desc, tiebreak as uint64 asc); None when k == 0."""
    if k <= 0 or scores.size == 0:
        return None
    order = np.lexsort((tiebreaks.view(np.uint64), -scores))
    last = order[min(k, scores.size) - 1]
    return float(scores[last]), int(tiebreaks[last])


def make_plan(
    options: CurationOptions,
    counts: SplitCounts,
    lams: Mapping[int, float] | None = None,
    top_k: tuple[float, int] | None = None,
    class_thresholds: Mapping[int, tuple[float, float]] | None = None,
) -> SplitPlan:
    """The split's plan from its aggregates (lams: per window, or {0: global lambda}; class_thresholds: the
    stratified strategies' {class_key(window, positive): (lam, rate)})."""
    budget = selection.budget_count(options.budget, counts.n)
    rate = budget / counts.n if counts.n else 0.0
    notes: list[str] = []
    plan = dict(
        strategy=options.strategy,
        rate=rate,
        budget=budget,
        p_min=options.p_min,
        mix=options.mix if options.strategy in WATER_FILLED else 0.0,
        missing_p=max(missing_record_probability(options, rate), 0.0),
    )
    if options.strategy == "negative_downsampling":
        pos, neg, note = negative_downsampling_rates(
            counts.n_positive, counts.n - counts.n_positive, budget, options.p_min
        )
        plan.update(positive_p=pos, negative_p=neg)
        notes.append(note)
    if options.strategy in WATER_FILLED:
        plan.update(
            n_windows=n_windows(counts.n_scored, options.window_size) if options.mode == "window" else 1
        )
        plan["lams"] = dict(lams or {})
        plan["class_thresholds"] = dict(class_thresholds or {})
    if options.strategy == "top_k":
        plan["top_k"] = top_k
    if needs_scores(options) and counts.n_scored < counts.n:
        notes.append(
            f"{counts.n - counts.n_scored} examples without a forward record: policy "
            f"{options.missing_record_policy!r}, p = {plan['missing_p']:g}"
        )
    return SplitPlan(notes=tuple(notes), **plan)


def negative_downsampling_rates(
    n_pos: int, n_neg: int, budget: float, p_min: float
) -> tuple[float, float, str]:
    """(p for positives, p for negatives, note) with selection.strategy_probabilities' semantics."""
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


def plan_probabilities(
    plan: SplitPlan, ids: Sequence[bytes], scores: np.ndarray, labels: np.ndarray, seed: int
) -> np.ndarray:
    """p for a batch of one split's examples; scores are NaN where the example has no forward record."""
    scores = np.asarray(scores, dtype=np.float64)
    has = ~np.isnan(scores)
    if plan.strategy == "full":
        return np.ones(scores.size)
    if plan.strategy == "uniform":
        return np.full(scores.size, max(plan.rate, plan.p_min))
    if plan.strategy == "negative_downsampling":
        return np.where(np.asarray(labels) == 1.0, plan.positive_p, plan.negative_p)
    p = np.full(scores.size, plan.missing_p)
    if not has.any():
        return p
    s = scores[has]
    if plan.strategy == "top_k":
        if plan.top_k is None:
            p[has] = 0.0
        else:
            ts, tt = plan.top_k
            tb = top_k_tiebreak([ids[i] for i in np.flatnonzero(has)]).view(np.uint64)
            p[has] = ((s > ts) | ((s == ts) & (tb <= np.uint64(tt & 0xFFFFFFFFFFFFFFFF)))).astype(np.float64)
        return p
    if plan.strategy in selection.STRATIFIED_STRATEGIES:
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
    out = selection.probabilities_from_lambda(s, lam, plan.p_min)
    if plan.mix > 0.0:
        out = selection.defensive_mix(out, plan.rate, plan.mix)
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
    return selection.class_probabilities(scores, positive, ((lam, rate), (lam, rate)), plan.p_min, plan.mix)


def reference_selection(
    options: CurationOptions, ids: Sequence[bytes], scores: np.ndarray, labels: np.ndarray
) -> tuple[np.ndarray, np.ndarray, SplitPlan]:
    """The whole split in memory: (keep, weight, plan). The Beam job must select exactly this."""
    ids = list(ids)
    scores = np.asarray(scores, dtype=np.float64)
    labels = np.asarray(labels, dtype=np.float64)
    has = ~np.isnan(scores)
    counts = SplitCounts(len(ids), int(has.sum()), int((labels == 1.0).sum()))
    budget = selection.budget_count(options.budget, counts.n)
    rate = budget / counts.n if counts.n else 0.0
    scored_ids = [ids[i] for i in np.flatnonzero(has)]
    lams, top, classes = None, None, None
    if options.strategy in selection.STRATIFIED_STRATEGIES:
        s, positive = scores[has], labels[has] == 1.0
        if options.mode == "global":
            summaries = [selection.ScoreSummary().add(s[positive == c]) for c in (False, True)]
            classes = thresholds_by_key(
                0, global_class_thresholds(*summaries, rate, options.p_min, is_balanced(options))
            )
        else:
            windows = n_windows(counts.n_scored, options.window_size)
            w = window_index(scored_ids, options.seed, windows) if windows > 1 else np.zeros(s.size, int)
            classes = {}
            for k in np.unique(w):
                at = w == k
                classes.update(
                    thresholds_by_key(
                        k,
                        window_class_thresholds(
                            s[at], positive[at], rate, options.p_min, is_balanced(options)
                        ),
                    )
                )
    elif options.strategy in selection.IMPORTANCE_STRATEGIES:
        if options.mode == "global":
            summary = selection.ScoreSummary().add(scores[has])
            lams = {0: summary.solve_lambda(rate * counts.n_scored, options.p_min)}
        else:
            windows = n_windows(counts.n_scored, options.window_size)
            w = (
                window_index(scored_ids, options.seed, windows)
                if windows > 1
                else np.zeros(len(scored_ids), int)
            )
            lams = {int(k): window_lambda(scores[has][w == k], rate, options.p_min) for k in np.unique(w)}
    elif options.strategy == "top_k":
        top = top_k_threshold(
            scores[has], top_k_tiebreak(scored_ids), int(math.floor(rate * counts.n_scored + 0.5))
        )
    plan = make_plan(options, counts, lams, top, classes)
    p = plan_probabilities(plan, ids, scores, labels, options.seed)
    keep, weight = selection.poisson_sample(ids, p, options.seed, options.max_weight)
    return keep, weight, plan
