"""job.py: finding a previous run's report.json. (job.run itself runs end to end in test_determinism.py,
test_portability.py, test_untrusted.py and test_fault_matrix.py.)"""

import json

import pytest

from tfx_curator.components.curator.beam import job


def _write(path, report: dict) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(report))


@pytest.mark.parametrize(
    "where, given",
    [
        ("report.json", "report.json"),  # the file itself
        ("report.json", ""),  # the folder holding it
        ("train/report.json", ""),  # the executor's <split>/report.json
        ("report/train/report.json", ""),  # the CLI's report/<split>/report.json
        ("report/report.json", ""),  # older CLI outputs
    ],
)
def test_read_previous_report_finds_each_layout(tmp_path, where, given):
    _write(tmp_path / where, {"where": where})
    assert job.read_previous_report(str(tmp_path / given), "train") == {"where": where}


def test_read_previous_report_prefers_the_split_folder_over_the_old_layout(tmp_path):
    _write(tmp_path / "report" / "report.json", {"split": None})
    _write(tmp_path / "report" / "eval" / "report.json", {"split": "eval"})
    assert job.read_previous_report(str(tmp_path), "eval") == {"split": "eval"}
    assert job.read_previous_report(str(tmp_path), "train") == {"split": None}


def test_read_previous_report_fails_loudly(tmp_path):
    with pytest.raises(FileNotFoundError, match="no previous report.json"):
        job.read_previous_report(str(tmp_path), "train")
    (tmp_path / "report.json").write_text("{not json")
    with pytest.raises(ValueError, match="is not valid JSON"):
        job.read_previous_report(str(tmp_path), "train")
