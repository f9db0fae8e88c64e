"""Regime sweep: where the default pays, as a function of the positives each curated step sees.

    .venv/bin/python -m benchmarks.learning --regime

Reads every v2 results file (`learning_<name>_meta.json` with a `protocol`) and its raw CSV; one point per
(run, budget): x = positives per curated step = span rows x budget x positive rate (mean over the curated spans
1..T), y = ΔAP of the default (loss, window, mix 0.1) against uniform and against negative down-sampling, mean
over all steps, paired by seed, with the 95% t-interval. Writes benchmarks/results/learning_regime.md and .png.
"""

from __future__ import annotations

import glob
import json
import os

import numpy as np

from benchmarks.learning import analysis, harness, report


def points(results_dir: str) -> list[dict]:
    out = []
    for meta_path in sorted(glob.glob(os.path.join(results_dir, "learning_*_meta.json"))):
        with open(meta_path) as f:
            meta = json.load(f)
        name = meta.get("name")
        csv = os.path.join(results_dir, f"learning_{name}_raw.csv")
        if "protocol" not in meta or meta["task"] != "binary" or not os.path.exists(csv):
            continue
        steps = meta["steps"]
        rows = report.complete_chains(report.load_rows(csv), steps)
        sm = analysis.per_seed(rows, tuple(range(1, steps + 1)))
        spans = meta["spans"][1 : steps + 1]  # spans curated at steps 1..T
        positives = float(np.mean([n * rate for _, n, rate in spans]))
        for b in sorted(x for x in rows["budget"].unique() if 0 < x < 1):
            rec = {"run": name, "budget": float(b), "positives_per_step": positives * b}
            for base in analysis.BASELINES:
                d = analysis.paired(sm, "ap", harness.DEFAULT_ARM, b, base)
                rec[base] = d
            if np.isfinite(rec["uniform"]["mean"]):
                out.append(rec)
    return out


def plot(pts: list[dict], path: str) -> None:
    import matplotlib
    import matplotlib.ticker

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(8, 6.2))
    runs = sorted({p["run"] for p in pts})
    markers = dict(zip(runs, "osD^v<>"))
    for base, colour, shift in (("uniform", "tab:blue", 0.97), ("negative_downsampling", "tab:red", 1.03)):
        for run in runs:
            sel = [p for p in pts if p["run"] == run and np.isfinite(p[base]["mean"])]
            if not sel:
                continue
            ax.errorbar(
                [p["positives_per_step"] * shift for p in sel],
                [p[base]["mean"] for p in sel],
                yerr=[p[base]["ci"] if np.isfinite(p[base]["ci"]) else 0.0 for p in sel],
                fmt=markers[run],
                color=colour,
                capsize=3,
                label=f"vs {base.replace('_', ' ')}: {run}",
            )
            for p in sel:
                ax.annotate(
                    f"{p['budget']:.0%}",
                    (p["positives_per_step"] * shift, p[base]["mean"]),
                    fontsize=7,
                    xytext=(4, 2),
                    textcoords="offset points",
                )
    ax.axhline(0.0, color="black", lw=0.8)
    ax.set_xscale("log")
    ax.set_xlabel("positives per curated step (span rows x budget x positive rate)")
    ax.set_ylabel("ΔAP of the default (loss, window, mix 0.1), 95% CI")
    ax.set_title("Where the default pays: paired ΔAP over all steps, by regime", fontsize=10)
    ax.grid(alpha=0.3)
    ax.set_xticks([30, 50, 100, 200, 500, 1000])
    ax.get_xaxis().set_major_formatter(matplotlib.ticker.ScalarFormatter())
    ax.legend(fontsize=7, loc="upper center", bbox_to_anchor=(0.5, -0.13), ncol=2)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def main(results_dir: str) -> int:
    pts = points(results_dir)
    plot(pts, os.path.join(results_dir, "learning_regime.png"))
    lines = [
        "# Regime sweep: ΔAP of the default vs positives per curated step",
        "",
        "Regenerate: `.venv/bin/python -m benchmarks.learning --regime` (reads every v2 `learning_<name>_raw.csv`).",
        "One point per run and budget: x = span rows x budget x positive rate (mean over the curated spans), "
        "y = paired ΔAP of the default (loss, window, mix 0.1) over all steps, 95% t-interval across seeds. "
        "Only chains that reached the last step count.",
        "",
        "![regime sweep](learning_regime.png)",
        "",
        "| run | budget | positives per step | seeds | ΔAP vs uniform [95% CI] | ΔAP vs neg. ds. [95% CI] |",
        "|---|---:|---:|---:|---:|---:|",
    ]
    for p in sorted(pts, key=lambda p: p["positives_per_step"]):
        lines.append(
            f"| {p['run']} | {p['budget']:.0%} | {p['positives_per_step']:.0f} | {p['uniform']['n']} | "
            f"{report._ci(p['uniform'])} | {report._ci(p['negative_downsampling'])} |"
        )
    with open(os.path.join(results_dir, "learning_regime.md"), "w") as f:
        f.write("\n".join(lines) + "\n")
    print("wrote learning_regime.md and .png")
    return 0
