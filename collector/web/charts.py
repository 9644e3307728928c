"""Charts drawn server-side as SVG: time-series lines and stacked bars (no JavaScript, no CDN)."""

from __future__ import annotations

import math
from datetime import datetime, timedelta
from html import escape

from markupsafe import Markup

PALETTE = ("#2563eb", "#dc2626", "#16a34a", "#d97706", "#7c3aed", "#0891b2", "#db2777", "#65a30d")
CLASS_COLOURS = {"negative": "#16a34a", "neutral": "#d97706", "positive": "#dc2626", "suppressed": "#9ca3af"}

Series = dict[str, list[tuple[datetime, float]]]
Bands = dict[str, list[tuple[datetime, float, float]]]


def nice_ticks(lo: float, hi: float, count: int = 5) -> list[float]:
    if hi <= lo:
        hi = lo + 1.0
    raw = (hi - lo) / count
    magnitude = 10 ** math.floor(math.log10(raw))
    step = next(m * magnitude for m in (1, 2, 2.5, 5, 10) if m * magnitude >= raw)
    start = math.floor(lo / step) * step
    ticks = []
    value = start
    while value <= hi + step * 0.5:
        ticks.append(round(value, 10))
        value += step
    return ticks


def _fmt(value: float) -> str:
    return f"{round(value, 6):g}"


def _time_ticks(t0: datetime, t1: datetime, count: int = 6) -> list[datetime]:
    span = max((t1 - t0).total_seconds(), 1.0)
    return [t0 + timedelta(seconds=span * i / (count - 1)) for i in range(count)]


def _time_label(t: datetime, span_s: float, daily: bool = False) -> str:
    return t.strftime("%d %b %H:%M") if span_s < 3 * 86400 and not daily else t.strftime("%d %b")


def line_chart(
    series: Series,
    title: str,
    y_label: str = "",
    width: int = 760,
    height: int = 280,
    *,
    bands: Bands | None = None,
) -> Markup:
    """Lines over time, one per series, with axes, grid, ticks and a legend; a series with a band (the
    minimum and maximum of each time bucket) gets it drawn as a shaded area behind its line."""
    bands = bands or {}
    points = [p for values in series.values() for p in values]
    if not points:
        return Markup(f'<p class="empty">{escape(title)}: no data in this period</p>')
    left, right, top, bottom = 60, 20, 34, 46
    t0 = min(p[0] for p in points)
    t1 = max(p[0] for p in points)
    span = max((t1 - t0).total_seconds(), 1.0)
    levels = [p[1] for p in points] + [v for values in bands.values() for _, lo, hi in values for v in (lo, hi)]
    y_ticks = nice_ticks(min(levels), max(levels))
    y0, y1 = y_ticks[0], y_ticks[-1]
    plot_w, plot_h = width - left - right, height - top - bottom

    def x(t: datetime) -> float:
        return left + plot_w * (t - t0).total_seconds() / span

    def y(v: float) -> float:
        return top + plot_h * (1 - (v - y0) / ((y1 - y0) or 1.0))

    parts = [
        f'<svg class="chart" role="img" aria-label="{escape(title)}" viewBox="0 0 {width} {height}" '
        f'width="{width}" height="{height}" xmlns="http://www.w3.org/2000/svg">',
        f'<text x="{left}" y="20" class="chart-title">{escape(title)}</text>',
    ]
    for v in y_ticks:
        parts.append(f'<line x1="{left}" x2="{width - right}" y1="{y(v):.1f}" y2="{y(v):.1f}" class="grid"/>')
        parts.append(f'<text x="{left - 6}" y="{y(v) + 4:.1f}" class="tick" text-anchor="end">{_fmt(v)}</text>')
    # Daily series (every point at midnight) get one tick per day, labelled with the date.
    daily = all(t == datetime.combine(t.date(), datetime.min.time()) for t, _ in points)
    days = sorted({t for t, _ in points})
    ticks = days if daily and len(days) <= 12 else _time_ticks(t0, t1)
    for i, t in enumerate(ticks):
        anchor = "start" if i == 0 else "end" if i == len(ticks) - 1 else "middle"
        parts.append(
            f'<text x="{x(t):.1f}" y="{height - bottom + 18}" class="tick" text-anchor="{anchor}">'
            f"{_time_label(t, span, daily)}</text>"
        )
    parts.append(f'<line x1="{left}" x2="{left}" y1="{top}" y2="{top + plot_h}" class="axis"/>')
    parts.append(f'<line x1="{left}" x2="{width - right}" y1="{top + plot_h}" y2="{top + plot_h}" class="axis"/>')
    if y_label:
        parts.append(
            f'<text transform="translate(14 {top + plot_h / 2}) rotate(-90)" class="tick" '
            f'text-anchor="middle">{escape(y_label)}</text>'
        )
    legend_x = left
    for i, (name, values) in enumerate(series.items()):
        colour = PALETTE[i % len(PALETTE)]
        band = sorted(bands.get(name, []))
        if band:
            outline = [(t, hi) for t, _, hi in band] + [(t, lo) for t, lo, _ in reversed(band)]
            corners = " ".join(f"{x(t):.1f},{y(v):.1f}" for t, v in outline)
            parts.append(f'<polygon points="{corners}" fill="{colour}" fill-opacity="0.2" stroke="none" class="band"/>')
        pts = " ".join(f"{x(t):.1f},{y(v):.1f}" for t, v in sorted(values))
        parts.append(f'<polyline points="{pts}" fill="none" stroke="{colour}" stroke-width="2" class="series"/>')
        if len(values) <= 60:
            parts.extend(f'<circle cx="{x(t):.1f}" cy="{y(v):.1f}" r="2.5" fill="{colour}"/>' for t, v in values)
        parts.append(f'<rect x="{legend_x}" y="{height - 16}" width="10" height="10" fill="{colour}"/>')
        parts.append(f'<text x="{legend_x + 14}" y="{height - 7}" class="legend">{escape(name)}</text>')
        legend_x += 24 + 7 * len(name)
    parts.append("</svg>")
    return Markup("".join(parts))


def stacked_bars(
    categories: list[str], stacks: dict[str, list[int | None]], title: str, width: int = 760, height: int = 280
) -> Markup:
    """One bar per category (e.g. week), stacked by class, with a count axis and a legend; a None segment
    (a suppressed count) is not drawn and has no tooltip."""
    totals = [sum(s[i] or 0 for s in stacks.values()) for i in range(len(categories))]
    if not categories or max(totals, default=0) == 0:
        return Markup(f'<p class="empty">{escape(title)}: no data in this period</p>')
    left, right, top, bottom = 50, 20, 34, 52
    plot_w, plot_h = width - left - right, height - top - bottom
    y_ticks = nice_ticks(0, max(totals))
    y1 = y_ticks[-1]
    slot = plot_w / len(categories)
    bar_w = max(min(slot * 0.7, 48), 2)
    parts = [
        f'<svg class="chart" role="img" aria-label="{escape(title)}" viewBox="0 0 {width} {height}" '
        f'width="{width}" height="{height}" xmlns="http://www.w3.org/2000/svg">',
        f'<text x="{left}" y="20" class="chart-title">{escape(title)}</text>',
    ]
    for v in y_ticks:
        yy = top + plot_h * (1 - v / y1)
        parts.append(f'<line x1="{left}" x2="{width - right}" y1="{yy:.1f}" y2="{yy:.1f}" class="grid"/>')
        parts.append(f'<text x="{left - 6}" y="{yy + 4:.1f}" class="tick" text-anchor="end">{_fmt(v)}</text>')
    label_every = max(1, math.ceil(len(categories) / 12))
    for i, category in enumerate(categories):
        cx = left + slot * (i + 0.5)
        base = float(top + plot_h)
        for j, (name, counts) in enumerate(stacks.items()):
            count = counts[i]
            if count is None:
                continue
            h = plot_h * count / y1
            colour = CLASS_COLOURS.get(name, PALETTE[j % len(PALETTE)])
            parts.append(
                f'<rect x="{cx - bar_w / 2:.1f}" y="{base - h:.1f}" width="{bar_w:.1f}" height="{h:.1f}" '
                f'fill="{colour}" class="bar"><title>{escape(category)} {escape(name)}: {count}</title></rect>'
            )
            base -= h
        if i % label_every == 0:
            parts.append(
                f'<text x="{cx:.1f}" y="{top + plot_h + 16}" class="tick" text-anchor="middle">'
                f"{escape(category)}</text>"
            )
    parts.append(f'<line x1="{left}" x2="{width - right}" y1="{top + plot_h}" y2="{top + plot_h}" class="axis"/>')
    legend_x = left
    for j, name in enumerate(stacks):
        colour = CLASS_COLOURS.get(name, PALETTE[j % len(PALETTE)])
        parts.append(f'<rect x="{legend_x}" y="{height - 16}" width="10" height="10" fill="{colour}"/>')
        parts.append(f'<text x="{legend_x + 14}" y="{height - 7}" class="legend">{escape(name)}</text>')
        legend_x += 24 + 7 * len(name)
    parts.append("</svg>")
    return Markup("".join(parts))
