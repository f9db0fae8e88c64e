"""Curation parameters: one validated dataclass shared by the TFX component, its executor and the CLI.

Pure Python (no TFX, no Beam): every check raises `ValueError` with the parameter's name and the allowed values.
"""

from __future__ import annotations

import dataclasses
import json
import math

# The policy registries own the strategy and task names and their lists; options only validate against them.
from tfx_curator.components.curator.policy.passes import DISAGREEMENT_BETA
from tfx_curator.components.curator.policy.signals import TASKS
from tfx_curator.components.curator.policy.strategies import LABEL_AWARE_STRATEGIES, REGISTRY, STRATEGIES
from tfx_curator.components.curator.reading import records

MODES = ("window", "global")
MISSING_RECORD_POLICIES = ("uniform", "drop", "keep")
DUPLICATE_POLICIES = ("latest", "mean", "max", "mean_std")
AUTO_FORMAT = "auto"
RECORD_FORMATS = (AUTO_FORMAT, *records.RECORD_FORMATS)
# The options that take one of a fixed set of values (checked by `validate`, offered as choices by the CLI).
CHOICES = {
    "task": TASKS,
    "strategy": STRATEGIES,
    "mode": MODES,
    "missing_record_policy": MISSING_RECORD_POLICIES,
    "duplicate_policy": DUPLICATE_POLICIES,
    "record_format": RECORD_FORMATS,
}


# The `strategy` help lists each strategy with its registry help (a new signal's strategies appear by themselves).
STRATEGY_NOTES = {s.name: s.help for s in REGISTRY}


def choices_help(intro: str, choices: tuple[str, ...], notes: dict[str, str]) -> str:
    """`intro` followed by every choice, with its note when it has one."""
    return intro + " " + "; ".join(f"{c} ({notes[c]})" if c in notes else c for c in choices)


def _option(default, text: str):
    """A CurationOptions field: its default, and its help text (shown by the CLI) as metadata."""
    return dataclasses.field(default=default, metadata={"help": text})


@dataclasses.dataclass(frozen=True)
class CurationOptions:
    """Everything that decides which examples are kept and how they are weighted.

    Each field's help text is its metadata (`option_help(name)`); `tfx-curator curate --help` shows it.
    """

    id_feature: str = _option(
        "example_id",
        "feature holding the example id, in the examples and in plain forward records (in PredictionLog "
        "records: in the logged request tf.Example, or the predict output record_id_output_key); a single "
        "bytes value, or a single int64 value read as its decimal digits",
    )
    label_feature: str = _option(
        "label", "feature holding the label in the examples (int or float, one value)"
    )
    task: str = _option(
        "binary", "binary: the prediction must be a probability in [0, 1]; regression: any finite float"
    )
    budget: float = _option(
        0.1, "a rate in [0, 1] (fraction of each curated split), or an integer > 1 (expected count per split)"
    )
    strategy: str = _option("loss", choices_help("selection rule:", STRATEGIES, STRATEGY_NOTES))
    mode: str = _option(
        "window",
        "window (the paper's mini-batch approximation: water-filling within random mini-batches of about "
        "window_size examples, chosen by a hash of (seed, id), common to all curated splits; one shuffle) or "
        "global (exact two-pass: a mergeable score summary solves one threshold for the whole split)",
    )
    window_size: int = _option(
        4096,
        "examples per mini-batch window in mode 'window': round(examples read in all curated splits / "
        "window_size) windows; each split's rate is its budget over the examples read in its files",
    )
    p_min: float = _option(
        0.0, "floor on every inclusion probability (bounds weights by 1/p_min; guards against label noise)"
    )
    # chosen on the learning benchmark's selection steps (benchmarks/results/learning_summary.md)
    mix: float = _option(
        0.1, "defensive mixture p = (1 - mix) * p_IS + mix * rate; bounds weights by 1/(mix * rate)"
    )
    max_weight: float | None = _option(
        None, "cap on 1/p (None: no cap); a cap trades a little bias for less variance"
    )
    seed: int = _option(0, "seed of the deterministic sampling hash (same seed and ids: same selection)")
    weight_feature: str = _option(
        "sample_weight", "feature added to every kept example, holding its weight 1/p"
    )
    missing_record_policy: str = _option(
        "uniform",
        "examples without a forward record are sampled uniformly at the budget rate (uniform), never kept "
        "(drop, counted as not selected) or always kept with weight 1 (keep)",
    )
    duplicate_policy: str = _option(
        "latest",
        "several records for one id (served versions or stochastic passes): the latest by timestamp, the mean "
        "prediction and hidden norm, the one with the max importance score, or mean_std (the records' mean "
        f"score + {DISAGREEMENT_BETA:g} * their standard deviation, so examples the passes disagree on are kept "
        "more often; measured in benchmarks/results/learning_kpass_rule.md)",
    )
    splits: tuple[str, ...] = _option(("train",), "splits to curate; the others are copied unchanged")
    record_format: str = _option(
        AUTO_FORMAT,
        "forward-record format: plain tf.Example records, PredictionLog TFRecords, or auto (detected from the "
        "first records; the report and the log say which)",
    )
    prediction_key: str = _option(
        "prediction",
        "predict output key (predict_log), signature name of the prediction result (multi_inference_log), or "
        "plain-format feature name",
    )
    hidden_norm_key: str | None = _option(
        "hidden_norm",
        "predict output key / multi_inference regression signature name / plain feature holding the L2 norm "
        "of the last hidden layer; absent: NaN; None: never read",
    )
    class_label: str = _option(
        "1",
        "classify logs: the prediction is the score of the class with this label (classes without labels: "
        "two are read as [negative, positive], one class: its score)",
    )
    record_id_output_key: str | None = _option(
        None,
        "predict output holding the echoed example id (PredictionLog records); None: a predict output named "
        "id_feature if present (the recorder echoes the id under that key), else the request",
    )
    skip_corrupt_files: bool = _option(
        False,
        "a corrupt or truncated input file fails the run naming the file (false), or the rest of that file is "
        "skipped and the file is listed in the report (true)",
    )
    compute_statistics: bool = _option(
        True,
        "TFDV statistics of the raw split (a deterministic sample of 4x the budget rate, or the component's "
        "statistics input) and of the curated split (one weighted pass) and the per-feature unbiasedness check "
        "in the report",
    )
    max_missing_record_rate: float = _option(
        0.5,
        "the run fails when a larger share of a split's accepted examples has no forward record (strategies "
        "that need scores): the sign of a wrong record format, id feature or records file pattern; 1 accepts "
        "anything",
    )
    max_reject_rate: float = _option(
        0.5,
        "the run fails when a larger share of a split's examples, or of the forward records, is rejected (a "
        "wrong id or label feature, or a wrong record format); 1 accepts anything",
    )
    drift_max_auc_change: float = _option(
        0.02,
        "with a previous report, flag the served model when its AUC on this span moved by more than this "
        "(absolute) from the previous span's",
    )
    drift_max_calibration_change: float = _option(
        0.1,
        "with a previous report, flag the served model when its calibration (mean prediction / mean label) "
        "moved by more than this (absolute) from the previous span's",
    )
    drift_max_psi: float = _option(
        0.25,
        "with a previous report, flag the served model when the population stability index of its predictions "
        "(over the previous span's deciles) exceeds this",
    )

    def __post_init__(self):
        object.__setattr__(self, "splits", tuple(self.splits))
        self.validate()

    def validate(self) -> None:
        for name, allowed in CHOICES.items():
            if getattr(self, name) not in allowed:
                raise ValueError(f"{name} must be one of {list(allowed)}, got {getattr(self, name)!r}")
        for name in ("id_feature", "label_feature", "weight_feature", "prediction_key"):
            if not isinstance(getattr(self, name), str) or not getattr(self, name):
                raise ValueError(f"{name} must be a non-empty string, got {getattr(self, name)!r}")
        for name in ("hidden_norm_key", "record_id_output_key"):
            value = getattr(self, name)
            if value is not None and (not isinstance(value, str) or not value):
                raise ValueError(f"{name} must be a non-empty string or None, got {value!r}")
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

    def record_config_args(self) -> dict:
        """Arguments of `reading.records.RecordConfig`: where the forward-record fields live."""
        return {
            "id_feature": self.id_feature,
            "id_output_key": self.record_id_output_key,
            "prediction_key": self.prediction_key,
            "hidden_norm_key": self.hidden_norm_key,
            "class_label": self.class_label,
            "task": self.task,
        }

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


FIELDS = {f.name: f for f in dataclasses.fields(CurationOptions)}


def option_help(name: str) -> str:
    """The help text of the option `name` (its field metadata)."""
    return FIELDS[name].metadata["help"]
