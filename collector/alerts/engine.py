"""Evaluate alert rules on each committed batch and periodically; store alerts once per incident."""

from __future__ import annotations

import logging
import uuid
from datetime import datetime, timedelta
from typing import Any

import paho.mqtt.client as mqtt
from sqlalchemy import Connection, and_, or_, select, update

from collector.alerts.notify import Notifier
from collector.alerts.rules import (
    DeviceOfflineRule,
    DroppedScoresRule,
    FpsBelowRule,
    OutboxGrowingRule,
    RulesFile,
    ScreeningRule,
    ThresholdRule,
)
from collector.flatten import flatten, time_bounds
from collector.storage import schema
from collector.storage.engine import Database
from collector.storage.writes import Accepted
from collector.timeutil import to_aware_utc, to_naive_utc, utcnow_naive
from edge.wire import Alert, DeviceMessage, GaitScreening, Heartbeat

log = logging.getLogger(__name__)
HealthRule = FpsBelowRule | OutboxGrowingRule | DroppedScoresRule
AnyRule = ThresholdRule | ScreeningRule | DeviceOfflineRule | HealthRule


def _key(template: str, *, rule: str, site: str, device: str | None, day: str, ident: str) -> str:
    return template.format(rule=rule, site=site, device=device or "-", day=day, id=ident)[:200]


class AlertEngine:
    def __init__(self, db: Database, rules: RulesFile) -> None:
        self.db = db
        self.rules = rules
        self.notifier = Notifier(rules.notify)
        self.raised: list[Alert] = []

    def attach_mqtt(self, client: mqtt.Client) -> None:
        self.notifier.client = client

    def start(self) -> None:
        self.notifier.start()

    def stop(self) -> None:
        self.notifier.stop()

    # --- message rules -----------------------------------------------------------------------------
    def on_messages(self, batch: list[Accepted]) -> None:
        messages = sorted((a.message for a in batch), key=lambda m: time_bounds(m)[1])
        with self.db.engine.begin() as conn:
            for message in messages:
                for rule in self.rules.rules:
                    if rule.sites and message.site not in rule.sites:
                        continue
                    self._apply(conn, rule, message)

    def _apply(self, conn: Connection, rule: AnyRule, msg: DeviceMessage) -> None:
        if isinstance(rule, ThresholdRule) and msg.kind == rule.kind:
            value = flatten(msg).get(rule.metric)
            if value is not None:
                self._threshold(conn, rule, msg, value)
        elif isinstance(rule, ScreeningRule) and isinstance(msg, GaitScreening):
            p = (msg.probabilities or {}).get(rule.predicted)
            screened = msg.outcome == "screened" and msg.predicted == rule.predicted
            if screened and p is not None and p >= rule.min_probability:
                end = to_naive_utc(msg.window_end)
                day = end.date().isoformat()
                ident = str(msg.message_id)
                key = _key(rule.dedup, rule=rule.name, site=msg.site, device=msg.device_id, day=day, ident=ident)
                summary = f"gait screening {rule.predicted} (p={p:.2f}) at {msg.device_id}"
                self._raise(conn, rule, site=msg.site, device=msg.device_id, summary=summary, key=key, at=end)
        elif isinstance(msg, Heartbeat) and isinstance(rule, FpsBelowRule | OutboxGrowingRule | DroppedScoresRule):
            self._health(conn, rule, msg)

    def _threshold(self, conn: Connection, rule: ThresholdRule, msg: DeviceMessage, value: float) -> None:
        start, end = (to_naive_utc(t) for t in time_bounds(msg))
        day = end.date().isoformat()
        subject = f"{msg.site}/{msg.device_id}"
        state = self._state(conn, rule.name, subject)
        period = day if rule.period == "day" else "-"
        if state["period"] != period:
            state.update(period=period, accumulated_s=0.0, active=False)
        clear = rule.clear_below if rule.clear_below is not None else rule.above
        was_active = state["active"]
        active = value >= clear if was_active else value > rule.above
        key = _key(rule.dedup, rule=rule.name, site=msg.site, device=msg.device_id, day=day, ident=str(msg.message_id))
        if active:
            state["accumulated_s"] += max((end - start).total_seconds(), 0.0)
        elif rule.period == "continuous":
            state["accumulated_s"] = 0.0
        state.update(active=active, last_at=end, last_value=value)
        if active and state["accumulated_s"] >= rule.min_duration_minutes * 60:
            minutes = state["accumulated_s"] / 60
            summary = f"{rule.metric} above {rule.above:g} for {minutes:.0f} min at {msg.device_id} (now {value:.3g})"
            self._raise(conn, rule, site=msg.site, device=msg.device_id, summary=summary, key=key, at=end)
        if was_active and not active and rule.auto_resolve:
            self._resolve(conn, key, end)
        self._save_state(conn, rule.name, subject, state)

    def _health(
        self, conn: Connection, rule: FpsBelowRule | OutboxGrowingRule | DroppedScoresRule, hb: Heartbeat
    ) -> None:
        at = to_naive_utc(hb.at)
        subject = f"{hb.site}/{hb.device_id}"
        state = self._state(conn, rule.name, subject)
        key = _key(
            rule.dedup,
            rule=rule.name,
            site=hb.site,
            device=hb.device_id,
            day=at.date().isoformat(),
            ident=str(hb.message_id),
        )
        bad = False
        summary = ""
        if isinstance(rule, FpsBelowRule):
            fps = min(hb.fps.values()) if hb.fps else None
            if fps is not None and fps < rule.target:
                if not state["active"]:
                    state.update(active=True, last_at=at)
                held = (at - (state["last_at"] or at)).total_seconds()
                bad = held >= rule.min_duration_minutes * 60
                summary = f"{hb.device_id} at {fps:.1f} fps, below {rule.target:g} for {held / 60:.0f} min"
            else:
                state.update(active=False, last_at=at)
            state["last_value"] = fps
        elif isinstance(rule, OutboxGrowingRule):
            previous = state["last_value"]
            depth = float(hb.outbox_depth)
            bad = depth > rule.depth_above and previous is not None and depth > previous
            if bad:
                summary = f"{hb.device_id} outbox at {hb.outbox_depth} and growing (was {previous:.0f})"
            elif depth <= rule.depth_above:
                state["active"] = False
            state["last_value"] = depth
        else:
            previous = state["last_value"]
            dropped = float(hb.outbox_dropped)
            bad = previous is not None and dropped > previous
            if bad:
                summary = f"{hb.device_id} dropped {dropped - previous:.0f} scores (outbox full)"
            state["last_value"] = dropped
        if bad:
            state["active"] = True
            self._raise(conn, rule, site=hb.site, device=hb.device_id, summary=summary, key=key, at=at)
        elif not state["active"] and rule.auto_resolve:
            self._resolve(conn, key, at)
        self._save_state(conn, rule.name, subject, state)

    # --- periodic rules ----------------------------------------------------------------------------
    def tick(self, now: datetime | None = None) -> None:
        now = now or utcnow_naive()
        rules = [r for r in self.rules.rules if isinstance(r, DeviceOfflineRule)]
        if not rules:
            return
        with self.db.engine.begin() as conn:
            devices = conn.execute(
                select(
                    schema.devices.c.site,
                    schema.devices.c.device_id,
                    schema.devices.c.state,
                    schema.devices.c.state_at,
                    schema.devices.c.last_seen,
                )
            ).all()
            for rule in rules:
                limit = timedelta(minutes=rule.minutes)
                for site, device, state, state_at, last_seen in devices:
                    if rule.sites and site not in rule.sites:
                        continue
                    key = _key(
                        rule.dedup, rule=rule.name, site=site, device=device, day=now.date().isoformat(), ident=device
                    )
                    offline_since = state_at if state == "offline" and state_at else last_seen
                    silent = now - last_seen > limit
                    if (state == "offline" and now - offline_since > limit) or silent:
                        minutes = (now - min(offline_since, last_seen)).total_seconds() / 60
                        summary = f"{device} offline for {minutes:.0f} min (last seen {last_seen:%Y-%m-%d %H:%M} UTC)"
                        self._raise(conn, rule, site=site, device=device, summary=summary, key=key, at=now)
                    elif rule.auto_resolve and state != "offline":
                        self._resolve(conn, key, now)

    # --- storage -----------------------------------------------------------------------------------
    def _state(self, conn: Connection, rule: str, subject: str) -> dict[str, Any]:
        t = schema.alert_state
        # FOR UPDATE (PostgreSQL): two collectors on a shared subscription may see one device's messages.
        query = select(t).where(t.c.rule == rule, t.c.subject == subject).with_for_update()
        row = conn.execute(query).mappings().first()
        if row is None:
            return {"active": False, "period": "-", "accumulated_s": 0.0, "last_at": None, "last_value": None}
        return dict(row)

    def _save_state(self, conn: Connection, rule: str, subject: str, state: dict[str, Any]) -> None:
        values = {k: state.get(k) for k in ("active", "period", "accumulated_s", "last_at", "last_value")}
        stmt = self.db.insert(schema.alert_state).values(rule=rule, subject=subject, **values)
        conn.execute(stmt.on_conflict_do_update(index_elements=["rule", "subject"], set_=values))

    def _raise(
        self, conn: Connection, rule: AnyRule, *, site: str, device: str | None, summary: str, key: str, at: datetime
    ) -> None:
        """Open an alert unless one is open for this key or the last one ended within the cool-down."""
        t = schema.alerts
        name = rule.name
        last = conn.execute(
            select(t.c.state, t.c.resolved_at).where(t.c.dedup_key == key).order_by(t.c.opened_at.desc()).limit(1)
        ).first()
        if last is not None:
            if last.state != "resolved":
                return
            cooldown = timedelta(minutes=rule.cooldown_minutes)
            if last.resolved_at is not None and at - last.resolved_at < cooldown:
                return
        now = utcnow_naive()
        alert_id = uuid.uuid4()
        stmt = self.db.insert(t).on_conflict_do_nothing()
        result = conn.execute(
            stmt,
            {
                "alert_id": str(alert_id),
                "site": site,
                "device_id": device,
                "rule": name,
                "severity": rule.severity,
                "state": "open",
                "summary": summary[:500],
                "dedup_key": key,
                "opened_at": now,
                "updated_at": now,
            },
        )
        if result.rowcount == 0:
            return  # another collector opened it first
        alert = Alert(
            alert_id=alert_id,
            site=site,
            device_id=device,
            rule=name,
            severity=rule.severity,
            state="open",
            summary=summary[:500],
            dedup_key=key,
            at=to_aware_utc(now),
        )
        log.info("alert %s: %s", name, summary)
        self.raised.append(alert)
        self.notifier.submit(alert)

    def _resolve(self, conn: Connection, key: str, at: datetime) -> None:
        t = schema.alerts
        rows = conn.execute(
            select(t).where(and_(t.c.dedup_key == key, or_(t.c.state == "open", t.c.state == "acknowledged")))
        ).mappings()
        for row in rows.all():
            now = utcnow_naive()
            conn.execute(
                update(t)
                .where(t.c.alert_id == row["alert_id"])
                # Resolution time on the messages' clock, so that the cool-down compares like with like.
                .values(state="resolved", resolved_at=at, resolved_by="rule", updated_at=now)
            )
            alert = Alert(
                alert_id=uuid.UUID(row["alert_id"]),
                site=row["site"],
                device_id=row["device_id"],
                rule=row["rule"],
                severity=row["severity"],
                state="resolved",
                summary=row["summary"],
                dedup_key=key,
                at=to_aware_utc(now),
            )
            self.notifier.submit(alert)
