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

from tfx_curator.components.curator import options as options_lib
from tfx_curator.components.curator import publish
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
    "max_missing_record_rate": 0.9,
    "max_reject_rate": 0.25,
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
        _console_script() + list(argv), capture_output=True, text=True, env=env, timeout=helpers.HANG_GUARD_S
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


def test_help_text_is_the_options_field_metadata():
    helps = cli.field_help()
    for name in FIELDS:
        if name not in cli.CLI_HELP:
            assert helps[name] == options_lib.option_help(name)
    assert "water-filling within random mini-batches" in helps["mode"]
    for strategy in options_lib.STRATEGIES:  # the strategy help lists every strategy
        assert strategy in helps["strategy"]


def test_flags_help_and_options_import_neither_tensorflow_beam_nor_tfx():
    """Bad options fail at once: the parsers (the CLI's and the Kubeflow compiler's), their help and the
    options need none of the heavy libraries (the CLI's record helpers live outside the Beam module)."""
    code = (
        "import sys\n"
        "from tfx_curator.kubeflow import runner\n"
        "from tfx_curator.pipelines import cli\n"
        "runner.build_parser().format_help()\n"
        "args = cli.build_parser().parse_args(['validate-records', '--records', 'r', '--hidden-norm-key', 'none'])\n"
        "assert cli.options_from_args(args, cli.VALIDATE_FIELDS).record_config_args()['hidden_norm_key'] is None\n"
        "print(sorted(m for m in ('tensorflow', 'apache_beam', 'tfx') if m in sys.modules))\n"
    )
    proc = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=helpers.HANG_GUARD_S
    )
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == "[]"


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
    squeezed = "".join(proc.stdout.split())  # help lines wrap at spaces and hyphens
    for name, text in cli.field_help().items():
        assert cli.flag_names(name)[0] in proc.stdout
        assert "".join(text.split()) in squeezed, f"help of {name} missing from `curate --help`"
    for strategy in ("stratified_loss", "stratified_grad_norm", "negative_downsampling"):
        assert strategy in proc.stdout
    for flag in (
        "--examples",
        "--records",
        "--output",
        "--beam-arg",
        "--no-statistics",
        "--overwrite",
        "--raw-statistics",
    ):
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

    report = json.load(open(os.path.join(out, "report", "train", "report.json")))
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
    html = open(os.path.join(out, "report", "train", "report.html")).read()
    assert html.index("<h2>Verdict</h2>") < html.index("<h2>Options</h2>")  # the verdict comes first
    assert (
        "<b>Split train: OK</b>" in html and html.count("<svg ") == 5
    )  # four charts, the reliability diagram
    assert json.loads(printed.strip().splitlines()[-1]) == acc
    assert f"selected {len(got)}" in printed

    # a second run into the same folder is refused; --overwrite replaces this split's outputs
    with pytest.raises(SystemExit) as e:
        cli.main(_argv(root, out, "--no-statistics"))
    assert e.value.code == 2 and "--overwrite" in capsys.readouterr().err
    assert os.listdir(os.path.join(out, "Split-train"))
    assert cli.check_output(out, "train", overwrite=True) == ["Split-train", "report/train"]
    assert sorted(os.listdir(out)) == ["Split-train", "report"]  # published: no staging left next to it
    assert not [n for n in os.listdir(tmp_path) if n != "out"]


def test_curate_reads_the_raw_statistics_given(synthetic, tmp_path, capsys):
    """--raw-statistics DIR (StatisticsGen's layout): the raw statistics are read from it, not computed."""
    import tensorflow_data_validation as tfdv

    root, _ = synthetic
    with pytest.raises(SystemExit) as e:
        cli.main(_argv(root, str(tmp_path / "out0"), "--raw-statistics", str(tmp_path / "nowhere")))
    assert e.value.code == 2 and "--raw-statistics: no folder" in capsys.readouterr().err
    stats_file = tmp_path / "stats" / "Split-train" / "FeatureStats.pb"
    stats_file.parent.mkdir(parents=True)
    raw = tfdv.generate_statistics_from_tfrecord(os.path.join(root, "examples", "Split-train", "*"))
    stats_file.write_bytes(raw.SerializeToString())
    out = str(tmp_path / "out")
    assert cli.main(_argv(root, out, "--raw-statistics", str(tmp_path / "stats"))) == 0
    unb = json.load(open(os.path.join(out, "report", "train", "report.json")))["splits"]["train"][
        "unbiasedness"
    ]
    assert unb["raw_statistics"] == {"source": "statistics", "uri": str(stats_file), "examples": 2000}
    assert unb["features"] and not os.path.exists(
        os.path.join(out, "report", "train", "statistics", "Split-train", "raw.pb")
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


# ---------------------------------------------------------------------------------------------------------
# Crash-safe outputs (issue 12)
# ---------------------------------------------------------------------------------------------------------


def _files_and_bytes(folder: str) -> dict[str, bytes]:
    out = {}
    for root, _, files in os.walk(folder):
        for name in files:
            path = os.path.join(root, name)
            out[os.path.relpath(path, folder)] = open(path, "rb").read()
    return out


@pytest.mark.parametrize("how", ["examples_inside", "records_inside", "output_inside_input", "symlink"])
def test_overwrite_refuses_inputs_overlapping_the_output(synthetic, tmp_path, capsys, how):
    """Issue 12, bug 1: `--overwrite` with the inputs under the output used to replace them by an empty shard."""
    root, _ = synthetic
    out = tmp_path / "out"
    shutil.copytree(os.path.join(root, "examples", "Split-train"), out / "Split-train")
    shutil.copytree(os.path.join(root, "records"), out / "records")
    examples, records, output = str(out / "Split-train" / "*.gz"), os.path.join(root, "records", "*.gz"), out
    if how == "records_inside":
        examples, records = os.path.join(root, "examples", "Split-train", "*"), str(out / "records" / "*.gz")
    elif how == "output_inside_input":  # the glob would read the output folder on the next run
        examples, output = str(out / "*" / "*.gz"), out / "new"
    elif how == "symlink":  # the output named through a link to the folder holding the inputs
        os.symlink(out, tmp_path / "link")
        output = tmp_path / "link"
    before = _files_and_bytes(str(out))
    argv = ["curate", "--examples", examples, "--records", records, "--output", str(output), "--overwrite"]
    with pytest.raises(SystemExit) as e:
        cli.main(argv + ["--no-statistics"])
    assert e.value.code == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "a run never writes where it reads" in err, err
    assert _files_and_bytes(str(out)) == before  # inputs untouched


def test_failed_overwrite_keeps_the_previous_output(synthetic, tmp_path, capsys):
    """Issue 12, bug 2: a failing `--overwrite` run (a corrupt input) used to delete the previous good output."""
    root, _ = synthetic
    out = str(tmp_path / "out")
    assert cli.main(_argv(root, out, "--no-statistics")) == 0
    before = _files_and_bytes(out)
    corrupt = tmp_path / "corrupt"
    corrupt.mkdir()
    data = open(os.path.join(root, "examples", "Split-train", "data.gz"), "rb").read()
    (corrupt / "data.gz").write_bytes(data[: len(data) // 2])
    argv = _argv(root, out, "--no-statistics", "--overwrite", "--seed", "3")
    argv[argv.index("--examples") + 1] = str(corrupt / "*.gz")
    with pytest.raises(SystemExit) as e:
        cli.main(argv)
    err = capsys.readouterr().err.strip()
    assert e.value.code == 1 and len(err.splitlines()) == 1 and "corrupt or truncated" in err, err
    assert _files_and_bytes(out) == before
    assert os.listdir(tmp_path) == ["corrupt", "out"]  # no staging folder left


def _complete(out: str) -> bool:
    """A published output: a report whose accounting holds, beside the curated files it describes."""
    report = os.path.join(out, "report", "train", "report.json")
    if not os.path.exists(report):
        return False
    acc = json.load(open(report))["splits"]["train"]["accounting"]
    return acc["holds"] and bool(tf.io.gfile.glob(os.path.join(out, "Split-train", "data_tfrecord-*.gz")))


KILL_MOMENTS = {
    "start": lambda out: True,
    "staging": lambda out: bool(tf.io.gfile.glob(out + ".tmp-*")),
    "curated_written": lambda out: bool(tf.io.gfile.glob(out + ".tmp-*/Split-train/*")),
    "figures": lambda out: bool(tf.io.gfile.glob(out + ".tmp-*/report/train/_job/figures.json")),
    "report": lambda out: bool(tf.io.gfile.glob(out + ".tmp-*/report/train/report.json")),
    "publishing": lambda out: bool(
        tf.io.gfile.glob(out + ".tmp-*/_COMPLETE") or tf.io.gfile.glob(out + ".old-*")
    ),
}


@pytest.mark.slow
def test_sigkill_at_any_moment_leaves_the_old_or_the_complete_new_output(synthetic, tmp_path):
    """Issue 12, must show: SIGKILL the CLI at several moments of an `--overwrite` run; no curated file is ever
    visible without a complete report, and the previous output stays intact until the new one replaces it."""
    import signal
    import time

    root, _ = synthetic
    out = str(tmp_path / "out")
    first = _run_cli(*_argv(root, out, "--seed", "1"))
    assert first.returncode == 0, first.stderr
    old = _files_and_bytes(out)
    outcomes = {}
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3")
    for moment, ready in KILL_MOMENTS.items():
        proc = subprocess.Popen(
            _console_script() + _argv(root, out, "--seed", "2", "--overwrite"),
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            env=env,
        )
        deadline = time.monotonic() + 300
        while proc.poll() is None and not ready(out) and time.monotonic() < deadline:
            time.sleep(0.002)
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        # what a reader sees right after the kill: the old output, the complete new one, or (between the two
        # renames of a publish) nothing at all; never curated files without their report
        now = _files_and_bytes(out) if os.path.exists(out) else None
        assert now is None or now == old or _complete(out), (moment, sorted(now or {}))
        assert now is not None or tf.io.gfile.glob(out + ".tmp-*/_COMPLETE"), moment
        publish.recover(out)  # what the next run does first
        now = _files_and_bytes(out)
        assert now == old or _complete(out), moment
        assert os.listdir(tmp_path) == ["out"], moment
        outcomes[moment] = "old" if now == old else "new"
        if now != old:  # the kill came after the publish: restore the old output for the next moment
            shutil.rmtree(out)
            _write_files(out, old)
    assert outcomes["start"] == "old" and outcomes["curated_written"] == "old", outcomes
    print("kill outcomes:", outcomes)


def _write_files(folder: str, files: dict[str, bytes]) -> None:
    for rel, data in files.items():
        os.makedirs(os.path.dirname(os.path.join(folder, rel)), exist_ok=True)
        open(os.path.join(folder, rel), "wb").write(data)


def test_splits_curated_by_separate_runs_keep_their_own_reports(synthetic, tmp_path, capsys):
    """Issue 12, bug 7: `--split-name eval` into an output holding train was refused, and with --overwrite it
    deleted train's report. Reports now live in report/<split>/; overwriting one split keeps the other's."""
    root, _ = synthetic
    out = str(tmp_path / "out")
    assert cli.main(_argv(root, out, "--no-statistics")) == 0
    train = _files_and_bytes(out)
    assert cli.main(_argv(root, out, "--no-statistics", "--split-name", "eval", "--seed", "4")) == 0
    after = _files_and_bytes(out)
    assert {k: v for k, v in after.items() if k in train} == train  # train's outputs untouched
    for split in ("train", "eval"):
        report = json.load(open(os.path.join(out, "report", split, "report.json")))
        assert list(report["splits"]) == [split] and report["splits"][split]["accounting"]["holds"]
        assert tf.io.gfile.glob(os.path.join(out, f"Split-{split}", "data_tfrecord-*.gz"))
    # overwriting train replaces train's outputs only
    assert cli.main(_argv(root, out, "--no-statistics", "--overwrite", "--seed", "9")) == 0
    final = _files_and_bytes(out)
    assert {k: v for k, v in final.items() if "eval" in k} == {k: v for k, v in after.items() if "eval" in k}
    assert json.load(open(os.path.join(out, "report", "train", "report.json")))["options"]["seed"] == 9


def test_a_report_of_the_older_shared_layout_is_kept_or_replaced_by_its_split(tmp_path):
    out = tmp_path / "out"
    (out / "report").mkdir(parents=True)
    (out / "report" / "report.json").write_text(json.dumps({"splits": {"train": {}}}))
    assert "report/report.json" in cli.split_outputs(str(out), "train")
    assert cli.split_outputs(str(out), "eval") == ["Split-eval", "report/eval"]
    with pytest.raises(cli.CliError, match="--overwrite"):
        cli.check_output(str(out), "train", overwrite=False)
    (tmp_path / "file").write_text("")
    with pytest.raises(cli.CliError, match="is a file"):
        cli.check_output(str(tmp_path / "file"), "train", overwrite=True)


@pytest.mark.parametrize(
    "signame, code, moment",
    [("SIGINT", 130, "curated_written"), ("SIGTERM", 143, "staging"), ("SIGTERM", 143, "figures")],
)
def test_sigint_and_sigterm_stop_at_once_and_remove_temporary_output(
    synthetic, tmp_path, signame, code, moment
):
    """Issue 12, bug 4: Ctrl-C was once swallowed (exit 0), once left the process hung for 10 minutes."""
    import signal
    import time

    root, _ = synthetic
    out = str(tmp_path / "out")
    os.makedirs(os.path.join(out, "Split-eval"))
    open(os.path.join(out, "Split-eval", "keep.gz"), "wb").write(b"previous output")
    proc = subprocess.Popen(
        _console_script() + _argv(root, out),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3"),
    )
    deadline = time.monotonic() + 300
    while proc.poll() is None and not KILL_MOMENTS[moment](out) and time.monotonic() < deadline:
        time.sleep(0.002)
    assert proc.poll() is None, "the run ended before the signal"
    sent = time.monotonic()
    proc.send_signal(getattr(signal, signame))
    _, err = proc.communicate(timeout=900)
    waited = time.monotonic() - sent
    assert proc.returncode == code, err
    assert waited < 120, waited  # a hang guard (the bug hung for 10 minutes); loaded CI machines are slow
    lines = [line for line in err.splitlines() if "interrupted" in line]
    assert lines == [
        f"tfx-curator curate: interrupted by {signame}: temporary output removed, the output "
        "folder is unchanged"
    ], err
    assert "Traceback" not in err
    assert _files_and_bytes(out) == {os.path.join("Split-eval", "keep.gz"): b"previous output"}
    assert os.listdir(tmp_path) == ["out"]  # no staging folder left


@pytest.mark.parametrize("odd", ["int64", "bytes"])
def test_validate_records_reports_mixed_types_as_an_anomaly(tmp_path, capsys, odd):
    """Issue 12, bug 5: one int64 `prediction` among floats gave a 51-line traceback; a bytes one, "Unable to
    merge incompatible type". Both are anomalies now (exit 1, the feature, the counts and the first record)."""
    records = [helpers.make_record(f"r{i}".encode(), 0.5) for i in range(40)]
    bad = tf.train.Example()
    bad.features.feature["example_id"].bytes_list.value.append(b"odd")
    if odd == "int64":
        bad.features.feature["prediction"].int64_list.value.append(1)
    else:
        bad.features.feature["prediction"].bytes_list.value.append(b"0.5")
    helpers.write_tfrecords(str(tmp_path / "a.gz"), records)
    helpers.write_tfrecords(str(tmp_path / "b.gz"), [bad.SerializeToString()] * 2)
    assert cli.main(["validate-records", "--records", str(tmp_path / "*.gz")]) == 1
    out = capsys.readouterr().out
    assert (
        f"ANOMALY prediction: Mixed types - float_list in 40 record(s), {odd}_list in 2 record(s) "
        f"(first: {tmp_path / 'b.gz'} record 0)" in out
    ), out


def test_a_glob_matching_a_folder_is_refused_by_the_cli_and_by_the_job(synthetic, tmp_path, capsys):
    """Issue 12, bug 6: the CLI's check skipped folders, then the job failed with `Is a directory`."""
    import apache_beam as beam

    from tfx_curator.components.curator.beam import job
    from tfx_curator.components.curator.reading import tfrecord_files

    root, _ = synthetic
    examples = tmp_path / "examples"
    shutil.copytree(os.path.join(root, "examples", "Split-train"), examples)
    (examples / "sub").mkdir()
    pattern = str(examples / "*")
    argv = _argv(root, str(tmp_path / "out"), "--no-statistics")
    argv[argv.index("--examples") + 1] = pattern
    with pytest.raises(SystemExit) as e:
        cli.main(argv)
    err = capsys.readouterr().err.strip()
    assert e.value.code == 2 and len(err.splitlines()) == 1, err
    assert f"matches 1 folder(s), e.g. {examples / 'sub'}: input globs must match TFRecord files only" in err
    # the job (as the TFX executor runs it) says the same, before any work
    with pytest.raises(tfrecord_files.InputFilesError, match="input globs must match TFRecord files only"):
        job.run(
            beam.Pipeline,
            {"train": pattern},
            os.path.join(root, "records", "*"),
            CurationOptions(compute_statistics=False),
            str(tmp_path / "c"),
            str(tmp_path / "r"),
        )
    assert sorted(os.listdir(tmp_path)) == ["examples"]


def test_version_summary_quiet_start_up_and_debug(synthetic, tmp_path):
    """Issue 12, experience: --version; no TensorFlow/Beam start-up noise; a summary with the record figures and
    the notes; a data error in one line, its traceback with --debug."""
    root, _ = synthetic
    version = _run_cli("--version")
    assert version.returncode == 0 and version.stdout.startswith("tfx-curator 0.")
    env = {k: v for k, v in os.environ.items() if k != "TF_CPP_MIN_LOG_LEVEL"}
    out = str(tmp_path / "out")
    proc = subprocess.run(
        _console_script() + _argv(root, out, "--no-statistics"),
        capture_output=True,
        text=True,
        env=env,
        timeout=helpers.HANG_GUARD_S,
    )
    assert proc.returncode == 0, proc.stderr
    assert proc.stderr.strip() == "", proc.stderr  # no cuFFT/cuDNN/cuBLAS lines, no snappy warning
    assert "forward records: format 'plain' (auto: detected from the first 64 records" in proc.stdout
    assert "orphans (no example) 0" in proc.stdout and "note: " in proc.stdout
    assert "accounting holds: publishing" in proc.stdout
    bad = tmp_path / "bad.gz"
    bad.write_bytes(b"not gzip at all")
    argv = _argv(root, str(tmp_path / "out2"), "--no-statistics")
    argv[argv.index("--records") + 1] = str(bad)
    plain = _run_cli(*argv)
    assert plain.returncode == 1 and "Traceback" not in plain.stderr, plain.stderr
    assert "is named *.gz but is not gzip-compressed" in plain.stderr.strip().splitlines()[-1]
    debug = _run_cli(*argv, "--debug")
    assert debug.returncode == 1 and "Traceback" in debug.stderr


def test_curate_reports_the_served_model_and_its_drift(synthetic, tmp_path, capsys):
    root, data = synthetic
    first = str(tmp_path / "first")
    assert cli.main(_argv(root, first, "--no-statistics")) == 0
    line = [x for x in capsys.readouterr().out.splitlines() if "served model on this span" in x][0]
    _, labels, preds, _ = data["train"]
    has = ~np.isnan(preds)
    served = json.load(open(os.path.join(first, "report", "train", "report.json")))["splits"]["train"][
        "served_model"
    ]
    assert f"auc {served['all']['auc']:.4f}" in line and f"on {int(has.sum())} examples" in line
    assert "PSI" not in line

    # the first run's output folder as --previous-report: same span, no drift; a tight threshold flags nothing
    # either (the figures are identical); a missing report is a clear error before anything runs
    second = str(tmp_path / "second")
    argv = _argv(root, second, "--no-statistics", "--previous-report", first, "--drift-max-psi", "0")
    assert cli.main(argv) == 0
    line = [x for x in capsys.readouterr().out.splitlines() if "served model on this span" in x][0]
    assert "PSI vs previous 0.000" in line and "DRIFT" not in line
    drift = json.load(open(os.path.join(second, "report", "train", "report.json")))["splits"]["train"][
        "served_model"
    ]
    assert drift["drift"]["flags"] == [] and drift["drift"]["changes"]["calibration"]["change"] == 0.0
    with pytest.raises(SystemExit) as e:
        cli.main(_argv(root, str(tmp_path / "third"), "--previous-report", str(tmp_path / "nothing")))
    assert e.value.code == 2 and "--previous-report: no previous report.json" in capsys.readouterr().err
    assert not os.path.exists(tmp_path / "third")
