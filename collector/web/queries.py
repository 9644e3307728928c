"""Read-only queries behind the dashboard pages; every one is restricted to the caller's sites."""

from __future__ import annotations

import json
from collections import defaultdict
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from typing import Any

from sqlalchemy import and_, func, select, update

from collector.storage import schema
from collector.storage.engine import Database
from collector.timeutil import utcnow_naive

MAX_POINTS = 400


@dataclass(frozen=True)
class DeviceRow:
    site: str
    device_id: str
    role: str | None
    online: bool
    state: str
    last_seen: datetime
    fps: float | None
    outbox_depth: int | None
    models: list[dict[str, str]]


def fleet(db: Database, sites: list[str], offline_after: timedelta = timedelta(minutes=5)) -> list[DeviceRow]:
    t = schema.devices
    now = utcnow_naive()
    with db.reader.connect() as conn:
        rows = conn.execute(select(t).where(t.c.site.in_(sites)).order_by(t.c.site, t.c.device_id)).mappings().all()
    out = []
    for r in rows:
        recent = now - r["last_seen"] <= offline_after
        online = r["state"] != "offline" and recent
        state = "online" if online else ("offline" if r["state"] == "offline" else "silent")
        models = json.loads(r["models"]) if r["models"] else []
        out.append(
            DeviceRow(
                r["site"], r["device_id"], r["role"], online, state, r["last_seen"], r["fps"], r["outbox_depth"], models
            )
        )
    return out


def device(db: Database, site: str, device_id: str) -> DeviceRow | None:
    return next((d for d in fleet(db, [site]) if d.device_id == device_id), None)


def alerts(db: Database, sites: list[str], states: tuple[str, ...] = ("open", "acknowledged")) -> list[dict[str, Any]]:
    t = schema.alerts
    with db.reader.connect() as conn:
        rows = conn.execute(
            select(t).where(t.c.site.in_(sites), t.c.state.in_(states)).order_by(t.c.opened_at.desc()).limit(500)
        )
        return [dict(r) for r in rows.mappings()]


def alert(db: Database, alert_id: str) -> dict[str, Any] | None:
    t = schema.alerts
    with db.reader.connect() as conn:
        row = conn.execute(select(t).where(t.c.alert_id == alert_id)).mappings().first()
        return dict(row) if row else None


def set_alert_state(db: Database, alert_id: str, state: str, username: str) -> bool:
    """Acknowledge or resolve; returns False when the transition is not allowed from the current state."""
    t = schema.alerts
    now = utcnow_naive()
    allowed_from = {"acknowledged": ("open",), "resolved": ("open", "acknowledged")}[state]
    values: dict[str, Any] = {"state": state, "updated_at": now}
    if state == "acknowledged":
        values.update(acknowledged_at=now, acknowledged_by=username)
    else:
        values.update(resolved_at=now, resolved_by=username)
    with db.engine.begin() as conn:
        result = conn.execute(update(t).where(t.c.alert_id == alert_id, t.c.state.in_(allowed_from)).values(**values))
        return result.rowcount == 1


def metric_series(db: Database, site: str, device_id: str, since: datetime) -> dict[str, list[tuple[datetime, float]]]:
    t = schema.metric_values
    with db.reader.connect() as conn:
        rows = conn.execute(
            select(t.c.name, t.c.at, t.c.value)
            .where(t.c.site == site, t.c.device_id == device_id, t.c.at >= since)
            .order_by(t.c.at)
        ).all()
    series: dict[str, list[tuple[datetime, float]]] = defaultdict(list)
    for name, at, value in rows:
        series[name].append((at, value))
    return {name: _downsample(points) for name, points in series.items()}


def _downsample(points: list[tuple[datetime, float]]) -> list[tuple[datetime, float]]:
    """Bucket means, so that a long period still draws as a readable line."""
    if len(points) <= MAX_POINTS:
        return points
    size = -(-len(points) // MAX_POINTS)
    out = []
    for i in range(0, len(points), size):
        chunk = points[i : i + size]
        out.append((chunk[len(chunk) // 2][0], sum(v for _, v in chunk) / len(chunk)))
    return out


def gait_counts(db: Database, site: str, start: datetime, end: datetime) -> list[tuple[str, str, str, str | None, int]]:
    """Walk-throughs ending in [start, end): (day, day received, outcome, class, count), days as YYYY-MM-DD."""
    t = schema.scores
    day = func.substr(func.cast(t.c.window_end, _text_type()), 1, 10)
    received = func.substr(func.cast(t.c.received_at, _text_type()), 1, 10)
    with db.reader.connect() as conn:
        rows = conn.execute(
            select(day.label("day"), received.label("received"), t.c.outcome, t.c.label, func.count())
            .where(t.c.site == site, t.c.kind == "gait", t.c.window_end >= start, t.c.window_end < end)
            .group_by("day", "received", t.c.outcome, t.c.label)
        ).all()
    return [(d, r, outcome or "unknown", label, int(n)) for d, r, outcome, label, n in rows]


def _text_type() -> Any:
    from sqlalchemy import String

    return String()


def daily_means(db: Database, site: str, kind: str, names: list[str], since: date) -> dict[str, dict[str, Any]]:
    """Per device and metric: day -> (mean, windows) for a kind's metrics."""
    t = schema.metric_values
    day = func.substr(func.cast(t.c.at, _text_type()), 1, 10)
    with db.reader.connect() as conn:
        rows = conn.execute(
            select(t.c.device_id, t.c.name, day.label("day"), func.avg(t.c.value), func.count())
            .where(
                and_(
                    t.c.site == site,
                    t.c.kind == kind,
                    t.c.name.in_(names),
                    t.c.at >= datetime.combine(since, datetime.min.time()),
                )
            )
            .group_by(t.c.device_id, t.c.name, "day")
            .order_by("day")
        ).all()
    out: dict[str, dict[str, Any]] = defaultdict(lambda: defaultdict(list))
    for device_id, name, d, mean, n in rows:
        out[device_id][name].append((d, float(mean), int(n)))
    return out


def recent_scores(db: Database, site: str, kind: str, limit: int = 20) -> list[dict[str, Any]]:
    t = schema.scores
    with db.reader.connect() as conn:
        rows = conn.execute(
            select(t.c.device_id, t.c.window_start, t.c.window_end, t.c.label, t.c.outcome, t.c.payload)
            .where(t.c.site == site, t.c.kind == kind)
            .order_by(t.c.window_end.desc())
            .limit(limit)
        ).mappings()
        return [{**r, "payload": json.loads(r["payload"])} for r in rows]
