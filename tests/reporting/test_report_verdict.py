"""report.html's verdict and tables (issue 12, experience): pure functions of report.json's content."""

from tfx_curator.components.curator.reporting import report_verdict


def _split(achieved=100, expected=100.0, holds=True, mismatched=(), rejected=0):
    return {
        "accounting": {
            "examples_read": 1000,
            "selected": achieved,
            "not_selected": 1000 - achieved - rejected,
            "rejected": rejected,
            "holds": holds,
        },
        "budget": {"asked": 100, "expected": expected, "achieved": achieved},
        "unbiasedness": {"features": [{"feature": "x"}, {"feature": "y"}], "mismatched": list(mismatched)},
        "rejects_by_reason": {"missing_label": rejected} if rejected else {},
        "lambda": {"windows": 1, "min": 1.0, "median": 1.0, "max": 1.0},
        "labels": {
            "examples": {"0": 1, "1": 2},
            "selected": {"0": 1, "1": 1},
            "weighted": {"0": 1.0, "1": 2.0},
        },
        "corrupt_files": [{"path": "/a.gz", "records_read": 3, "error": "DataLossError: x"}],
    }


def test_verdict_names_what_to_check():
    good, lines = report_verdict.split_verdict("train", _split())
    assert good and lines[0].startswith("accounting holds") and "budget met" in lines[1]
    assert "unbiasedness ok on 2 features" in lines[2]
    good, lines = report_verdict.split_verdict("train", _split(achieved=60, mismatched=["x"], rejected=5))
    assert not good
    assert any("budget NOT MET: 60 selected, 100.0 expected" in line for line in lines)
    assert any("MISMATCHES the raw data on x" in line for line in lines)
    assert any("5 examples rejected: missing_label 5" in line for line in lines)
    assert not report_verdict.split_verdict("t", _split(holds=False))[0]


def test_tables_have_headers_and_no_python_dicts():
    text = report_verdict.split_tables(_split(rejected=2)) + report_verdict.verdict_html(
        {"splits": {"t": _split()}}
    )
    for header in ("reason", "statistic", "label", "sum of weights", "file", "records read", "error"):
        assert f"<th>{header}</th>" in text
    assert "{" not in text and "<b>Split t: OK</b>" in text
