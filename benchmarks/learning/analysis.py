"""Tables and plots of the learning-efficiency benchmark: seed spread, paired differences with standard errors.

A chain's score over a range of steps is the mean of its per-step test metric; chains of the same seed share
M0, the spans and the Curator's hash draws, so a strategy is compared with uniform (or negative down-sampling)
by the paired difference per seed: its mean, its standard error across seeds (sd / sqrt(n)) and the 95%
t-interval (scipy.stats.t, n - 1 degrees of freedom).

Steps are split in two halves: the first half ("selection steps") is where defaults such as the defensive
mixture `a` are chosen; the second half ("held-out steps") is reported as the headline, never used to choose.
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd

from benchmarks.learning.harness import ARMS, FULL

HIGHER_IS_BETTER = {"auc": True, "ap": True, "log_loss": False, "rmse": False}
BASELINES = ("uniform", "negative_downsampling")


def metrics_of(task: str) -> tuple[str, ...]:
    return ("auc", "ap", "log_loss") if task == "binary" else ("rmse",)


def halves(steps: int) -> dict[str, tuple[int, ...]]:
    first = steps // 2
    return {
        "selection": tuple(range(1, first + 1)),
        "held_out": tuple(range(first + 1, steps + 1)),
        "all": tuple(range(1, steps + 1)),
    }


def per_seed(rows: pd.DataFrame, steps: tuple[int, ...]) -> pd.DataFrame:
    """Mean over `steps` of every numeric column, per (arm, budget, seed)."""
    part = rows[rows["step"].isin(steps)]
    return part.groupby(["arm", "budget", "seed"]).mean(numeric_only=True).drop(columns=["step"])


def paired(seed_means: pd.DataFrame, metric: str, arm: str, budget: float, baseline: str) -> dict:
    """Paired difference arm - baseline (same budget, same seeds): mean, SE, n, and the 95% t-interval's
    half-width `ci` (scipy.stats.t with n - 1 degrees of freedom); NaN when not measured."""
    from scipy import stats

    try:
        a = seed_means.loc[(arm, budget)][metric]
        b = seed_means.loc[(baseline, budget)][metric]
    except KeyError:
        return {"mean": math.nan, "se": math.nan, "ci": math.nan, "n": 0}
    d = (a - b).dropna()
    n = len(d)
    if n == 0:
        return {"mean": math.nan, "se": math.nan, "ci": math.nan, "n": 0}
    se = float(d.std(ddof=1) / math.sqrt(n)) if n > 1 else math.nan
    ci = float(stats.t.ppf(0.975, n - 1) * se) if n > 1 else math.nan
    return {"mean": float(d.mean()), "se": se, "ci": ci, "n": n}


def verdict(diff: dict, metric: str) -> str:
    """'win' / 'LOSS' when the 95% interval excludes 0 (in the metric's better direction), else 'tie'.

    Falls back to 2 SE when no interval was computed (old rows)."""
    m = diff["mean"]
    half = diff.get("ci", math.nan)
    if not np.isfinite(half):
        half = 2 * diff.get("se", math.nan)
    if not np.isfinite(m) or not np.isfinite(half):
        return "n/a"
    sign = 1 if HIGHER_IS_BETTER[metric] else -1
    if sign * m > half:
        return "win"
    if sign * m < -half:
        return "LOSS"
    return "tie"


def cell_table(rows: pd.DataFrame, task: str, steps: tuple[int, ...]) -> pd.DataFrame:
    """One row per (arm, budget): metric means and seed sd, paired differences vs the baselines."""
    sm = per_seed(rows, steps)
    out = []
    for (arm, budget), g in sm.groupby(level=[0, 1], sort=False):
        rec = {"arm": arm, "budget": budget, "seeds": len(g)}
        for m in (*metrics_of(task), "calibration"):
            rec[m] = g[m].mean()
            rec[m + "_sd"] = g[m].std(ddof=1) if len(g) > 1 else math.nan
        for col in ("backward", "error_ratio_vs_uniform", "ess", "max_w", "positives_selected"):
            rec[col] = g[col].mean() if col in g else math.nan
        for base in BASELINES:
            for m in metrics_of(task):
                d = paired(sm, m, arm, budget, base)
                rec[f"d_{m}_vs_{base}"] = d["mean"]
                rec[f"se_{m}_vs_{base}"] = d["se"]
                rec[f"ci_{m}_vs_{base}"] = d["ci"]
                rec[f"n_{m}_vs_{base}"] = d["n"]
        out.append(rec)
    return pd.DataFrame(out)


# ---------------------------------------------------------------------------------------------------------
# Markdown
# ---------------------------------------------------------------------------------------------------------


def _f(v, digits=4) -> str:
    if v is None or (isinstance(v, float) and np.isnan(v)):
        return "–"
    if isinstance(v, float) and np.isinf(v):
        return "∞"
    return f"{v:.{digits}f}"


def _diff(mean, half, digits=4) -> str:
    """A difference ± the half-width of its interval."""
    if not np.isfinite(mean):
        return "–"
    return f"{mean:+.{digits}f} ± {half:.{digits}f}" if np.isfinite(half) else f"{mean:+.{digits}f}"


ARM_ORDER = (FULL.name, *(a.name for a in ARMS))


def _ordered(table: pd.DataFrame) -> pd.DataFrame:
    rank = {a: i for i, a in enumerate(ARM_ORDER)}
    t = table.copy()
    t["_r"] = t["arm"].map(lambda a: rank.get(a, 99))
    t["_b"] = t["budget"].where(t["arm"] != "full", 9.0)
    return t.sort_values(["_b", "_r"]).drop(columns=["_r", "_b"])


def markdown_cells(table: pd.DataFrame, task: str, error_ratio: bool = True) -> str:
    """The paired-difference table (one line per arm and budget); `error_ratio`: the curation report's
    estimator-error column (v1 runs, which ran the Beam job per chain)."""
    table = _ordered(table)
    if task == "binary":
        head = (
            "| budget | strategy | seeds | AUC (sd) | AP (sd) | log loss | calib. | backward / step "
            "| ΔAUC vs uniform ± 95% CI | ΔAP vs uniform ± 95% CI | ΔAUC vs neg. ds. ± 95% CI "
            "| ΔAP vs neg. ds. ± 95% CI "
            "| est. error ratio vs uniform |\n|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|"
        )
    else:
        head = (
            "| budget | strategy | seeds | RMSE (sd) | calib. | backward / step | ΔRMSE vs uniform ± SE "
            "| est. error ratio vs uniform |\n|---|---|---:|---:|---:|---:|---:|---:|"
        )
    lines = [head]
    for r in table.itertuples(index=False):
        r = r._asdict()
        budget = "100%" if r["arm"] == "full" else f"{r['budget']:.0%}"
        if task == "binary":
            cells = [
                budget,
                r["arm"],
                str(r["seeds"]),
                f"{_f(r['auc'])} ({_f(r['auc_sd'])})",
                f"{_f(r['ap'])} ({_f(r['ap_sd'])})",
                _f(r["log_loss"]),
                _f(r["calibration"], 3),
                f"{r['backward']:.0f}",
            ]
            for base in BASELINES:
                for m in ("auc", "ap"):
                    d = {
                        "mean": r[f"d_{m}_vs_{base}"],
                        "se": r[f"se_{m}_vs_{base}"],
                        "ci": r.get(f"ci_{m}_vs_{base}", math.nan),
                    }
                    v = verdict(d, m)
                    mark = " **LOSS**" if v == "LOSS" and r["arm"] != base else (" win" if v == "win" else "")
                    cells.append(_diff(d["mean"], d["ci"]) + mark if r["arm"] != base else "0")
            # reorder: vs uniform first (auc, ap), then vs neg ds (auc, ap)
        else:
            d = {
                "mean": r["d_rmse_vs_uniform"],
                "se": r["se_rmse_vs_uniform"],
                "ci": r.get("ci_rmse_vs_uniform", math.nan),
            }
            v = verdict(d, "rmse")
            mark = " **LOSS**" if v == "LOSS" else (" win" if v == "win" else "")
            cells = [
                budget,
                r["arm"],
                str(r["seeds"]),
                f"{_f(r['rmse'], 1)} ({_f(r['rmse_sd'], 1)})",
                _f(r["calibration"], 3),
                f"{r['backward']:.0f}",
                (_diff(d["mean"], d["ci"], 1) + mark) if r["arm"] != "uniform" else "0",
            ]
        cells.append(_f(r["error_ratio_vs_uniform"], 3))
        lines.append("| " + " | ".join(cells) + " |")
    text = "\n".join(lines)
    if not error_ratio:
        text = "\n".join("|".join(line.split("|")[:-2]) + "|" for line in text.split("\n"))
    return text


def markdown_per_span(rows: pd.DataFrame, task: str, metric: str, span_names: list[str]) -> str:
    """Mean over seeds of `metric` per step (M(t) tested on span t+1), one line per arm and budget."""
    steps = sorted(s for s in rows["step"].unique() if s > 0)
    head = (
        "| budget | strategy | " + " | ".join(f"step {s} (test: {span_names[s + 1]})" for s in steps) + " |"
    )
    lines = [head, "|---|---|" + "---:|" * len(steps)]
    m0 = rows[rows["arm"] == "M0"][metric].mean()
    digits = 1 if metric == "rmse" else 4
    lines.append(f"| – | M0 (tested on {span_names[1]}) | {_f(m0, digits)} |" + " |" * (len(steps) - 1))
    means = rows[rows["step"] > 0].groupby(["arm", "budget", "step"])[metric].mean()
    pairs = _ordered(rows[rows["step"] > 0][["arm", "budget"]].drop_duplicates())
    for arm, budget in pairs.itertuples(index=False):
        vals = [_f(means.get((arm, budget, s), math.nan), digits) for s in steps]
        b = "100%" if arm == "full" else f"{budget:.0%}"
        lines.append(f"| {b} | {arm} | " + " | ".join(vals) + " |")
    return "\n".join(lines)


# ---------------------------------------------------------------------------------------------------------
# Plots
# ---------------------------------------------------------------------------------------------------------

PLOT_ARMS = tuple(a.name for a in ARMS)


def plot(rows: pd.DataFrame, task: str, steps: tuple[int, ...], title: str, path: str) -> None:
    """Quality vs budget per strategy (mean ± seed sd over the steps), and paired Δ vs uniform with 95% CIs."""
    import matplotlib
    import matplotlib.ticker

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    sm = per_seed(rows, steps)
    metrics = ("auc", "ap") if task == "binary" else ("rmse",)
    fig, axes = plt.subplots(2, len(metrics), figsize=(6.5 * len(metrics), 8.5), squeeze=False)
    cmap = plt.get_cmap("tab10")
    budgets = sorted(b for b in rows["budget"].unique() if 0 < b < 1)
    for j, m in enumerate(metrics):
        top, bottom = axes[0][j], axes[1][j]
        for k, arm in enumerate(PLOT_ARMS):
            xs, ys, es, ds, dses = [], [], [], [], []
            for b in budgets:
                if (arm, b) not in sm.index.droplevel(2):
                    continue
                g = sm.loc[(arm, b)][m]
                d = paired(sm, m, arm, b, "uniform")
                xs.append(b * 100)
                ys.append(g.mean())
                es.append(g.std(ddof=1) if len(g) > 1 else 0.0)
                ds.append(d["mean"])
                dses.append(d["ci"] if np.isfinite(d["ci"]) else 0.0)
            if not xs:
                continue
            style = dict(color=cmap(k % 10), marker="o", ms=4, capsize=3, label=arm)
            if arm == "top_k":
                style["ls"] = ":"
            top.errorbar(np.array(xs) * (1 + 0.015 * (k - 5)), ys, yerr=es, **style)
            if arm != "uniform":
                bottom.errorbar(np.array(xs) * (1 + 0.015 * (k - 5)), ds, yerr=dses, **style)
        if ("full", 1.0) in sm.index.droplevel(2):
            full = sm.loc[("full", 1.0)][m]
            top.axhspan(
                full.mean() - full.std(ddof=1), full.mean() + full.std(ddof=1), color="grey", alpha=0.2
            )
            top.axhline(full.mean(), color="grey", lw=1, label="full (100%) ± sd")
        bottom.axhline(0.0, color="black", lw=0.8)
        for ax in (top, bottom):
            ax.set_xscale("log")
            ax.set_xticks([b * 100 for b in budgets])
            ax.set_xticklabels([f"{b:.0%}" for b in budgets])
            ax.xaxis.set_minor_formatter(matplotlib.ticker.NullFormatter())
            ax.set_xlabel("budget (share of each span trained on)")
            ax.grid(alpha=0.3)
        name = {"auc": "AUC", "ap": "average precision", "rmse": "RMSE ($)"}[m]
        top.set_ylabel(f"test {name} (mean ± sd over seeds)")
        bottom.set_ylabel(f"Δ {name} vs uniform, paired (95% CI)")
        if m == "rmse":
            # top_k is far off: keep the scale on the others
            others = sm.drop(index="top_k", level=0, errors="ignore")[m]
            lo, hi = others.min(), others.max()
            top.set_ylim(lo - 0.1 * (hi - lo), hi + 0.1 * (hi - lo))
        if m in ("auc", "ap"):
            others = sm.drop(index="top_k", level=0, errors="ignore")[m]
            lo, hi = others.min(), others.max()
            top.set_ylim(lo - 0.1 * (hi - lo), hi + 0.1 * (hi - lo))
            diffs = [
                paired(sm, m, a, b, "uniform")["mean"] for a in PLOT_ARMS if a != "top_k" for b in budgets
            ]
            diffs = [d for d in diffs if np.isfinite(d)]
            if diffs:
                span = max(abs(min(diffs)), abs(max(diffs))) * 1.6
                bottom.set_ylim(-span, span)
    if "top_k" in rows["arm"].values:
        fig.text(
            0.01,
            0.005,
            "top_k: far outside the plotted range in the top panels (see the tables).",
            fontsize=8,
        )
    axes[0][0].legend(fontsize=7, loc="best")
    fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
