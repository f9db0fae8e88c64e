"""job.py: finding a previous run's report.json; the unbiasedness check on a raw sample, end to end. (job.run
also runs end to end in test_determinism.py, test_portability.py, test_untrusted.py and test_fault_matrix.py.)"""

import json
import math
import os

import apache_beam as beam
import helpers
import pytest

from tfx_curator.components.curator.beam import job
from tfx_curator.components.curator.options import CurationOptions


@pytest.fixture(scope="module")
def synthetic(tmp_path_factory):
    root = str(tmp_path_factory.mktemp("synthetic"))
    helpers.write_synthetic(root, 3000, seed=11)
    return root


@pytest.mark.parametrize("strategy, mismatched", [("top_k", ["label"]), ("loss", [])])
def test_the_check_on_a_raw_sample_flags_a_biased_selection_and_only_that(
    synthetic, tmp_path, strategy, mismatched
):
    """Budget 0.1: the raw statistics describe a 40% sample of the raw examples. top_k keeps the highest losses
    without weights (mostly positives: biased by design), which the check flags on the label; importance
    sampling with its 1/p weights is flagged on nothing."""
    report = job.run(
        beam.Pipeline,
        {"train": os.path.join(synthetic, "examples", "Split-train", "*")},
        os.path.join(synthetic, "records", "*"),
        CurationOptions(budget=0.1, strategy=strategy, seed=2),
        str(tmp_path / "curated"),
        str(tmp_path / "report"),
    )
    unb = report["splits"]["train"]["unbiasedness"]
    assert unb["mismatched"] == mismatched and {r["feature"] for r in unb["features"]} == {"label", "x"}
    sample = unb["raw_statistics"]
    assert (
        sample["source"] == "sample" and sample["rate"] == pytest.approx(0.4) and sample["accepted"] == 3000
    )
    assert abs(sample["sampled"] - 1200) <= 5 * math.sqrt(3000 * 0.4 * 0.6)
    ess = report["splits"]["train"]["effective_sample_size"]
    noise = 1.36 * math.sqrt(1 / sample["sampled"] + 1 / ess)  # the sample's size, not the split's
    assert all(r["noise_95"] == pytest.approx(noise) for r in unb["features"])


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
