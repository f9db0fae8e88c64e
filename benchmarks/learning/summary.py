"""Cross-data-set summary: the defaults chosen on the selection steps, then checked on the held-out steps.

    .venv/bin/python -m benchmarks.learning --summary

Reads benchmarks/results/learning_<dataset>_raw.csv for every data set run and writes
benchmarks/results/learning_summary.md. The rule for the defensive mixture `a` was fixed before any result
was seen (and is applied to the selection steps only):

1. safety: a candidate a in {0 (loss_window), 0.1, 0.3, 0.5} is dropped if, in any data set and budget, it loses
   to uniform beyond 2 SE on any quality metric (AUC or average precision; RMSE for regression);
2. gain: among the survivors, the largest mean paired average-precision gain over uniform on the imbalanced
   data set(s) at the 5% and 10% budgets;
3. if none survives, the candidate whose worst standardised loss (difference / SE) is smallest;
   ties go to the larger a (closer to uniform, smaller weights).

The same held-out tables then say whether the chosen default meets the issue's goals.

This is the v1 (issue 7) summary of the capped regime; v2 runs (their _meta.json has a `protocol`) are skipped,
so a re-run reads only the v1 files left (the v1 `cancelled` and flights-3m CSVs are in git at db0fbd0).
"""

from __future__ import annotations

import json
import math
import os

import numpy as np
import pandas as pd

from benchmarks.learning import analysis
from benchmarks.learning.harness import ARMS

HERE = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
RESULTS = os.path.join(HERE, "results")
DATASETS = ("nycflights_delay", "nycflights_cancelled", "flights3m_delay60", "diamonds")
IMBALANCED = ("nycflights_cancelled", "flights3m_delay60")
CANDIDATES = {"loss_window": 0.0, "defensive_0.1": 0.1, "defensive_0.3": 0.3, "defensive_0.5": 0.5}
SMALL_BUDGETS = (0.05, 0.1)


def load() -> dict:
    out = {}
    for name in DATASETS:
        path = os.path.join(RESULTS, f"learning_{name}_raw.csv")
        if not os.path.exists(path):
            continue
        with open(os.path.join(RESULTS, f"learning_{name}_meta.json")) as f:
            meta = json.load(f)
        if "protocol" in meta:  # a v2 run: another regime
            continue
        out[name] = (pd.read_csv(path), meta)
    return out


def _quality_metrics(task: str) -> tuple[str, ...]:
    return ("auc", "ap") if task == "binary" else ("rmse",)


def cells(data: dict, arm: str, baseline: str, which: str) -> list[dict]:
    """Paired differences arm - baseline per (data set, budget, metric) over the `which` half."""
    out = []
    for name, (rows, meta) in data.items():
        sm = analysis.per_seed(rows, analysis.halves(meta["steps"])[which])
        for budget in sorted(b for b in rows["budget"].unique() if 0 < b < 1):
            for m in _quality_metrics(meta["task"]):
                d = analysis.paired(sm, m, arm, budget, baseline)
                if d["n"] == 0:
                    continue
                sign = 1 if analysis.HIGHER_IS_BETTER[m] else -1
                z = (
                    sign * d["mean"] / d["se"]
                    if d["se"] and np.isfinite(d["se"]) and d["se"] > 0
                    else math.nan
                )
                out.append(
                    {
                        "dataset": name,
                        "budget": budget,
                        "metric": m,
                        **d,
                        "z": z,
                        "verdict": analysis.verdict(d, m),
                    }
                )
    return out


def choose_mix(data: dict) -> tuple[str, list[str]]:
    """Apply the rule above on the selection steps; returns (chosen arm, explanation lines)."""
    notes, survivors, worst = [], [], {}
    for arm in CANDIDATES:
        cs = cells(data, arm, "uniform", "selection")
        losses = [c for c in cs if c["verdict"] == "LOSS"]
        worst[arm] = min((c["z"] for c in cs if np.isfinite(c["z"])), default=math.nan)
        if losses:
            where = ", ".join(f"{c['dataset']} {c['budget']:.0%} {c['metric']}" for c in losses)
            notes.append(f"- `{arm}` (a = {CANDIDATES[arm]}): dropped, loses beyond 2 SE on {where}")
        else:
            survivors.append(arm)
            notes.append(f"- `{arm}` (a = {CANDIDATES[arm]}): no loss beyond 2 SE")
    if survivors:
        gains = {}
        for arm in survivors:
            cs = [
                c
                for c in cells(
                    {k: v for k, v in data.items() if k in IMBALANCED}, arm, "uniform", "selection"
                )
                if c["metric"] == "ap" and c["budget"] in SMALL_BUDGETS
            ]
            gains[arm] = float(np.mean([c["mean"] for c in cs])) if cs else -math.inf
            notes.append(
                f"- `{arm}`: mean ΔAP vs uniform on the imbalanced task(s) at 5-10%: {gains[arm]:+.4f}"
            )
        best = max(gains.values())
        chosen = max((a for a in survivors if gains[a] == best), key=lambda a: CANDIDATES[a])
    else:
        best = max(worst.values())
        chosen = max((a for a in CANDIDATES if worst[a] == best), key=lambda a: CANDIDATES[a])
        notes.append(f"- none survives: smallest worst standardised loss -> `{chosen}`")
    return chosen, notes


IS_ARMS = (*(a.name for a in ARMS if a.strategy in ("loss", "grad_norm")), "negative_downsampling")


def _mean(cs: list[dict], dataset=None, metric=None, budgets=None, imbalanced=False) -> float:
    v = [
        c["mean"]
        for c in cs
        if (dataset is None or c["dataset"] == dataset)
        and (metric is None or c["metric"] == metric)
        and (budgets is None or c["budget"] in budgets)
        and (not imbalanced or c["dataset"] in IMBALANCED)
    ]
    return float(np.mean(v)) if v else math.nan


def _signed(v: float, digits: int = 4) -> str:
    return f"{v:+.{digits}f}" if np.isfinite(v) else "–"


def overview(data: dict, which: str) -> list[str]:
    """Per strategy: cells measured, wins / losses vs uniform beyond 2 SE, mean gains by kind of data set."""
    lines = [
        "| strategy | cells | wins vs uniform | **losses vs uniform** | losses vs neg. ds. at 5-10% "
        "| mean ΔAP imbalanced 5-10% | mean ΔAUC imbalanced 5-10% | mean ΔAUC nycflights_delay "
        "| mean ΔRMSE diamonds ($) |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for arm in IS_ARMS:
        cs = cells(data, arm, "uniform", which)
        if not cs:
            continue
        losses = [c for c in cs if c["verdict"] == "LOSS"]
        where = ", ".join(f"{c['dataset']} {c['budget']:.0%} {c['metric']}" for c in losses)
        nds = cells(data, arm, "negative_downsampling", which) if arm != "negative_downsampling" else []
        nds_losses = sum(c["verdict"] == "LOSS" for c in nds if c["budget"] in SMALL_BUDGETS)
        wins = sum(c["verdict"] == "win" for c in cs)
        lines.append(
            f"| {arm} | {len(cs)} | {wins} | {len(losses)}"
            + (f" ({where})" if losses else "")
            + f" | {nds_losses} "
            f"| {_signed(_mean(cs, metric='ap', budgets=SMALL_BUDGETS, imbalanced=True))} "
            f"| {_signed(_mean(cs, metric='auc', budgets=SMALL_BUDGETS, imbalanced=True))} "
            f"| {_signed(_mean(cs, dataset='nycflights_delay', metric='auc'))} "
            f"| {_signed(_mean(cs, dataset='diamonds'), 1)} |"
        )
    return lines


def _table(cs: list[dict], title: str) -> list[str]:
    lines = [
        f"| data set | budget | metric | {title} ± SE | seeds | verdict |",
        "|---|---|---|---:|---:|---|",
    ]
    for c in cs:
        digits = 1 if c["metric"] == "rmse" else 4
        se = f"{c['se']:.{digits}f}" if np.isfinite(c["se"]) else "–"
        lines.append(
            f"| {c['dataset']} | {c['budget']:.0%} | {c['metric']} | {c['mean']:+.{digits}f} ± {se} | {c['n']} "
            f"| {c['verdict']} |"
        )
    return lines


def main() -> int:
    data = load()
    if not data:
        raise SystemExit("no learning_<dataset>_raw.csv in benchmarks/results: run the data sets first")
    chosen, notes = choose_mix(data)
    lines = [
        "# Learning efficiency: defaults from the evidence",
        "",
        "Command: `.venv/bin/python -m benchmarks.learning --summary` (reads the per-data-set results: "
        + ", ".join(f"[learning_{n}.md](learning_{n}.md)" for n in data)
        + "). Selection steps choose; held-out steps report.",
        "",
        "## Choice of the defensive mixture a (selection steps only)",
        "",
        "Rule (fixed before the runs): drop candidates that lose to uniform beyond 2 SE anywhere; keep the largest "
        "mean ΔAP vs uniform on the imbalanced task at 5-10%; ties to the larger a.",
        "",
        *notes,
        "",
        f"**Chosen: `{chosen}` (a = {CANDIDATES[chosen]})**",
        "",
    ]
    for which, title in (("selection", "selection steps"), ("held_out", "held-out steps")):
        lines += [
            f"## Every importance-sampling strategy at a glance ({title})",
            "",
            "Cells = (data set, budget, metric) measured; wins / losses = beyond 2 SE of the paired difference "
            "vs uniform (AUC and AP; RMSE for diamonds, lower is better).",
            "",
            *overview(data, which),
            "",
        ]
    for which, title in (
        ("held_out", "Held-out steps"),
        ("selection", "Selection steps"),
        ("all", "All steps"),
    ):
        lines += [f"## {title}: chosen default vs uniform", ""]
        lines += _table(cells(data, chosen, "uniform", which), "Δ vs uniform")
        lines += ["", f"## {title}: chosen default vs negative down-sampling (binary tasks)", ""]
        lines += _table(cells(data, chosen, "negative_downsampling", which), "Δ vs neg. ds.")
        lines += [""]
    lines += ["## Other comparisons (held-out steps)", ""]
    for arm, base, title in (
        ("loss_global", "loss_window", "global minus window mode (loss, a = 0)"),
        ("grad_norm", "loss_window", "grad_norm (with hidden norm) minus loss (window, a = 0)"),
        ("grad_norm_no_hidden", "grad_norm", "grad_norm without minus with the hidden norm"),
        ("negative_downsampling", "uniform", "negative down-sampling minus uniform"),
        ("loss_window", "uniform", "loss (a = 0) minus uniform"),
        ("top_k", "uniform", "top_k minus uniform"),
    ):
        lines += [f"### {title}", ""]
        lines += _table(cells(data, arm, base, "held_out"), "Δ")
        lines += [""]
    path = os.path.join(RESULTS, "learning_summary.md")
    with open(path, "w") as f:
        f.write("\n".join(lines) + "\n")
    print(f"wrote {path}; chosen {chosen}")
    return 0
