"""report.py: accounting, the notes each split gets, report.json / report.html, escaping of hostile strings."""

from __future__ import annotations

import html
import json

import numpy as np
import pytest
from report_inputs import job_figures, tags

from tfx_curator.components.curator.beam import job as job_lib
from tfx_curator.components.curator.options import CurationOptions
from tfx_curator.components.curator.policy import strategies
from tfx_curator.components.curator.reporting import report

OPTIONS = CurationOptions(budget=0.2, splits=("train",), missing_record_policy="uniform")


def _report(options=OPTIONS, **kwargs) -> tuple[dict, dict]:
    job = job_figures(options, **kwargs)
    figures = job.to_dict()
    served = job_lib.served_model_sections(figures)
    return report.build_report(figures, job.examples_read(), served_model=served), figures


def test_every_example_read_is_selected_not_selected_or_rejected():
    got, figures = _report(rejected={"missing_label": 3, "bad_id": 2}, missing=0.1)
    e = got["splits"]["train"]
    acc = e["accounting"]
    assert acc["examples_read"] == 205 and acc["rejected"] == 5
    assert acc["selected"] + acc["not_selected"] + acc["rejected"] == acc["examples_read"] and acc["holds"]
    assert e["rejects_by_reason"] == {"missing_label": 3, "bad_id": 2}
    stats = figures["splits"]["train"]["stats"]
    assert acc["selected"] == stats["n_kept"] == e["budget"]["achieved"] > 0
    assert e["budget"]["backward_passes_saved"] == 205 - acc["selected"]
    assert e["budget"]["asked"] == pytest.approx(0.2 * 200)
    assert (
        e["examples_with_record"] + e["examples_without_record"] == 200 and e["examples_without_record"] > 0
    )
    assert sum(e["weights"]["histogram"]["counts"]) == acc["selected"]
    assert e["labels"]["selected"]["0"] + e["labels"]["selected"]["1"] == acc["selected"]
    report.check_accounting(got)  # does not raise


@pytest.mark.parametrize("read", [199, 201])
def test_accounting_error_when_examples_are_lost_or_counted_twice(read):
    got, figures = _report(examples_read=read)
    acc = got["splits"]["train"]["accounting"]
    assert not acc["holds"]
    with pytest.raises(report.AccountingError, match="train"):
        report.check_accounting(got)
    assert "ACCOUNTING INVARIANT BROKEN" in report.render_html(got, figures)


@pytest.mark.parametrize("strategy", strategies.STRATEGIES)
def test_each_strategy_gets_the_notes_of_its_signal(strategy):
    got, _ = _report(CurationOptions(budget=0.2, strategy=strategy))
    notes = got["splits"]["train"]["notes"]
    for note in strategies.report_notes(strategy):
        assert note in notes
    assert got["splits"]["train"]["accounting"]["holds"]


def test_the_plan_notes_come_first_then_the_report_notes():
    got, figures = _report(CurationOptions(budget=0.5, strategy="negative_downsampling"))
    notes = got["splits"]["train"]["notes"]
    plan_notes = figures["splits"]["train"]["plan"]["notes"]
    assert plan_notes and notes[: len(plan_notes)] == list(plan_notes)
    assert "positives p = 1" in notes[0]


@pytest.mark.parametrize(
    "options, kwargs, expected",
    [
        (OPTIONS, dict(n=0), "empty split: nothing to select"),
        (OPTIONS, dict(n=0, rejected={"missing_id": 4}), "all 4 examples rejected"),
        (CurationOptions(budget=0.0), {}, "budget 0: nothing selected"),
        (CurationOptions(budget=1.0), {}, "budget >= examples: everything kept with weight 1"),
        (
            CurationOptions(budget=1.0, missing_record_policy="drop"),
            dict(missing=0.2),
            "without one not kept (missing_record_policy 'drop')",
        ),
        (OPTIONS, dict(scores=np.zeros(200)), "all scores are zero: uniform sampling"),
        (OPTIONS, dict(scores=np.full(200, 0.5)), "all scores are equal (0.5): uniform sampling"),
        (
            OPTIONS,
            dict(missing=1.0),
            "no example of this split has a forward record: the missing-record policy decided everything",
        ),
    ],
)
def test_edge_cases_are_noted(options, kwargs, expected):
    got, _ = _report(options, **kwargs)
    e = got["splits"]["train"]
    assert any(expected in note for note in e["notes"]), e["notes"]
    assert e["accounting"]["holds"]


def test_equal_scores_are_not_called_uniform_for_a_label_aware_strategy():
    got, _ = _report(CurationOptions(budget=0.2, strategy="stratified_loss"), scores=np.full(200, 0.5))
    assert not any("all scores are equal" in note for note in got["splits"]["train"]["notes"])


def test_lambda_summary_of_the_windows():
    got, figures = _report(CurationOptions(budget=0.2, window_size=50), n=400)
    lams = np.array(list(figures["splits"]["train"]["lambdas"].values()), dtype=float)
    assert got["splits"]["train"]["lambda"] == {
        "windows": lams.size,
        "min": lams.min(),
        "median": float(np.median(lams)),
        "max": lams.max(),
    }
    assert lams.size == 8
    assert _report(CurationOptions(budget=0.2, strategy="uniform"))[0]["splits"]["train"]["lambda"] is None


def test_write_report_writes_json_that_reads_back_and_html(tmp_path):
    got, figures = _report(
        rejected={"missing_label": 1},
        corrupt=[("/data/a.gz", 7, "DataLossError: truncated")],
        record_rejects={"unparseable": 2},
    )
    json_path, html_path = report.write_report(str(tmp_path), got, figures)
    assert (json_path, html_path) == (str(tmp_path / "report.json"), str(tmp_path / "report.html"))
    with open(json_path) as f:
        again = json.load(f)
    assert json.dumps(again, sort_keys=True) == json.dumps(got, sort_keys=True, default=float)
    assert again["splits"]["train"]["corrupt_files"] == [
        {"path": "/data/a.gz", "records_read": 7, "error": "DataLossError: truncated"}
    ]
    assert again["forward_records"]["rejects_by_reason"] == {"unparseable": 2}
    with open(html_path) as f:
        page = f.read()
    assert page.startswith("<!doctype html>") and page.endswith("</body></html>")
    started = tags(page)
    assert started.count("svg") == 5  # four charts of the split, the served model's reliability diagram
    for text in ("Split train", "Verdict", "Served model on split train", "/data/a.gz", "unparseable"):
        assert text in page


HOSTILE = "<script>alert('x')</script>"


def test_render_html_escapes_hostile_names_and_paths():
    options = CurationOptions(budget=0.2, id_feature=HOSTILE)
    job = job_figures(
        options,
        rejected={HOSTILE: 1},
        corrupt=[(f"/data/{HOSTILE}.gz", 1, HOSTILE)],
        record_rejects={HOSTILE: 3},
    )
    figures = job.to_dict()
    figures["splits"][HOSTILE] = figures["splits"].pop("train")
    served = job_lib.served_model_sections(figures)
    got = report.build_report(figures, {HOSTILE: job.examples_read()["train"]}, served_model=served)
    got["splits"][HOSTILE]["unbiasedness"] = {
        "features": [
            {
                "feature": HOSTILE,
                "distance": "ks",
                "raw_vs_weighted": 0.5,
                "raw_vs_unweighted": 0.5,
                "noise_95": 0.01,
                "mismatch": True,
            }
        ],
        "mismatched": [HOSTILE],
    }
    got["forward_records"]["format"] = HOSTILE
    page = report.render_html(got, figures)
    assert "<script" not in page and "&lt;script&gt;" in page
    assert f"Served model on split {html.escape(HOSTILE)}" in page
    tags(page)
