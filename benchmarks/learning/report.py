"""learning_<name>.md and .png of a v2 run from its raw CSV and _meta.json (partial runs included).

    .venv/bin/python -m benchmarks.learning --dataset DATASET --name NAME --report-only

The headline is the product's default (loss, window mode, mix 0.1) against uniform and negative down-sampling at
the budgets with at least 10 seeds, over all test steps, as paired differences with 95% t-intervals. Every file
carries the sanity check of absolute levels (uniform 10% vs `full` vs a logistic regression on the whole span).
"""

from __future__ import annotations

import math
import os

import numpy as np
import pandas as pd

from benchmarks.learning import analysis, harness

STARVED_GAP = 0.02  # uniform 10% more than this AUC below full: a data-starved regime
HEADLINE_SEEDS = 10


def load_rows(path: str) -> pd.DataFrame:
    """The raw CSV; a row written twice (a chain restarted after an abrupt end) counts once, the last one."""
    rows = pd.read_csv(path)
    return rows.drop_duplicates(["arm", "budget", "seed", "step"], keep="last").reset_index(drop=True)


def complete_chains(rows: pd.DataFrame, steps: int) -> pd.DataFrame:
    """Rows of chains that reached the last step (a partial chain would bias the mean over steps)."""
    last = rows.groupby(["arm", "budget", "seed"])["step"].transform("max")
    return rows[(last >= steps) | (rows["arm"] == "M0")]


def _ci(d: dict, digits: int = 4) -> str:
    if not np.isfinite(d["mean"]):
        return "–"
    if not np.isfinite(d["ci"]):
        return f"{d['mean']:+.{digits}f}"
    lo, hi = d["mean"] - d["ci"], d["mean"] + d["ci"]
    return f"{d['mean']:+.{digits}f} [{lo:+.{digits}f}, {hi:+.{digits}f}]"


def headline_budgets(rows: pd.DataFrame, meta: dict | None = None) -> list[float]:
    """Budgets planned with >= 10 seeds (the headline cells; a partial run shows the seeds it has so far)."""
    planned = dict((float(b), n) for b, n in (meta or {}).get("seeds_by_budget", []))
    measured = set(rows.loc[rows["arm"] == harness.DEFAULT_ARM, "budget"].astype(float))
    chosen = sorted(b for b, n in planned.items() if n >= HEADLINE_SEEDS and b in measured)
    return chosen or sorted(b for b in measured if 0 < b < 1)


def headline(rows: pd.DataFrame, steps: tuple[int, ...], meta: dict) -> tuple[list[str], list[dict]]:
    """The default vs uniform and negative down-sampling at the headline budgets: markdown and the cells."""
    sm = analysis.per_seed(rows, steps)
    budgets = headline_budgets(rows, meta)
    lines = [
        "| budget | seeds | default AUC (sd) | uniform AUC (sd) | neg. ds. AUC (sd) | ΔAUC vs uniform [95% CI] "
        "| ΔAP vs uniform [95% CI] | ΔAUC vs neg. ds. [95% CI] | ΔAP vs neg. ds. [95% CI] |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    cells = []
    for b in budgets:

        def spread(arm, m="auc", b=b):
            try:
                g = sm.loc[(arm, b)][m]
            except KeyError:
                return "–"
            return f"{g.mean():.4f} ({g.std(ddof=1):.4f})"

        ds = {
            (m, base): analysis.paired(sm, m, harness.DEFAULT_ARM, b, base)
            for base in analysis.BASELINES
            for m in ("auc", "ap")
        }
        cells += [{"budget": b, "metric": m, "baseline": base, **d} for (m, base), d in ds.items()]
        n = ds[("auc", "uniform")]["n"]
        lines.append(
            f"| {b:.0%} | {n} | {spread(harness.DEFAULT_ARM)} | {spread('uniform')} | "
            f"{spread('negative_downsampling')} | {_ci(ds[('auc', 'uniform')])} | {_ci(ds[('ap', 'uniform')])} | "
            f"{_ci(ds[('auc', 'negative_downsampling')])} | {_ci(ds[('ap', 'negative_downsampling')])} |"
        )
    return lines, cells


def multiple_comparisons(table: pd.DataFrame, cells: list[dict]) -> str:
    from scipy import stats

    n_intervals = int(
        sum(
            np.isfinite(table.get(f"ci_{m}_vs_{base}", pd.Series(dtype=float))).sum()
            for m in ("auc", "ap")
            for base in analysis.BASELINES
        )
    )
    k = len(cells)
    surviving = []
    for c in cells:
        if c["n"] > 1 and np.isfinite(c["se"]) and c["se"] > 0:
            crit = stats.t.ppf(1 - 0.025 / k, c["n"] - 1)
            if abs(c["mean"]) > crit * c["se"]:
                surviving.append(f"{c['metric'].upper()} vs {c['baseline']} at {c['budget']:.0%}")
    return (
        f"Multiple comparisons: the all-steps table holds {n_intervals} intervals at 95% each, so about "
        f"{0.05 * n_intervals:.0f} would exclude 0 by chance alone if nothing differed; read single cells "
        f"outside the headline as exploratory. The headline family has {k} comparisons; with a Bonferroni "
        f"correction (each at {100 * (1 - 0.05 / max(k, 1)):.2f}%) these still exclude 0: "
        + (", ".join(surviving) if surviving else "none")
        + "."
    )


def sanity(rows: pd.DataFrame, meta: dict, steps: tuple[int, ...]) -> tuple[str, bool]:
    """Uniform 10% vs full vs logistic regression (AUC, mean over steps and seeds); flag a data-starved run."""
    sm = analysis.per_seed(rows, steps)

    def mean(arm, b):
        try:
            return float(sm.loc[(arm, b)]["auc"].mean())
        except KeyError:
            return math.nan

    uni, full = mean("uniform", 0.1), mean("full", 1.0)
    lr = [r["auc"] for r in meta.get("logistic_regression", []) if r["step"] in steps]
    lr_auc = float(np.mean(lr)) if lr else math.nan
    starved = bool(np.isfinite(uni) and np.isfinite(full) and uni < full - STARVED_GAP)
    line = (
        f"**Sanity check of absolute levels** (test AUC, mean over steps {steps[0]}-{steps[-1]} and seeds): uniform "
        f"10% {uni:.4f}, full {full:.4f} (uniform - full = {uni - full:+.4f}), scikit-learn logistic regression "
        f"on the whole span (one-hot categoricals + standardised numerics, tested on the next span) "
        + (f"{lr_auc:.4f}" if np.isfinite(lr_auc) else "not computed yet (written when the run completes)")
        + ". "
        + (
            f"**FLAG: data-starved regime** (uniform 10% is more than {STARVED_GAP} AUC below full)."
            if starved
            else f"Not data-starved (uniform 10% within {STARVED_GAP} AUC of full)."
            if np.isfinite(uni - full)
            else "Not assessable yet."
        )
    )
    return line, starved


def per_step_differences(rows: pd.DataFrame, steps: tuple[int, ...], meta: dict) -> list[str]:
    """The default vs each baseline per step (paired over seeds, 95% CI): every test step is reported."""
    lines = [
        "| budget | metric | baseline | "
        + " | ".join(f"step {t} (test {meta['span_names'][t + 1]})" for t in steps)
        + " |",
        "|---|---|---|" + "---:|" * len(steps),
    ]
    for b in headline_budgets(rows, meta):
        for m in ("auc", "ap"):
            for base in analysis.BASELINES:
                cells = []
                for t in steps:
                    sm = analysis.per_seed(rows, (t,))
                    d = analysis.paired(sm, m, harness.DEFAULT_ARM, b, base)
                    cells.append(analysis._diff(d["mean"], d["ci"]))
                lines.append(f"| {b:.0%} | {m.upper()} | {base} | " + " | ".join(cells) + " |")
    return lines


def render(name: str, raw: pd.DataFrame, meta: dict, results_dir: str) -> str:
    task, steps = meta["task"], meta["steps"]
    all_steps = tuple(range(1, steps + 1))
    raw = raw.drop_duplicates(["arm", "budget", "seed", "step"], keep="last")
    rows = complete_chains(raw, steps)
    png = f"learning_{name}.png"
    if len(rows[rows["step"] > 0]):
        analysis.plot(
            rows,
            task,
            all_steps,
            f"{name}: {meta['description']}\nmean over steps 1-{steps}; top: seed spread, bottom: paired Δ vs "
            "uniform (95% CI)",
            os.path.join(results_dir, png),
        )
    sessions = meta.get("sessions", [])
    wall = sum(s["wall_seconds"] for s in sessions)
    cpu = sum(s["cpu_seconds"] for s in sessions)
    checks = meta.get("beam_checks", [])
    chains_done = rows[rows["step"] == steps].groupby(["arm", "budget"])["seed"].nunique()
    status = (
        "complete"
        if meta.get("complete")
        else "**PARTIAL** (the run had not finished when this file was rendered; chains that had not reached the "
        "last step are left out, and the yardstick is written at the end)"
    )
    optimiser = (
        "a fresh Adam every step (sensitivity run; NOT what the Trainer does)"
        if meta.get("fresh_optimizer")
        else "Adam's state carried across steps, as the Trainer's warm start does (`model.export` saves the "
        "Keras weights in TF checkpoint format with the optimiser; `model.load_weights` restores its iteration "
        "count and moment slots: `test_trainer_warm_start_carries_adam_state`)"
    )
    cap = meta.get("max_rows_per_span")
    lines = [
        f"# Learning efficiency (v2, realistic regime): {name}",
        "",
        f"{meta['description']}. Status: {status}.",
        "",
        f"- Regenerate this file and the plot from the raw CSV: `{meta.get('report_command')}`",
        f"- Run (re-running it resumes from `learning_{name}_raw.csv`; `--restart` starts over): "
        f"`{meta['command']}`",
        f"- Date: {meta['date']}; wall time {wall / 60:.1f} min, CPU time {cpu / 60:.1f} min "
        f"({len(sessions)} session(s); data preparation {meta['prepare_seconds']:.0f} s"
        f"{' (cached)' if meta['prepare_seconds'] < 1 else ''}); TensorFlow threads: {meta.get('threads')}; "
        "load average (1/5/15 min) before / after each session: "
        + ", ".join(f"{s['load_before']} / {s['load_after']}" for s in sessions)
        + " (2 cores shared with two other jobs).",
        f"- Machine: {meta['machine']}.",
        f"- Versions: {meta['versions']}; code: {meta.get('code')}.",
        f"- Data: {meta['source']}; label: {meta['positive_rule']}. Spans: "
        + ", ".join(f"{n} ({r} rows, label mean {m:.4g})" for n, r, m in meta["spans"])
        + (f"; {cap} rows per span, evenly spread in time" if cap else "; whole spans, no cap")
        + ".",
        f"- Protocol (`benchmarks/learning/harness.py`, docs/benchmarks.md): M0 trains on span 0; step t = 1..{steps}: "
        "each chain's M(t-1) serves span t (prediction and L2 norm of the head's input, as float32 forward "
        "records), the product's pure selection path (`plan.reference_selection`) selects and weights span t, "
        "M(t) continues from M(t-1) on the selected rows with the float32 weights as `sample_weight` and is "
        f"tested on span t+1. Training as the Trainer: `model.build_model` ({meta['model']}), "
        f"batch {meta['batch_size']}, {meta['epochs']} epochs, shuffle buffer 20,000, {optimiser}. "
        "`full` and M0 train exactly like the arms (all rows, weight 1).",
        "- Beam job check: the real Curator Beam job ran for the default strategy (seed 0, every budget) at "
        f"steps {sorted({c['step'] for c in checks})} and selected "
        + (
            f"byte-identical ids and float32 weights in {sum(c['identical'] for c in checks)} of {len(checks)} "
            f"jobs ({sum(c['seconds'] for c in checks):.0f} s in all)"
            if checks
            else "(no check recorded yet: they are written when the run completes)"
        )
        + "; `test_pure_selection_matches_the_beam_job_for_every_benchmark_strategy` proves the same for every "
        "strategy used.",
        f"- Strategies: {', '.join(meta['arms'])}; seeds per budget "
        + ", ".join(f"{b:.0%}: {s}" for b, s in meta["seeds_by_budget"])
        + (
            "; at most " + ", ".join(f"{n} seeds for {a}" for a, n in meta.get("arm_seeds", {}).items())
            if meta.get("arm_seeds")
            else ""
        )
        + ". Seeds share M0, spans and hash draws, so differences are paired by seed. `loss_*`/`grad_norm` are "
        "pure importance sampling (mix 0); `defensive_0.1` = loss, window mode, mix 0.1 = the product's default."
        + (
            " `stratified_*` / `balanced_loss` (issue 14, added to the same run later, same M0 and seeds): label-aware "
            "water-filling (positives kept at p = 1 when the budget allows / water-filling on the class-normalised "
            "loss), window mode, mix 0.1 within each class."
            if any(a in harness.STRATIFIED for a in meta["arms"])
            else ""
        ),
        "- Chains that reached the last step: "
        + ", ".join(
            f"{a}@{'100%' if a == 'full' else f'{b:.0%}'}: {n}"
            for (a, b), n in chains_done.items()
            if a != "M0"
        )
        + ".",
        "- Defaults and steps: the default mix 0.1 was chosen earlier (issue 7, `learning_summary.md`) on the "
        "selection steps 1-3 of these same data sets in the old capped regime (10k-row spans, batch 64, fresh "
        "Adam). Nothing was tuned on this run; all steps 1-"
        f"{steps} are reported, so steps 1-3 are not independent of that choice (same spans, different regime).",
        "",
    ]
    sanity_line, _ = sanity(rows, meta, all_steps)
    lines += [sanity_line, ""]
    if meta.get("logistic_regression"):
        lines += [
            "Logistic regression per step (trained on span t, tested on span t+1): "
            + ", ".join(
                f"step {r['step']} AUC {r['auc']:.4f} / AP {r['ap']:.4f}" for r in meta["logistic_regression"]
            )
            + ".",
            "",
        ]
    if task == "binary":
        head, cells = headline(rows, all_steps, meta)
        table = analysis.cell_table(rows, task, all_steps)
        lines += [
            f"## Headline: the default (loss, window, mix 0.1), all steps 1-{steps}, budgets planned with >= "
            f"{HEADLINE_SEEDS} seeds",
            "",
            "Mean over steps per seed, then across seeds (sd = seed spread); Δ = paired difference, mean and 95% "
            "t-interval across seeds.",
            "",
            *head,
            "",
            multiple_comparisons(table, cells),
            "",
            "## Per step: the default minus each baseline (paired, ± 95% CI)",
            "",
            *per_step_differences(rows, all_steps, meta),
            "",
        ]
    table = analysis.cell_table(rows, task, all_steps)
    lines += [
        f"![quality vs budget]({png})",
        "",
        f"## All strategies, all steps 1-{steps} (win / **LOSS** = the 95% interval excludes 0)",
        "",
        analysis.markdown_cells(table, task, error_ratio=False),
        "",
        "## Per step (mean over seeds; M(t) tested on span t+1)",
        "",
    ]
    for metric in analysis.metrics_of(task):
        lines += [f"### {metric}", "", analysis.markdown_per_span(rows, task, metric, meta["span_names"]), ""]
    return "\n".join(lines)
