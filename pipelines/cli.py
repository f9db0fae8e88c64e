"""`tfx-curator`: the curation Beam job without TFX orchestration.

    tfx-curator curate --examples GLOB --records GLOB --output DIR [options]
    tfx-curator validate-records --records GLOB [--id-feature ...]

`curate` runs the same job as the Curator component (components/curator/job.py) and writes the same files:
`<output>/Split-<split-name>/data_tfrecord-*.gz` and `<output>/report/` (report.json, report.html, rejects/,
statistics/). Every field of `CurationOptions` is a flag; its help text comes from the `CurationOptions` and
`RecordConfig` docstrings, so flags and documentation cannot drift from the options themselves.
"""

from __future__ import annotations

import argparse
import dataclasses
import inspect
import json
import os
import re
import sys
import textwrap
import warnings

from tfx_curator.components.curator import options as options_lib
from tfx_curator.components.curator.options import CurationOptions

PROG = "tfx-curator"
REPORT_DIR = "report"
NONE_WORDS = ("none", "")

# Flag names that differ from `--<field-name-with-dashes>` (the old spelling stays as an alias).
FLAG_NAMES = {
    "record_format": ("--records-format", "--record-format"),
    "splits": ("--split-name",),
}
CHOICES = {
    "task": options_lib.TASKS,
    "strategy": options_lib.STRATEGIES,
    "mode": options_lib.MODES,
    "missing_record_policy": options_lib.MISSING_RECORD_POLICIES,
    "duplicate_policy": options_lib.DUPLICATE_POLICIES,
    "record_format": options_lib.RECORD_FORMATS,
}
# Extra spellings that set a bool field to False.
BOOL_ALIASES = {"compute_statistics": ("--no-statistics",)}
# Help that must differ on the command line (the CLI curates one split per run).
CLI_HELP = {
    "splits": "name of the split the --examples files belong to; output goes to <output>/Split-<name>/",
    "id_feature": "feature holding the example id, in the examples and in plain forward records (in "
    "PredictionLog records: in the logged request tf.Example, or see --record-id-output-key)",
}
# Help for fields that neither the CurationOptions nor the RecordConfig docstring documents.
EXTRA_HELP = {
    "label_feature": "feature holding the label in the examples (int or float, one value)",
    "window_size": "examples per mini-batch window in mode 'window'",
    "seed": "seed of the deterministic sampling hash (same seed and ids: same selection)",
    "weight_feature": "feature added to every kept example, holding its weight 1/p",
    "record_format": "forward-record format: plain tf.Example records, or PredictionLog TFRecords",
    "skip_corrupt_files": "skip unreadable or corrupt input files (counted in the report) instead of failing",
    "record_id_output_key": "predict output holding the echoed example id (PredictionLog records)",
}
# CurationOptions field -> RecordConfig attribute documenting it.
RECORD_CONFIG_FIELDS = {
    "id_feature": "id_feature",
    "record_id_output_key": "id_output_key",
    "prediction_key": "prediction_key",
    "hidden_norm_key": "hidden_norm_key",
    "class_label": "class_label",
    "task": "task",
}


class CliError(Exception):
    """A user error: printed as `tfx-curator: error: ...`, exit code 2."""


# ---------------------------------------------------------------------------------------------------------
# Help text from docstrings
# ---------------------------------------------------------------------------------------------------------


def docstring_entries(doc: str | None) -> dict[str, str]:
    """`name: text` entries of a docstring (continuation lines indented deeper), joined into one line each."""
    doc = inspect.cleandoc(doc or "")
    entries: dict[str, str] = {}
    current, indent = None, None
    for line in doc.splitlines():
        m = re.match(r"^(\s*)([a-z_][a-z0-9_]*): (.*)$", line)
        if m and (indent is None or len(m.group(1)) <= indent):
            current, indent = m.group(2), len(m.group(1))
            entries[current] = m.group(3).strip()
        elif current and line.strip() and len(line) - len(line.lstrip()) > indent:
            entries[current] += " " + line.strip()
        else:
            current = None if not line.strip() else current
    return entries


def _class_docstring(module: str, class_name: str) -> str:
    """A class's docstring read from its module's source, without importing it (records.py imports TF)."""
    import ast
    import importlib.util

    origin = importlib.util.find_spec(module).origin
    with open(origin, encoding="utf-8") as f:
        tree = ast.parse(f.read())
    for node in tree.body:
        if isinstance(node, ast.ClassDef) and node.name == class_name:
            return ast.get_docstring(node) or ""
    raise LookupError(f"{module}.{class_name} not found")


def field_help() -> dict[str, str]:
    """Help for every CurationOptions field: CLI_HELP, else the CurationOptions docstring, else the
    RecordConfig docstring (the record fields), else EXTRA_HELP."""
    own = docstring_entries(CurationOptions.__doc__)
    record = docstring_entries(_class_docstring("tfx_curator.components.curator.records", "RecordConfig"))
    out = {}
    for f in dataclasses.fields(CurationOptions):
        text = CLI_HELP.get(f.name) or own.get(f.name) or record.get(RECORD_CONFIG_FIELDS.get(f.name, ""))
        out[f.name] = text or EXTRA_HELP.get(f.name, "")
    return out


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
    helps = field_help()
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
        if f.name in CHOICES:
            kwargs["choices"] = CHOICES[f.name]
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
    import tensorflow as tf

    try:
        files = [f for f in tf.io.gfile.glob(pattern) if not tf.io.gfile.isdir(f)]
    except Exception as e:  # noqa: BLE001 - any filesystem error is a user error here
        raise CliError(f"{what} {pattern!r}: {e}") from None
    if not files:
        raise CliError(f"{what} {pattern!r} matches no files")
    return files


def _prepare_output(output: str, split: str, overwrite: bool) -> tuple[str, str]:
    import tensorflow as tf

    split_dir = os.path.join(output, f"Split-{split}")
    report_dir = os.path.join(output, REPORT_DIR)
    existing = [d for d in (split_dir, report_dir) if tf.io.gfile.exists(d) and tf.io.gfile.listdir(d)]
    if existing and not overwrite:
        raise CliError(f"output already holds {existing}; choose another --output or pass --overwrite")
    for d in existing:
        tf.io.gfile.rmtree(d)
    tf.io.gfile.makedirs(output)
    return output, report_dir


def _beam_pipeline_factory(beam_args: list[str]):
    import apache_beam as beam
    from apache_beam.options.pipeline_options import PipelineOptions

    def make():
        return beam.Pipeline(options=PipelineOptions(beam_args))

    return make


def cmd_curate(args: argparse.Namespace) -> int:
    options = options_from_args(args)  # first: bad options fail before TF and Beam are imported
    split = options.splits[0]
    _glob_or_fail(args.examples, "--examples")
    _glob_or_fail(args.records, "--records")
    beam_args = list(args.beam_arg or [])
    from tfx_curator.components.curator import job

    previous = None
    if args.previous_report:
        try:
            previous = job.read_previous_report(args.previous_report)
        except (OSError, ValueError) as e:
            raise CliError(f"--previous-report: {e}") from None
    curated_uri, report_uri = _prepare_output(args.output, split, args.overwrite)

    print(f"[{PROG}] curating split {split!r}: {args.examples} with records {args.records}", flush=True)
    print(f"[{PROG}] options: {options.to_json()}", flush=True)
    if beam_args:
        print(f"[{PROG}] beam args: {beam_args}", flush=True)
    report = job.run(
        _beam_pipeline_factory(beam_args),
        {split: args.examples},
        args.records,
        options,
        curated_uri,
        report_uri,
        previous_report=previous,
    )
    s = report["splits"][split]
    acc = s["accounting"]
    print(
        f"[{PROG}] read {acc['examples_read']}, selected {acc['selected']}, not selected {acc['not_selected']}, "
        f"rejected {acc['rejected']}; without a forward record {s['examples_without_record']}; "
        f"effective sample size {s['effective_sample_size']:.1f}"
    )
    print(f"[{PROG}] served model on this span: {served_summary(s.get('served_model'))}")
    print(f"[{PROG}] curated examples: {os.path.join(curated_uri, f'Split-{split}')}")
    print(f"[{PROG}] report: {os.path.join(report_uri, 'report.html')}")
    if args.json:
        print(json.dumps(report["splits"][split]["accounting"], sort_keys=True))
    return 0


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
    from tfx_curator.components.curator import records, transforms

    anomalies = records.validate_plain_records(args.records, transforms.record_config(options))
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


class _Formatter(argparse.RawDescriptionHelpFormatter):
    def __init__(self, prog):
        super().__init__(prog, max_help_position=34, width=110)


CURATE_EPILOG = textwrap.dedent(
    """\
    outputs:
      <output>/Split-<split-name>/data_tfrecord-*.gz   kept examples, original bytes + the weight feature
      <output>/report/report.json, report.html          accounting, selection figures, unbiasedness check
      <output>/report/rejects/                          every rejected input with its reason

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
        formatter_class=_Formatter,
    )
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    curate = sub.add_parser(
        "curate",
        help="join forward records to examples, sample, write curated weighted examples and a report",
        description="Join forward records to labelled examples by id, score them, choose inclusion "
        "probabilities under the budget (water-filling), sample deterministically and write the kept "
        "examples with weight 1/p, plus the curation report. Same Beam job as the Curator component.",
        epilog=CURATE_EPILOG,
        formatter_class=_Formatter,
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
    io.add_argument(
        "--previous-report",
        metavar="PATH",
        help="the previous run's report.json (or its folder): adds the served model's drift since then",
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
        formatter_class=_Formatter,
    )
    validate.add_argument("--records", required=True, metavar="GLOB", help="plain forward-record files")
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


def main(argv: list[str] | None = None) -> int:
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    warnings.filterwarnings("ignore", message="You are using a non-supported Python version")
    parser = build_parser()
    args = parse_args(parser, sys.argv[1:] if argv is None else argv)
    try:
        return args.func(args)
    except CliError as e:
        parser.exit(2, f"{PROG} {args.command}: error: {e}\n")


if __name__ == "__main__":
    sys.exit(main())
