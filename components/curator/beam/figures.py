"""The job's figures (`<report_uri>/_job/figures.json`): everything the Beam job measured, typed.

The job writes one `JobFigures` as a JSON line; the report (reporting/report.py) is built from its dict form.
"""

from __future__ import annotations

import dataclasses
import json
import os
from collections.abc import Iterable, Mapping, Sequence

from tfx_curator.components.curator.beam.rows import (
    EXAMPLES_READ,
    QUALITY_CURATED,
    QUALITY_FULL,
    RECORDS_SPLIT,
    CorruptFile,
    EventKey,
    QualityKey,
    RejectKey,
)
from tfx_curator.components.curator.options import CurationOptions

FIGURES_DIR = "_job"
FIGURES_FILE = "figures.json"


@dataclasses.dataclass(frozen=True)
class SplitFigures:
    """One curated split."""

    counts: dict  # n, n_scored, n_positive (joined examples)
    stats: dict  # SplitStats.to_dict()
    summary: dict  # SplitStats.summary(): ESS, error ratio, weight sums
    plan: dict  # the SplitPlan without its lambdas
    lambdas: dict  # window (as a string) -> lambda or thresholds
    events: dict  # event name -> count
    rejects: dict  # "source:reason" -> count
    corrupt_files: list  # [path, records read, error], sorted
    served_model: dict  # QUALITY_FULL / QUALITY_CURATED -> QualityStats.to_dict()


@dataclasses.dataclass(frozen=True)
class RecordFigures:
    """The forward records, which belong to no split."""

    events: dict
    rejects: dict  # reason -> count
    corrupt_files: list


@dataclasses.dataclass(frozen=True)
class JobFigures:
    options: dict  # CurationOptions as JSON
    splits: dict  # split name -> SplitFigures
    records: RecordFigures

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), default=_json_default)

    @classmethod
    def from_dict(cls, d: Mapping) -> JobFigures:
        return cls(
            options=dict(d["options"]),
            splits={name: SplitFigures(**fig) for name, fig in d["splits"].items()},
            records=RecordFigures(**d["records"]),
        )

    @classmethod
    def from_json(cls, text: str) -> JobFigures:
        return cls.from_dict(json.loads(text))

    def examples_read(self) -> dict[str, int]:
        """Raw examples read per split (the accounting's starting figure)."""
        return {name: fig.events.get(EXAMPLES_READ, 0) for name, fig in self.splits.items()}


def measured(
    splits: Sequence[str],
    options: CurationOptions,
    stats: Mapping,
    served: Mapping[QualityKey, object],
    counts: Mapping[int, tuple],
    events: Iterable[tuple[EventKey, int]],
    rejects: Iterable[tuple[RejectKey, int]],
    plans: Mapping,
    corrupt: Iterable[CorruptFile],
) -> JobFigures:
    """The figures from the job's per-split results (index = position in `splits`)."""
    from tfx_curator.components.curator.reporting.report_stats import SplitStats

    events = [(EventKey(*key), n) for key, n in events]
    rejects = [(RejectKey(*key), n) for key, n in rejects]
    corrupt = [CorruptFile(*c) for c in corrupt]
    per_split = {}
    for i, name in enumerate(splits):
        s = stats.get(i, SplitStats.empty())
        p = plans[i]
        per_split[name] = SplitFigures(
            counts=dict(zip(("n", "n_scored", "n_positive"), counts.get(i, (0, 0, 0)))),
            stats=s.to_dict(),
            summary=s.summary(),
            plan={k: v for k, v in dataclasses.asdict(p).items() if k != "lams"},
            lambdas={str(k): v for k, v in sorted(p.lams.items())},
            events=_events(events, i),
            rejects={f"{key.source}:{key.reason}": n for key, n in rejects if key.split == i},
            corrupt_files=_corrupt(corrupt, i),
            served_model={
                kind: served[QualityKey(i, kind)].to_dict()
                for kind in (QUALITY_FULL, QUALITY_CURATED)
                if QualityKey(i, kind) in served
            },
        )
    records = RecordFigures(
        events=_events(events, RECORDS_SPLIT),
        rejects={key.reason: n for key, n in rejects if key.split == RECORDS_SPLIT},
        corrupt_files=_corrupt(corrupt, RECORDS_SPLIT),
    )
    return JobFigures(json.loads(options.to_json()), per_split, records)


def _events(events: list[tuple[EventKey, int]], split: int) -> dict:
    return {key.name: n for key, n in events if key.split == split}


def _corrupt(corrupt: list[CorruptFile], split: int) -> list:
    return sorted([c.path, c.records_read, c.error] for c in corrupt if c.split == split)


def _json_default(value):
    import numpy as np

    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, np.ndarray):
        return value.tolist()
    raise TypeError(f"not JSON serialisable: {type(value).__name__}")


def path(report_uri: str) -> str:
    return os.path.join(report_uri, FIGURES_DIR, FIGURES_FILE)


def read(report_uri: str) -> JobFigures:
    """The figures a job wrote under `report_uri`."""
    from tensorflow.io import gfile

    with gfile.GFile(path(report_uri), "r") as f:
        return JobFigures.from_json(f.read())
