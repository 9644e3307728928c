"""Read-only queries behind the dashboard pages; every one is restricted to the caller's sites."""

from __future__ import annotations

import json
import math
import sqlite3
from collections import defaultdict
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from typing import Any

from sqlalchemy import DateTime, Integer, and_, cast, extract, func, literal, select, update

from collector.storage import schema
from collector.storage.engine import Database
from collector.timeutil import utcnow_naive

# Time buckets per series on the device page: the line has at most this many points, the band twice as many.
MAX_BUCKETS = 500


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


@dataclass(frozen=True)
class Series:
    """One metric over a period: the line to draw, and for a bucketed series the band of its extremes."""

    points: list[tuple[datetime, float]]  # each window (short series), or each bucket's mean
    band: list[tuple[datetime, float, float]]  # per bucket (time, minimum, maximum); empty when not bucketed


def device_series(
    db: Database, site: str, device_id: str, since: datetime, until: datetime, *, max_buckets: int = MAX_BUCKETS
) -> dict[str, Series]:
    """A device's metrics in [since, until]. A series of more than `max_buckets` windows is bucketed by the
    database into `max_buckets` equal spans of time (mean, minimum, maximum), so that a year of windows costs
    what a few hundred rows cost, and a spike of one window still shows in the band."""
    t = schema.metric_values
    where = (t.c.site == site, t.c.device_id == device_id, t.c.at >= since, t.c.at <= until)
    out: dict[str, Series] = {}
    with db.reader.connect() as conn:
        sizes = conn.execute(select(t.c.name, func.count()).where(*where).group_by(t.c.name)).all()
        short = [name for name, n in sizes if n <= max_buckets]
        long = [name for name, n in sizes if n > max_buckets]
        if short:
            rows = conn.execute(
                select(t.c.name, t.c.at, t.c.value).where(*where, t.c.name.in_(short)).order_by(t.c.name, t.c.at)
            )
            raw: dict[str, list[tuple[datetime, float]]] = defaultdict(list)
            for name, at, value in rows:
                raw[name].append((at, value))
            out.update({name: Series(points, []) for name, points in raw.items()})
        if long:
            width = max((until - since).total_seconds(), 1.0) / max_buckets
            bucket = _bucket_index(db.dialect, t.c.at, since, width).label("bucket")
            grouped = conn.execute(
                select(t.c.name, bucket, func.count(), func.avg(t.c.value), func.min(t.c.value), func.max(t.c.value))
                .where(*where, t.c.name.in_(long))
                .group_by(t.c.name, "bucket")
            )
            # name -> bucket -> [windows, sum, minimum, maximum]; the instant `until` itself falls just past
            # the last bucket, and is added to it.
            acc: dict[str, dict[int, list[float]]] = defaultdict(dict)
            for name, index, n, mean, lo, hi in grouped:
                slot = acc[name].setdefault(min(int(index), max_buckets - 1), [0, 0.0, math.inf, -math.inf])
                slot[0] += n
                slot[1] += float(mean) * n
                slot[2] = min(slot[2], float(lo))
                slot[3] = max(slot[3], float(hi))
            for name, buckets in acc.items():
                at = {i: since + timedelta(seconds=width * (i + 0.5)) for i in buckets}
                ordered = sorted(buckets.items())
                out[name] = Series(
                    [(at[i], total / n) for i, (n, total, _, _) in ordered],
                    [(at[i], lo, hi) for i, (_, _, lo, hi) in ordered],
                )
    return dict(sorted(out.items()))


def _bucket_index(dialect: str, at: Any, since: datetime, width_s: float) -> Any:
    """SQL for the 0-based index of `at`'s span of `width_s` seconds from `since`."""
    if dialect == "sqlite":
        if sqlite3.sqlite_version_info >= (3, 38, 0):  # unixepoch() is several times faster than julianday()
            seconds = func.unixepoch(at) - func.unixepoch(literal(since, DateTime))
        else:
            seconds = (func.julianday(at) - func.julianday(literal(since, DateTime))) * 86400.0
        return cast(seconds / width_s, Integer)
    return func.floor(extract("epoch", at - literal(since, DateTime)) / width_s)


def metric_series(db: Database, site: str, device_id: str, since: datetime) -> dict[str, list[tuple[datetime, float]]]:
    """The line of each of a device's metrics from `since` until now (bounded as in `device_series`)."""
    return {name: s.points for name, s in device_series(db, site, device_id, since, utcnow_naive()).items()}


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


def site_roles(db: Database, sites: list[str]) -> dict[str, set[str]]:
    """The roles of each site's devices (posture, gait, headpose), for the links each site gets."""
    t = schema.devices
    out: dict[str, set[str]] = {site: set() for site in sites}
    with db.reader.connect() as conn:
        for site, role in conn.execute(select(t.c.site, t.c.role).where(t.c.site.in_(sites)).distinct()):
            if role:
                out[site].add(role)
    return out


def device_roles(db: Database, sites: list[str]) -> dict[tuple[str, str], str | None]:
    t = schema.devices
    with db.reader.connect() as conn:
        rows = conn.execute(select(t.c.site, t.c.device_id, t.c.role).where(t.c.site.in_(sites)))
        return {(site, device): role for site, device, role in rows}


SEVERITY_ORDER = {"critical": 0, "warning": 1, "info": 2}
STATE_ORDER = {"open": 0, "acknowledged": 1, "resolved": 2}


@dataclass
class AlertGroup:
    """The alerts of one rule at one device: the newest first, the group ranked by its most urgent alert."""

    site: str
    device_id: str | None
    rule: str
    role: str | None
    alerts: list[dict[str, Any]]

    @property
    def lead(self) -> dict[str, Any]:
        return self.alerts[0]

    @property
    def rank(self) -> tuple[int, int, timedelta]:
        best = min(self.alerts, key=lambda a: (STATE_ORDER.get(a["state"], 3), SEVERITY_ORDER.get(a["severity"], 3)))
        newest = max(a["opened_at"] for a in self.alerts)
        return STATE_ORDER.get(best["state"], 3), SEVERITY_ORDER.get(best["severity"], 3), _newest_first(newest)


def _newest_first(when: datetime) -> timedelta:
    """A sort key putting later times first, for any stored date (`-timestamp()` fails before year 2)."""
    return datetime.max - when


def alert_groups(rows: list[dict[str, Any]], roles: dict[tuple[str, str], str | None]) -> list[AlertGroup]:
    """Alerts grouped per device and rule; open before acknowledged before resolved, then critical before
    warning before info, then the most recent first."""
    groups: dict[tuple[str, str | None, str], AlertGroup] = {}
    for row in rows:
        key = (row["site"], row["device_id"], row["rule"])
        if key not in groups:
            role = roles.get((row["site"], row["device_id"])) if row["device_id"] else None
            groups[key] = AlertGroup(row["site"], row["device_id"], row["rule"], role, [])
        groups[key].alerts.append(row)
    for group in groups.values():
        group.alerts.sort(
            key=lambda a: (
                STATE_ORDER.get(a["state"], 3),
                SEVERITY_ORDER.get(a["severity"], 3),
                _newest_first(a["opened_at"]),
            )
        )
    return sorted(groups.values(), key=lambda g: g.rank)


def latest_heartbeat_stages(db: Database, site: str, device_id: str) -> dict[str, float]:
    t = schema.devices
    with db.reader.connect() as conn:
        raw = conn.execute(select(t.c.fps_stages).where(t.c.site == site, t.c.device_id == device_id)).scalar()
    return json.loads(raw) if raw else {}
