"""`tfx-curator` CLI: every CurationOptions field is a documented flag, bad options fail clearly, and
`curate` end to end writes exactly the selection the pure library makes, plus the report."""

import dataclasses
import json
import os
import shutil
import subprocess
import sys

import helpers
import numpy as np
import pytest
import tensorflow as tf

from tfx_curator.components.curator.options import CurationOptions
from tfx_curator.pipelines import cli

FIELDS = [f.name for f in dataclasses.fields(CurationOptions)]
# A non-default value for every field (all valid together); the flags must produce exactly these options.
NON_DEFAULT = {
    "id_feature": "uid",
    "label_feature": "y",
    "task": "regression",
    "budget": 500,
    "strategy": "grad_norm",
    "mode": "global",
    "window_size": 128,
    "p_min": 0.01,
    "mix": 0.25,
    "max_weight": 50.0,
    "seed": 42,
    "weight_feature": "w",
    "missing_record_policy": "drop",
    "duplicate_policy": "max",
    "splits": ("eval",),
    "record_format": "predictionlog",
    "prediction_key": "score",
    "hidden_norm_key": None,
    "class_label": "yes",
    "record_id_output_key": "echo_id",
    "skip_corrupt_files": True,
    "compute_statistics": False,
    "drift_max_auc_change": 0.05,
    "drift_max_calibration_change": 0.2,
    "drift_max_psi": 0.5,
}


def _console_script() -> list[str]:
    script = os.path.join(os.path.dirname(sys.executable), "tfx-curator")
    return [script] if os.path.exists(script) else [sys.executable, "-m", "tfx_curator.pipelines.cli"]


def _run_cli(*argv):
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3")
    return subprocess.run(
        _console_script() + list(argv), capture_output=True, text=True, env=env, timeout=120
    )


def _flag_args(values: dict) -> list[str]:
    args = []
    for name, value in values.items():
        flag = cli.flag_names(name)[0]
        if isinstance(value, bool):
            args.append(flag if value else "--no-" + flag[2:])
        elif name == "splits":
            args += [flag, value[0]]
        else:
            args += [flag, "none" if value is None else str(value)]
    return args


# ---------------------------------------------------------------------------------------------------------
# Flags and help
# ---------------------------------------------------------------------------------------------------------


def test_every_option_field_has_a_documented_flag():
    assert set(NON_DEFAULT) == set(FIELDS), "NON_DEFAULT must list every CurationOptions field"
    helps = cli.field_help()
    for name in FIELDS:
        assert len(helps[name]) > 15, f"CurationOptions.{name} has no help text"
    text = cli.build_parser()._subparsers._group_actions[0].choices["curate"].format_help()
    for name in FIELDS:
        for flag in cli.flag_names(name):
            assert flag in text, f"{flag} ({name}) missing from `curate --help`"


def test_help_text_comes_from_the_options_docstring():
    helps = cli.field_help()
    assert helps["strategy"].startswith("loss / grad_norm (importance sampling")
    assert "water-filling within random mini-batches" in helps["mode"]
    assert helps["prediction_key"].startswith("predict output key")  # from RecordConfig's docstring


def test_defaults_are_the_options_defaults():
    args = cli.build_parser().parse_args(["curate", "--examples", "e", "--records", "r", "--output", "o"])
    assert cli.options_from_args(args) == CurationOptions()
    assert not args.overwrite and args.beam_arg is None


def test_every_flag_sets_its_field():
    argv = ["curate", "--examples", "e", "--records", "r", "--output", "o"] + _flag_args(NON_DEFAULT)
    args = cli.build_parser().parse_args(argv + ["--beam-arg=--runner=X", "--beam-arg=--y=1"])
    assert cli.options_from_args(args) == CurationOptions(**NON_DEFAULT)
    assert args.beam_arg == ["--runner=X", "--y=1"]
    # Beam options after a final `--`
    args = cli.parse_args(cli.build_parser(), argv[:7] + ["--beam-arg=--a=1", "--", "--runner=Y", "--b", "2"])
    assert args.beam_arg == ["--a=1", "--runner=Y", "--b", "2"]
    # the alias spellings --no-statistics and --record-format, and float budgets
    args = cli.build_parser().parse_args(argv[:7] + ["--no-statistics"])
    assert cli.options_from_args(args).compute_statistics is False
    args = cli.build_parser().parse_args(argv[:7] + ["--record-format", "predictionlog", "--budget", "0.05"])
    assert cli.options_from_args(args).record_format == "predictionlog"
    assert cli.options_from_args(args).budget == 0.05


def test_console_script_help_lists_every_option():
    proc = _run_cli("curate", "--help")
    assert proc.returncode == 0, proc.stderr
    for name in FIELDS:
        assert cli.flag_names(name)[0] in proc.stdout
    for flag in ("--examples", "--records", "--output", "--beam-arg", "--no-statistics", "--overwrite"):
        assert flag in proc.stdout
    top = _run_cli("--help")
    assert top.returncode == 0 and "curate" in top.stdout and "validate-records" in top.stdout


@pytest.mark.parametrize(
    "extra, message",
    [
        (["--mix", "2"], "mix must be in [0, 1], got 2.0"),
        (["--budget", "2.5"], "budget 2.5 > 1 is a count and must be a whole number"),
        (["--strategy", "random"], "argument --strategy: invalid choice: 'random'"),
        (["--budget", "ten"], "argument --budget: not a number: 'ten'"),
        (["--weight-feature", "label"], "three different features"),
        (["--task", "regression", "--strategy", "negative_downsampling"], "needs task 'binary'"),
    ],
)
def test_bad_options_exit_2_with_a_clear_message(extra, message, tmp_path):
    proc = _run_cli("curate", "--examples", "e", "--records", "r", "--output", str(tmp_path), *extra)
    assert proc.returncode == 2
    assert message in proc.stderr
    assert "Traceback" not in proc.stderr
    assert not os.listdir(tmp_path)


def test_missing_required_argument_exits_2():
    proc = _run_cli("curate", "--examples", "e")
    assert proc.returncode == 2 and "required: --records, --output" in proc.stderr


# ---------------------------------------------------------------------------------------------------------
# Running
# ---------------------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def synthetic(tmp_path_factory):
    root = str(tmp_path_factory.mktemp("cli_data"))
    data = helpers.write_synthetic(root, 2000, seed=5, missing=0.1)
    return root, data


def _argv(root, out, *extra):
    return [
        "curate",
        "--examples",
        os.path.join(root, "examples", "Split-train", "*"),
        "--records",
        os.path.join(root, "records", "*.gz"),
        "--output",
        out,
        *extra,
    ]


def test_curate_end_to_end(synthetic, tmp_path, capsys):
    root, data = synthetic
    out = str(tmp_path / "out")
    opts = {"budget": 0.2, "mode": "global", "seed": 11, "strategy": "loss", "max_weight": 30.0}
    assert cli.main(_argv(root, out, "--json", *_flag_args(opts))) == 0
    printed = capsys.readouterr().out

    # exactly the pure library's selection, weights in the weight feature, original bytes kept
    got = {}
    for raw in helpers.read_tfrecords(os.path.join(out, "Split-train", "data_tfrecord-*.gz")):
        f = tf.train.Example.FromString(raw).features.feature
        got[f["example_id"].bytes_list.value[0]] = f["sample_weight"].float_list.value[0]
        assert f["x"].float_list.value  # the original features are still there
    assert got == helpers.expected_selection(CurationOptions(**opts), data["train"])
    has = ~np.isnan(data["train"][2])
    assert max(got.values()) <= 30.0

    report = json.load(open(os.path.join(out, "report", "report.json")))
    acc = report["splits"]["train"]["accounting"]
    assert acc == {
        "examples_read": 2000,
        "selected": len(got),
        "not_selected": 2000 - len(got),
        "rejected": 0,
        "holds": True,
    }
    assert report["options"]["max_weight"] == 30.0 and report["options"]["seed"] == 11
    assert report["splits"]["train"]["examples_without_record"] == int((~has).sum())
    assert "unbiasedness" in report["splits"]["train"]
    assert os.path.exists(os.path.join(out, "report", "report.html"))
    assert json.loads(printed.strip().splitlines()[-1]) == acc
    assert f"selected {len(got)}" in printed

    # a second run into the same folder is refused; --overwrite clears this split's outputs first
    with pytest.raises(SystemExit) as e:
        cli.main(_argv(root, out, "--no-statistics"))
    assert e.value.code == 2 and "--overwrite" in capsys.readouterr().err
    assert os.listdir(os.path.join(out, "Split-train"))
    cli._prepare_output(out, "train", overwrite=True)
    assert not os.path.exists(os.path.join(out, "Split-train")) and not os.path.exists(
        os.path.join(out, "report")
    )


def test_curate_rejects_globs_matching_nothing(synthetic, tmp_path, capsys):
    root, _ = synthetic
    argv = _argv(root, str(tmp_path / "out"))
    argv[argv.index("--records") + 1] = str(tmp_path / "nothing-*.gz")
    with pytest.raises(SystemExit) as e:
        cli.main(argv)
    assert e.value.code == 2
    err = capsys.readouterr().err
    assert "tfx-curator curate: error: --records" in err and "matches no files" in err


def test_validate_records(synthetic, tmp_path, capsys):
    root, _ = synthetic
    assert cli.main(["validate-records", "--records", os.path.join(root, "records", "*.gz")]) == 0
    assert "match the forward-record schema" in capsys.readouterr().out
    # the examples are not forward records: the prediction is missing, label and x are unexpected
    bad = str(tmp_path / "bad")
    shutil.copytree(os.path.join(root, "examples", "Split-train"), bad)
    assert cli.main(["validate-records", "--records", os.path.join(bad, "*")]) == 1
    assert "ANOMALY prediction" in capsys.readouterr().out


def test_curate_reports_the_served_model_and_its_drift(synthetic, tmp_path, capsys):
    root, data = synthetic
    first = str(tmp_path / "first")
    assert cli.main(_argv(root, first, "--no-statistics")) == 0
    line = [x for x in capsys.readouterr().out.splitlines() if "served model on this span" in x][0]
    _, labels, preds, _ = data["train"]
    has = ~np.isnan(preds)
    served = json.load(open(os.path.join(first, "report", "report.json")))["splits"]["train"]["served_model"]
    assert f"auc {served['all']['auc']:.4f}" in line and f"on {int(has.sum())} examples" in line
    assert "PSI" not in line

    # the first run's output folder as --previous-report: same span, no drift; a tight threshold flags nothing
    # either (the figures are identical); a missing report is a clear error before anything runs
    second = str(tmp_path / "second")
    argv = _argv(root, second, "--no-statistics", "--previous-report", first, "--drift-max-psi", "0")
    assert cli.main(argv) == 0
    line = [x for x in capsys.readouterr().out.splitlines() if "served model on this span" in x][0]
    assert "PSI vs previous 0.000" in line and "DRIFT" not in line
    drift = json.load(open(os.path.join(second, "report", "report.json")))["splits"]["train"]["served_model"]
    assert drift["drift"]["flags"] == [] and drift["drift"]["changes"]["calibration"]["change"] == 0.0
    with pytest.raises(SystemExit) as e:
        cli.main(_argv(root, str(tmp_path / "third"), "--previous-report", str(tmp_path / "nothing")))
    assert e.value.code == 2 and "--previous-report: no previous report.json" in capsys.readouterr().err
    assert not os.path.exists(tmp_path / "third")
