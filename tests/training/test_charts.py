"""The SVG charts: well-formed, escaped, and readable without colour."""

from __future__ import annotations

import xml.etree.ElementTree as ET

from training import charts
from training.charts import Bar, Series, bar_chart, line_chart, nice_ticks, stacked_bar

SVG = "{http://www.w3.org/2000/svg}"


def parse(svg: str) -> ET.Element:
    return ET.fromstring(svg)


def test_line_chart_series_differ_by_marker_and_dash_not_only_colour():
    root = parse(
        line_chart(
            title="metric",
            x_labels=["v1", "v2", "v3"],
            series=[Series("candidate", [0.1, 0.2, 0.3]), Series("popularity", [0.1, 0.1, None])],
        )
    )
    lines = root.findall(f".//{SVG}polyline")
    assert {line.get("stroke-dasharray") for line in lines} == {None, "7 4"}
    assert root.findall(f".//{SVG}circle") and root.findall(f".//{SVG}rect")  # circle vs square
    texts = [t.text for t in root.iter(f"{SVG}text")]
    assert "candidate" in texts and "popularity" in texts and "v2" in texts
    titles = [t.text for t in root.iter(f"{SVG}title")]
    assert "candidate at v3: 0.3" in titles
    assert root.get("role") == "img" and root.get("aria-label") == "metric"


def test_labels_are_escaped():
    svg = bar_chart(title="<script>", bars=[Bar(label="a&b", value=1)])
    parse(svg)
    assert "<script>" not in svg and "a&amp;b" in svg


def test_bar_groups_get_different_patterns_and_a_legend():
    root = parse(bar_chart(title="d", bars=[Bar("#1", 3, "Succeeded"), Bar("#2", 5, "Failed")]))
    fills = {r.get("fill") for r in root.findall(f".//{SVG}rect") if r.get("height") != "6"}
    assert any(f.startswith("url(#hatch") for f in fills if f)
    texts = [t.text for t in root.iter(f"{SVG}text")]
    assert "Succeeded" in texts and "Failed" in texts and "5" in texts


def test_stacked_bar_names_every_segment():
    svg = stacked_bar(title="Phase timings", segments=[("load", 0.01), ("fit", 9.99)])
    texts = [t.text for t in parse(svg).iter(f"{SVG}text")]
    assert any(t.startswith("load 0.01s") for t in texts)
    assert any(t.startswith("fit 9.99s") for t in texts)


def test_empty_charts_say_so():
    assert "No data yet." in line_chart(title="t", x_labels=[], series=[])
    assert "nothing" in bar_chart(title="t", bars=[], empty_message="nothing")


def test_nice_ticks_cover_the_range_with_round_steps():
    assert nice_ticks(0, 0.37) == [0, 0.1, 0.2, 0.3, 0.4]
    assert nice_ticks(0, 0) == [0, 0.25, 0.5, 0.75, 1.0]


def test_a_band_is_shaded_behind_its_series_and_counts_in_the_scale():
    svg = charts.line_chart(
        title="CTR",
        x_labels=["a", "b", "c"],
        series=[charts.Series("CTR", [0.1, None, 0.2])],
        band=charts.Band(series=0, lows=[0.05, None, 0.15], highs=[0.5, None, 0.25]),
    )
    # Two runs of known bounds (the gap splits them): two polygons.
    assert svg.count('class="band"') == 2
    assert ">0.6<" in svg  # the scale reaches the highest bound (0.5), not only 0.2
    parse(svg)


def test_marks_are_drawn_inside_the_range_and_left_out_beyond_it():
    svg = charts.line_chart(
        title="Impressions",
        x_labels=["a", "b", "c"],
        series=[charts.Series("impressions", [1, 2, 3])],
        marks=[
            charts.Mark(0.5, "promote v2"),
            charts.Mark(2.4, "rollback to v1 <now>", dashed=True),
            charts.Mark(-3, "long ago"),
        ],
    )
    assert svg.count('class="mark"') == 2
    assert "promote v2" in svg and "rollback to v1 &lt;now&gt;" in svg
    assert "long ago" not in svg
    assert 'stroke-dasharray="5 3"' in svg
    parse(svg)
