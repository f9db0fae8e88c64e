"""The default's decision rule of issue 14 (docs/benchmarks.md, written before the runs), applied to the results.

    .venv/bin/python -m benchmarks.learning.default_rule

Reads the raw CSVs of `nycflights_cancelled`, `flights3m_delay60` (imbalanced) and `nycflights_delay_v2`
(balanced), all steps 1..T, paired by seed, and writes benchmarks/results/learning_default_rule.md: every
candidate against uniform and negative down-sampling (95% t-intervals), eligibility (step 1), ranking by AP on
the imbalanced cells at 5-10% (step 2), the paired test against the current default (step 3), the moonshot check.
"""

from __future__ import annotations

import json
import math
import os

import numpy as np

from benchmarks.learning import analysis, harness, report

RESULTS = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "results")
IMBALANCED = ("nycflights_cancelled", "flights3m_delay60")
BALANCED = ("nycflights_delay_v2",)
CANDIDATES = (harness.DEFAULT_ARM, *harness.STRATIFIED)
BASELINES = ("uniform", "negative_downsampling")
HEADLINE_BUDGETS = (0.05, 0.1)


def seed_means(name: str):
    with open(os.path.join(RESULTS, f"learning_{name}_meta.json")) as f:
        meta = json.load(f)
    steps = meta["steps"]
    rows = report.complete_chains(report.load_rows(os.path.join(RESULTS, f"learning_{name}_raw.csv")), steps)
    return analysis.per_seed(rows, tuple(range(1, steps + 1)))


def _cell(d: dict) -> str:
    if not d["n"]:
        return "not run"
    text = f"{d['mean']:+.4f} [{d['mean'] - d['ci']:+.4f}, {d['mean'] + d['ci']:+.4f}]"
    return text + (" **LOSS**" if d["mean"] + d["ci"] < 0 else " win" if d["mean"] - d["ci"] > 0 else "")


def _averaged_difference(sm, arm: str, base: str, budgets) -> dict:
    """Paired difference of AP averaged over budgets per seed (seeds measured at every budget)."""
    from scipy import stats

    parts = []
    for b in budgets:
        try:
            parts.append(sm.loc[(arm, b)]["ap"] - sm.loc[(base, b)]["ap"])
        except KeyError:
            return {"mean": math.nan, "ci": math.nan, "n": 0}
    d = sum(parts).dropna() / len(parts)
    n = len(d)
    se = float(d.std(ddof=1) / math.sqrt(n))
    return {"mean": float(d.mean()), "ci": float(stats.t.ppf(0.975, n - 1) * se), "n": n}


def main() -> int:
    data = {name: seed_means(name) for name in (*IMBALANCED, *BALANCED)}
    lines = [
        "# Label-aware water-filling: the default's decision rule applied (issue 14)",
        "",
        "Rule: docs/benchmarks.md, *Label-aware water-filling: the rule for the default* (written before the "
        "runs). Regenerate: `.venv/bin/python -m benchmarks.learning.default_rule` (from the raw CSVs; the runs' "
        "commands are in each `learning_<name>.md`). All steps 1-6; Δ = paired difference by seed, mean "
        "[95% t-interval]; **LOSS** / win = the interval excludes 0.",
        "",
        "| data set | budget | candidate | seeds | AP | ΔAUC vs uniform | ΔAP vs uniform | ΔAUC vs neg. ds. | "
        "ΔAP vs neg. ds. |",
        "|---|---:|---|---:|---:|---:|---:|---:|---:|",
    ]
    eligible = {c: True for c in CANDIDATES}
    losses: dict[str, list[str]] = {c: [] for c in CANDIDATES}
    for name, sm in data.items():
        budgets = sorted({b for _, b in sm.index.droplevel(2).unique() if 0 < b < 1})
        for b in budgets:
            for c in CANDIDATES:
                diffs = {
                    (m, base): analysis.paired(sm, m, c, b, base) for m in ("auc", "ap") for base in BASELINES
                }
                n = max(d["n"] for d in diffs.values())
                if not n:
                    losses[c].append(f"{name} {b:.0%}: not measured")
                    eligible[c] = False
                    continue
                for (m, base), d in diffs.items():
                    if d["mean"] + d["ci"] < 0:
                        eligible[c] = False
                        losses[c].append(f"{name} {b:.0%} {m.upper()} vs {base}")
                ap = float(sm.loc[(c, b)]["ap"].mean())
                lines.append(
                    f"| {name} | {b:.0%} | {c} | {n} | {ap:.4f} | "
                    + " | ".join(_cell(diffs[(m, base)]) for base in BASELINES for m in ("auc", "ap"))
                    + " |"
                )
    lines += ["", "## Step 1: eligibility (no LOSS against uniform or negative down-sampling anywhere)", ""]
    for c in CANDIDATES:
        lines.append(f"- `{c}`: " + ("eligible" if eligible[c] else "not eligible: " + "; ".join(losses[c])))
    ranking = []
    for c in CANDIDATES:
        cells = [
            float(data[name].loc[(c, b)]["ap"].mean())
            for name in IMBALANCED
            for b in HEADLINE_BUDGETS
            if (c, b) in data[name].index.droplevel(2)
        ]
        ranking.append((float(np.mean(cells)) if len(cells) == 4 else math.nan, c))
    ranking.sort(key=lambda x: -x[0] if not math.isnan(x[0]) else math.inf)
    lines += ["", "## Step 2: mean AP over the four imbalanced cells at 5% and 10%", ""]
    lines += [f"- `{c}`: {ap:.4f}" + ("" if eligible[c] else " (not eligible)") for ap, c in ranking]
    best = next((c for _, c in ranking if eligible[c]), None)
    lines += [
        "",
        "## Step 3: the best eligible candidate against the current default (ΔAP averaged over 5%, 10%)",
        "",
    ]
    decision = f"keep `{harness.DEFAULT_ARM}`"
    if best is None:
        decision += " (no candidate eligible)"
    elif best == harness.DEFAULT_ARM:
        decision += " (it ranks first among the eligible candidates)"
    else:
        tests = {
            name: _averaged_difference(data[name], best, harness.DEFAULT_ARM, HEADLINE_BUDGETS)
            for name in IMBALANCED
        }
        for name, d in tests.items():
            lines.append(f"- {name}: `{best}` - `{harness.DEFAULT_ARM}` ΔAP {_cell(d)} (n = {d['n']})")
        above = [n for n, d in tests.items() if d["mean"] - d["ci"] > 0]
        below = [n for n, d in tests.items() if d["mean"] + d["ci"] < 0]
        if above and not below:
            decision = f"change the default to `{best}`"
        else:
            decision += f" (`{best}` ranks first, but its gain over the default is within the 95% interval)"
    lines += [
        "",
        f"**Decision: {decision}.**",
        "",
        "## Moonshot: ΔAP >= +0.002 against negative down-sampling at 5% and 10% on both imbalanced sets, interval excluding 0",
        "",
    ]
    for c in CANDIDATES:
        cells = []
        met = True
        for name in IMBALANCED:
            for b in HEADLINE_BUDGETS:
                d = analysis.paired(data[name], "ap", c, b, "negative_downsampling")
                ok = d["n"] > 0 and d["mean"] >= 0.002 and d["mean"] - d["ci"] > 0
                met &= ok
                cells.append(f"{name} {b:.0%} {_cell(d)}")
        lines.append(f"- `{c}`: {'MET' if met else 'not met'} ({'; '.join(cells)})")
    with open(os.path.join(RESULTS, "learning_default_rule.md"), "w") as f:
        f.write("\n".join(lines) + "\n")
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
