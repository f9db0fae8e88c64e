"""figures.py: the job's figures, typed; JSON in the layout report.py reads, and back."""

from __future__ import annotations

import json

from tfx_curator.components.curator.beam import figures, rows
from tfx_curator.components.curator.options import CurationOptions
from tfx_curator.components.curator.policy import plan
from tfx_curator.components.curator.reporting import quality
from tfx_curator.components.curator.reporting.report_stats import SplitStats

OPTIONS = CurationOptions(budget=0.5, splits=("train", "eval"))


def _measured(**overrides) -> figures.JobFigures:
    counts = {0: (10, 8, 3)}
    plans = {
        i: plan.make_plan(OPTIONS, plan.SplitCounts(*counts.get(i, (0, 0, 0))), {0: 0.25}) for i in (0, 1)
    }
    full = quality.QualityStats("binary", False).add([0.2, 0.9], [0.0, 1.0], [b"1", b"1"])
    measured = dict(
        stats={0: SplitStats.empty()},
        served={rows.QualityKey(0, rows.QUALITY_FULL): full},
        counts=counts,
        events=[
            (rows.EventKey(0, rows.EXAMPLES_READ), 11),
            ((1, rows.EXAMPLES_READ), 0),  # plain tuples too: side inputs may decode rows as tuples
            (rows.EventKey(rows.RECORDS_SPLIT, rows.ORPHAN_RECORDS), 2),
        ],
        rejects=[
            (rows.RejectKey(0, rows.REJECT_SOURCE_EXAMPLES, "missing_id"), 1),
            (rows.RejectKey(rows.RECORDS_SPLIT, rows.REJECT_SOURCE_RECORDS, "unparseable"), 4),
        ],
        plans=plans,
        corrupt=[rows.CorruptFile(rows.RECORDS_SPLIT, "/r/b.gz", 5, "truncated"), (0, "/e/a.gz", 7, "bad")],
    )
    measured.update(overrides)
    return figures.measured(["train", "eval"], OPTIONS, **measured)


def test_figures_are_filed_by_split_and_records():
    got = _measured()
    assert list(got.splits) == ["train", "eval"]
    train, evaluation = got.splits["train"], got.splits["eval"]
    assert train.counts == {"n": 10, "n_scored": 8, "n_positive": 3}
    assert evaluation.counts == {"n": 0, "n_scored": 0, "n_positive": 0}
    assert train.events == {rows.EXAMPLES_READ: 11} and evaluation.events == {rows.EXAMPLES_READ: 0}
    assert train.rejects == {"examples:missing_id": 1} and evaluation.rejects == {}
    assert train.corrupt_files == [["/e/a.gz", 7, "bad"]]
    assert list(train.served_model) == [rows.QUALITY_FULL] and evaluation.served_model == {}
    assert train.lambdas == {"0": 0.25} and "lams" not in train.plan
    assert got.records == figures.RecordFigures(
        events={rows.ORPHAN_RECORDS: 2},
        rejects={"unparseable": 4},
        corrupt_files=[["/r/b.gz", 5, "truncated"]],
    )
    assert got.examples_read() == {"train": 11, "eval": 0}


def test_json_keeps_the_layout_report_reads_and_reads_back():
    got = _measured()
    text = got.to_json()
    d = json.loads(text)
    assert list(d) == ["options", "splits", "records"]
    assert list(d["splits"]["train"]) == [
        "counts",
        "stats",
        "summary",
        "plan",
        "lambdas",
        "events",
        "rejects",
        "corrupt_files",
        "served_model",
    ]
    assert d["options"] == json.loads(OPTIONS.to_json())
    again = figures.JobFigures.from_json(text)
    assert again.to_json() == text
    assert again.to_dict() == d
