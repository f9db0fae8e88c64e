"""`make demo`: continuous training on nycflights13 with the Curator, on TFX LocalDagRunner + Beam DirectRunner.

1. Builds the demo data (one span per month, default months 1-4) and validates it against the schema (TFDV).
2. Bootstrap: a model trained on the whole first month, evaluated on the second, pushed to `<out>/serving`.
3. One step per following month but the last: the served (last pushed) model's forward passes on the new
   month are replayed by BulkInferrer, the Curator keeps a budget (10%) of the month with 1/p weights, the
   next model warm-starts from the served one and trains on the curated, weighted examples, is evaluated on
   the month after (unweighted), and is pushed when its AUC beats chance.
   The Curator also measures the served model on the month it curates (AUC, calibration, from the joined
   forward records) and, from the second curated step on, its drift since the previous step's report.
4. Prints a summary table per step, the served model beside the Evaluator's figures month by month, and the
   total wall time.

    python -m tfx_curator.pipelines.demo [--out demo_output] [--months 1 2 3 4] [--budget 0.1]
"""

from __future__ import annotations

import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")  # 2 still shows the cuFFT/cuDNN/cuBLAS "E" lines

import argparse  # noqa: E402
import dataclasses  # noqa: E402
import json  # noqa: E402
import logging  # noqa: E402
import re  # noqa: E402
import shutil  # noqa: E402
import sys  # noqa: E402
import time  # noqa: E402
import warnings  # noqa: E402

from tfx_curator.data import nycflights  # noqa: E402

DEFAULT_OUT = "demo_output"
PIPELINE_NAME = "tfx-curator-demo"


@dataclasses.dataclass
class StepResult:
    name: str
    train_month: int
    eval_month: int
    examples: int
    selected: int
    backward_passes_saved: int
    weight_sum: float
    auc: float
    log_loss: float
    calibration: float
    pushed: bool
    seconds: float
    report_html: str | None
    served_auc: float = float("nan")  # the served model on train_month, measured by the Curator
    served_calibration: float = float("nan")
    served_drift: tuple[str, ...] = ()
    report_dir: str | None = None


class _Progress(logging.Filter):
    """Turns LocalDagRunner's 'Component X is running/finished' log lines into short progress lines and
    drops the rest of absl's INFO chatter."""

    _pattern = re.compile(r"Component (\S+) is (running|finished)\.")

    def __init__(self):
        super().__init__()
        self._started: dict[str, float] = {}

    def filter(self, record: logging.LogRecord) -> bool:
        match = self._pattern.fullmatch(record.getMessage())
        if match:
            node, state = match.groups()
            if state == "running":
                self._started[node] = time.time()
            else:
                took = time.time() - self._started.pop(node, time.time())
                print(f"[demo]     {node:<20} done in {took:5.1f}s", flush=True)
            return False
        return record.levelno >= logging.ERROR


def _quiet_logs(verbose: bool) -> None:
    if verbose:
        return
    from absl import logging as absl_logging

    absl_logging.set_verbosity(absl_logging.INFO)
    logging.getLogger("absl").addFilter(_Progress())
    for name in ("tensorflow", "apache_beam", "tfx_bsl", "tensorflow_model_analysis", "py.warnings"):
        logging.getLogger(name).setLevel(logging.ERROR)
    warnings.filterwarnings("ignore")


def run_step(name, new_month, next_month, args, served_model_dir, previous_report=None) -> StepResult:
    """Build and run one pipeline (bootstrap when served_model_dir is None); read back its results.

    previous_report: the previous curated step's CurationReport folder (the served model's drift check)."""
    from tfx import v1 as tfx

    from tfx_curator.pipelines import pipeline as P
    from tfx_curator.pipelines import trainer_module

    data_dir = os.path.join(args.out, "data")
    root = os.path.join(args.out, "pipelines", name)
    serving_dir = os.path.join(args.out, "serving")
    curator_options = {"strategy": args.strategy, "seed": args.seed}
    pipeline = P.create_pipeline(
        f"{PIPELINE_NAME}-{name}",
        root,
        nycflights.span_dir(data_dir, new_month),
        nycflights.span_dir(data_dir, next_month),
        serving_dir=serving_dir,
        served_model_dir=served_model_dir,
        previous_report_dir=previous_report,
        metadata_path=os.path.join(args.out, "metadata.sqlite"),
        budget=args.budget,
        curator_options=curator_options,
        beam_pipeline_args=P.direct_beam_args(args.direct_running_mode),
        epochs=args.epochs,
    )
    start = time.time()
    tfx.orchestration.LocalDagRunner().run(pipeline)
    seconds = time.time() - start

    summary = trainer_module.read_summary(P.output_uri(root, P.TRAINER, "model_run"))
    metrics = P.read_eval_metrics(P.output_uri(root, P.EVALUATOR, "evaluation"))
    examples = summary["examples"]
    selected = examples
    report_html = None
    served: dict = {}
    report_uri = P.output_uri(root, P.CURATOR, "curation_report")
    if report_uri:
        with open(os.path.join(report_uri, "report.json"), encoding="utf-8") as f:
            split = json.load(f)["splits"]["train"]
        accounting = split["accounting"]
        served = split.get("served_model", {})
        examples, selected = accounting["examples_read"], accounting["selected"]
        report_html = os.path.join(report_uri, "report.html")
    served_figures = served.get("all", {})
    return StepResult(
        name=name,
        train_month=new_month,
        eval_month=next_month,
        examples=examples,
        selected=selected,
        backward_passes_saved=examples - selected,
        weight_sum=summary["weight_sum"],
        auc=metrics.get("auc", float("nan")),
        log_loss=metrics.get("log_loss", float("nan")),
        calibration=metrics.get("calibration", float("nan")),
        pushed=P.is_blessed(P.output_uri(root, P.EVALUATOR, "blessing")),
        seconds=seconds,
        report_html=report_html,
        served_auc=_number(served_figures.get("auc")),
        served_calibration=_number(served_figures.get("calibration")),
        served_drift=tuple(served.get("flags", ())),
        report_dir=report_uri,
    )


def _number(value) -> float:
    return float("nan") if value is None else float(value)


def summary_table(results: list[StepResult]) -> str:
    header = (
        f"{'step':<10} {'train':>5} {'eval':>4} {'examples':>8} {'selected':>8} {'bwd saved':>9} "
        f"{'sum w':>7} {'AUC':>6} {'logloss':>7} {'calib':>5} {'pushed':>6} {'time':>5}  report"
    )
    lines = [header, "-" * len(header)]
    for r in results:
        lines.append(
            f"{r.name:<10} {r.train_month:>5} {r.eval_month:>4} {r.examples:>8} {r.selected:>8} "
            f"{r.backward_passes_saved:>9} {r.weight_sum:>7.0f} {r.auc:>6.4f} {r.log_loss:>7.4f} "
            f"{r.calibration:>5.2f} {'yes' if r.pushed else 'no':>6} {r.seconds:>4.0f}s  {r.report_html or '-'}"
        )
    return "\n".join(lines)


def served_table(results: list[StepResult]) -> str:
    """Month by month: the served model measured by the Curator on the month it served, beside the Evaluator's
    figures for the model trained the step before, on the same month (its successor, or itself when pushed)."""
    evaluated = {r.eval_month: r for r in results}
    header = (
        f"{'month':>5} {'served AUC':>10} {'served calib':>12} {'Evaluator AUC':>13} {'Evaluator calib':>15}"
        "  (Evaluator: model trained on the month before)  drift"
    )
    lines = [header, "-" * len(header)]
    for r in results:
        if r.report_dir is None:
            continue
        e = evaluated.get(r.train_month)
        lines.append(
            f"{r.train_month:>5} {r.served_auc:>10.4f} {r.served_calibration:>12.3f} "
            f"{e.auc if e else float('nan'):>13.4f} {e.calibration if e else float('nan'):>15.3f}"
            f"  {'; '.join(r.served_drift) or 'none'}"
        )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--out", default=DEFAULT_OUT, help="working folder (data, pipeline root, serving models)"
    )
    parser.add_argument(
        "--months", type=int, nargs="+", default=[1, 2, 3, 4], help="consecutive months, >= 3"
    )
    parser.add_argument("--budget", type=float, default=0.1, help="Curator budget (rate of each new month)")
    parser.add_argument("--strategy", default="loss", help="Curator strategy (see CurationOptions)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--epochs", type=int, default=2, help="Trainer epochs over its (curated) examples")
    parser.add_argument("--max-rows-per-span", type=int, default=None, help="subsample months (quick runs)")
    parser.add_argument(
        "--direct-running-mode",
        default="in_memory",
        choices=["in_memory", "multi_threading", "multi_processing"],
        help="Beam DirectRunner mode (in_memory measured faster and leaner on 2 cores)",
    )
    parser.add_argument("--verbose", action="store_true", help="keep TFX/Beam/TF logs")
    args = parser.parse_args(argv)
    if len(args.months) < 3:
        parser.error(
            "--months needs at least 3 months: bootstrap, one curated step, and its evaluation month"
        )
    start = time.time()
    _quiet_logs(args.verbose)

    print(f"[demo] building nycflights13 spans {args.months} into {args.out}/data ...", flush=True)
    infos = nycflights.write_spans(f"{args.out}/data", args.months, args.max_rows_per_span)
    for s in infos:
        print(f"[demo] span {s.month:02d}: {s.rows} flights, positive rate {s.positive_rate:.3f}  {s.path}")
    bad = [(p, a) for p, a in nycflights.validate_spans([s.path for s in infos]) if a.anomaly_info]
    for p, a in bad:
        print(f"[demo] ANOMALIES in {p}:\n{a}", file=sys.stderr)
    print(f"[demo] TFDV: {len(infos) - len(bad)}/{len(infos)} spans valid; {time.time() - start:.0f}s")
    if bad:
        return 1

    for stale in ("pipelines", "serving", "metadata.sqlite"):
        path = os.path.join(args.out, stale)
        if os.path.isdir(path):
            shutil.rmtree(path)
        elif os.path.exists(path):
            os.remove(path)

    from tfx_curator.pipelines import pipeline as P

    serving_dir = os.path.join(args.out, "serving")
    results = []
    previous_report = None
    months = args.months
    for i, (new_month, next_month) in enumerate(zip(months[:-1], months[1:])):
        served = None if i == 0 else P.latest_pushed_model(serving_dir)
        name = "bootstrap" if i == 0 else f"step-{new_month:02d}"
        what = (
            f"train on all of month {new_month}"
            if served is None
            else f"curate {args.budget:.0%} of month {new_month} served by {os.path.basename(served)}, train"
        )
        print(f"[demo] {name}: {what}, evaluate on month {next_month} ...", flush=True)
        result = run_step(name, new_month, next_month, args, served, previous_report)
        results.append(result)
        previous_report = result.report_dir or previous_report
        if result.report_dir:
            print(
                f"[demo] {name}: served model on month {new_month}: AUC {result.served_auc:.4f}, calibration "
                f"{result.served_calibration:.3f}; drift: {'; '.join(result.served_drift) or 'none flagged'}",
                flush=True,
            )
        print(
            f"[demo] {name}: {result.selected}/{result.examples} examples trained on, AUC {result.auc:.4f}, "
            f"log loss {result.log_loss:.4f}, pushed: {'yes' if result.pushed else 'no'} ({result.seconds:.0f}s)",
            flush=True,
        )

    print("\n" + summary_table(results))
    print("\n" + served_table(results))
    print(f"\n[demo] done in {time.time() - start:.0f}s (wall). Serving models: {serving_dir}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
