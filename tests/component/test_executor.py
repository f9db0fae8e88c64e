"""Curator executor on small data with a known outcome: artifacts in, curated splits + report out."""

import json
import math
import os

import helpers
import numpy as np
import pytest
import tensorflow as tf
from sklearn.metrics import log_loss, roc_auc_score
from tfx.components.util import examples_utils
from tfx.types import artifact_utils, standard_artifacts

from tfx_curator.components.curator import component, executor
from tfx_curator.components.curator.options import CurationOptions


def _examples_artifact(uri, splits):
    a = standard_artifacts.Examples()
    a.uri = uri
    a.split_names = artifact_utils.encode_split_names(list(splits))
    return a


@pytest.fixture(scope="module")
def synthetic(tmp_path_factory):
    root = str(tmp_path_factory.mktemp("synthetic"))
    data = helpers.write_synthetic(root, 3000, seed=3, missing=0.1, splits=("train", "eval"))
    return root, data


def _run(root, tmp_path, previous_report=None, statistics=None, **params):
    examples = _examples_artifact(os.path.join(root, "examples"), ["train", "eval"])
    records = _examples_artifact(os.path.join(root, "records_artifact"), ["all"])
    os.makedirs(os.path.join(records.uri, "Split-all"), exist_ok=True)
    src = os.path.join(root, "records", "records.gz")
    dst = os.path.join(records.uri, "Split-all", "records.gz")
    if not os.path.exists(dst):
        tf.io.gfile.copy(src, dst)
    curated = standard_artifacts.Examples()
    curated.uri = str(tmp_path / "curated")
    report = component.CurationReport()
    report.uri = str(tmp_path / "report")
    inputs = {"examples": [examples], "forward_records": [records]}
    if previous_report is not None:
        inputs["previous_report"] = [previous_report]
    if statistics is not None:
        inputs["statistics"] = [statistics]
    executor.Executor().Do(
        inputs,
        {"curated_examples": [curated], "curation_report": [report]},
        params,
    )
    return curated, report


def test_executor_curates_listed_splits_and_copies_the_others(synthetic, tmp_path):
    root, data = synthetic
    options = dict(budget=0.2, mode="global", seed=7, splits=["train"])
    curated, report = _run(root, tmp_path, **options)

    assert artifact_utils.decode_split_names(curated.split_names) == ["train", "eval"]
    assert examples_utils.get_file_format(curated) == "tfrecords_gzip"
    got = helpers.curated_weights(os.path.join(curated.uri, "Split-train", "data_tfrecord-*.gz"))
    assert got == helpers.expected_selection(CurationOptions(**options), data["train"])
    has = ~np.isnan(data["train"][2])
    # eval copied byte for byte
    assert helpers.read_tfrecords(os.path.join(curated.uri, "Split-eval", "*")) == helpers.read_tfrecords(
        os.path.join(root, "examples", "Split-eval", "*")
    )
    rep = json.load(open(os.path.join(report.uri, "report.json")))
    acc = rep["splits"]["train"]["accounting"]
    assert acc == {
        "examples_read": 3000,
        "selected": len(got),
        "not_selected": 3000 - len(got),
        "rejected": 0,
        "holds": True,
    }
    assert rep["splits"]["train"]["examples_without_record"] == int((~has).sum())
    assert os.path.exists(os.path.join(report.uri, "report.html"))
    assert report.get_int_custom_property("selected") == len(got)
    assert not rep["splits"]["train"]["unbiasedness"]["mismatched"]
    sample = rep["splits"]["train"]["unbiasedness"]["raw_statistics"]  # budget 0.2: a raw sample at rate 0.8
    assert sample["source"] == "sample" and sample["rate"] == pytest.approx(0.8)
    assert sample["accepted"] == 3000 and abs(sample["sampled"] - 2400) <= 5 * math.sqrt(3000 * 0.8 * 0.2)
    assert sorted(os.listdir(tmp_path)) == ["curated", "report"]  # published, no staging folder left


def test_raw_statistics_are_read_from_the_statistics_input_not_computed(synthetic, tmp_path):
    """StatisticsGen's output for the examples: its train statistics are the raw statistics (no raw pass in
    the job, the report names the file); eval, which it lacks, is computed from a raw sample, and says so."""
    import tensorflow_data_validation as tfdv

    root, _ = synthetic
    statistics = standard_artifacts.ExampleStatistics()
    statistics.uri = str(tmp_path / "StatisticsGen")
    statistics.split_names = artifact_utils.encode_split_names(["train"])
    stats_file = os.path.join(statistics.uri, "Split-train", "FeatureStats.pb")
    raw = tfdv.generate_statistics_from_tfrecord(os.path.join(root, "examples", "Split-train", "*"))
    tf.io.gfile.makedirs(os.path.dirname(stats_file))
    with tf.io.gfile.GFile(stats_file, "wb") as f:
        f.write(raw.SerializeToString())
    _, report = _run(root, tmp_path / "out", statistics=statistics, budget=0.1, splits=["train", "eval"])

    rep = json.load(open(os.path.join(report.uri, "report.json")))
    train, evaluation = (rep["splits"][s]["unbiasedness"] for s in ("train", "eval"))
    assert train["raw_statistics"] == {"source": "statistics", "uri": stats_file, "examples": 3000}
    assert train["statistics"]["raw"] == stats_file and train["features"] and not train["mismatched"]
    assert not os.path.exists(os.path.join(report.uri, "statistics", "Split-train", "raw.pb"))  # not computed
    assert evaluation["raw_statistics"]["source"] == "sample"
    assert (
        evaluation["raw_statistics"]["note"]
        == "split not in the statistics input: raw statistics computed by the job"
    )
    assert os.path.exists(os.path.join(report.uri, "statistics", "Split-eval", "raw.pb"))
    html = open(os.path.join(report.uri, "report.html")).read()
    assert f"from the statistics input {stats_file}" in html and "from a deterministic sample of" in html


def test_executor_rejects_unknown_split(synthetic, tmp_path):
    root, _ = synthetic
    with pytest.raises(ValueError, match="not in the examples artifact"):
        _run(root, tmp_path, splits=["nope"])


def test_executor_publishes_nothing_when_the_job_fails(synthetic, tmp_path):
    """Issue 12, bug 2: a failed run leaves the output artifacts' folders as the orchestrator made them (empty)
    and no staging folder; a successful run leaves only the artifacts' folders."""
    root, _ = synthetic
    broken = tmp_path / "broken"
    for split in ("train", "eval"):
        src = os.path.join(root, "examples", f"Split-{split}", "data.gz")
        data = open(src, "rb").read()
        os.makedirs(broken / f"Split-{split}")
        (broken / f"Split-{split}" / "data.gz").write_bytes(
            data if split == "eval" else data[: len(data) // 2]
        )
    curated, report = standard_artifacts.Examples(), component.CurationReport()
    curated.uri, report.uri = str(tmp_path / "out" / "curated"), str(tmp_path / "out" / "report")
    os.makedirs(curated.uri)
    os.makedirs(report.uri)
    records = _examples_artifact(os.path.join(root, "records"), ["all"])
    records.uri = os.path.join(root, "records_artifact")
    os.makedirs(os.path.join(records.uri, "Split-all"), exist_ok=True)
    dst = os.path.join(records.uri, "Split-all", "records.gz")
    if not os.path.exists(dst):
        tf.io.gfile.copy(os.path.join(root, "records", "records.gz"), dst)
    with pytest.raises(Exception, match="corrupt or truncated"):
        executor.Executor().Do(
            {"examples": [_examples_artifact(str(broken), ["train", "eval"])], "forward_records": [records]},
            {"curated_examples": [curated], "curation_report": [report]},
            {"splits": ["train"], "compute_statistics": False},
        )
    assert sorted(os.listdir(tmp_path / "out")) == ["curated", "report"]
    assert not os.listdir(curated.uri) and not os.listdir(report.uri)


def test_served_model_figures_are_report_properties_and_drift_uses_the_previous_report(synthetic, tmp_path):
    root, data = synthetic
    _, first = _run(root, tmp_path / "first", budget=0.2, splits=["train"])
    _, labels, preds, _ = data["train"]
    has = ~np.isnan(preds)
    served = json.load(open(os.path.join(first.uri, "report.json")))["splits"]["train"]["served_model"]
    bound = served["all"]["auc_error_bound"]
    assert (
        abs(first.get_float_custom_property("served_auc") - roc_auc_score(labels[has], preds[has])) <= bound
    )
    assert first.get_float_custom_property("served_log_loss") == pytest.approx(
        log_loss(labels[has], preds[has]), abs=1e-6
    )
    calibration = preds[has].mean() / labels[has].mean()
    assert first.get_float_custom_property("served_calibration") == pytest.approx(calibration, rel=1e-6)
    assert first.get_int_custom_property("served_examples") == int(has.sum())
    assert first.get_int_custom_property("served_drift_flags") == 0
    assert served["examples_without_record"] == int((~has).sum())
    assert "drift" not in served and served["curated_cross_check"]["mismatched"] == []

    # the same span again, with the first run's report as previous_report: no change, no flag
    _, second = _run(root, tmp_path / "second", previous_report=first, budget=0.2, splits=["train"])
    drift = json.load(open(os.path.join(second.uri, "report.json")))["splits"]["train"]["served_model"][
        "drift"
    ]
    assert drift["psi"] == 0.0 and drift["flags"] == []
    assert drift["changes"]["auc"]["change"] == 0.0
    assert second.get_int_custom_property("served_drift_flags") == 0
    html = open(os.path.join(second.uri, "report.html")).read()
    assert html.index("Served model on split train") < html.index("<h2>Options</h2>")
    assert "reliability plot" in html and "Drift since the previous run" in html
