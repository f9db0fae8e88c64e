"""`tfx-curator`: the curation Beam job without TFX orchestration.

    tfx-curator curate --examples GLOB --records GLOB --output DIR [options]
    tfx-curator validate-records --records GLOB [--id-feature ...]

`curate` runs the same job as the Curator component (components/curator/beam/job.py) and writes the same files:
`<output>/Split-<split-name>/data_tfrecord-*.gz` and `<output>/report/<split-name>/` (report.json, report.html,
rejects/, statistics/: the layout of the component's CurationReport artifact, one folder per split, so that
splits curated by separate runs into one output keep their own reports). The whole output is written into
`<output>.tmp-<id>` and published with one rename once the accounting check passed (publish.py). Every field
of `CurationOptions` is a flag; its help text is the field's metadata, so flags and documentation cannot drift
from the options themselves.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import logging
import os
import re
import sys
import textwrap
import time
import warnings

from tfx_curator.components.curator import options as options_lib
from tfx_curator.components.curator import publish
from tfx_curator.components.curator.options import CurationOptions
from tfx_curator.pipelines import interrupt

PROG = "tfx-curator"
REPORT_DIR = "report"
NONE_WORDS = ("none", "")

# Flag names that differ from `--<field-name-with-dashes>` (the old spelling stays as an alias).
FLAG_NAMES = {
    "record_format": ("--records-format", "--record-format"),
    "splits": ("--split-name",),
}
# Extra spellings that set a bool field to False.
BOOL_ALIASES = {"compute_statistics": ("--no-statistics",)}
# Help that must differ on the command line (the CLI curates one split per run).
CLI_HELP = {
    "splits": "name of the split the --examples files belong to; output goes to <output>/Split-<name>/",
}


class CliError(Exception):
    """A user error: printed as `tfx-curator: error: ...`, exit code 2."""


# Errors about the data (not the code): one line and exit code 1, the traceback only with --debug. Matched by
# class name, so that checking them imports neither TensorFlow nor Beam.
DATA_ERRORS = ("DataQualityError", "CorruptFileError", "AccountingError", "InputFilesError")


def is_data_error(error: BaseException) -> bool:
    return any(cls.__name__ in DATA_ERRORS for cls in type(error).__mro__)


def one_line(error: BaseException) -> str:
    """The first line of an error's message, without Beam's `[while running ...]` or TensorFlow internals."""
    text = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
    text = re.sub(r"\s*\{\{function_node [^}]*\}\}\s*", " ", text)
    return re.sub(r"\s*\[while running '[^']*'\]\s*$", "", text).strip()


def field_help() -> dict[str, str]:
    """Help for every CurationOptions field: CLI_HELP, else the field's help metadata."""
    return {name: CLI_HELP.get(name) or options_lib.option_help(name) for name in options_lib.FIELDS}


# ---------------------------------------------------------------------------------------------------------
# Flags from CurationOptions fields
# ---------------------------------------------------------------------------------------------------------


def flag_names(field_name: str) -> tuple[str, ...]:
    return FLAG_NAMES.get(field_name, ("--" + field_name.replace("_", "-"),))


def _budget(text: str):
    try:
        return int(text) if re.fullmatch(r"\s*\d+\s*", text) else float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number: {text!r}") from None


def _optional(convert):
    def parse(text: str):
        return None if text.strip().lower() in NONE_WORDS else convert(text)

    parse.__name__ = convert.__name__
    return parse


def _converter(field: dataclasses.Field):
    """argparse `type` for a field, from its annotation (a string under `from __future__ import annotations`)."""
    if field.name == "budget":
        return _budget
    annotation = str(field.type).replace(" ", "")
    optional = annotation.endswith("|None")
    base = annotation.removesuffix("|None")
    convert = {"str": str, "int": int, "float": float}.get(base)
    if convert is None:
        raise TypeError(f"no CLI conversion for CurationOptions.{field.name}: {field.type}")
    return _optional(convert) if optional else convert


def add_option_flags(parser: argparse.ArgumentParser, only: tuple[str, ...] | None = None) -> None:
    """One flag per CurationOptions field (or per field in `only`), default and help from the dataclass."""
    helps = {name: text.replace("%", "%%") for name, text in field_help().items()}  # argparse formats help
    group = parser.add_argument_group("curation options (CurationOptions; validated before the job starts)")
    for f in dataclasses.fields(CurationOptions):
        if only is not None and f.name not in only:
            continue
        names, text = flag_names(f.name), helps[f.name]
        if f.name == "splits":
            group.add_argument(
                *names, dest=f.name, default=f.default[0], metavar="NAME", help=text + " [%(default)s]"
            )
            continue
        if str(f.type) == "bool":
            group.add_argument(
                *names, dest=f.name, action=argparse.BooleanOptionalAction, default=f.default, help=text
            )
            for alias in BOOL_ALIASES.get(f.name, ()):
                group.add_argument(
                    alias, dest=f.name, action="store_false", help="same as --no-" + names[0][2:]
                )
            continue
        kwargs = {"dest": f.name, "default": f.default, "type": _converter(f)}
        if f.name in options_lib.CHOICES:
            kwargs["choices"] = options_lib.CHOICES[f.name]
        else:
            kwargs["metavar"] = f.name.upper()
        if "None" in str(f.type):
            text += " ('none' for none)"
        group.add_argument(*names, help=text + " [%(default)s]", **kwargs)


def options_from_args(args: argparse.Namespace, only: tuple[str, ...] | None = None) -> CurationOptions:
    values = {
        f.name: getattr(args, f.name)
        for f in dataclasses.fields(CurationOptions)
        if only is None or f.name in only
    }
    if "splits" in values:
        values["splits"] = (values["splits"],)
    try:
        return CurationOptions(**values)
    except ValueError as e:
        raise CliError(str(e)) from None


# ---------------------------------------------------------------------------------------------------------
# Commands
# ---------------------------------------------------------------------------------------------------------


def _glob_or_fail(pattern: str, what: str) -> list[str]:
    """The files of an input glob, as the job will read them (tfrecord_files.list_files: a folder is an error)."""
    from tfx_curator.components.curator.reading import tfrecord_files

    try:
        files = tfrecord_files.list_files(pattern)
    except Exception as e:  # noqa: BLE001 - a folder in the glob, or any filesystem error, is a user error here
        raise CliError(
            f"{what} {one_line(e)}"
            if isinstance(e, tfrecord_files.InputFilesError)
            else f"{what} {pattern!r}: {one_line(e)}"
        ) from None
    if not files:
        raise CliError(f"{what} {pattern!r} matches no files")
    return files


LEGACY_REPORT_ENTRIES = ("report.json", "report.html", "rejects", "statistics", "_job")


def split_outputs(output: str, split: str) -> list[str]:
    """Paths, relative to `output`, that a run curating `split` replaces: its curated files and its report folder,
    plus a report of the older shared layout (`report/report.json`) when that report was this split's alone."""
    replaced = [f"Split-{split}", f"{REPORT_DIR}/{split}"]
    legacy = os.path.join(output, REPORT_DIR, "report.json")
    if publish.is_local(output) and os.path.isfile(legacy):
        try:
            with open(legacy, encoding="utf-8") as f:
                legacy_splits = set(json.load(f).get("splits", {}))
        except (OSError, ValueError):
            legacy_splits = set()
        if legacy_splits == {split}:
            replaced += [f"{REPORT_DIR}/{name}" for name in LEGACY_REPORT_ENTRIES]
    return replaced


def check_output(output: str, split: str, overwrite: bool) -> list[str]:
    """Refuse an output that is a file, or that holds this split's outputs without --overwrite (no TensorFlow
    import: this runs before any work). Returns the relative paths the run replaces."""
    if publish.exists(output) and not publish.isdir(output):
        raise CliError(f"--output {output} is a file, not a folder; choose a folder")
    replaced = split_outputs(output, split)
    existing = []
    for rel in replaced:
        path = os.path.join(output, rel) if publish.is_local(output) else f"{output.rstrip('/')}/{rel}"
        if publish.exists(path) and (not publish.isdir(path) or publish.listdir(path)):
            existing.append(path)
    if existing and not overwrite:
        raise CliError(f"output already holds {existing}; choose another --output or pass --overwrite")
    return replaced


def _beam_pipeline_factory(beam_args: list[str]):
    import apache_beam as beam
    from apache_beam.options.pipeline_options import PipelineOptions

    def make():
        return beam.Pipeline(options=PipelineOptions(beam_args))

    return make


def cmd_curate(args: argparse.Namespace) -> int:
    options = options_from_args(args)  # first: bad options fail before TF and Beam are imported
    split = options.splits[0]
    publish.recover(args.output)  # what a killed run left next to the output
    replaced = check_output(args.output, split, args.overwrite)  # an existing output is refused at once
    staging: list[str] = []
    with interrupt.Guard(
        f"{PROG} curate", lambda: publish.discard(staging[0] if staging else None, busy=True)
    ) as guard:
        try:
            report = guard.run(
                lambda: _curate(args, options, replaced, staging, guard), progress_line, PROGRESS_EVERY
            )
        except BaseException:
            publish.discard(staging[0] if staging else None)
            raise
    curated_uri, report_uri = args.output, os.path.join(args.output, REPORT_DIR, split)
    for line in summary_lines(report, split):
        print(f"[{PROG}] {line}")
    print(f"[{PROG}] curated examples: {os.path.join(curated_uri, f'Split-{split}')}")
    print(f"[{PROG}] report: {os.path.join(report_uri, 'report.html')}")
    if args.json:
        print(json.dumps(report["splits"][split]["accounting"], sort_keys=True))
    return 0


PROGRESS_EVERY = 10.0  # seconds between progress lines


def progress_line(seconds: float) -> None:
    """A progress line while the job runs: records read so far (in-process runners)."""
    files = sys.modules.get("tfx_curator.components.curator.reading.tfrecord_files")
    read = getattr(files, "PROGRESS", None)  # None until the module is imported (maybe being imported now)
    if read and read["records"]:
        print(
            f"[{PROG}] {seconds:.0f} s: {read['records']} records read, {read['files']} files done",
            flush=True,
        )
    else:
        print(f"[{PROG}] {seconds:.0f} s: starting", flush=True)


def summary_lines(report: dict, split: str) -> list[str]:
    """The run in a few lines: accounting, rejects, forward records (format, rejects, orphans), skipped files,
    the report's notes."""
    s, fr = report["splits"][split], report["forward_records"]
    acc = s["accounting"]
    lines = [
        f"read {acc['examples_read']}, selected {acc['selected']}, not selected {acc['not_selected']}, "
        f"rejected {acc['rejected']}; without a forward record {s['examples_without_record']}; "
        f"effective sample size {s['effective_sample_size']:.1f}"
    ]
    if s["rejects_by_reason"]:
        lines.append("example rejects: " + _counts(s["rejects_by_reason"]))
    lines.append(
        f"forward records: format {fr['format']!r} ({fr['format_detection']}); decoded {fr['decoded']}, "
        f"rejected {fr['rejected']}, orphans (no example) {fr['orphans']}"
        + (f"; rejects: {_counts(fr['rejects_by_reason'])}" if fr["rejects_by_reason"] else "")
    )
    skipped = s["corrupt_files"] + fr["corrupt_files"]
    if skipped:
        lines.append(
            f"skipped {len(skipped)} corrupt file(s): "
            + "; ".join(f"{c['path']} after {c['records_read']} records" for c in skipped)
        )
    lines.append(f"served model on this span: {served_summary(s.get('served_model'))}")
    lines += [f"note: {note}" for note in s["notes"]]
    return lines


def _counts(by_reason: dict[str, int]) -> str:
    return ", ".join(
        f"{reason} {n}" for reason, n in sorted(by_reason.items(), key=lambda kv: (-kv[1], kv[0]))
    )


def _curate(args, options: CurationOptions, replaced: list[str], staging: list[str], guard) -> dict:
    """Check the inputs, run the job into a staging folder (appended to `staging`), publish it; report.json."""
    split = options.splits[0]
    inputs = [("--examples", f) for f in _glob_or_fail(args.examples, "--examples")]
    inputs += [("--records", f) for f in _glob_or_fail(args.records, "--records")]
    try:
        publish.check_apart(args.output, inputs, [("--examples", args.examples), ("--records", args.records)])
    except publish.OutputConflictError as e:
        raise CliError(str(e)) from None
    beam_args = list(args.beam_arg or [])
    from tfx_curator.components.curator.beam import job

    previous = None
    if args.previous_report:
        try:
            previous = job.read_previous_report(args.previous_report, split)
        except (OSError, ValueError) as e:
            raise CliError(f"--previous-report: {e}") from None

    raw_statistics = None
    if args.raw_statistics:
        from tensorflow.io import gfile

        from tfx_curator.components.curator.reporting import unbiasedness

        if not gfile.isdir(args.raw_statistics):
            raise CliError(f"--raw-statistics: no folder {args.raw_statistics}")
        raw_statistics = unbiasedness.statistics_gen_paths(args.raw_statistics, [split])
        if not raw_statistics:
            print(
                f"[{PROG}] --raw-statistics {args.raw_statistics} has no Split-{split}/"
                f"{unbiasedness.STATISTICS_GEN_FILE}: the raw statistics are computed",
                flush=True,
            )

    print(f"[{PROG}] curating split {split!r}: {args.examples} with records {args.records}", flush=True)
    print(f"[{PROG}] options: {options.to_json()}", flush=True)
    if beam_args:
        print(f"[{PROG}] beam args: {beam_args}", flush=True)
    staging.append(publish.staging_path(args.output))  # known to the signal handler before it exists
    publish.stage(args.output, staging[0])
    publish.carry_over(args.output, staging[0], replaced)
    started, cpu = time.monotonic(), time.process_time()
    print(f"[{PROG}] running the Beam job (output staged in {staging[0]})", flush=True)
    report = job.run(
        _beam_pipeline_factory(beam_args),
        {split: args.examples},
        args.records,
        options,
        staging[0],
        os.path.join(staging[0], REPORT_DIR, split),
        previous_report=previous,
        raw_statistics=raw_statistics,
    )
    print(
        f"[{PROG}] job done in {time.monotonic() - started:.1f} s (CPU {time.process_time() - cpu:.1f} s); "
        "accounting holds: publishing",
        flush=True,
    )
    with guard.critical():
        publish.commit(staging[0], args.output)
    return report


def served_summary(section: dict | None) -> str:
    """One line: the served model's headline figures on the span, and its drift flags."""
    if not section or not section["all"].get("weight"):
        return "no example with a forward record"
    m = section["all"]
    names = ("auc", "log_loss", "calibration") if "auc" in m else ("rmse", "mae", "calibration")
    parts = [f"{name.replace('_', ' ')} {m[name]:.4f}" for name in names if m.get(name) is not None]
    text = ", ".join(parts) + f" on {section['examples_scored']} examples"
    drift = section.get("drift") or {}
    if drift.get("psi") is not None:
        text += f"; PSI vs previous {drift['psi']:.3f}"
    for flag in section["flags"]:
        text += f"; DRIFT: {flag}"
    return text


VALIDATE_FIELDS = ("id_feature", "prediction_key", "hidden_norm_key", "task")


def cmd_validate_records(args: argparse.Namespace) -> int:
    options = options_from_args(args, VALIDATE_FIELDS)
    _glob_or_fail(args.records, "--records")
    from tfx_curator.components.curator.reading import records
    from tfx_curator.schemas import forward_record

    config = records.RecordConfig(**options.record_config_args())
    anomalies = forward_record.validate_plain_records(args.records, config)
    if anomalies.anomaly_info:
        for name, info in sorted(anomalies.anomaly_info.items()):
            print(f"[{PROG}] ANOMALY {name}: {info.short_description} - {info.description}")
        print(f"[{PROG}] {len(anomalies.anomaly_info)} feature(s) do not match the forward-record schema")
        return 1
    print(f"[{PROG}] records match the forward-record schema: {args.records}")
    return 0


# ---------------------------------------------------------------------------------------------------------
# Parser
# ---------------------------------------------------------------------------------------------------------


class HelpFormatter(argparse.RawDescriptionHelpFormatter):
    """Help of the tfx-curator commands (and the Kubeflow compiler's): descriptions as written, 110 columns."""

    def __init__(self, prog):
        super().__init__(prog, max_help_position=34, width=110)


CURATE_EPILOG = textwrap.dedent(
    """\
    outputs:
      <output>/Split-<split-name>/data_tfrecord-*.gz   kept examples, original bytes + the weight feature
      <output>/report/<split-name>/report.json, .html   accounting, selection figures, unbiasedness check
      <output>/report/<split-name>/rejects/             every rejected input with its reason
    the whole output is written into <output>.tmp-<id> and published by rename once the accounting check passed:
    a failed, interrupted or killed run leaves the previous output as it was.

    examples:
      tfx-curator curate --examples 'data/span-07/*.gz' --records 'logs/2013-07/*.gz' --output out/ \\
          --budget 0.1 --strategy loss --mode global
      tfx-curator curate ... --beam-arg=--direct_running_mode=multi_processing --beam-arg=--direct_num_workers=2
      tfx-curator curate ... -- --runner=DataflowRunner --project=P --region=R --temp_location=gs://B/tmp \\
          --setup_file=./setup.py      (Beam options after `--`)
    """
)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog=PROG,
        description="Curate served examples by importance sampling on their forward records "
        "(Dong et al. 2021, 'One Backward from Ten Forward').",
        formatter_class=HelpFormatter,
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {version()}")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    curate = sub.add_parser(
        "curate",
        help="join forward records to examples, sample, write curated weighted examples and a report",
        description="Join forward records to labelled examples by id, score them, choose inclusion "
        "probabilities under the budget (water-filling), sample deterministically and write the kept "
        "examples with weight 1/p, plus the curation report. Same Beam job as the Curator component.",
        epilog=CURATE_EPILOG,
        formatter_class=HelpFormatter,
    )
    io = curate.add_argument_group("inputs and outputs")
    io.add_argument(
        "--examples", required=True, metavar="GLOB", help="labelled tf.Example TFRecord files (gzip if *.gz)"
    )
    io.add_argument(
        "--records", required=True, metavar="GLOB", help="forward-record files (see --records-format)"
    )
    io.add_argument("--output", required=True, metavar="DIR", help="output folder (local, gs://, ...)")
    io.add_argument(
        "--overwrite", action="store_true", help="replace existing outputs of this split under --output"
    )
    io.add_argument("--json", action="store_true", help="also print the accounting as one JSON line")
    io.add_argument("--debug", action="store_true", help="print the traceback of data errors")
    io.add_argument(
        "--previous-report",
        metavar="PATH",
        help="the previous run's report.json (or its folder): adds the served model's drift since then",
    )
    io.add_argument(
        "--raw-statistics",
        metavar="DIR",
        help="StatisticsGen's output for these examples (DIR/Split-<split-name>/FeatureStats.pb): the "
        "unbiasedness check reads the raw statistics from it instead of computing them from a sample of the "
        "examples (a split it lacks is computed; the report says which were used)",
    )
    io.add_argument(
        "--beam-arg",
        action="append",
        metavar="ARG",
        help="a Beam pipeline option, repeatable: --beam-arg=--runner=FlinkRunner (with '='); or put them all "
        "after a final `--` (default: DirectRunner)",
    )
    add_option_flags(curate)
    curate.set_defaults(func=cmd_curate)

    validate = sub.add_parser(
        "validate-records",
        help="check plain-format forward records against the forward-record schema with TFDV",
        description="Compute TFDV statistics of plain forward records and validate them against "
        "schemas/forward_record.pbtxt (feature names from the flags below). Exit code 1 on anomalies.",
        formatter_class=HelpFormatter,
    )
    validate.add_argument("--records", required=True, metavar="GLOB", help="plain forward-record files")
    validate.add_argument("--debug", action="store_true", help="print the traceback of data errors")
    add_option_flags(validate, VALIDATE_FIELDS)
    validate.set_defaults(func=cmd_validate_records)
    return parser


def parse_args(parser: argparse.ArgumentParser, argv: list[str]) -> argparse.Namespace:
    """argparse, plus: everything after a final `--` is a Beam pipeline option (like --beam-arg)."""
    argv, passthrough = list(argv), []
    if "--" in argv:
        argv, passthrough = argv[: argv.index("--")], argv[argv.index("--") + 1 :]
    args = parser.parse_args(argv)
    if passthrough and not hasattr(args, "beam_arg"):
        parser.error(f"{args.command} takes no Beam options after --")
    if passthrough:
        args.beam_arg = (args.beam_arg or []) + passthrough
    return args


def quiet_start_up() -> None:
    """No TensorFlow start-up noise: the cuFFT/cuDNN/cuBLAS "E" lines need level 3 (`TF_CPP_MIN_LOG_LEVEL=0` in
    the environment shows everything again); Beam's python-snappy warning; google.api_core's Python warning."""
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    warnings.filterwarnings("ignore", message="You are using a non-supported Python version")
    logging.getLogger("apache_beam.io.tfrecordio").setLevel(logging.ERROR)


def version() -> str:
    from importlib import metadata

    try:
        return metadata.version("tfx-curator")
    except metadata.PackageNotFoundError:
        return "unknown"


def main(argv: list[str] | None = None) -> int:
    quiet_start_up()
    parser = build_parser()
    args = parse_args(parser, sys.argv[1:] if argv is None else argv)
    if not getattr(
        args, "debug", False
    ):  # Beam logs a failing DoFn's traceback itself; the error says it all
        logging.getLogger("apache_beam.runners.common").setLevel(logging.CRITICAL)
    try:
        return args.func(args)
    except CliError as e:
        parser.exit(2, f"{PROG} {args.command}: error: {e}\n")
    except Exception as e:
        if getattr(args, "debug", False) or not is_data_error(e):
            raise
        parser.exit(1, f"{PROG} {args.command}: error: {one_line(e)} (--debug for the traceback)\n")


if __name__ == "__main__":
    sys.exit(main())
