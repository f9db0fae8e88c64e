"""The curation report: accounting, selection figures, TFDV unbiasedness check; report.json and report.html.

Inputs are the Beam job's figures (beam/figures.py) and, per curated split, the comparison of the weighted
curated sample with the raw data (unbiasedness.py).
"""

from __future__ import annotations

import html
import json
import os

import numpy as np

from tfx_curator.components.curator.policy import strategies
from tfx_curator.components.curator.reporting import report_served, report_stats, report_verdict, svg_charts

STATS_DIR = "statistics"
RAW, CURATED = "raw", "curated"  # CURATED: one TFDV pass, weighted by the weight feature (both views)
UNWEIGHTED, WEIGHTED = "curated_unweighted", "curated_weighted"  # the two passes of older reports
# Where the unbiasedness check's raw statistics came from: a statistics input, a raw sample, every raw example.
SOURCE_STATISTICS, SOURCE_SAMPLE, SOURCE_ALL = "statistics", "sample", "all"


class AccountingError(RuntimeError):
    """read != selected + not selected + rejected for some split: examples were lost or counted twice."""


def stats_path(report_uri: str, split: str, which: str) -> str:
    return os.path.join(report_uri, STATS_DIR, f"Split-{split}", f"{which}.pb")


# ---------------------------------------------------------------------------------------------------------
# Report
# ---------------------------------------------------------------------------------------------------------


def _lambda_summary(lams: dict) -> dict | None:
    if not lams:
        return None
    values = np.array(list(lams.values()), dtype=float)
    return {
        "windows": int(values.size),
        "min": float(values.min()),
        "median": float(np.median(values)),
        "max": float(values.max()),
    }


def build_report(
    figures: dict,
    examples_read: dict[str, int],
    tfdv_stats: dict | None = None,
    served_model: dict | None = None,
) -> dict:
    """report.json's content. examples_read: raw records read per split (counted by the job); served_model:
    the served model's section per split (monitoring.py)."""
    options = figures["options"]
    report = {"options": options, "splits": {}, "forward_records": {}}
    for split, fig in figures["splits"].items():
        stats, counts, plan, summary = fig["stats"], fig["counts"], fig["plan"], fig["summary"]
        rejects = {k.split(":", 1)[1]: v for k, v in fig["rejects"].items()}
        n_rejected = sum(rejects.values())
        selected, considered = stats["n_kept"], stats["n"]
        read = examples_read.get(split, 0)
        entry = {
            "accounting": {
                "examples_read": read,
                "selected": selected,
                "not_selected": considered - selected,
                "rejected": n_rejected,
                "holds": read == considered + n_rejected,
            },
            "rejects_by_reason": rejects,
            "examples_with_record": counts["n_scored"],
            "examples_without_record": counts["n"] - counts["n_scored"],
            "missing_record_policy": options["missing_record_policy"],
            "duplicate_records": fig["events"].get("duplicate_records", 0),
            "ids_with_duplicate_records": fig["events"].get("ids_with_duplicate_records", 0),
            "duplicate_policy": options["duplicate_policy"],
            "budget": {
                "asked": plan["budget"],
                "rate": plan["rate"],
                "expected": stats["expected_kept"],
                "achieved": selected,
                "backward_passes_saved": read - selected,
            },
            "lambda": _lambda_summary({int(k): v for k, v in fig["lambdas"].items()}),
            "effective_sample_size": summary["ess"],
            "estimator_error": {
                "expected_sq_error": summary["expected_sq_error"],
                "uniform_same_budget": summary["expected_sq_error_uniform"],
                "ratio_vs_uniform": summary["error_ratio_vs_uniform"],
            },
            "weights": {
                "sum": summary["sum_of_weights"],
                "sum_over_examples": summary["sum_of_weights_over_examples"],
                "max": summary["max_weight"],
                "min_p_kept": summary["min_p_kept"],
                "max_weight_cap": options["max_weight"],
                "histogram": {"edges": report_stats.WEIGHT_BINS.tolist(), "counts": stats["weight_hist"]},
            },
            "labels": {
                "examples": {"0": stats["n_label"][0], "1": stats["n_label"][1]},
                "selected": {"0": stats["kept_label"][0], "1": stats["kept_label"][1]},
                "weighted": {"0": stats["sum_w_label"][0], "1": stats["sum_w_label"][1]},
                "sum_label": stats["sum_label"],
                "weighted_sum_label": stats["sum_w_times_label"],
            },
            "corrupt_files": [{"path": p, "records_read": n, "error": e} for p, n, e in fig["corrupt_files"]],
            "notes": list(plan["notes"]) + _notes(plan, stats, counts, read),
        }
        if tfdv_stats and split in tfdv_stats:
            entry["unbiasedness"] = tfdv_stats[split]
        if served_model and split in served_model:
            entry["served_model"] = served_model[split]
        report["splits"][split] = entry
    rec = figures["records"]
    report["forward_records"] = {
        "decoded": rec["events"].get("records_decoded", 0),
        "orphans": rec["events"].get("orphan_records", 0),
        "rejected": sum(rec["rejects"].values()),
        "rejects_by_reason": rec["rejects"],
        "corrupt_files": [{"path": p, "records_read": n, "error": e} for p, n, e in rec["corrupt_files"]],
    }
    return report


def _notes(plan: dict, stats: dict, counts: dict, read: int) -> list[str]:
    notes = []
    if read == 0:
        notes.append("empty split: nothing to select")
    strategy = strategies.get(plan["strategy"])
    notes += strategies.report_notes(strategy.name)
    if counts["n"] and counts["n_scored"] == 0 and strategy.needs_scores:
        notes.append(
            "no example of this split has a forward record: the missing-record policy decided everything"
        )
    kept = stats["n_kept"]
    if read and counts["n"] == 0:
        notes.append(f"all {read} examples rejected (see rejects_by_reason): nothing to select")
    if plan["budget"] == 0 and counts["n"]:
        notes.append(
            f"budget 0: {kept} selected anyway, by the p_min floor or missing_record_policy 'keep'"
            if kept
            else "budget 0: nothing selected"
        )
    if counts["n"] and plan["budget"] >= counts["n"]:
        notes.append(
            "budget >= examples: everything kept with weight 1"
            if kept == counts["n"]
            else "budget >= examples: every example with a forward record kept with weight 1; "
            f"{counts['n'] - kept} without one not kept (missing_record_policy 'drop')"
        )
    if stats["score_zero"] == counts["n_scored"] and counts["n_scored"]:
        notes.append("all scores are zero: uniform sampling")
    elif (
        counts["n_scored"] > 1
        and stats.get("min_s") == stats.get("max_s")
        and strategy.uniform_if_scores_equal
    ):
        notes.append(f"all scores are equal ({stats['max_s']:.6g}): uniform sampling")
    return notes


def check_accounting(report: dict) -> None:
    broken = {s: e["accounting"] for s, e in report["splits"].items() if not e["accounting"]["holds"]}
    if broken:
        raise AccountingError(
            f"accounting invariant broken (read != selected + not selected + rejected): {broken}"
        )


def write_report(report_uri: str, report: dict, figures: dict) -> tuple[str, str]:
    from tensorflow.io import gfile

    json_path = os.path.join(report_uri, "report.json")
    html_path = os.path.join(report_uri, "report.html")
    with gfile.GFile(json_path, "w") as f:
        f.write(json.dumps(report, indent=2, sort_keys=True, default=float))
    with gfile.GFile(html_path, "w") as f:
        f.write(render_html(report, figures))
    return json_path, html_path


# ---------------------------------------------------------------------------------------------------------
# HTML
# ---------------------------------------------------------------------------------------------------------


def _plots(split_figures: dict) -> str:
    """Four charts (inline SVG, they wrap to the window's width): scores, p vs score, weights, labels."""
    st = split_figures["stats"]
    edges = report_stats.SCORE_BINS
    centers = np.sqrt(edges[:-1] * edges[1:])
    counts = np.asarray(st["score_hist"], dtype=float)
    with np.errstate(invalid="ignore", divide="ignore"):
        mean_p = np.asarray(st["p_sum_by_score_bin"]) / counts
    shown = (counts > 0) & (mean_p > 0)  # log axes need positive points: an empty split has none
    charts = [
        svg_charts.histogram(f"score histogram ({st['score_zero']} zero)", "importance score", edges, counts),
        svg_charts.line("inclusion probability vs score", "score", "mean p", centers[shown], mean_p[shown]),
        svg_charts.histogram(
            "weights of kept examples (1/p)", "weight", report_stats.WEIGHT_BINS, st["weight_hist"]
        ),
        svg_charts.grouped_bars(
            "per-label counts",
            "label",
            ["0", "1"],
            {"examples": st["n_label"], "selected": st["kept_label"], "weighted": st["sum_w_label"]},
        ),
    ]
    return '<div class="charts">' + " ".join(charts) + "</div>"


def _table(rows: list[tuple]) -> str:
    body = "".join(f"<tr><th>{html.escape(str(k))}</th><td>{html.escape(_fmt(v))}</td></tr>" for k, v in rows)
    return f"<table>{body}</table>"


def _fmt(v) -> str:
    if isinstance(v, float):
        return f"{v:.6g}"
    return str(v)


def raw_statistics_line(source: dict) -> str:
    """One sentence: which raw statistics the unbiasedness check compared against (unbiasedness.raw_source)."""
    kind = source.get("source")
    if kind == SOURCE_STATISTICS:
        line = f"Raw statistics: from the statistics input {source['uri']} ({source['examples']} examples)."
    elif kind == SOURCE_SAMPLE:
        line = (
            f"Raw statistics: from a deterministic sample of {source['sampled']} of the {source['accepted']} "
            f"accepted raw examples (rate {source['rate']:.4g}); the noise level accounts for the sample's size."
        )
    else:
        line = f"Raw statistics: from all {source.get('examples', 0)} accepted raw examples."
    return f"{line} {source['note']}." if source.get("note") else line


def render_html(report: dict, figures: dict) -> str:
    parts = [
        "<!doctype html><html><head><meta charset='utf-8'><title>tfx-curator report</title><style>",
        "body{font-family:sans-serif;margin:2em} table{border-collapse:collapse;margin:.5em 0}",
        "th,td{border:1px solid #ccc;padding:2px 8px;text-align:left} .bad{color:#b00;font-weight:bold}",
        "img,svg{max-width:100%;height:auto} .ok{color:#070}",
        "</style></head><body><h1>tfx-curator curation report</h1>",
        report_verdict.verdict_html(report),
        report_served.render_html(report),
        "<h2>Options</h2>",
        _table(sorted(report["options"].items())),
    ]
    for split, e in report["splits"].items():
        acc = e["accounting"]
        parts.append(f"<h2>Split {html.escape(split)}</h2>")
        if not acc["holds"]:
            parts.append("<p class='bad'>ACCOUNTING INVARIANT BROKEN</p>")
        parts.append(
            _table(
                [
                    ("examples read", acc["examples_read"]),
                    ("selected", acc["selected"]),
                    ("not selected", acc["not_selected"]),
                    ("rejected", acc["rejected"]),
                    (
                        "without forward record",
                        f"{e['examples_without_record']} (policy {e['missing_record_policy']})",
                    ),
                    ("duplicate records", f"{e['duplicate_records']} (policy {e['duplicate_policy']})"),
                    (
                        "budget asked / expected / achieved",
                        f"{e['budget']['asked']:.6g} / "
                        f"{e['budget']['expected']:.6g} / {e['budget']['achieved']}",
                    ),
                    ("effective sample size", e["effective_sample_size"]),
                    ("estimator error ratio vs uniform", e["estimator_error"]["ratio_vs_uniform"]),
                    ("sum of weights / examples read", f"{e['weights']['sum']:.6g} / {acc['examples_read']}"),
                    ("max weight", e["weights"]["max"]),
                    ("corrupt files skipped", len(e["corrupt_files"])),
                    ("notes", "; ".join(e["notes"]) or "none"),
                ]
            )
        )
        parts.append(report_verdict.split_tables(e))
        parts.append(_plots(figures["splits"][split]))
        unb = e.get("unbiasedness")
        if unb:
            parts.append("<h3>Unbiasedness (TFDV): raw vs curated</h3>")
            if unb.get("raw_statistics"):
                parts.append(f"<p>{html.escape(raw_statistics_line(unb['raw_statistics']))}</p>")
            parts.append(
                "<table><tr><th>feature</th><th>distance</th>"
                "<th>raw vs weighted</th><th>raw vs unweighted</th><th>noise (95%)</th><th>verdict</th></tr>"
            )
            for r in unb["features"]:
                flag = "<span class='bad'>MISMATCH</span>" if r["mismatch"] else "ok"
                parts.append(
                    f"<tr><td>{html.escape(r['feature'])}</td><td>{html.escape(str(r['distance']))}</td>"
                    f"<td>{r['raw_vs_weighted']:.4f}</td><td>{r['raw_vs_unweighted']:.4f}</td>"
                    f"<td>{r['noise_95']:.4f}</td><td>{flag}</td></tr>"
                )
            parts.append("</table>")
    fr = report["forward_records"]
    parts.append("<h2>Forward records</h2>")
    parts.append(
        _table(
            [
                ("format", f"{fr.get('format', '')} ({fr.get('format_detection', '')})"),
                ("decoded", fr["decoded"]),
                ("orphans (no example)", fr["orphans"]),
                ("rejected", fr["rejected"]),
            ]
        )
    )
    parts.append(
        report_verdict.mapping_table(
            "Forward-record rejects by reason", ("reason", "records"), fr["rejects_by_reason"]
        )
    )
    parts.append("</body></html>")
    return "".join(parts)
