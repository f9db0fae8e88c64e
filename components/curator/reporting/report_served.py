"""report.html's first section: the served model's quality on this span, its reliability plot, drift flags and
the weighted-curated cross-check (the figures come from monitoring.py)."""

from __future__ import annotations

import html

SVG_SIZE, SVG_MARGIN = 260, 36


def reliability_svg(split: str, rel: list[dict]) -> str:
    """The reliability plot as inline SVG (mean prediction vs observed rate per bin, dot area ~ examples): no
    plotting library, so it costs nothing next to the job."""
    side = SVG_SIZE - 2 * SVG_MARGIN

    def xy(px: float, py: float) -> str:
        return f"{SVG_MARGIN + px * side:.1f},{SVG_MARGIN + (1 - py) * side:.1f}"

    shown = [r for r in rel if r["weight"]]
    biggest = max((r["weight"] for r in shown), default=1.0)
    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{SVG_SIZE}" height="{SVG_SIZE}" role="img" '
        f'aria-label="reliability plot of split {html.escape(split)}">',
        f'<rect x="{SVG_MARGIN}" y="{SVG_MARGIN}" width="{side}" height="{side}" fill="none" stroke="#999"/>',
        f'<polyline points="{xy(0, 0)} {xy(1, 1)}" stroke="#999" stroke-dasharray="4 3" fill="none"/>',
    ]
    for t in (0.0, 0.5, 1.0):
        x, y = xy(t, 0).split(",")
        parts.append(
            f'<text x="{x}" y="{float(y) + 14:.1f}" font-size="10" text-anchor="middle">{t:g}</text>'
        )
        x, y = xy(0, t).split(",")
        parts.append(
            f'<text x="{float(x) - 4:.1f}" y="{float(y) + 3:.1f}" font-size="10" text-anchor="end">{t:g}</text>'
        )
    if shown:
        line = " ".join(xy(r["mean_prediction"], r["observed_rate"]) for r in shown)
        parts.append(f'<polyline points="{line}" stroke="#1f77b4" fill="none"/>')
        for r in shown:
            x, y = xy(r["mean_prediction"], r["observed_rate"]).split(",")
            radius = 2 + 5 * (r["weight"] / biggest) ** 0.5
            parts.append(
                f'<circle cx="{x}" cy="{y}" r="{radius:.1f}" fill="#1f77b4"><title>{r["bin"][0]:g}-{r["bin"][1]:g}: '
                f"{r['weight']:.0f} examples, mean prediction {r['mean_prediction']:.3f}, observed "
                f"{r['observed_rate']:.3f}</title></circle>"
            )
    parts += [
        f'<text x="{SVG_SIZE / 2}" y="{SVG_SIZE - 4}" font-size="11" text-anchor="middle">mean prediction</text>',
        f'<text x="12" y="{SVG_SIZE / 2}" font-size="11" text-anchor="middle" '
        f'transform="rotate(-90 12 {SVG_SIZE / 2})">observed rate</text>',
        f'<text x="{SVG_SIZE / 2}" y="16" font-size="12" text-anchor="middle">reliability ({html.escape(split)})</text>',
        "</svg>",
    ]
    return "".join(parts)


def _reliability_table(rel: list[dict]) -> str:
    from tfx_curator.components.curator.reporting import report as report_lib

    rows = "".join(
        f"<tr><td>{r['bin'][0]:g}-{r['bin'][1]:g}</td><td>{r['weight']:.0f}</td>"
        f"<td>{html.escape(report_lib._fmt(r['mean_prediction']))}</td>"
        f"<td>{html.escape(report_lib._fmt(r['observed_rate']))}</td></tr>"
        for r in rel
    )
    return (
        "<table><tr><th>prediction bin</th><th>examples</th><th>mean prediction</th><th>observed rate</th></tr>"
        f"{rows}</table>"
    )


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
    from tfx_curator.components.curator.reporting import report as report_lib

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
            parts.append("<div style='display:flex;gap:2em;align-items:flex-start'>")
            parts.append(
                reliability_svg(split, m["reliability"]) + _reliability_table(m["reliability"]) + "</div>"
            )
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
            if d.get("note"):
                parts.append(f"<p>{html.escape(d['note'])}</p>")
        elif d and d.get("note"):
            parts.append(f"<p>{html.escape(d['note'])}</p>")
        cc = s["curated_cross_check"]
        if cc["rows"]:
            parts.append(
                "<h3>Unbiasedness (served model): full span vs weighted curated sample</h3><table><tr>"
                f"<th>figure</th><th>full span</th><th>curated, weighted</th><th>difference</th>"
                f"<th>noise ({cc['noise_z']:g} sd at ESS {cc['ess']:.0f})</th><th>verdict</th></tr>"
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
