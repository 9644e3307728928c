"""CSV exports of aggregates, with small-cell suppression (collector/web/suppression.py)."""

from __future__ import annotations

import csv
import io
from datetime import date, timedelta
from typing import Annotated

from fastapi import APIRouter, Depends, Query, Request
from fastapi.responses import Response

from collector.web import queries, screening
from collector.web.auth import User, current_user, require_site
from collector.web.suppression import to_csv_rows

router = APIRouter()
CurrentUser = Annotated[User, Depends(current_user)]


def _csv(rows: list[list[str]], filename: str) -> Response:
    buffer = io.StringIO()
    csv.writer(buffer, lineterminator="\n").writerows(rows)
    return Response(
        buffer.getvalue(),
        media_type="text/csv; charset=utf-8",
        headers={"Content-Disposition": f'attachment; filename="{filename}"'},
    )


@router.get("/sites/{site}/export/screening.csv")
def screening_csv(
    request: Request, user: CurrentUser, site: str, days: Annotated[int, Query(ge=1, le=366)] = 30
) -> Response:
    """Screened walk-throughs per closed calendar week (UTC) and class; see collector/web/screening.py."""
    require_site(user, site)
    app = request.app.state
    released = screening.release(app.db, site, app.clock(), days, app.k)
    return _csv(to_csv_rows(released.classes, "week_start"), f"{site}-screening.csv")


@router.get("/sites/{site}/export/headpose.csv")
def headpose_csv(
    request: Request, user: CurrentUser, site: str, days: Annotated[int, Query(ge=1, le=366)] = 30
) -> Response:
    """Daily mean severity per device; a day with fewer than k windows is left blank (mean and count)."""
    require_site(user, site)
    k = request.app.state.k
    means = queries.daily_means(
        request.app.state.db, site, "headpose", ["severity.total"], date.today() - timedelta(days=days)
    )
    rows = [["device", "day", "windows", "mean_severity_total"]]
    for device_id, per_metric in sorted(means.items()):
        for day, mean, n in per_metric.get("severity.total", []):
            rows.append([device_id, day, str(n), f"{mean:.2f}"] if n >= k else [device_id, day, "", ""])
    return _csv(rows, f"{site}-headpose.csv")
