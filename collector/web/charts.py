"""Charts drawn server-side as SVG: time-series lines, stacked bars and share bars (no JavaScript, no CDN).

Conventions every chart keeps, and the browser tests check:
- every text stays inside its svg: the legend wraps onto as many rows as it needs and the svg grows;
- every drawn series (`class="series"`, `data-series`) has a legend entry (`class="legend"`, `data-series`);
- on a time axis spanning days, ticks fall on midnights (`class="xtick"`, `data-t`), labelled with the day;
  a shorter span gets hour ticks;
- a line is broken where the data has a gap (nights, weekends), not drawn across it;
- colours come from collector/web/palette.py: one colour per class and band on every page.
"""

from __future__ import annotations

import itertools
import math
import statistics
from collections.abc import Mapping
from datetime import datetime, timedelta
from html import escape

from markupsafe import Markup

from collector.web.palette import colour_for

Series = dict[str, list[tuple[datetime, float]]]
Bands = dict[str, list[tuple[datetime, float, float]]]

# Average advance of a character of the 11 px chart font, rounded up, so that estimated widths never fall short.
CHAR_W = 7.0
LEGEND_ROW = 18
MIN_GAP = timedelta(minutes=30)


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


def text_width(text: str) -> float:
    return CHAR_W * len(text)


def _midnight(t: datetime) -> datetime:
    return datetime.combine(t.date(), datetime.min.time())


def later(t: datetime, delta: timedelta) -> datetime:
    """`t + delta`, or the last representable time: a chart must draw any stored date, 9999-12-31 included."""
    try:
        return t + delta
    except OverflowError:
        return datetime.max


def time_axis(t0: datetime, t1: datetime, max_ticks: int = 8) -> tuple[datetime, datetime, list[datetime], str]:
    """The axis range, its ticks and their label format. A span of 36 h or more runs from midnight to
    midnight with ticks on midnights (every 1, 2, 7 … days); a shorter one gets ticks on whole hours."""
    span = t1 - t0
    if span >= timedelta(hours=36):
        start = _midnight(t0)
        end = later(_midnight(t1), timedelta(days=1)) if t1 != _midnight(t1) else t1
        days = (end - start).days
        # Beyond a year, steps of whole quarters as needed: never more than `max_ticks` ticks, whatever the span.
        step = next((s for s in (1, 2, 7, 14, 28, 56) if days / s <= max_ticks), 91 * math.ceil(days / 91 / max_ticks))
        ticks = [start + timedelta(days=i) for i in range(0, days + 1, step)]
        return start, end, ticks, "%a %d %b" if step == 1 else "%d %b" if days <= 366 else "%d %b %Y"
    hours = max(span.total_seconds() / 3600, 1.0)
    step_h = next(s for s in (1, 2, 3, 6, 12, 24) if hours / s <= max_ticks)
    start = t0.replace(minute=0, second=0, microsecond=0)
    start -= timedelta(hours=start.hour % step_h)
    end = t1.replace(minute=0, second=0, microsecond=0)
    if end < t1:
        end += timedelta(hours=1)
    while (end - start).total_seconds() % (step_h * 3600):
        end += timedelta(hours=1)
    n = int((end - start).total_seconds() // (step_h * 3600))
    return start, end, [start + timedelta(hours=step_h * i) for i in range(n + 1)], "%H:%M"


def segments(points: list[tuple[datetime, float]], gap: timedelta) -> list[list[tuple[datetime, float]]]:
    """The points split wherever two neighbours are further apart than `gap`."""
    out: list[list[tuple[datetime, float]]] = []
    for p in sorted(points):
        if out and p[0] - out[-1][-1][0] <= gap:
            out[-1].append(p)
        else:
            out.append([p])
    return out


def gap_for(series: Series) -> timedelta:
    """What counts as a gap: 2.5 times the usual step between points, and at least MIN_GAP."""
    steps = []
    for values in series.values():
        ordered = sorted(values)
        steps += [(b[0] - a[0]).total_seconds() for a, b in itertools.pairwise(ordered)]
    usual = statistics.median(steps) if steps else 0.0
    return max(timedelta(seconds=2.5 * usual), MIN_GAP)


def _legend(items: list[tuple[str, str, str]], x0: float, y0: float, width: float) -> tuple[list[str], float]:
    """Legend entries (key, label, colour) in rows from (x0, y0) within `width`; returns svg parts and height."""
    parts, x, y = [], x0, y0
    for key, label, colour in items:
        w = 14 + text_width(label) + 16
        if x > x0 and x + w > x0 + width:
            x, y = x0, y + LEGEND_ROW
        parts.append(f'<rect x="{x:.1f}" y="{y:.1f}" width="10" height="10" fill="{colour}"/>')
        parts.append(
            f'<text x="{x + 14:.1f}" y="{y + 9:.1f}" class="legend" data-series="{escape(key)}">{escape(label)}</text>'
        )
        x += w
    return parts, (y - y0 + LEGEND_ROW) if items else 0.0


def _svg_open(title: str, width: int, height: float) -> str:
    return (
        f'<svg class="chart" role="img" aria-label="{escape(title)}" viewBox="0 0 {width} {height:.0f}" '
        f'width="{width}" height="{height:.0f}" xmlns="http://www.w3.org/2000/svg">'
        f'<text x="10" y="20" class="chart-title">{escape(title)}</text>'
    )


def empty(message: str) -> Markup:
    return Markup(f'<p class="empty">{escape(message)}</p>')


def line_chart(
    series: Series,
    title: str,
    y_label: str = "",
    width: int = 760,
    height: int = 260,
    *,
    bands: Bands | None = None,
    labels: Mapping[str, str] | None = None,
    gap: timedelta | None = None,
    y_min: float | None = None,
    y_max: float | None = None,
) -> Markup:
    """Lines over time, one per series, with axes, grid, ticks and a legend; a series with a band (the
    minimum and maximum of each time bucket) gets it drawn as a shaded area behind its line."""
    bands = bands or {}
    labels = labels or {}
    points = [p for values in series.values() for p in values]
    if not points:
        return empty(f"{title}: no data in this period")
    t_lo, t_hi, x_ticks, x_format = time_axis(min(p[0] for p in points), max(p[0] for p in points))
    span = max((t_hi - t_lo).total_seconds(), 1.0)
    gap = gap or gap_for(series)
    levels = [p[1] for p in points] + [v for values in bands.values() for _, lo, hi in values for v in (lo, hi)]
    lo_v = min(levels) if y_min is None else min(y_min, *levels)
    hi_v = max(levels) if y_max is None else max(y_max, *levels)
    y_ticks = nice_ticks(lo_v, hi_v)
    y0, y1 = y_ticks[0], y_ticks[-1]
    tick_labels = [t.strftime(x_format) for t in x_ticks]
    left = 64
    right = max(24.0, text_width(tick_labels[-1]) / 2 + 6)
    top, axis_h = 34, 40
    plot_w, plot_h = width - left - right, height - top - axis_h
    items = [(name, labels.get(name, name), colour_for(name, i)) for i, name in enumerate(series)]
    legend, legend_h = _legend(items, 10, height - 8, width - 20)
    total_h = height + legend_h

    def x(t: datetime) -> float:
        return left + plot_w * (t - t_lo).total_seconds() / span

    def y(v: float) -> float:
        return top + plot_h * (1 - (v - y0) / ((y1 - y0) or 1.0))

    parts = [_svg_open(title, width, total_h)]
    for v in y_ticks:
        parts.append(f'<line x1="{left}" x2="{width - right:.1f}" y1="{y(v):.1f}" y2="{y(v):.1f}" class="grid"/>')
        parts.append(f'<text x="{left - 6}" y="{y(v) + 4:.1f}" class="tick" text-anchor="end">{_fmt(v)}</text>')
    base = top + plot_h
    for t, label in zip(x_ticks, tick_labels, strict=True):
        xx = x(t)
        parts.append(f'<line x1="{xx:.1f}" x2="{xx:.1f}" y1="{top}" y2="{base}" class="grid"/>')
        parts.append(
            f'<line x1="{xx:.1f}" x2="{xx:.1f}" y1="{base}" y2="{base + 5}" class="axis xtick" '
            f'data-t="{t.isoformat()}"/>'
        )
        parts.append(f'<text x="{xx:.1f}" y="{base + 18}" class="tick" text-anchor="middle">{label}</text>')
    parts.append(f'<line x1="{left}" x2="{left}" y1="{top}" y2="{base}" class="axis"/>')
    parts.append(f'<line x1="{left}" x2="{width - right:.1f}" y1="{base}" y2="{base}" class="axis"/>')
    if y_label:
        parts.append(
            f'<text transform="translate(16 {top + plot_h / 2:.1f}) rotate(-90)" class="tick" '
            f'text-anchor="middle">{escape(y_label)}</text>'
        )
    for (name, label, colour), values in zip(items, series.values(), strict=True):
        for piece in segments([(t, lo) for t, lo, _ in bands.get(name, [])], gap):
            his = dict((t, hi) for t, _, hi in bands[name])
            outline = [(t, his[t]) for t, _ in piece] + list(reversed(piece))
            corners = " ".join(f"{x(t):.1f},{y(v):.1f}" for t, v in outline)
            parts.append(f'<polygon points="{corners}" fill="{colour}" fill-opacity="0.2" stroke="none" class="band"/>')
        pieces = segments(values, gap)
        path = " ".join(
            "M" + " L".join(f"{x(t):.1f},{y(v):.1f}" for t, v in piece) + (" h0.01" if len(piece) == 1 else "")
            for piece in pieces
        )
        parts.append(
            f'<path d="{path}" fill="none" stroke="{colour}" stroke-width="2" stroke-linecap="round" '
            f'class="series" data-series="{escape(name)}"><title>{escape(label)}</title></path>'
        )
        if len(values) <= 60:
            parts.extend(f'<circle cx="{x(t):.1f}" cy="{y(v):.1f}" r="2.5" fill="{colour}"/>' for t, v in values)
    parts.extend(legend)
    parts.append("</svg>")
    return Markup("".join(parts))


def stacked_bars(
    categories: list[str],
    stacks: dict[str, list[int | None]],
    title: str,
    width: int = 760,
    height: int = 260,
    *,
    labels: Mapping[str, str] | None = None,
    y_label: str = "walk-throughs",
) -> Markup:
    """One bar per category (e.g. week), stacked by class, with a count axis and a legend; a None segment
    (a suppressed count) is not drawn and has no tooltip."""
    labels = labels or {}
    totals = [sum(s[i] or 0 for s in stacks.values()) for i in range(len(categories))]
    if not categories or max(totals, default=0) == 0:
        return empty(f"{title}: no data in this period")
    left, right, top, axis_h = 64, 40, 34, 40
    plot_w, plot_h = width - left - right, height - top - axis_h
    y_ticks = nice_ticks(0, max(totals))
    y1 = y_ticks[-1]
    slot = plot_w / len(categories)
    bar_w = max(min(slot * 0.7, 48), 2)
    drawn = [name for name, counts in stacks.items() if any(counts)]
    items = [(name, labels.get(name, name), colour_for(name, j)) for j, name in enumerate(stacks) if name in drawn]
    legend, legend_h = _legend(items, 10, height - 8, width - 20)
    colours = {name: colour for name, _, colour in items}
    parts = [_svg_open(title, width, height + legend_h)]
    for v in y_ticks:
        yy = top + plot_h * (1 - v / y1)
        parts.append(f'<line x1="{left}" x2="{width - right}" y1="{yy:.1f}" y2="{yy:.1f}" class="grid"/>')
        parts.append(f'<text x="{left - 6}" y="{yy + 4:.1f}" class="tick" text-anchor="end">{_fmt(v)}</text>')
    parts.append(
        f'<text transform="translate(16 {top + plot_h / 2:.1f}) rotate(-90)" class="tick" '
        f'text-anchor="middle">{escape(y_label)}</text>'
    )
    widest = max(text_width(c) for c in categories) + 8
    label_every = max(1, math.ceil(widest / slot))
    for i, category in enumerate(categories):
        cx = left + slot * (i + 0.5)
        base = float(top + plot_h)
        for name, counts in stacks.items():
            count = counts[i]
            if not count:
                continue
            h = plot_h * count / y1
            parts.append(
                f'<rect x="{cx - bar_w / 2:.1f}" y="{base - h:.1f}" width="{bar_w:.1f}" height="{h:.1f}" '
                f'fill="{colours[name]}" class="bar series" data-series="{escape(name)}">'
                f"<title>{escape(category)} {escape(labels.get(name, name))}: {count}</title></rect>"
            )
            base -= h
        if i % label_every == 0:
            parts.append(
                f'<text x="{cx:.1f}" y="{top + plot_h + 18}" class="tick" text-anchor="middle">'
                f"{escape(category)}</text>"
            )
    parts.append(f'<line x1="{left}" x2="{width - right}" y1="{top + plot_h}" y2="{top + plot_h}" class="axis"/>')
    parts.extend(legend)
    parts.append("</svg>")
    return Markup("".join(parts))


def share_bars(
    rows: list[tuple[str, dict[str, float]]],
    keys: tuple[str, ...],
    title: str,
    width: int = 760,
    *,
    labels: Mapping[str, str] | None = None,
) -> Markup:
    """One horizontal bar per row, split into the shares of `keys` (e.g. the time in each risk band), with
    the percentage written in each part wide enough to hold it; shares are normalised per row."""
    labels = labels or {}
    rows = [(name, shares) for name, shares in rows if sum(shares.get(k, 0.0) for k in keys) > 0]
    if not rows:
        return empty(f"{title}: no data in this period")
    left = 16 + max(text_width(name) for name, _ in rows)
    right, top, row_h = 16, 34, 22
    plot_w = width - left - right
    items = [(k, labels.get(k, k), colour_for(k, i)) for i, k in enumerate(keys)]
    body_h = top + row_h * len(rows) + 10
    legend, legend_h = _legend(items, 10, body_h, width - 20)
    parts = [_svg_open(title, width, body_h + legend_h + 4)]
    for r, (name, shares) in enumerate(rows):
        yy = top + r * row_h
        parts.append(f'<text x="{left - 6:.1f}" y="{yy + 14}" class="tick" text-anchor="end">{escape(name)}</text>')
        total = sum(shares.get(k, 0.0) for k in keys)
        xx = float(left)
        for k, label, colour in items:
            share = shares.get(k, 0.0) / total
            w = plot_w * share
            if w <= 0:
                continue
            parts.append(
                f'<rect x="{xx:.1f}" y="{yy + 2}" width="{w:.1f}" height="{row_h - 4}" fill="{colour}" '
                f'class="bar series" data-series="{escape(k)}"><title>{escape(name)} {escape(label)}: '
                f"{share:.0%}</title></rect>"
            )
            text = f"{share:.0%}"
            if w >= text_width(text) + 4:
                ink = "dark" if k in ("moderate", "neutral") else "light"
                parts.append(
                    f'<text x="{xx + w / 2:.1f}" y="{yy + 15}" class="tick inbar {ink}" '
                    f'text-anchor="middle">{text}</text>'
                )
            xx += w
    parts.extend(legend)
    parts.append("</svg>")
    return Markup("".join(parts))
