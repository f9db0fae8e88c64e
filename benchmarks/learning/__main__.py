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


def render(name: str, rows, meta: dict) -> str:
    """learning_<name>.md and .png from the rows and the run's metadata."""
    from benchmarks.learning import analysis

    task, steps = meta["task"], meta["steps"]
    h = analysis.halves(steps)
    png = f"learning_{name}.png"
    analysis.plot(
        rows,
        task,
        h["all"],
        f"{name}: {meta['description']}\nmean over steps 1-{steps}; top: seed spread, bottom: paired Δ vs uniform",
        os.path.join(RESULTS, png),
    )
    t = meta["timing"]
    lines = [
        f"# Learning efficiency: {name}",
        "",
        f"{meta['description']}.",
        "",
        f"- Command: `{meta['command']}`",
        f"- Date: {meta['date']}; wall time {t['wall_seconds'] / 60:.1f} min (data preparation "
        f"{meta['prepare_seconds']:.0f} s{' (cached)' if meta['prepare_seconds'] < 1 else ''} excluded): {t['curate_jobs']} Curator Beam jobs "
        f"({t['curate_job_seconds'] / 60:.1f} job-min in {meta['workers']} worker processes), training "
        f"{t['train_seconds'] / 60:.1f} min, serving {t['serve_seconds'] / 60:.1f} min (main process).",
        f"- Machine: {meta['machine']}; 1-minute load average before/after: {meta['load_before']} / "
        f"{meta['load_after']} (the 2 cores are shared with other jobs).",
        f"- Versions: {meta['versions']}; code: {meta.get('code', 'commit not recorded (runs of 2026-11-25)')}.",
        f"- Data: {meta['source']}; label: {meta['positive_rule']}. Spans: "
        + ", ".join(f"{n} ({r} rows, label mean {m:.4g})" for n, r, m in meta["spans"])
        + (
            f"; at most {meta['max_rows_per_span']} rows per span, evenly spread in time"
            if meta["max_rows_per_span"]
            else ""
        )
        + ".",
        f"- Protocol (GUIDE section 5): M0 trains on span 0; step t = 1..{steps}: each chain's M(t-1) serves span t "
        "(prediction + L2 norm of the head's input -> plain forward records), the Curator Beam job "
        "(`job.build` -> `transforms.curate`, DirectRunner in memory) selects the budget of span t, M(t) continues "
        f"from M(t-1) on the curated split (weights as Keras sample_weight, `pipelines/model.py` `train`, "
        f"{meta['epochs']} epochs, batch {meta['batch_size']}, fresh Adam as the Trainer's warm start) and is "
        "tested on span t+1. Model: the Trainer's wide-and-deep (`model.build_model`) with "
        f"{meta['model']}. `full` trains on every row of the span without a Curator job.",
        f"- Strategies: {', '.join(meta['arms'])}; `loss_*`/`grad_norm*` are pure importance sampling "
        "(mix a = 0); `defensive_a` = loss, window mode, mixture p = (1 - a) p_IS + a r. Budgets "
        + ", ".join(f"{b:.0%} ({s} seeds)" for b, s in meta["seeds_by_budget"])
        + "; seeds share M0, spans and hash draws within a seed, so differences are paired by seed.",
        f"- Halves: selection steps {list(h['selection'])} (defaults chosen there only), held-out steps "
        f"{list(h['held_out'])} (headline). SE = sd of the per-seed paired difference / sqrt(seeds); "
        "**LOSS** / win = beyond 2 SE. Backward passes = curated examples × epochs per step "
        "(mean over steps). Estimator error ratio = the curation report's `estimator_error.ratio_vs_uniform` "
        "(expected squared error of the weighted loss total vs uniform at the same budget, mean over steps).",
        "",
        f"![quality vs budget]({png})",
        "",
    ]
    for label, key in (
        ("Headline: held-out steps", "held_out"),
        ("Selection steps (where defaults are chosen)", "selection"),
        ("All steps", "all"),
    ):
        table = analysis.cell_table(rows, task, h[key])
        lines += [f"## {label} {list(h[key])}", "", analysis.markdown_cells(table, task), ""]
    lines += ["## Per step (mean over seeds; M(t) tested on span t+1)", ""]
    for metric in analysis.metrics_of(task):
        lines += [f"### {metric}", "", analysis.markdown_per_span(rows, task, metric, meta["span_names"]), ""]
    return "\n".join(lines)


def run_dataset(args, argv) -> int:
    import pandas as pd

    from benchmarks.learning import datasets as ds_lib
    from benchmarks.learning import harness

    config = ds_lib.DATASETS[args.dataset]
    overrides = {}
    if args.steps:
        overrides["steps"] = args.steps
    if args.max_rows_per_span:
        overrides["max_rows_per_span"] = args.max_rows_per_span
    if overrides:
        import dataclasses

        config = dataclasses.replace(config, **overrides)
    run = harness.RunConfig(
        budgets=tuple(args.budgets),
        arms=tuple(args.arms) if args.arms else None,
        epochs=args.epochs,
        batch_size=args.batch_size,
        workers=args.workers,
        seeds_override=args.seeds,
    )
    max_seeds = max(harness.seeds_for(config, run, b) for b in run.budgets)
    load_before = load_average()
    t0 = time.time()
    prepared = ds_lib.prepare(config, max_seeds)
    prepare_seconds = time.time() - t0
    print(f"[{config.name}] spans ready in {prepare_seconds:.0f}s: {prepared.rows}", flush=True)
    out = os.path.join(prepared.root, "run")
    result = harness.run_protocol(prepared, run, out, log=lambda m: print(m, flush=True))
    rows = pd.DataFrame(result["rows"])
    arms = [a.name for a in harness.arms_for(config.task, list(run.arms) if run.arms else None)]
    if not run.arms or "full" in run.arms:
        arms = ["full", *arms]
    mc = prepared.model_config
    meta = {
        "name": config.name,
        "description": config.description,
        "task": config.task,
        "steps": config.steps,
        "command": command_line(argv),
        "date": datetime.date.today().isoformat(),
        "machine": machine(),
        "versions": versions(),
        "code": code_version(),
        "load_before": load_before,
        "load_after": load_average(),
        "source": config.source,
        "positive_rule": config.positive_rule,
        "span_names": prepared.span_names,
        "spans": list(zip(prepared.span_names, prepared.rows, prepared.label_means)),
        "max_rows_per_span": config.max_rows_per_span,
        "epochs": run.epochs,
        "batch_size": run.batch_size,
        "workers": run.workers,
        "arms": arms,
        "seeds_by_budget": [(b, harness.seeds_for(config, run, b)) for b in run.budgets],
        "model": f"{len(mc.categorical)} categorical and {len(mc.numeric)} numeric inputs, "
        f"{len(mc.crosses)} crosses, hidden {list(mc.hidden_units)}, Adam lr {mc.learning_rate}",
        "timing": result["timing"],
        "prepare_seconds": prepare_seconds,
    }
    os.makedirs(RESULTS, exist_ok=True)
    name = args.name or config.name
    rows.to_csv(os.path.join(RESULTS, f"learning_{name}_raw.csv"), index=False, float_format="%.6g")
    with open(os.path.join(RESULTS, f"learning_{name}_meta.json"), "w") as f:
        json.dump(meta, f, indent=1)
    with open(os.path.join(RESULTS, f"learning_{name}.md"), "w") as f:
        f.write(render(name, rows, meta) + "\n")
    print(f"wrote {os.path.join(RESULTS, f'learning_{name}.md')}")
    return 0


def report_only(name: str) -> int:
    import pandas as pd

    rows = pd.read_csv(os.path.join(RESULTS, f"learning_{name}_raw.csv"))
    with open(os.path.join(RESULTS, f"learning_{name}_meta.json")) as f:
        meta = json.load(f)
    with open(os.path.join(RESULTS, f"learning_{name}.md"), "w") as f:
        f.write(render(name, rows, meta) + "\n")
    print(f"re-rendered learning_{name}.md and .png")
    return 0


def main(argv=None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument(
        "--dataset", help="one of: nycflights_delay, nycflights_cancelled, diamonds, flights3m_delay60"
    )
    p.add_argument("--summary", action="store_true", help="cross-data-set default recommendation")
    p.add_argument("--report-only", action="store_true", help="re-render the tables and plot from the CSV")
    p.add_argument("--name", help="results file name (default: the data set's)")
    p.add_argument("--steps", type=int, help="continuous-training steps (default: the data set's, 6)")
    p.add_argument("--max-rows-per-span", type=int)
    p.add_argument("--budgets", type=float, nargs="+", default=[0.05, 0.1, 0.3])
    p.add_argument("--arms", nargs="+", help="strategies (default: all that apply)")
    p.add_argument("--seeds", type=int, help="seeds for every budget (default: the data set's)")
    p.add_argument("--epochs", type=int, default=2, help="Trainer default: 2")
    p.add_argument(
        "--batch-size", type=int, default=64, help="Trainer custom_config batch_size (its default: 256)"
    )
    p.add_argument("--workers", type=int, default=2, help="Curator jobs run in parallel")
    args = p.parse_args(argv)
    if args.summary:
        from benchmarks.learning import summary

        return summary.main()
    if not args.dataset:
        p.error("--dataset or --summary")
    if args.report_only:
        return report_only(args.name or args.dataset)
    return run_dataset(args, argv)


if __name__ == "__main__":
    raise SystemExit(main())
