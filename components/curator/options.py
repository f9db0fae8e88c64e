"""Curation parameters: one validated dataclass shared by the TFX component, its executor and the CLI.

Pure Python (no TFX, no Beam): every check raises `ValueError` with the parameter's name and the allowed values.
"""

from __future__ import annotations

import dataclasses
import json
import math

# The policy registries own the strategy and task names and their lists; options only validate against them.
from tfx_curator.components.curator.policy.signals import TASKS
from tfx_curator.components.curator.policy.strategies import LABEL_AWARE_STRATEGIES, STRATEGIES

MODES = ("window", "global")
MISSING_RECORD_POLICIES = ("uniform", "drop", "keep")
DUPLICATE_POLICIES = ("latest", "mean", "max")
AUTO_FORMAT = "auto"
RECORD_FORMATS = (AUTO_FORMAT, "predictionlog", "plain")


@dataclasses.dataclass(frozen=True)
class CurationOptions:
    """Everything that decides which examples are kept and how they are weighted.

    budget: a rate in [0, 1] (fraction of each curated split), or an integer > 1 (expected count per split).
    strategy: loss / grad_norm (importance sampling on that signal, water-filled to the budget), uniform,
        negative_downsampling (positives kept, negatives sampled), top_k (deterministic, unweighted, biased),
        full (everything, weight 1), stratified_loss / stratified_grad_norm (label-aware water-filling: every
        positive kept with p = 1 when the budget allows, the negatives water-filled on the signal with the rest;
        one joint water level otherwise; binary tasks only), balanced_loss / balanced_grad_norm (water-filling on
        the class-normalised signal s / N_class: the minimum-variance estimate of the class-balanced loss; a rare
        class is kept far more often, in proportion to its loss; binary tasks only).
    mode: window (the paper's mini-batch approximation: water-filling within random mini-batches of about
        `window_size` examples, chosen by a hash of (seed, id)) or global (exact two-pass: a mergeable score summary
        solves one threshold for the whole split).
    p_min: floor on every inclusion probability (bounds weights by 1/p_min; guards against label noise).
    mix: defensive mixture `p = (1 - mix) * p_IS + mix * rate`; bounds weights by 1/(mix * rate).
    max_weight: cap on 1/p (None: no cap). A cap trades a little bias for less variance.
    missing_record_policy: examples without a forward record are sampled uniformly at the budget rate
        (`uniform`), never kept (`drop`, counted as not selected) or always kept with weight 1 (`keep`).
    duplicate_policy: several records for one id: the `latest` by timestamp, the `mean` prediction and hidden norm,
        or the one with the `max` importance score.
    splits: splits to curate; the others are copied unchanged.
    skip_corrupt_files: a corrupt or truncated input file fails the run naming the file (False), or the rest of
        that file is skipped and the file is listed in the report (True).
    compute_statistics: TFDV statistics of the raw split and of the curated split (unweighted and weighted) and
        the per-feature unbiasedness check in the report. Costs about as much as the selection itself.
    record_format: forward-record format: plain tf.Example records, PredictionLog TFRecords, or auto (detected
        from the first records; the report and the log say which).
    max_missing_record_rate: the run fails when a larger share of a split's accepted examples has no forward
        record (strategies that need scores): it is the sign of a wrong record format, id feature or records
        file pattern, not of a serving path that logs most of its traffic. 1 accepts anything.
    max_reject_rate: the run fails when a larger share of a split's examples, or of the forward records, is
        rejected (a wrong id or label feature, or a wrong record format). 1 accepts anything.
    drift_max_auc_change: with a previous report, flag the served model when its AUC on this span moved by
        more than this (absolute) from the previous span's.
    drift_max_calibration_change: with a previous report, flag the served model when its calibration (mean
        prediction / mean label) moved by more than this (absolute) from the previous span's.
    drift_max_psi: with a previous report, flag the served model when the population stability index of its
        predictions (over the previous span's deciles) exceeds this.
    """

    id_feature: str = "example_id"
    label_feature: str = "label"
    task: str = "binary"
    budget: float = 0.1
    strategy: str = "loss"
    mode: str = "window"
    window_size: int = 4096
    p_min: float = 0.0
    # chosen on the learning benchmark's selection steps (benchmarks/results/learning_summary.md)
    mix: float = 0.1
    max_weight: float | None = None
    seed: int = 0
    weight_feature: str = "sample_weight"
    missing_record_policy: str = "uniform"
    duplicate_policy: str = "latest"
    splits: tuple[str, ...] = ("train",)
    record_format: str = AUTO_FORMAT
    prediction_key: str = "prediction"
    hidden_norm_key: str | None = "hidden_norm"
    class_label: str = "1"
    record_id_output_key: str | None = None
    skip_corrupt_files: bool = False
    compute_statistics: bool = True
    max_missing_record_rate: float = 0.5
    max_reject_rate: float = 0.5
    drift_max_auc_change: float = 0.02
    drift_max_calibration_change: float = 0.1
    drift_max_psi: float = 0.25

    def __post_init__(self):
        object.__setattr__(self, "splits", tuple(self.splits))
        self.validate()

    def validate(self) -> None:
        _choice("task", self.task, TASKS)
        _choice("strategy", self.strategy, STRATEGIES)
        _choice("mode", self.mode, MODES)
        _choice("missing_record_policy", self.missing_record_policy, MISSING_RECORD_POLICIES)
        _choice("duplicate_policy", self.duplicate_policy, DUPLICATE_POLICIES)
        _choice("record_format", self.record_format, RECORD_FORMATS)
        for name in ("id_feature", "label_feature", "weight_feature", "prediction_key"):
            if not isinstance(getattr(self, name), str) or not getattr(self, name):
                raise ValueError(f"{name} must be a non-empty string, got {getattr(self, name)!r}")
        if len({self.id_feature, self.label_feature, self.weight_feature}) < 3:
            raise ValueError("id_feature, label_feature and weight_feature must be three different features")
        b = self.budget
        if not isinstance(b, int | float) or isinstance(b, bool) or not math.isfinite(b) or b < 0:
            raise ValueError(f"budget must be a rate in [0, 1] or an integer count > 1, got {b!r}")
        if b > 1 and float(b) != int(b):
            raise ValueError(f"budget {b!r} > 1 is a count and must be a whole number")
        if not isinstance(self.window_size, int) or self.window_size < 1:
            raise ValueError(f"window_size must be a positive integer, got {self.window_size!r}")
        if not 0.0 <= self.p_min <= 1.0:
            raise ValueError(f"p_min must be in [0, 1], got {self.p_min!r}")
        for name in ("max_missing_record_rate", "max_reject_rate"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int | float) or not 0.0 <= value <= 1.0:
                raise ValueError(f"{name} must be a rate in [0, 1], got {value!r}")
        if not 0.0 <= self.mix <= 1.0:
            raise ValueError(f"mix must be in [0, 1], got {self.mix!r}")
        if self.max_weight is not None and not (self.max_weight >= 1.0 and math.isfinite(self.max_weight)):
            raise ValueError(f"max_weight must be a finite number >= 1 (or None), got {self.max_weight!r}")
        if not isinstance(self.seed, int) or not 0 <= self.seed < 2**63:
            raise ValueError(f"seed must be an integer in [0, 2**63), got {self.seed!r}")
        if not self.splits or not all(isinstance(s, str) and s for s in self.splits):
            raise ValueError(f"splits must be a non-empty list of split names, got {self.splits!r}")
        for name in ("drift_max_auc_change", "drift_max_calibration_change", "drift_max_psi"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int | float) or not value >= 0:
                raise ValueError(f"{name} must be a number >= 0 (inf: never flag), got {value!r}")
        if self.task == "regression" and self.strategy in LABEL_AWARE_STRATEGIES:
            raise ValueError(f"strategy {self.strategy!r} needs task 'binary'")

    @property
    def importance_sampling(self) -> bool:
        return self.strategy in ("loss", "grad_norm")

    def to_json(self) -> str:
        return json.dumps(dataclasses.asdict(self), sort_keys=True)

    @classmethod
    def from_json(cls, text: str) -> CurationOptions:
        return cls.from_dict(json.loads(text))

    @classmethod
    def from_dict(cls, values: dict) -> CurationOptions:
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = set(values) - known
        if unknown:
            raise ValueError(f"unknown curation option(s) {sorted(unknown)}; known: {sorted(known)}")
        return cls(**values)


def _choice(name: str, value, allowed: tuple[str, ...]) -> None:
    if value not in allowed:
        raise ValueError(f"{name} must be one of {list(allowed)}, got {value!r}")
