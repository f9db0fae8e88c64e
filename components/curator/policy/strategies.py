"""The strategy registry: name -> kind, signal, help; every strategy list is derived from it.

Importance strategies come three per importance signal (signals.py): ``x`` (water-filling on the signal),
``stratified_x`` (positives first) and ``balanced_x`` (class-normalised); the baselines are fixed. plan.py
dispatches on the kind, so a new signal needs no edit here.
"""

from __future__ import annotations

from dataclasses import dataclass

from tfx_curator.components.curator.policy import signals

# Kinds: how a strategy turns scores (or labels) into inclusion probabilities (plan.plan_probabilities).
IMPORTANCE = "importance"  # water-filling on the signal, per window or global
STRATIFIED = "stratified"  # label-aware water-filling: positives p = 1 when possible (classes.py)
BALANCED = "balanced"  # water-filling on the class-normalised signal s / N_class (classes.py)
UNIFORM = "uniform"
NEGATIVE_DOWNSAMPLING = "negative_downsampling"
TOP_K = "top_k"
FULL = "full"

DEFAULT_SIGNAL = "loss"  # the scores of strategies without a signal of their own (top_k, report figures)


@dataclass(frozen=True)
class Strategy:
    """A selection strategy: its kind (the rule plan.py applies), the signal its scores come from, help."""

    name: str
    kind: str
    signal: str
    help: str

    @property
    def water_filled(self) -> bool:
        """Thresholds per window (or one global), and the defensive mixture applies."""
        return self.kind in (IMPORTANCE, STRATIFIED, BALANCED)

    @property
    def label_aware(self) -> bool:
        """Reads binary labels to select (binary tasks only)."""
        return self.kind in (NEGATIVE_DOWNSAMPLING, STRATIFIED, BALANCED)

    @property
    def needs_scores(self) -> bool:
        """Reads the forward records' scores (the others select on labels or at random)."""
        return self.water_filled or self.kind == TOP_K

    @property
    def uniform_if_scores_equal(self) -> bool:
        """Equal scores make it uniform sampling (a note in the report)."""
        return self.kind in (IMPORTANCE, TOP_K)


def _derived(signal: signals.Signal, kind: str) -> Strategy:
    name, what = signal.name, signal.help
    if kind == IMPORTANCE:
        return Strategy(name, kind, name, f"importance sampling on {what}, water-filled to the budget")
    if kind == STRATIFIED:
        return Strategy(
            f"stratified_{name}",
            kind,
            name,
            f"every positive kept (p = 1) when the budget allows, the negatives water-filled on {what}; "
            "binary tasks",
        )
    return Strategy(
        f"balanced_{name}",
        kind,
        name,
        f"water-filling on {what} over its class size: least variance for the class-balanced loss; binary tasks",
    )


def _registry() -> tuple[Strategy, ...]:
    importance = [s for s in signals.REGISTRY if s.importance]
    baselines = (
        Strategy(UNIFORM, UNIFORM, DEFAULT_SIGNAL, "every example with p = budget rate"),
        Strategy(
            NEGATIVE_DOWNSAMPLING,
            NEGATIVE_DOWNSAMPLING,
            DEFAULT_SIGNAL,
            "positives kept, negatives sampled uniformly with the rest of the budget; binary tasks",
        ),
        Strategy(
            TOP_K, TOP_K, DEFAULT_SIGNAL, "the highest losses, deterministic, unweighted (biased by design)"
        ),
        Strategy(FULL, FULL, DEFAULT_SIGNAL, "every example, weight 1"),
    )
    return (
        *(_derived(s, IMPORTANCE) for s in importance),
        *baselines,
        *(_derived(s, STRATIFIED) for s in importance),
        *(_derived(s, BALANCED) for s in importance),
    )


REGISTRY: tuple[Strategy, ...] = _registry()
_BY_NAME = {s.name: s for s in REGISTRY}

STRATEGIES = tuple(s.name for s in REGISTRY)
IMPORTANCE_STRATEGIES = tuple(s.name for s in REGISTRY if s.kind == IMPORTANCE)
# Label-aware water-filling, thresholds per class: stratified_* and balanced_* (classes.py).
STRATIFIED_STRATEGIES = tuple(s.name for s in REGISTRY if s.kind in (STRATIFIED, BALANCED))
LABEL_AWARE_STRATEGIES = tuple(s.name for s in REGISTRY if s.label_aware)
STRATEGIES_WITH_SCORES = tuple(s.name for s in REGISTRY if s.needs_scores)
WATER_FILLED = tuple(s.name for s in REGISTRY if s.water_filled)


def get(name: str) -> Strategy:
    """The registered strategy ``name``; ValueError naming the known ones otherwise."""
    if name not in _BY_NAME:
        raise ValueError(f"unknown strategy {name!r}; expected one of {STRATEGIES}")
    return _BY_NAME[name]


def strategy_signal(strategy: str) -> str:
    """The signal behind a strategy's scores (``stratified_loss`` -> ``loss``; the loss for the baselines)."""
    return get(strategy).signal


def report_notes(strategy: str) -> list[str]:
    """The report's notes on the scores of a strategy (from its signal's registry entry)."""
    return [signals.get(get(strategy).signal).note]
