"""Small server-rendered SVG charts for the admin: no JavaScript, no CDN, readable offline.

Readable without colour: every line series has its own marker shape *and* dash pattern,
bar groups have their own fill pattern, values are written next to the marks, and each
chart carries a text title (``<title>``, ``aria-label``) and per-point tooltips. The
colours (Okabe-Ito, safe for the common colour-vision deficiencies) are a bonus.

Plain Python, no Django: functions take numbers and labels and return SVG markup that
a template marks safe. Every label is XML-escaped here."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from html import escape

COLOURS = ("#0072B2", "#D55E00", "#009E73", "#CC79A7", "#E69F00", "#56B4E9")
DASHES = ("", "7 4", "2 3", "10 3 2 3")
MARKERS = ("circle", "square", "triangle", "diamond")
# Fills for bar groups / segments: pattern ids defined in every chart's <defs>.
PATTERNS = ("solid", "hatch", "dots", "cross")

_FONT = 'font-family="system-ui, sans-serif" font-size="11"'


@dataclass(frozen=True)
class Series:
    name: str
    values: Sequence[float | None]


@dataclass(frozen=True)
class Band:
    """An interval drawn as a shaded area behind the series at index ``series``."""

    series: int
    lows: Sequence[float | None]
    highs: Sequence[float | None]


@dataclass(frozen=True)
class Mark:
    """A moment marked by a vertical line: ``x`` in x positions (0 = the first label,
    fractions between two; within half a position outside the ends: drawn at the end),
    ``label`` written at its top, ``dashed`` for a second kind."""

    x: float
    label: str
    dashed: bool = False


@dataclass(frozen=True)
class Bar:
    label: str
    value: float
    group: str = ""
    # Tooltip text; the value label is used when empty.
    note: str = ""


def _fmt(value: float) -> str:
    if value == 0:
        return "0"
    magnitude = abs(value)
    if magnitude >= 100:
        return f"{value:,.0f}"
    if magnitude >= 1:
        return f"{value:.2f}".rstrip("0").rstrip(".")
    return f"{value:.3g}"


def nice_ticks(low: float, high: float, count: int = 5) -> list[float]:
    """Round tick values covering ``[low, high]`` (1, 2, 2.5 or 5 times a power of ten)."""
    if high <= low:
        high = low + (abs(low) or 1.0)
    raw = (high - low) / max(1, count - 1)
    power = 10 ** math.floor(math.log10(raw))
    step = next(m * power for m in (1, 2, 2.5, 5, 10) if m * power >= raw)
    start = math.floor(low / step) * step
    ticks: list[float] = []
    value = start
    while value < high + step * 0.999:
        ticks.append(round(value, 12))
        value += step
    return ticks


def _defs(colour_of: dict[str, str]) -> str:
    patterns = []
    for pattern in PATTERNS[1:]:
        for key, colour in colour_of.items():
            pid = f"{pattern}-{key}"
            if pattern == "hatch":
                body = f'<path d="M0,6 L6,0" stroke="{colour}" stroke-width="2"/>'
            elif pattern == "dots":
                body = f'<circle cx="3" cy="3" r="1.6" fill="{colour}"/>'
            else:
                body = f'<path d="M0,0 L6,6 M6,0 L0,6" stroke="{colour}" stroke-width="1.2"/>'
            patterns.append(
                f'<pattern id="{pid}" width="6" height="6" patternUnits="userSpaceOnUse">'
                f'<rect width="6" height="6" fill="white"/>{body}</pattern>'
            )
    return f"<defs>{''.join(patterns)}</defs>"


def _marker(shape: str, x: float, y: float, colour: str, size: float = 4.5) -> str:
    if shape == "circle":
        return f'<circle cx="{x:.1f}" cy="{y:.1f}" r="{size:.1f}" fill="{colour}"/>'
    if shape == "square":
        s = size * 0.9
        return (
            f'<rect x="{x - s:.1f}" y="{y - s:.1f}" width="{2 * s:.1f}" height="{2 * s:.1f}" '
            f'fill="white" stroke="{colour}" stroke-width="2"/>'
        )
    if shape == "triangle":
        s = size * 1.2
        points = f"{x:.1f},{y - s:.1f} {x - s:.1f},{y + s * 0.8:.1f} {x + s:.1f},{y + s * 0.8:.1f}"
        return f'<polygon points="{points}" fill="{colour}"/>'
    s = size * 1.2
    points = f"{x:.1f},{y - s:.1f} {x + s:.1f},{y:.1f} {x:.1f},{y + s:.1f} {x - s:.1f},{y:.1f}"
    return f'<polygon points="{points}" fill="white" stroke="{colour}" stroke-width="2"/>'


def _open(title: str, width: int, height: int, extra: str = "") -> str:
    t = escape(title)
    return (
        f'<svg xmlns="http://www.w3.org/2000/svg" class="recsite-chart" role="img" '
        f'aria-label="{t}" viewBox="0 0 {width} {height}" width="{width}" height="{height}">'
        f"<title>{t}</title>{extra}"
        f'<text x="8" y="16" font-family="system-ui, sans-serif" font-size="13" '
        f'font-weight="600">{t}</text>'
    )


def _empty(title: str, width: int, height: int, message: str) -> str:
    return (
        _open(title, width, height)
        + f'<text x="{width / 2:.0f}" y="{height / 2:.0f}" text-anchor="middle" {_FONT} '
        f'fill="#555">{escape(message)}</text></svg>'
    )


def _y_axis(ticks: list[float], y_of, left: int, right: int, y_label: str) -> list[str]:
    parts = []
    for tick in ticks:
        y = y_of(tick)
        parts.append(
            f'<line x1="{left}" x2="{right}" y1="{y:.1f}" y2="{y:.1f}" stroke="#ddd"/>'
            f'<text x="{left - 6}" y="{y + 4:.1f}" text-anchor="end" {_FONT}>{_fmt(tick)}</text>'
        )
    if y_label:
        parts.append(
            f'<text x="{left - 6}" y="32" text-anchor="end" {_FONT} fill="#555">'
            f"{escape(y_label)}</text>"
        )
    return parts


def _band(band: Band, x_of, y_of, colour: str) -> list[str]:
    """One shaded polygon per run of positions where both bounds are known."""
    runs: list[list[tuple[int, float, float]]] = [[]]
    for i, (low, high) in enumerate(zip(band.lows, band.highs, strict=True)):
        if low is None or high is None:
            runs.append([])
        else:
            runs[-1].append((i, low, high))
    parts = []
    for run in runs:
        if not run:
            continue
        upper = [f"{x_of(i):.1f},{y_of(high):.1f}" for i, _, high in run]
        lower = [f"{x_of(i):.1f},{y_of(low):.1f}" for i, low, _ in reversed(run)]
        if len(run) == 1:  # a single point: a short vertical bar
            upper.append(upper[0])
        parts.append(
            f'<polygon class="band" points="{" ".join(upper + lower)}" fill="{colour}" '
            f'fill-opacity="0.18" stroke="{colour}" stroke-opacity="0.4"/>'
        )
    return parts


def _mark(mark: Mark, x: float, top: int, bottom: int) -> str:
    dash = ' stroke-dasharray="5 3"' if mark.dashed else ""
    label = escape(mark.label)
    return (
        f'<g class="mark"><title>{label}</title>'
        f'<line x1="{x:.1f}" x2="{x:.1f}" y1="{top - 4}" y2="{bottom}" stroke="#333" '
        f'stroke-width="1.5"{dash}/>'
        f'<text x="{x + 3:.1f}" y="{top + 6}" {_FONT} fill="#333">{label}</text></g>'
    )


def line_chart(
    *,
    title: str,
    x_labels: Sequence[str],
    series: Sequence[Series],
    y_label: str = "",
    width: int = 640,
    height: int = 260,
    empty_message: str = "No data yet.",
    band: Band | None = None,
    marks: Sequence[Mark] = (),
) -> str:
    """One line per series over shared x positions; ``None`` values leave a gap. A
    ``band`` shades an interval around one series; ``marks`` are vertical lines at moments
    between the positions (further than half a position outside the range: left out)."""
    values = [v for s in series for v in s.values if v is not None]
    if band is not None:
        values += [v for v in (*band.lows, *band.highs) if v is not None]
    if not x_labels or not values:
        return _empty(title, width, height, empty_message)
    left, right, top, bottom = 56, width - 12, 48, height - 34
    ticks = nice_ticks(min(0.0, min(values)), max(values))
    low, high = ticks[0], ticks[-1]

    def y_of(v: float) -> float:
        return bottom - (v - low) / ((high - low) or 1.0) * (bottom - top)

    n = len(x_labels)

    def x_of(i: float) -> float:
        return left + 12 + (i * (right - left - 24) / (n - 1) if n > 1 else (right - left - 24) / 2)

    parts = [_open(title, width, height)]
    parts += _y_axis(ticks, y_of, left, right, y_label)
    if band is not None:
        parts += _band(band, x_of, y_of, COLOURS[band.series % len(COLOURS)])
    for mark in marks:
        if -0.5 <= mark.x <= n - 0.5:
            parts.append(_mark(mark, x_of(min(max(mark.x, 0.0), n - 1.0)), top, bottom))
    every = max(1, math.ceil(n / 12))
    for i, label in enumerate(x_labels):
        if i % every == 0 or i == n - 1:
            parts.append(
                f'<text x="{x_of(i):.1f}" y="{bottom + 16}" text-anchor="middle" {_FONT}>'
                f"{escape(label)}</text>"
            )
    parts.append(f'<line x1="{left}" x2="{right}" y1="{bottom}" y2="{bottom}" stroke="#888"/>')
    legend_x = left
    for index, s in enumerate(series):
        colour = COLOURS[index % len(COLOURS)]
        dash = DASHES[index % len(DASHES)]
        shape = MARKERS[index % len(MARKERS)]
        dash_attr = f' stroke-dasharray="{dash}"' if dash else ""
        segments: list[list[tuple[float, float]]] = [[]]
        for i, v in enumerate(s.values):
            if v is None:
                segments.append([])
            else:
                segments[-1].append((x_of(i), y_of(v)))
        group = [f'<g class="series" data-series="{escape(s.name)}">']
        for segment in segments:
            if len(segment) > 1:
                points = " ".join(f"{x:.1f},{y:.1f}" for x, y in segment)
                group.append(
                    f'<polyline points="{points}" fill="none" stroke="{colour}" '
                    f'stroke-width="2"{dash_attr}/>'
                )
        for i, v in enumerate(s.values):
            if v is not None:
                group.append(
                    f"<g><title>{escape(s.name)} at {escape(x_labels[i])}: {_fmt(v)}</title>"
                    f"{_marker(shape, x_of(i), y_of(v), colour)}</g>"
                )
        group.append("</g>")
        parts += group
        # The legend: the line sample with its dash and marker, then the name.
        ly = 30
        parts.append(
            f'<line x1="{legend_x}" x2="{legend_x + 28}" y1="{ly}" y2="{ly}" stroke="{colour}" '
            f'stroke-width="2"{dash_attr}/>{_marker(shape, legend_x + 14, ly, colour, 4)}'
            f'<text x="{legend_x + 34}" y="{ly + 4}" {_FONT}>{escape(s.name)}</text>'
        )
        legend_x += 44 + 7 * len(s.name)
    parts.append("</svg>")
    return "".join(parts)


def bar_chart(
    *,
    title: str,
    bars: Sequence[Bar],
    y_label: str = "",
    unit: str = "",
    width: int = 640,
    height: int = 240,
    empty_message: str = "No data yet.",
) -> str:
    """Vertical bars with their values written above them; bars of different ``group``s
    get different fill patterns and a legend."""
    if not bars:
        return _empty(title, width, height, empty_message)
    groups = list(dict.fromkeys(b.group for b in bars))
    colour_of = {f"g{i}": COLOURS[i % len(COLOURS)] for i in range(len(groups))}
    left, right, top, bottom = 56, width - 12, 48, height - 34
    ticks = nice_ticks(0.0, max(b.value for b in bars))
    high = ticks[-1] or 1.0

    def y_of(v: float) -> float:
        return bottom - v / high * (bottom - top)

    parts = [_open(title, width, height, _defs(colour_of))]
    parts += _y_axis(ticks, y_of, left, right, y_label)
    slot = (right - left) / len(bars)
    bar_width = max(2.0, min(48.0, slot * 0.7))
    every = max(1, math.ceil(len(bars) / 14))
    for i, bar in enumerate(bars):
        g = groups.index(bar.group)
        key = f"g{g}"
        pattern = PATTERNS[g % len(PATTERNS)]
        fill = colour_of[key] if pattern == "solid" else f"url(#{pattern}-{key})"
        x = left + slot * i + (slot - bar_width) / 2
        y = y_of(bar.value)
        value_text = f"{_fmt(bar.value)}{unit}"
        note = bar.note or f"{bar.label}: {value_text}"
        parts.append(
            f"<g><title>{escape(note)}</title>"
            f'<rect x="{x:.1f}" y="{y:.1f}" width="{bar_width:.1f}" '
            f'height="{max(0.5, bottom - y):.1f}" fill="{fill}" stroke="{colour_of[key]}"/></g>'
        )
        if len(bars) <= 20:
            parts.append(
                f'<text x="{x + bar_width / 2:.1f}" y="{y - 4:.1f}" text-anchor="middle" '
                f"{_FONT}>{escape(value_text)}</text>"
            )
        if i % every == 0 or i == len(bars) - 1:
            parts.append(
                f'<text x="{x + bar_width / 2:.1f}" y="{bottom + 16}" text-anchor="middle" '
                f"{_FONT}>{escape(bar.label)}</text>"
            )
    parts.append(f'<line x1="{left}" x2="{right}" y1="{bottom}" y2="{bottom}" stroke="#888"/>')
    if len(groups) > 1 or groups[0]:
        legend_x = left
        for g, name in enumerate(groups):
            key = f"g{g}"
            pattern = PATTERNS[g % len(PATTERNS)]
            fill = colour_of[key] if pattern == "solid" else f"url(#{pattern}-{key})"
            parts.append(
                f'<rect x="{legend_x}" y="23" width="14" height="14" fill="{fill}" '
                f'stroke="{colour_of[key]}"/>'
                f'<text x="{legend_x + 20}" y="34" {_FONT}>{escape(name or "other")}</text>'
            )
            legend_x += 34 + 7 * len(name or "other")
    parts.append("</svg>")
    return "".join(parts)


def stacked_bar(
    *,
    title: str,
    segments: Sequence[tuple[str, float]],
    unit: str = "s",
    width: int = 640,
    empty_message: str = "No timings recorded.",
) -> str:
    """One horizontal bar split into segments (e.g. the phases of a run), each with its
    own fill pattern; a legend below names every segment with its value (also in the
    tooltips), so narrow segments are still readable."""
    total = sum(value for _, value in segments)
    if not segments or total <= 0:
        return _empty(title, width, 80, empty_message)
    colour_of = {f"s{i}": COLOURS[i % len(COLOURS)] for i in range(len(segments))}
    left, right, top, bar_height = 8, width - 8, 26, 28
    fills = []
    for i in range(len(segments)):
        pattern = PATTERNS[i % len(PATTERNS)]
        fills.append(colour_of[f"s{i}"] if pattern == "solid" else f"url(#{pattern}-s{i})")
    # Lay the legend out first: it wraps onto as many rows as it needs.
    legend: list[tuple[float, float, int, str]] = []
    lx, ly = float(left), top + bar_height + 10
    for i, (label, value) in enumerate(segments):
        text = f"{label} {_fmt(value)}{unit} ({value / total:.0%})"
        item_width = 26 + 6.4 * len(text)
        if lx + item_width > right and lx > left:
            lx, ly = float(left), ly + 20
        legend.append((lx, ly, i, text))
        lx += item_width
    height = int(ly + 24)
    parts = [_open(title, width, height, _defs(colour_of))]
    x = float(left)
    for i, (label, value) in enumerate(segments):
        w = value / total * (right - left)
        parts.append(
            f"<g><title>{escape(label)} {_fmt(value)}{unit} ({value / total:.0%})</title>"
            f'<rect x="{x:.1f}" y="{top}" width="{max(w, 0.5):.1f}" height="{bar_height}" '
            f'fill="{fills[i]}" stroke="{colour_of[f"s{i}"]}"/></g>'
        )
        x += w
    for lx, ly, i, text in legend:
        parts.append(
            f'<rect x="{lx:.1f}" y="{ly:.1f}" width="14" height="14" fill="{fills[i]}" '
            f'stroke="{colour_of[f"s{i}"]}"/>'
            f'<text x="{lx + 19:.1f}" y="{ly + 11:.1f}" {_FONT}>{escape(text)}</text>'
        )
    parts.append("</svg>")
    return "".join(parts)
