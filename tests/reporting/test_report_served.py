"""report_served.py: the served-model section of report.html (figures, reliability plot, per-version table,
drift, cross-check) is well-formed, shows every figure it has and escapes names."""

from __future__ import annotations

import html
import json
import xml.etree.ElementTree as ET

import numpy as np
import pytest
from report_inputs import tags

from tfx_curator.components.curator.options import CurationOptions
from tfx_curator.components.curator.reporting import monitoring, quality, report_served

HOSTILE = "<script>alert('x')</script>"
SVG = "{http://www.w3.org/2000/svg}"
VERSIONS = (b"1", HOSTILE.encode())  # two served model versions, one with a hostile name


def _span(seed: int, n: int = 2000, shift: float = 0.0):
    rng = np.random.default_rng(seed)
    p = 1.0 / (1.0 + np.exp(-(rng.normal(size=n) * 1.4 - 1.0 + shift)))
    y = (rng.random(n) < p).astype(float)
    return p, y


def _section(task: str = "binary", versions=VERSIONS, previous: bool = True) -> dict:
    options = json.loads(CurationOptions(task=task).to_json())
    p, y = _span(0)
    if task == "regression":
        y = p + np.random.default_rng(1).normal(scale=0.1, size=p.size)
    names = [versions[i % len(versions)] for i in range(p.size)]
    full = quality.QualityStats(task).add(p, y, names)
    keep = np.arange(p.size) % 4 == 0
    curated = quality.QualityStats(task, True).add(
        p[keep], y[keep], [v for v, k in zip(names, keep) if k], np.full(keep.sum(), 4.0)
    )
    before = None
    if previous:
        q, z = _span(2, shift=1.5)  # a large shift: drift flags
        if task == "regression":
            z = q
        before = quality.QualityStats(task).add(q, z, [b"0"] * q.size)
    return monitoring.section(full, curated, float(keep.sum()), options, before)


def _report(**splits) -> dict:
    return {"splits": {name: {"served_model": s} if s else {} for name, s in splits.items()}}


def test_binary_section_shows_every_figure_the_reliability_plot_versions_drift_and_cross_check():
    s = _section()
    page = report_served.render_html(_report(train=s))
    started = tags(page)
    m = s["all"]
    for key, label in report_served.FIGURES:
        assert (f"<th>{html.escape(label)}</th>" in page) == (m.get(key) is not None), label
    assert "<th>AUC / AP bound from binning</th>" in page
    assert started.count("svg") == 1
    bins = [r for r in m["reliability"] if r["weight"]]
    assert started.count("circle") == len(bins) > 3
    assert page.count("<tr><td>0") >= len(m["reliability"])  # the reliability table: one row per bin
    assert set(s["by_model_version"]) == {"1", HOSTILE}
    assert f"<tr><td>{html.escape(HOSTILE)}</td><td>{s['by_model_version'][HOSTILE]['n']}</td>" in page
    assert s["flags"] and page.count("DRIFT: ") == len(s["flags"])
    assert "PSI of predictions" in page and s["drift"]["note"] and html.escape(s["drift"]["note"]) in page
    rows = s["curated_cross_check"]["rows"]
    assert rows and all(f"<td>{r['metric']}</td>" in page for r in rows)
    assert "<script" not in page


def test_regression_section_has_its_figures_and_no_reliability_plot():
    s = _section("regression", previous=False)
    page = report_served.render_html(_report(eval=s))
    tags(page)
    for label in ("RMSE", "MAE", "mean residual (label - prediction)"):
        assert f"<th>{html.escape(label)}</th>" in page
    assert "<th>AUC</th>" not in page and "<svg" not in page and "DRIFT" not in page


def test_splits_without_a_served_section_show_nothing_and_names_are_escaped():
    assert report_served.render_html(_report(train=None)) == ""
    page = report_served.render_html(_report(**{HOSTILE: _section(versions=(b"1",)), "b": None}))
    tags(page)
    assert f"Served model on split {html.escape(HOSTILE)}" in page and "<script" not in page
    assert "Per model version" not in page  # one version: no per-version table


def test_reliability_svg_is_well_formed_and_its_dots_lie_in_the_plot():
    rel = _section(previous=False)["all"]["reliability"]
    svg = report_served.reliability_svg(HOSTILE, rel)
    root = ET.fromstring(svg)  # well-formed XML, the split name escaped
    assert root.tag == f"{SVG}svg" and HOSTILE in root.get("aria-label")
    circles = root.findall(f"{SVG}circle")
    assert len(circles) == sum(1 for r in rel if r["weight"])
    low, high = report_served.SVG_MARGIN, report_served.SVG_SIZE - report_served.SVG_MARGIN
    for c, r in zip(circles, [r for r in rel if r["weight"]]):
        x, y = float(c.get("cx")), float(c.get("cy"))
        assert low <= x <= high and low <= y <= high
        assert x == pytest.approx(low + r["mean_prediction"] * (high - low), abs=0.06)
        assert y == pytest.approx(low + (1 - r["observed_rate"]) * (high - low), abs=0.06)
    radii = [float(c.get("r")) for c in circles]
    assert max(radii) == pytest.approx(7.0) and min(radii) >= 2.0  # area ~ examples, biggest bin 2 + 5


def test_reliability_svg_without_data_has_axes_and_no_dots():
    empty = [{"bin": [0.0, 0.1], "weight": 0.0, "mean_prediction": None, "observed_rate": None}]
    for rel in ([], empty):
        root = ET.fromstring(report_served.reliability_svg("train", rel))
        assert root.findall(f"{SVG}circle") == [] and len(root.findall(f"{SVG}polyline")) == 1
        assert "reliability (train)" in [t.text for t in root.findall(f"{SVG}text")]
