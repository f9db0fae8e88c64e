"""report.html's verdict (the first thing a reader sees) and small HTML tables for the report's mappings.

Pure functions of report.json's content: budget met, accounting holds, unbiasedness ok (or which features
mismatch), rejects and why, per split.
"""

from __future__ import annotations

import html
import math

NOISE_SDS = 3.0  # achieved vs expected count: Poisson sampling's sd is at most sqrt(expected)


def budget_met(expected: float, achieved: int) -> bool:
    return abs(achieved - expected) <= NOISE_SDS * math.sqrt(max(expected, 1.0))


def split_verdict(split: str, e: dict) -> tuple[bool, list[str]]:
    """(all good, lines) for one split."""
    acc, budget = e["accounting"], e["budget"]
    lines, good = [], True
    if acc["holds"]:
        lines.append(
            f"accounting holds: {acc['examples_read']} read = {acc['selected']} selected + "
            f"{acc['not_selected']} not selected + {acc['rejected']} rejected"
        )
    else:
        good = False
        lines.append("ACCOUNTING BROKEN: read != selected + not selected + rejected")
    met = budget_met(budget["expected"], budget["achieved"])
    good &= met
    lines.append(
        f"budget {'met' if met else 'NOT MET'}: {budget['achieved']} selected, {budget['expected']:.1f} expected "
        f"({budget['asked']:g} asked)"
    )
    unb = e.get("unbiasedness")
    if unb and unb.get("mismatched"):
        good = False
        lines.append(
            f"unbiasedness: weighted sample MISMATCHES the raw data on {', '.join(unb['mismatched'])}"
        )
    elif unb and unb.get("features"):
        lines.append(f"unbiasedness ok on {len(unb['features'])} features (weighted sample vs raw data)")
    else:
        lines.append("unbiasedness not checked (statistics off or nothing to compare)")
    if acc["rejected"]:
        reasons = ", ".join(
            f"{r} {n}" for r, n in sorted(e["rejects_by_reason"].items(), key=lambda kv: -kv[1])
        )
        lines.append(f"{acc['rejected']} examples rejected: {reasons} (kept in rejects/)")
    return good, lines


def verdict_html(report: dict) -> str:
    parts = ["<h2>Verdict</h2>"]
    for split, e in report["splits"].items():
        good, lines = split_verdict(split, e)
        css = "ok" if good else "bad"
        parts.append(
            f"<p class='{css}'><b>Split {html.escape(split)}: {'OK' if good else 'CHECK'}</b></p><ul>"
        )
        parts += [f"<li>{html.escape(line)}</li>" for line in lines]
        parts.append("</ul>")
    return "".join(parts)


def mapping_table(title: str, headers: tuple[str, str], mapping: dict) -> str:
    """A two-column table with a header row; "none" when empty."""
    if not mapping:
        return f"<h3>{html.escape(title)}</h3><p>none</p>"
    rows = "".join(
        f"<tr><td>{html.escape(str(k))}</td><td>{html.escape(_fmt(v))}</td></tr>" for k, v in mapping.items()
    )
    head = "".join(f"<th>{html.escape(h)}</th>" for h in headers)
    return f"<h3>{html.escape(title)}</h3><table><tr>{head}</tr>{rows}</table>"


def rows_table(title: str, headers: tuple[str, ...], rows: list[tuple]) -> str:
    if not rows:
        return f"<h3>{html.escape(title)}</h3><p>none</p>"
    head = "".join(f"<th>{html.escape(h)}</th>" for h in headers)
    body = "".join(
        "<tr>" + "".join(f"<td>{html.escape(_fmt(v))}</td>" for v in row) + "</tr>" for row in rows
    )
    return f"<h3>{html.escape(title)}</h3><table><tr>{head}</tr>{body}</table>"


def split_tables(e: dict) -> str:
    """Rejects, lambda, per-label counts and corrupt files of one split, as tables."""
    labels = e["labels"]
    return "".join(
        [
            mapping_table("Rejects by reason", ("reason", "examples"), e["rejects_by_reason"]),
            mapping_table("Lambda (water-filling threshold)", ("statistic", "value"), e["lambda"] or {}),
            rows_table(
                "Per-label counts",
                ("label", "examples", "selected", "sum of weights"),
                [
                    (k, labels["examples"][k], labels["selected"][k], labels["weighted"][k])
                    for k in ("0", "1")
                ],
            ),
            rows_table(
                "Corrupt files skipped",
                ("file", "records read", "error"),
                [(c["path"], c["records_read"], c["error"]) for c in e["corrupt_files"]],
            ),
        ]
    )


def _fmt(v) -> str:
    return f"{v:.6g}" if isinstance(v, float) else str(v)
