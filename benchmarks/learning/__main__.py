"""Learning-efficiency benchmark: continuous training on real data, the Curator against its baselines.

    .venv/bin/python -m benchmarks.learning --dataset nycflights_delay
    .venv/bin/python -m benchmarks.learning --dataset nycflights_cancelled
    .venv/bin/python -m benchmarks.learning --dataset diamonds
    .venv/bin/python -m benchmarks.learning --dataset flights3m_delay60 --arms full uniform \
        negative_downsampling loss_window grad_norm defensive_0.1 defensive_0.3 defensive_0.5
    .venv/bin/python -m benchmarks.learning --summary        # cross-data-set defaults, from the three results

Each data set run writes benchmarks/results/learning_<dataset>.md (tables), .png (plots) and _raw.csv (one
row per chain and step, to re-analyse); `--report-only` re-renders them from the CSV. See harness.py for the
protocol and datasets.py for the data sets.
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import sys
import time

HERE = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
RESULTS = os.path.join(HERE, "results")


def machine() -> str:
    from benchmarks.record_read_throughput import machine as describe_machine

    return describe_machine()


def versions() -> str:
    from importlib.metadata import version

    names = ("tensorflow", "tf_keras", "tfx", "apache-beam", "tfx-bsl", "numpy", "pandas", "scikit-learn")
    found = []
    for n in names:
        try:
            found.append(f"{n} {version(n)}")
        except Exception:  # noqa: BLE001 - a missing package is just not listed
            pass
    return f"Python {platform.python_version()}, " + ", ".join(found)


def code_version() -> str:
    """The commit the run used, and whether the product's code differed from it (others edit concurrently)."""
    import subprocess

    def git(*args):
        return subprocess.run(["git", *args], cwd=HERE, capture_output=True, text=True).stdout.strip()

    commit = git("rev-parse", "--short", "HEAD") or "unknown"
    dirty = git("status", "--porcelain", "--", "../components", "../pipelines", "../data", "learning")
    return commit + (" + uncommitted changes in the product code" if dirty else "")


def load_average() -> str:
    return "/".join(f"{x:.1f}" for x in os.getloadavg())


def command_line(argv) -> str:
    return ".venv/bin/python -m benchmarks.learning " + " ".join(argv)


def cpu_seconds() -> float:
    import resource

    u = resource.getrusage(resource.RUSAGE_SELF)
    return u.ru_utime + u.ru_stime


def run_dataset(args, argv) -> int:
    import dataclasses

    from benchmarks.learning import datasets as ds_lib
    from benchmarks.learning import harness

    if args.threads:
        import tensorflow as tf

        tf.config.threading.set_intra_op_parallelism_threads(args.threads)
        tf.config.threading.set_inter_op_parallelism_threads(args.threads)
    config = ds_lib.DATASETS[args.dataset]
    overrides = {}
    if args.steps:
        overrides["steps"] = args.steps
    if args.max_rows_per_span is not None:
        overrides["max_rows_per_span"] = args.max_rows_per_span or None
    if overrides:
        config = dataclasses.replace(config, **overrides)
    run = harness.RunConfig(
        budgets=tuple(args.budgets),
        arms=tuple(args.arms) if args.arms else harness.FOCUSED,
        epochs=args.epochs,
        batch_size=args.batch_size,
        seeds_override=args.seeds,
        arm_seeds=tuple((a, int(n)) for a, n in (x.split("=") for x in args.arm_seeds)),
        fresh_optimizer=args.fresh_optimizer,
        beam_check_steps=None
        if args.beam_check_steps == ["all"]
        else tuple(int(x) for x in args.beam_check_steps),
    )
    name = args.name or config.name
    os.makedirs(RESULTS, exist_ok=True)
    csv_path = os.path.join(RESULTS, f"learning_{name}_raw.csv")
    meta_path = os.path.join(RESULTS, f"learning_{name}_meta.json")
    if args.restart:
        for path in (csv_path, meta_path):
            if os.path.exists(path):
                os.remove(path)
    previous = None
    if os.path.exists(csv_path) and os.path.exists(meta_path):
        with open(meta_path) as f:
            previous = json.load(f)
        if (
            previous.get("protocol") != run.protocol()
            or previous.get("dataset_fingerprint") != config.fingerprint()
        ):
            raise SystemExit(
                f"{csv_path} holds rows of another protocol or data set config ({previous.get('protocol')}); "
                "pass --restart to start over or --name for a new results file"
            )
    elif os.path.exists(csv_path):
        raise SystemExit(f"{csv_path} exists without its _meta.json: pass --restart")
    load_before = load_average()
    t0, cpu0 = time.time(), cpu_seconds()
    prepared = ds_lib.prepare(config, 1)
    prepare_seconds = time.time() - t0
    print(f"[{config.name}] spans ready in {prepare_seconds:.0f}s: {prepared.rows}", flush=True)
    mc = prepared.model_config
    arms = [a for a in harness.FOCUSED if a in run.arms] + [a for a in run.arms if a not in harness.FOCUSED]
    meta = {
        "name": name,
        "dataset": config.name,
        "description": config.description,
        "task": config.task,
        "steps": config.steps,
        "command": command_line([a for a in argv if a != "--restart"]),  # re-running it resumes
        "report_command": f".venv/bin/python -m benchmarks.learning --dataset {config.name} --name {name} --report-only",
        "date": datetime.date.today().isoformat(),
        "machine": machine(),
        "versions": versions(),
        "code": code_version(),
        "load_before": load_before,
        "source": config.source,
        "positive_rule": config.positive_rule,
        "span_names": prepared.span_names,
        "spans": list(zip(prepared.span_names, prepared.rows, prepared.label_means)),
        "max_rows_per_span": config.max_rows_per_span,
        "dataset_fingerprint": config.fingerprint(),
        "protocol": run.protocol(),
        "epochs": run.epochs,
        "batch_size": run.batch_size,
        "fresh_optimizer": run.fresh_optimizer,
        "threads": args.threads,
        "arms": arms,
        "seeds_by_budget": [(b, harness.seeds_for(config, run, b)) for b in run.budgets],
        "arm_seeds": dict(run.arm_seeds),
        "model": f"{len(mc.categorical)} categorical and {len(mc.numeric)} numeric inputs, "
        f"{len(mc.crosses)} crosses, hidden {list(mc.hidden_units)}, Adam lr {mc.learning_rate}",
        "prepare_seconds": prepare_seconds,
        "sessions": (previous or {}).get("sessions", []),
        "complete": False,
    }
    for key in ("beam_checks", "logistic_regression"):
        meta[key] = (previous or {}).get(key, [])
    write_json(meta_path, meta)
    out = os.path.join(prepared.root, "run-" + name)
    result = harness.run_protocol(prepared, run, out, csv_path, log=lambda m: print(m, flush=True))
    meta["beam_checks"] = meta["beam_checks"] + result["beam_checks"]
    meta["logistic_regression"] = result["logistic_regression"] or meta["logistic_regression"]
    meta["sessions"].append(
        {
            "wall_seconds": time.time() - t0,
            "cpu_seconds": cpu_seconds() - cpu0,
            "load_before": load_before,
            "load_after": load_average(),
            "threads": args.threads,
            **result["timing"],
        }
    )
    meta["complete"] = True
    write_json(meta_path, meta)
    return report_only(name)


def write_json(path: str, value) -> None:
    tmp = path + ".tmp"
    with open(tmp, "w") as f:
        json.dump(value, f, indent=1, default=str)
    os.replace(tmp, path)


def report_only(name: str) -> int:
    import pandas as pd

    from benchmarks.learning import report

    rows = pd.read_csv(os.path.join(RESULTS, f"learning_{name}_raw.csv"))
    with open(os.path.join(RESULTS, f"learning_{name}_meta.json")) as f:
        meta = json.load(f)
    with open(os.path.join(RESULTS, f"learning_{name}.md"), "w") as f:
        f.write(report.render(name, rows, meta, RESULTS) + "\n")
    print(f"wrote learning_{name}.md and .png")
    return 0


def main(argv=None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument(
        "--dataset", help="one of: nycflights_delay, nycflights_cancelled, diamonds, flights3m_delay60"
    )
    p.add_argument("--summary", action="store_true", help="cross-data-set default recommendation (v1 runs)")
    p.add_argument("--regime", action="store_true", help="regime sweep: ΔAP vs positives per curated step")
    p.add_argument("--report-only", action="store_true", help="re-render the tables and plot from the CSV")
    p.add_argument("--name", help="results file name (default: the data set's)")
    p.add_argument("--steps", type=int, help="continuous-training steps (default: the data set's, 6)")
    p.add_argument("--max-rows-per-span", type=int, help="cap per span (0: none; default: the data set's)")
    p.add_argument("--budgets", type=float, nargs="+", default=[0.05, 0.1, 0.3])
    p.add_argument("--arms", nargs="+", help="strategies (default: harness.FOCUSED)")
    p.add_argument("--arm-seeds", nargs="*", default=["top_k=3"], help="ARM=N: at most N seeds for ARM")
    p.add_argument(
        "--fresh-optimizer",
        action="store_true",
        help="a fresh Adam every step (sensitivity; the Trainer carries it)",
    )
    p.add_argument(
        "--beam-check-steps",
        nargs="+",
        default=["1"],
        help="steps where the default's Beam job is compared ('all')",
    )
    p.add_argument(
        "--threads", type=int, default=1, help="TensorFlow intra/inter-op threads (0: TF's default)"
    )
    p.add_argument("--restart", action="store_true", help="discard the raw CSV instead of resuming from it")
    p.add_argument("--seeds", type=int, help="seeds for every budget (default: the data set's)")
    p.add_argument("--epochs", type=int, default=2, help="Trainer default: 2")
    p.add_argument(
        "--batch-size", type=int, default=256, help="Trainer custom_config batch_size (default 256)"
    )
    args = p.parse_args(argv)
    if args.summary:
        from benchmarks.learning import summary

        return summary.main()
    if not args.dataset and not args.regime:
        p.error("--dataset, --regime or --summary")
    if args.report_only:
        return report_only(args.name or args.dataset)
    if args.regime:
        from benchmarks.learning import regime

        return regime.main(RESULTS)
    return run_dataset(args, argv)


if __name__ == "__main__":
    raise SystemExit(main())
