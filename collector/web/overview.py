"""A site's overview: one section per role the site has, each number under the small-cell rule.

- Posture desks: the share of time in each risk band per desk and day, the worst measures per desk, and the
  trend of the time in the high band. A desk-day of fewer than k windows is left out (said on the page),
  as in the head-pose export: a handful of windows says little and points at one sitting.
- Screening booths: the released weekly cells only (collector/web/screening.py: closed calendar weeks,
  complementary suppression), and how many positives wait for a follow-up decision, for the nurse role.
- Head-pose stations: the daily mean severity per station, days of fewer than k windows left out.
"""

from __future__ import annotations

from collections import defaultdict
from datetime import datetime, timedelta
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query, Request
from fastapi.responses import HTMLResponse
from markupsafe import Markup

from collector import words
from collector.storage.engine import Database
from collector.web import charts, followup, queries, screening
from collector.web.auth import User, current_user, require_site

router = APIRouter()
CurrentUser = Annotated[User, Depends(current_user)]
POSTURE_METRICS = (
    "cva_deg", "neck_flexion_deg", "head_forward_ratio", "head_tilt_deg", "shoulder_asymmetry_deg",
    "trunk_flexion_deg", "trunk_lateral_lean_deg",
)  # fmt: skip


@router.get("/sites/{site}", response_class=HTMLResponse)
def overview_page(
    request: Request,
    user: CurrentUser,
    site: str,
    days: Annotated[int, Query(ge=1, le=366)] = 7,
    metric: str = "cva_deg",
) -> HTMLResponse:
    from collector.web.pages import render, screening_charts

    require_site(user, site)
    app = request.app.state
    db: Database = app.db
    now: datetime = app.clock()
    roles = queries.site_roles(db, [site])[site]
    context: dict[str, Any] = {"site": site, "days": days, "k": app.k, "roles": roles}
    if "posture" in roles:
        metric = metric if metric in POSTURE_METRICS else "cva_deg"
        context["posture"] = posture_section(db, site, now, days, k=app.k, metric=metric)
    if "gait" in roles:
        released = screening.release(db, site, now, max(days, 28), app.k)
        by_class, quality = screening_charts(released)
        pending = None
        if user.sees_followup:
            items = followup.followups(db, site, now - timedelta(days=90))
            pending = sum(1 for f in items if f.status is None)
        context["booth"] = {"by_class": by_class, "quality": quality, "pending": pending, "weeks": released.weeks}
    if "headpose" in roles:
        context["station"] = station_section(db, site, now, days, app.k)
    return render(request, "overview.html", user, **context)


def _noon(day: str) -> datetime:
    return datetime.fromisoformat(day) + timedelta(hours=12)


def posture_section(db: Database, site: str, now: datetime, days: int, *, k: int, metric: str) -> dict[str, Any]:
    since = now.date() - timedelta(days=days)
    names = [f"{m}.band.{b}" for m in POSTURE_METRICS for b in words.BANDS]
    means = queries.daily_means(db, site, "posture", names, since)
    rows: list[tuple[str, dict[str, float]]] = []
    trend: dict[str, list[tuple[datetime, float]]] = {}
    left_out = 0
    worst: list[dict[str, Any]] = []
    for desk, per_name in sorted(means.items()):
        by_day: dict[str, dict[str, tuple[float, int]]] = defaultdict(dict)
        for band in words.BANDS:
            for day, mean, n in per_name.get(f"{metric}.band.{band}", []):
                by_day[day][band] = (mean, n)
        for day, bands in sorted(by_day.items()):
            n = min(count for _, count in bands.values())
            if n < k:
                left_out += 1
                continue
            label = f"{desk} · {datetime.fromisoformat(day):%a %d %b}"
            rows.append((label, {band: mean for band, (mean, _) in bands.items()}))
            if "high" in bands:
                trend.setdefault(desk, []).append((_noon(day), bands["high"][0]))
        # Worst measures over the period: the largest share of time in the high band, weighted by windows.
        shares = []
        windows = 0
        for m in POSTURE_METRICS:
            cells = per_name.get(f"{m}.band.high", [])
            n = sum(c for _, _, c in cells)
            windows = max(windows, n)
            if n >= k:
                shares.append((sum(v * c for _, v, c in cells) / n, m))
        shares.sort(reverse=True)
        worst.append(
            {
                "desk": desk,
                "windows": windows if windows >= k else None,
                "worst": [(words.metric_label(m), share) for share, m in shares[:2]] if windows >= k else [],
            }
        )
    title = f"Share of time in each risk band: {words.metric_label(metric)}"
    bars = charts.share_bars(rows, words.BANDS, title, labels=words.BAND_WORDS)
    trend_chart: Markup = charts.line_chart(
        trend, f"Time in the high-risk band per day: {words.metric_label(metric)}", "share of time", y_min=0
    )
    return {
        "metric": metric, "metrics": [(m, words.metric_label(m)) for m in POSTURE_METRICS], "bars": bars,
        "trend": trend_chart, "worst": worst, "left_out": left_out,
    }  # fmt: skip


def station_section(db: Database, site: str, now: datetime, days: int, k: int) -> dict[str, Any]:
    since = now.date() - timedelta(days=days)
    means = queries.daily_means(db, site, "headpose", ["severity.total"], since)
    lines: dict[str, list[tuple[datetime, float]]] = {}
    left_out = 0
    for station, per_name in sorted(means.items()):
        for day, mean, n in per_name.get("severity.total", []):
            if n < k:
                left_out += 1
                continue
            lines.setdefault(station, []).append((_noon(day), mean))
    chart = charts.line_chart(lines, "Daily mean severity score per station", "score", y_min=0)
    return {"chart": chart, "left_out": left_out}
