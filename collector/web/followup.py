"""The screening follow-up list: each positive walk-through, for the users who act on it (role "nurse").

What the collector knows of a student is the pseudonymous code the booth sends (`subject`: HMAC-SHA256 of
the student's code with the site secret, edge/subject_code.py); it never holds the secret, so it cannot
turn a code back into a student. The school does that offline with `edgescreen codes resolve` on the CSV
export of this list (docs/collector.md, "A screening day").

This is the one place the dashboard shows single walk-throughs: the list is only for users whose role is
"nurse" (collector/users.py), every other user gets 404 for it, as for a page that does not exist. Each
status change is a new row of `followup_events` (who, when, what); the current status is the latest.
"""

from __future__ import annotations

import csv
import io
import json
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Annotated

from fastapi import APIRouter, Depends, Form, HTTPException, Query, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from sqlalchemy import select

from collector.storage import schema
from collector.storage.engine import Database
from collector.timeutil import utcnow_naive
from collector.web.auth import User, check_csrf, current_user, require_site

router = APIRouter()
CurrentUser = Annotated[User, Depends(current_user)]

STATUSES: dict[str, str] = {"referred": "referred", "not_needed": "not needed", "done": "done"}
PENDING = "to decide"
CSV_COLUMNS = ("walked_at_utc", "booth", "student_code", "p_positive", "status", "changed_by", "changed_at_utc")


@dataclass(frozen=True)
class FollowUp:
    device_id: str
    message_id: str
    walked_at: datetime
    subject: str | None
    probability: float | None
    status: str | None  # None: nobody has decided yet
    changed_by: str | None
    changed_at: datetime | None


def require_followup(user: User, site: str) -> None:
    require_site(user, site)
    if not user.sees_followup:
        raise HTTPException(status_code=404, detail="not found")


def followups(db: Database, site: str, since: datetime) -> list[FollowUp]:
    """Positive walk-throughs of a site since `since`, newest first, with their current status."""
    s, e = schema.scores, schema.followup_events
    with db.reader.connect() as conn:
        walks = conn.execute(
            select(s.c.device_id, s.c.message_id, s.c.window_end, s.c.payload)
            .where(
                s.c.site == site, s.c.kind == "gait", s.c.outcome == "screened", s.c.label == "positive",
                s.c.window_end >= since,
            )
            .order_by(s.c.window_end.desc())
        ).all()  # fmt: skip
        events = conn.execute(
            select(e.c.device_id, e.c.message_id, e.c.status, e.c.changed_by, e.c.changed_at)
            .where(e.c.site == site)
            .order_by(e.c.id)
        ).all()
    latest = {(d, m): (status, by, at) for d, m, status, by, at in events}
    out = []
    for device_id, message_id, end, payload in walks:
        body = json.loads(payload)
        status, by, at = latest.get((device_id, message_id), (None, None, None))
        p = (body.get("probabilities") or {}).get("positive")
        out.append(FollowUp(device_id, message_id, end, body.get("subject"), p, status, by, at))
    return out


def set_status(db: Database, site: str, device_id: str, message_id: str, *, status: str, username: str) -> bool:
    """Record a status change; False when there is no positive walk-through with this key on the site."""
    if status not in STATUSES:
        raise ValueError(f"status {status!r}: one of {', '.join(STATUSES)}")
    s = schema.scores
    with db.engine.begin() as conn:
        found = conn.execute(
            select(s.c.message_id).where(
                s.c.site == site, s.c.device_id == device_id, s.c.message_id == message_id, s.c.kind == "gait",
                s.c.outcome == "screened", s.c.label == "positive",
            )
        ).first()  # fmt: skip
        if found is None:
            return False
        conn.execute(
            schema.followup_events.insert().values(
                site=site, device_id=device_id, message_id=message_id, status=status, changed_by=username,
                changed_at=utcnow_naive(),
            )
        )  # fmt: skip
    return True


def history(db: Database, site: str, limit: int = 200) -> list[dict[str, object]]:
    """The audit trail, newest first: every change, by whom and when."""
    e = schema.followup_events
    with db.reader.connect() as conn:
        rows = conn.execute(select(e).where(e.c.site == site).order_by(e.c.id.desc()).limit(limit)).mappings()
        return [dict(r) for r in rows]


def csv_rows(items: list[FollowUp]) -> list[list[str]]:
    rows = [list(CSV_COLUMNS)]
    for f in items:
        rows.append(
            [
                f.walked_at.strftime("%Y-%m-%d %H:%M"), f.device_id, f.subject or "",
                "" if f.probability is None else f"{f.probability:.2f}", f.status or "", f.changed_by or "",
                f.changed_at.strftime("%Y-%m-%d %H:%M") if f.changed_at else "",
            ]
        )  # fmt: skip
    return rows


@router.get("/sites/{site}/followup", response_class=HTMLResponse)
def followup_page(
    request: Request, user: CurrentUser, site: str, days: Annotated[int, Query(ge=1, le=366)] = 90
) -> HTMLResponse:
    from collector.web.pages import render

    require_followup(user, site)
    db = request.app.state.db
    items = followups(db, site, request.app.state.clock() - timedelta(days=days))
    return render(
        request, "followup.html", user, site=site, items=items, days=days, statuses=STATUSES, pending=PENDING,
        audit=history(db, site),
    )  # fmt: skip


@router.post("/sites/{site}/followup/{device_id}/{message_id}")
def change_status(
    request: Request,
    user: CurrentUser,
    *,
    site: str,
    device_id: str,
    message_id: str,
    status: Annotated[str, Form()],
    csrf_token: Annotated[str, Form()] = "",
) -> Response:
    check_csrf(request, csrf_token)
    require_followup(user, site)
    if status not in STATUSES:
        raise HTTPException(status_code=400, detail=f"status must be one of: {', '.join(STATUSES)}")
    if not set_status(request.app.state.db, site, device_id, message_id, status=status, username=user.username):
        raise HTTPException(status_code=404, detail="not found")
    return RedirectResponse(f"/sites/{site}/followup", status_code=303)


@router.get("/sites/{site}/export/followup.csv")
def followup_csv(
    request: Request, user: CurrentUser, site: str, days: Annotated[int, Query(ge=1, le=366)] = 90
) -> Response:
    """The list for `edgescreen codes resolve` at the school (student_code is the booth's HMAC)."""
    require_followup(user, site)
    items = followups(request.app.state.db, site, request.app.state.clock() - timedelta(days=days))
    buffer = io.StringIO()
    csv.writer(buffer, lineterminator="\n").writerows(csv_rows(items))
    return Response(
        buffer.getvalue(),
        media_type="text/csv; charset=utf-8",
        headers={"Content-Disposition": f'attachment; filename="{site}-followup.csv"', "Cache-Control": "no-store"},
    )
