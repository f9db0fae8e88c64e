"""Issue 12, bug 3: a wrong record format, a wrong id feature or empty records used to become uniform sampling in
silence (exit 0). The record format is now detected when not given, and runs beyond max_missing_record_rate /
max_reject_rate fail naming the likely cause and the option that accepts them."""

import json
import os

import helpers
import numpy as np
import pytest
from record_builders import classify_log

from tfx_curator.components.curator.options import CurationOptions
from tfx_curator.components.curator.reading import records
from tfx_curator.components.curator.reporting import data_quality
from tfx_curator.pipelines import cli

N = 400


@pytest.fixture(scope="module")
def inputs(tmp_path_factory):
    root = tmp_path_factory.mktemp("quality")
    ids, labels, preds, _ = helpers.synthetic_split(N, seed=2)
    helpers.write_tfrecords(
        str(root / "ex" / "data.gz"), [helpers.make_example(i, y) for i, y in zip(ids, labels)]
    )
    helpers.write_tfrecords(
        str(root / "plain" / "r.gz"), [helpers.make_record(i, p) for i, p in zip(ids, preds)]
    )
    helpers.write_tfrecords(
        str(root / "logs" / "r.gz"),
        [classify_log([i], [p]).SerializeToString() for i, p in zip(ids, preds)],
    )
    helpers.write_tfrecords(str(root / "empty" / "r.gz"), [])
    return root


def _curate(inputs, out, records, *extra):
    argv = ["curate", "--examples", str(inputs / "ex" / "*"), "--records", str(inputs / records / "*")]
    return cli.main(argv + ["--output", str(out), "--no-statistics", *extra])


def test_detect_format():
    plain = [helpers.make_record(b"a", 0.5), helpers.make_example(b"b", 1, x=2.0)]
    logs = [classify_log([b"a"], [0.5]).SerializeToString()]
    assert records.detect_format(plain) == "plain"
    assert records.detect_format(logs * 3) == "predictionlog"
    assert records.detect_format([]) is None
    assert not any(records.is_prediction_log(raw) for raw in plain)


@pytest.mark.parametrize("fmt", ["plain", "logs"])
def test_record_format_is_detected_and_reported(inputs, tmp_path, capsys, fmt):
    assert _curate(inputs, tmp_path / "out", fmt) == 0
    report = json.load(open(tmp_path / "out" / "report" / "train" / "report.json"))
    expected = "plain" if fmt == "plain" else "predictionlog"
    assert report["forward_records"]["format"] == expected
    assert report["forward_records"]["format_detection"].startswith("auto: detected")
    assert report["forward_records"]["decoded"] == N
    assert report["splits"]["train"]["examples_without_record"] == 0
    assert f"forward records: format {expected!r} (auto: detected" in capsys.readouterr().out


@pytest.mark.parametrize(
    "records_dir, fmt, cause",
    [
        ("logs", "plain", "check id_feature, and record_format ('plain'"),  # PredictionLog read as plain
        ("plain", "predictionlog", "the records are not 'predictionlog' records"),  # plain read as logs
        ("empty", "auto", "the --records files hold no record: check the records file pattern"),
    ],
)
def test_wrong_format_or_empty_records_fail_naming_the_cause(
    inputs, tmp_path, capsys, records_dir, fmt, cause
):
    out = tmp_path / "out"
    with pytest.raises(SystemExit) as e:
        _curate(inputs, out, records_dir, "--records-format", fmt)
    assert e.value.code == 1
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1, err
    assert f"{N} of {N} examples have no forward record, more than max_missing_record_rate 0.5" in err
    assert cause in err and "--max-missing-record-rate" in err
    assert not out.exists() and os.listdir(tmp_path) == []  # nothing published
    # the limit is an option: accepting the rate runs (uniform sampling, as asked)
    assert (
        _curate(
            inputs,
            out,
            records_dir,
            "--records-format",
            fmt,
            "--max-missing-record-rate",
            "1",
            "--max-reject-rate",
            "1",
        )
        == 0
    )


def _report(read=100, rejected=0, with_record=100, without=0, decoded=100, rec_rejected=0, orphans=0):
    return {
        "splits": {
            "train": {
                "accounting": {"examples_read": read, "rejected": rejected},
                "rejects_by_reason": {"missing_label": rejected} if rejected else {},
                "examples_with_record": with_record,
                "examples_without_record": without,
            }
        },
        "forward_records": {
            "decoded": decoded,
            "rejected": rec_rejected,
            "orphans": orphans,
            "rejects_by_reason": {"bad_prediction_type": rec_rejected} if rec_rejected else {},
        },
    }


def test_check_limits():
    options = CurationOptions()
    data_quality.check(_report(), options)
    data_quality.check(_report(with_record=50, without=50), options)  # exactly the limit: accepted
    with pytest.raises(data_quality.DataQualityError, match="60 of 100 examples rejected.*missing_label 60"):
        data_quality.check(_report(read=100, rejected=60, with_record=40), options)
    with pytest.raises(data_quality.DataQualityError, match="900 of 1000 forward records rejected"):
        data_quality.check(_report(decoded=100, rec_rejected=900), options)
    with pytest.raises(data_quality.DataQualityError, match="match no example: check id_feature"):
        data_quality.check(_report(with_record=10, without=90, decoded=10, orphans=500), options)
    # strategies that use no forward record do not need them
    data_quality.check(_report(with_record=0, without=100, decoded=0), CurationOptions(strategy="uniform"))
    data_quality.check(_report(with_record=0, without=100), CurationOptions(max_missing_record_rate=1.0))
    assert np.isclose(CurationOptions().max_reject_rate, 0.5)
