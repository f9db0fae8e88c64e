"""report.html's first section: the served model's quality on this span, its reliability plot, drift flags and
the weighted-curated cross-check (the figures come from monitoring.py)."""

from __future__ import annotations

import html

import numpy as np


def _reliability_plot(split: str, rel: list[dict]) -> str:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from tfx_curator.components.curator import report as report_lib

    shown = [r for r in rel if r["weight"]]
    fig, (ax, bars) = plt.subplots(1, 2, figsize=(9, 3.4))
    ax.plot([0, 1], [0, 1], color="#999", linestyle="--", linewidth=1, label="perfect calibration")
    if shown:
        ax.plot(
            [r["mean_prediction"] for r in shown],
            [r["observed_rate"] for r in shown],
            marker="o",
            label="served",
        )
    ax.set(
        xlim=(0, 1),
        ylim=(0, 1),
        xlabel="mean prediction",
        ylabel="observed rate",
        title=f"reliability ({split})",
    )
    ax.legend(fontsize=8)
    centers = np.array([(r["bin"][0] + r["bin"][1]) / 2 for r in rel])
    bars.bar(centers, [r["weight"] for r in rel], width=0.09)
    bars.set(yscale="log", xlabel="prediction bin", title="examples per bin")
    out = report_lib._png(fig)
    plt.close(fig)
    return f'<img alt="reliability plot" src="data:image/png;base64,{out}">'


FIGURES = (
    ("auc", "AUC"),
    ("average_precision", "average precision"),
    ("log_loss", "log loss"),
    ("calibration", "calibration (mean prediction / mean label)"),
    ("label_rate", "label rate (regression: mean label)"),
    ("mean_prediction", "mean prediction"),
    ("rmse", "RMSE"),
    ("mae", "MAE"),
    ("mean_residual", "mean residual (label - prediction)"),
)


def _figure_rows(m: dict) -> list[tuple]:
    rows = [(label, m[key]) for key, label in FIGURES if m.get(key) is not None]
    if m.get("auc_error_bound") is not None:
        rows.append(
            (
                "AUC / AP bound from binning",
                f"{m['auc_error_bound']:.2g} / {m['average_precision_error_bound']:.2g}",
            )
        )
    return rows


def render_html(report: dict) -> str:
    from tfx_curator.components.curator import report as report_lib

    parts = []
    for split, entry in report["splits"].items():
        s = entry.get("served_model")
        if not s:
            continue
        m = s["all"]
        parts.append(f"<h2>Served model on split {html.escape(split)}</h2>")
        for flag in s["flags"]:
            parts.append(f"<p class='bad'>DRIFT: {html.escape(flag)}</p>")
        rows = [
            (
                "examples scored / without forward record",
                f"{s['examples_scored']} / {s['examples_without_record']}",
            ),
            *_figure_rows(m),
        ]
        parts.append(report_lib._table(rows))
        if m.get("reliability"):
            parts.append(_reliability_plot(split, m["reliability"]))
        versions = s.get("by_model_version")
        if versions:
            parts.append("<h3>Per model version</h3><table><tr><th>version</th><th>examples</th>")
            keys = [k for k, _ in FIGURES if any(v.get(k) is not None for v in versions.values())]
            parts.append("".join(f"<th>{html.escape(k)}</th>" for k in keys) + "</tr>")
            for name, v in versions.items():
                cells = "".join(f"<td>{html.escape(report_lib._fmt(v.get(k)))}</td>" for k in keys)
                parts.append(f"<tr><td>{html.escape(name)}</td><td>{v['n']}</td>{cells}</tr>")
            parts.append("</table>")
        d = s.get("drift")
        if d and d.get("changes"):
            parts.append("<h3>Drift since the previous run</h3><table><tr><th>figure</th><th>previous</th>")
            parts.append("<th>this span</th><th>change</th></tr>")
            for name, c in d["changes"].items():
                cells = "".join(
                    f"<td>{html.escape(report_lib._fmt(c[k]))}</td>"
                    for k in ("previous", "current", "change")
                )
                parts.append(f"<tr><td>{html.escape(name)}</td>{cells}</tr>")
            parts.append(
                f"<tr><td>PSI of predictions</td><td></td><td>{html.escape(report_lib._fmt(d['psi']))}</td><td></td></tr>"
            )
            parts.append("</table>")
        elif d and d.get("note"):
            parts.append(f"<p>{html.escape(d['note'])}</p>")
        cc = s["curated_cross_check"]
        if cc["rows"]:
            parts.append(
                "<h3>Unbiasedness (served model): full span vs weighted curated sample</h3><table><tr>"
                f"<th>figure</th><th>full span</th><th>curated, weighted</th><th>difference</th>"
                f"<th>noise ({cc['noise_z']:g} sd at ESS {cc['ess']:.0f})</th><th></th></tr>"
            )
            for r in cc["rows"]:
                flag = "<span class='bad'>MISMATCH</span>" if r["mismatch"] else "ok"
                parts.append(
                    f"<tr><td>{html.escape(r['metric'])}</td><td>{r['full_span']:.5g}</td>"
                    f"<td>{r['curated_weighted']:.5g}</td><td>{r['difference']:+.3g}</td><td>{r['noise']:.3g}</td>"
                    f"<td>{flag}</td></tr>"
                )
            parts.append("</table>")
        if cc.get("note"):
            parts.append(f"<p>{html.escape(cc['note'])}</p>")
    return "".join(parts)
