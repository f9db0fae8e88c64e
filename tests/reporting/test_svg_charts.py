"""svg_charts: well-formed SVG, one mark per value, every mark inside the chart, any input (empty, zero, NaN)."""

import xml.etree.ElementTree as ET

import numpy as np
from hypothesis import given
from hypothesis import strategies as st

from tfx_curator.components.curator.reporting import report_stats, svg_charts

NS = "{http://www.w3.org/2000/svg}"
counts_st = st.lists(st.integers(0, 10**9), min_size=48, max_size=48)


def _parse(svg: str) -> ET.Element:
    root = ET.fromstring(svg)  # raises on malformed XML
    assert root.tag == f"{NS}svg"
    return root


def _inside(root: ET.Element) -> None:
    """Every bar and point lies inside the drawing."""
    for rect in root.iter(f"{NS}rect"):
        x, y, w, h = (float(rect.get(k)) for k in ("x", "y", "width", "height"))
        assert 0 <= x and x + w <= svg_charts.WIDTH and 0 <= y and y + h <= svg_charts.HEIGHT and h >= 0
    for dot in root.iter(f"{NS}circle"):
        assert (
            0 <= float(dot.get("cx")) <= svg_charts.WIDTH and 0 <= float(dot.get("cy")) <= svg_charts.HEIGHT
        )


@given(counts_st)
def test_histogram_draws_one_bar_per_non_empty_bin(counts):
    root = _parse(svg_charts.histogram("scores <&>", "score", report_stats.SCORE_BINS, counts))
    assert root.find(f"{NS}title").text == "scores <&>"  # escaped in the markup, the name as given
    assert len(list(root.iter(f"{NS}rect"))) == sum(c > 0 for c in counts)
    _inside(root)


def test_histogram_bar_heights_are_proportional_to_counts():
    counts = np.zeros(48)
    counts[[10, 11]] = [50, 100]
    root = _parse(svg_charts.histogram("h", "x", report_stats.SCORE_BINS, counts))
    heights = sorted(float(r.get("height")) for r in root.iter(f"{NS}rect"))
    assert heights[1] == np.float64(heights[0] * 2).round(1) or abs(heights[1] - 2 * heights[0]) < 0.2


@given(
    st.lists(
        st.tuples(st.floats(1e-9, 1e9), st.floats(1e-9, 1.0) | st.just(float("nan"))), min_size=0, max_size=40
    )
)
def test_line_draws_one_point_per_finite_value_inside_the_chart(points):
    xs, ys = [p[0] for p in points], [p[1] for p in points]
    root = _parse(svg_charts.line("p vs score", "score", "mean p", xs, ys))
    assert len(list(root.iter(f"{NS}circle"))) == sum(not np.isnan(y) for y in ys)
    _inside(root)


@given(st.lists(st.floats(0, 1e7), min_size=6, max_size=6))
def test_grouped_bars_draw_every_series_with_a_legend(values):
    series = {"examples": values[:2], "selected": values[2:4], "weighted": values[4:]}
    root = _parse(svg_charts.grouped_bars("per-label counts", "label", ["0", "1"], series))
    assert len(list(root.iter(f"{NS}rect"))) == 6 + 3  # bars + legend swatches
    assert {t.text for t in root.iter(f"{NS}text")} >= {"examples", "selected", "weighted", "0", "1"}
    _inside(root)


def test_empty_inputs_give_empty_axes():
    for svg in (
        svg_charts.histogram("h", "x", report_stats.SCORE_BINS, np.zeros(48)),
        svg_charts.line("l", "x", "y", [], []),
        svg_charts.grouped_bars("g", "x", ["0", "1"], {"a": [0, 0]}),
    ):
        root = _parse(svg)
        assert not list(root.iter(f"{NS}circle"))
