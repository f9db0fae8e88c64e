"""Fail loudly when the inputs do not fit together, instead of degrading into uniform sampling in silence.

A wrong record format (PredictionLogs read as plain records: every record a `missing_id` reject), a wrong id
feature, a records file pattern matching the wrong span or an empty file: each leaves the examples without
forward records, and the missing-record policy then samples them uniformly. The run "works" and the user
never learns that no importance signal was used. `check` (pure Python, on report.json's content) fails such a
run with the likely cause and the option that accepts it.
"""

from __future__ import annotations

from tfx_curator.components.curator.options import CurationOptions
from tfx_curator.components.curator.policy.strategies import STRATEGIES_WITH_SCORES
from tfx_curator.components.curator.reading.parsing import BAD_ID_COUNT, BAD_ID_TYPE, EMPTY_ID, MISSING_ID

FORMAT_REASONS = ("unparseable", "empty_log", "unsupported_log_type", "no_request_example")


class DataQualityError(ValueError):
    """Too many examples without a forward record, or too many rejects: the inputs do not fit together."""


def _override(name: str) -> str:
    return f"set {name} (--{name.replace('_', '-')}) up to 1 to accept it"


def _top_reasons(by_reason: dict[str, int], n: int = 3) -> str:
    top = sorted(by_reason.items(), key=lambda kv: (-kv[1], kv[0]))[:n]
    return ", ".join(f"{reason} {count}" for reason, count in top)


def record_cause(report: dict, options: CurationOptions) -> str:
    """The likely reason why examples found no forward record, from the forward-record figures."""
    fr = report["forward_records"]
    decoded, rejected, orphans = fr["decoded"], fr["rejected"], fr["orphans"]
    fmt = options.record_format
    detection = fr.get("format_detection")
    how = f" ({detection})" if detection else ""
    if decoded == 0 and rejected == 0:
        return (
            "the --records files hold no record: check the records file pattern (and that they are not empty)"
        )
    if decoded == 0 or rejected > decoded:
        reasons = fr["rejects_by_reason"]
        top = max(reasons, key=reasons.get)
        other = "plain" if fmt == "predictionlog" else "predictionlog"
        if top in FORMAT_REASONS:
            cause = f"the records are not {fmt!r} records{how}: check record_format (try {other!r})"
        elif top in (MISSING_ID, EMPTY_ID, BAD_ID_TYPE, BAD_ID_COUNT):
            cause = (
                f"the records hold no usable id feature {options.id_feature!r}: check id_feature, and "
                f"record_format ({fmt!r}{how}; PredictionLogs read as plain records have no id)"
            )
        else:
            cause = f"check record_format ({fmt!r}{how}), prediction_key and task"
        return (
            f"{rejected} of {decoded + rejected} forward records rejected ({_top_reasons(reasons)}): {cause}"
        )
    if orphans > decoded / 2:
        return (
            f"{orphans} of {decoded} forward records match no example: check id_feature {options.id_feature!r} "
            "(the same ids in examples and records?) and the records file pattern (records of another span?)"
        )
    return "check the records file pattern (do the records cover these examples?) and id_feature"


def check(report: dict, options: CurationOptions) -> None:
    """Raise DataQualityError when a rate in the report exceeds its limit in `options`."""
    problems = []
    for split, e in report["splits"].items():
        read, rejected = e["accounting"]["examples_read"], e["accounting"]["rejected"]
        if read and rejected / read > options.max_reject_rate:
            problems.append(
                f"split {split}: {rejected} of {read} examples rejected ({_top_reasons(e['rejects_by_reason'])})"
                f", more than max_reject_rate {options.max_reject_rate:g}: check id_feature "
                f"{options.id_feature!r}, label_feature {options.label_feature!r}, task {options.task!r} and "
                f"that the --examples files hold tf.Examples; {_override('max_reject_rate')}"
            )
        accepted = e["examples_with_record"] + e["examples_without_record"]
        missing = e["examples_without_record"]
        if (
            options.strategy in STRATEGIES_WITH_SCORES
            and accepted
            and missing / accepted > options.max_missing_record_rate
        ):
            problems.append(
                f"split {split}: {missing} of {accepted} examples have no forward record, more than "
                f"max_missing_record_rate {options.max_missing_record_rate:g} (they would be sampled by the "
                f"missing-record policy {options.missing_record_policy!r}, not by importance): "
                f"{record_cause(report, options)}; {_override('max_missing_record_rate')}"
            )
    fr = report["forward_records"]
    total = fr["decoded"] + fr["rejected"]
    if (
        total
        and fr["rejected"] / total > options.max_reject_rate
        and not any("forward record" in p for p in problems)
    ):
        problems.append(
            f"{fr['rejected']} of {total} forward records rejected, more than max_reject_rate "
            f"{options.max_reject_rate:g}: {record_cause(report, options)}; {_override('max_reject_rate')}"
        )
    if problems:
        raise DataQualityError("; ".join(problems))
