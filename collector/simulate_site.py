"""A simulated site: posture desks, gait booths and head-pose stations over school days, for the dashboard's
browser tests, its screenshots (scripts/dashboard_screenshots.py) and demos.

Realistic in what the pages must cope with: windows only in school hours on weekdays (nights and weekends
are gaps), heartbeats around the clock whose stages run at very different rates (the camera's ~27 fps, the
analyzer's ~900), seven posture metrics in degrees and one ratio, booths with and without a gait model,
walk-throughs that could not be screened, and pseudonymous student codes on most walk-throughs.
"""

from __future__ import annotations

import hashlib
import random
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

from collector.simulate import _MODEL, heartbeat, status
from collector.storage.engine import Database
from collector.storage.writes import BatchBuilder, write_prepared
from collector.timeutil import to_naive_utc
from contract.wire import DeviceMessage, Window, encode
from edge.roles.gait.message import GaitMeasure, GaitScreening
from edge.roles.headpose.message import HeadPoseStats, HeadPoseWindow
from edge.roles.posture.message import PostureWindow, WindowStats

# Posture metrics as the role sends them: (typical mean, spread, moderate, high, direction).
POSTURE_METRICS: dict[str, tuple[float, float, float, float, str]] = {
    "cva_deg": (50.0, 6.0, 50.0, 40.0, "below"),
    "neck_flexion_deg": (18.0, 8.0, 20.0, 45.0, "above"),
    "head_forward_ratio": (0.14, 0.05, 0.15, 0.30, "above"),
    "head_tilt_deg": (3.0, 2.5, 5.0, 10.0, "abs_above"),
    "shoulder_asymmetry_deg": (2.5, 1.5, 3.0, 6.0, "abs_above"),
    "trunk_flexion_deg": (15.0, 8.0, 20.0, 60.0, "above"),
    "trunk_lateral_lean_deg": (3.0, 2.0, 5.0, 10.0, "abs_above"),
}
REASONS = ("partial_walk", "multiple_people", "standing_still", "wrong_direction", "too_few_cycles", "poor_view")
STAGES = {"processed": 27.0, "perception": 41.0, "pose_landmark": 63.0, "analyzer": 900.0}


@dataclass
class SiteLayout:
    site: str = "school-a"
    desks: tuple[str, ...] = ("desk-01", "desk-02", "desk-03", "desk-04")
    booths: tuple[str, ...] = ("booth-1", "booth-2")  # the last has no gait model: walks are measured, not classed
    stations: tuple[str, ...] = ("station-1", "station-2")
    # Hours (UTC) of the school day; windows only then, Monday to Friday.
    day_start: int = 8
    day_end: int = 16
    subject: Callable[[int], str] = field(default=lambda n: hashlib.sha256(f"student-{n}".encode()).hexdigest())


def _in_school(t: datetime, layout: SiteLayout) -> bool:
    return t.weekday() < 5 and layout.day_start <= t.hour < layout.day_end


def _bands(value: float, moderate: float, high: float, direction: str, spread: float) -> dict[str, float]:
    """Shares of the window in each band for a window of this mean (a normal spread around it)."""
    import math

    def below(limit: float) -> float:  # share of frames with a value below `limit`
        return 0.5 * (1 + math.erf((limit - value) / (spread * math.sqrt(2))))

    if direction == "below":
        high_share, moderate_share = below(high), below(moderate) - below(high)
    elif direction == "above":
        high_share, moderate_share = 1 - below(high), below(high) - below(moderate)
    else:  # abs_above: the value is a magnitude here
        high_share, moderate_share = 1 - below(high), below(high) - below(moderate)
    ok = max(0.0, 1 - high_share - moderate_share)
    return {"ok": round(ok, 4), "moderate": round(max(moderate_share, 0.0), 4), "high": round(max(high_share, 0.0), 4)}


def posture_window(
    site: str, device: str, seq: int, end: datetime, rng: random.Random, *, slouch: float
) -> PostureWindow:
    """A 5-minute posture window; `slouch` (0..1) moves every metric towards its risk side."""
    metrics = {}
    for name, (mean, spread, moderate, high, direction) in POSTURE_METRICS.items():
        sign = -1 if direction == "below" else 1
        value = mean + sign * slouch * spread * 1.5 + rng.gauss(0, spread * 0.3)
        if direction == "abs_above":
            value = abs(value)
        frame_spread = spread * 0.6
        metrics[name] = WindowStats(
            mean=round(value, 3),
            p10=round(value - frame_spread, 3),
            p50=round(value, 3),
            p90=round(value + frame_spread, 3),
            valid_frames=rng.randint(5000, 8000),
            bands=_bands(value, moderate, high, direction, frame_spread),
        )
    return PostureWindow(
        device_id=device, site=site, seq=seq, window_start=end - timedelta(minutes=5), window_end=end,
        models=[_MODEL], frames=8100, presence_s=round(rng.uniform(200, 300), 1),
        posture_changes=rng.randint(0, 8), metrics=metrics,
    )  # fmt: skip


def walk(
    site: str, device: str, seq: int, end: datetime, rng: random.Random, *, classed: bool, subject: str | None
) -> GaitScreening:
    outcome = "screened" if rng.random() > 0.15 else rng.choice(REASONS)
    probabilities = predicted = None
    measures = {}
    if outcome == "screened":
        measures = {
            "cadence": GaitMeasure(value=round(rng.gauss(112, 8), 1), cycles=rng.randint(3, 6)),
            "shoulder_height_diff": GaitMeasure(value=round(abs(rng.gauss(1.2, 0.8)), 2), cycles=3),
        }
        if classed:
            predicted = rng.choices(["negative", "neutral", "positive"], weights=[70, 20, 10])[0]
            p = round(rng.uniform(0.6, 0.95), 3)
            rest = round((1 - p) / 2, 6)
            others = [c for c in ("negative", "neutral", "positive") if c != predicted]
            probabilities = {predicted: p, others[0]: rest, others[1]: rest}
    return GaitScreening(
        device_id=device, site=site, seq=seq, window_start=end - timedelta(seconds=7), window_end=end,
        models=[_MODEL], outcome=outcome, subject=subject, probabilities=probabilities,  # type: ignore[arg-type]
        predicted=predicted, measures=measures, frames=rng.randint(150, 260),  # type: ignore[arg-type]
    )  # fmt: skip


def session_window(
    site: str, device: str, seq: int, end: datetime, rng: random.Random, *, level: float
) -> HeadPoseWindow:
    def stats(mean: float) -> HeadPoseStats:
        return HeadPoseStats(
            mean=round(mean, 2), minimum=round(mean - 4, 2), maximum=round(mean + 4, 2), range=8.0,
            time_above_s=round(max(0.0, level * 20 + rng.gauss(0, 2)), 1), valid_frames=1500,
        )  # fmt: skip

    return HeadPoseWindow(
        device_id=device, site=site, seq=seq, window_start=end - timedelta(minutes=1), window_end=end, frames=1600,
        presence_s=60,
        metrics={
            "yaw_deg": stats(level * 25 + rng.gauss(0, 3)),
            "roll_deg": stats(level * 8 + rng.gauss(0, 2)),
            "pitch_deg": stats(-3 + rng.gauss(0, 2)),
        },
        severity={
            "rotation": min(4, int(level * 4 + rng.random())),
            "laterocollis": min(3, int(level * 2 + rng.random())),
            "antero_retrocollis": int(rng.random() < 0.3),
        },
    )  # fmt: skip


def site_messages(
    now: datetime, days: int = 7, *, layout: SiteLayout | None = None, seed: int = 7, booth_days: int | None = None
) -> list[DeviceMessage]:
    """Every message of a simulated site from `days` days (booths: `booth_days`, default 3 weeks, so that
    closed calendar weeks are released) before `now` (aware UTC) until `now`."""
    layout = layout or SiteLayout()
    rng = random.Random(seed)
    now = now.astimezone(UTC).replace(second=0, microsecond=0)
    start = (now - timedelta(days=days)).replace(minute=0)
    out: list[DeviceMessage] = []
    seqs: dict[str, int] = {}

    def seq(device: str) -> int:
        seqs[device] = seqs.get(device, -1) + 1
        return seqs[device]

    roles = [(d, "posture") for d in layout.desks] + [(b, "gait") for b in layout.booths]
    roles += [(s, "headpose") for s in layout.stations]
    for device, role in roles:
        first = (now - timedelta(days=booth_days or 21)).replace(minute=0) if role == "gait" else start
        out.append(status(layout.site, device, seq(device), first, role=role))
        t = first
        while t <= now:  # heartbeats day and night: the device runs, whether or not anyone is in view
            stages = {k: round(v * rng.uniform(0.93, 1.03), 1) for k, v in STAGES.items()}
            depth = rng.randint(1, 40) if rng.random() < 0.03 else 0  # a short network hiccup now and then
            out.append(heartbeat(layout.site, device, seq(device), t, stages=stages, outbox_depth=depth))
            t += timedelta(minutes=30)
        out.append(heartbeat(layout.site, device, seq(device), now, stages=STAGES))  # online now
    for i, desk in enumerate(layout.desks):
        t = start
        while t <= now:
            if _in_school(t, layout) and rng.random() > 0.1:  # now and then nobody is at the desk
                afternoon = (t.hour - layout.day_start) / (layout.day_end - layout.day_start)
                slouch = min(1.0, 0.15 * i + 0.5 * afternoon + 0.1 * t.weekday() / 4)
                out.append(posture_window(layout.site, desk, seq(desk), t, rng, slouch=slouch))
            t += timedelta(minutes=5)
    student = 0
    for j, booth in enumerate(layout.booths):
        classed = j < len(layout.booths) - 1 or len(layout.booths) == 1
        t = (now - timedelta(days=booth_days or 21)).replace(minute=0)
        while t <= now:
            if _in_school(t, layout) and rng.random() < 0.22:
                student += 1
                subject = layout.subject(student % 400) if rng.random() < 0.8 else None
                out.append(walk(layout.site, booth, seq(booth), t, rng, classed=classed, subject=subject))
            t += timedelta(minutes=3)
    for k, station in enumerate(layout.stations):
        t = start
        while t <= now:
            if _in_school(t, layout) and t.minute == 0 and t.hour in (9, 13):  # two sessions a day
                level = min(1.0, 0.2 + 0.25 * k + 0.05 * rng.random())
                for m in range(10):
                    end = t + timedelta(minutes=m + 1)
                    out.append(session_window(layout.site, station, seq(station), end, rng, level=level))
            t += timedelta(minutes=5)
    return out


def message_time(message: DeviceMessage) -> datetime:
    return message.window_end if isinstance(message, Window) else message.at  # type: ignore[attr-defined]


def store_messages(db: Database, messages: Iterable[DeviceMessage], batch: int = 2000) -> int:
    """Store messages as the collector's writer does, each received a minute after its time (so that
    screening weeks are released as they would have been); returns how many rows were new."""
    ordered = sorted(messages, key=message_time)
    stored = 0
    for i in range(0, len(ordered), batch):
        builder = BatchBuilder(db.dialect)
        for message in ordered[i : i + batch]:
            builder.add(message, encode(message).decode(), to_naive_utc(message_time(message)) + timedelta(minutes=1))
        with db.engine.begin() as conn:
            stored += len(write_prepared(conn, db, builder.build(), 100))
    return stored


# Alerts as the rules word them (collector/alerts/rules/*.py), for the alerts page of a simulated site.
_ALERTS: tuple[tuple[str, str, str, str, str, int], ...] = (
    # (rule, severity, state, device, summary, hours before now)
    ("forward_head_sustained", "warning", "open", "desk-04",
     "cva_deg.band.high above 0.5 for 30 min at desk-04 (now 0.62)", 3),
    ("forward_head_sustained", "warning", "acknowledged", "desk-04",
     "cva_deg.band.high above 0.5 for 30 min at desk-04 (now 0.55)", 27),
    ("forward_head_sustained", "warning", "resolved", "desk-03",
     "cva_deg.band.high above 0.5 for 30 min at desk-03 (now 0.51)", 50),
    ("gait_positive", "warning", "open", "booth-1", "gait screening positive (p=0.91) at booth-1", 5),
    ("gait_positive", "warning", "open", "booth-1", "gait screening positive (p=0.78) at booth-1", 29),
    ("device_offline", "critical", "open", "station-2",
     "station-2 offline for 45 min (last seen 2026-01-01 08:00 UTC)", 1),
    ("fps_below", "info", "acknowledged", "desk-02", "desk-02 at 9.5 fps, below 15 for 10 min", 8),
)  # fmt: skip


def store_alerts(db: Database, now: datetime) -> None:
    import uuid

    from collector.storage import schema

    naive = to_naive_utc(now)
    with db.engine.begin() as conn:
        for rule, severity, state, device, summary, hours in _ALERTS:
            at = naive - timedelta(hours=hours)
            alert_id = str(uuid.uuid4())
            conn.execute(
                schema.alerts.insert().values(
                    alert_id=alert_id, site="school-a", device_id=device, rule=rule, severity=severity, state=state,
                    summary=summary, dedup_key=alert_id, opened_at=at, updated_at=at,
                    acknowledged_at=at if state != "open" else None,
                    acknowledged_by="alice" if state != "open" else None,
                    resolved_at=at + timedelta(hours=1) if state == "resolved" else None,
                )
            )  # fmt: skip


def populate(db: Database, now: datetime, *, days: int = 7, layout: SiteLayout | None = None) -> list[DeviceMessage]:
    """A simulated site with alerts, stored; returns the messages."""
    messages = site_messages(now, days, layout=layout)
    store_messages(db, messages)
    store_alerts(db, now)
    return messages
