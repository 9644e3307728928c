"""Evaluate alert rules on each committed batch and periodically; store alerts once per incident."""

from __future__ import annotations

import logging
import uuid
from collections.abc import Callable
from datetime import datetime, timedelta
from functools import cached_property
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
from collector.storage import schema
from collector.storage.engine import Database
from collector.storage.writes import Facts
from collector.timeutil import to_aware_utc, utcnow_naive
from contract.wire import Alert

log = logging.getLogger(__name__)
HealthRule = FpsBelowRule | OutboxGrowingRule | DroppedScoresRule
AnyRule = ThresholdRule | ScreeningRule | DeviceOfflineRule | HealthRule


def _key(template: str, *, rule: str, site: str, device: str | None, day: str, ident: str) -> str:
    return template.format(rule=rule, site=site, device=device or "-", day=day, id=ident)[:200]


_STATE_COLUMNS = ("active", "period", "accumulated_s", "last_at", "last_value")


class _BatchState:
    """One evaluation pass (a committed batch, or a tick) inside one transaction: the rule states it read and
    changed, and the last alert per dedup key as far as this pass has seen it."""

    def __init__(self, conn: Connection, states: dict[tuple[str, str], dict[str, Any]]) -> None:
        self.conn = conn
        self.states = states
        self.touched: set[tuple[str, str]] = set()
        # dedup key -> (state of its newest alert, resolved_at); "none" when it has no alert
        self.last_alerts: dict[str, tuple[str, datetime | None]] = {}
        self.opening: list[tuple[dict[str, Any], Alert]] = []  # alerts to insert, in one statement per 500

    def state(self, rule: str, subject: str) -> dict[str, Any]:
        """The rule's state for a subject, to be changed in place; written back at the end of the pass."""
        key = (rule, subject)
        self.touched.add(key)
        found = self.states.get(key)
        if found is None:
            found = self.states[key] = {
                "active": False, "period": "-", "accumulated_s": 0.0, "last_at": None, "last_value": None
            }  # fmt: skip
        return found

    def prefetch(self, keys: set[str]) -> None:
        """Look up the last alert of many dedup keys in a few queries instead of one query per key."""
        t = schema.alerts
        wanted = sorted(k for k in keys if k not in self.last_alerts)
        for start in range(0, len(wanted), 500):
            chunk = wanted[start : start + 500]
            found: dict[str, tuple[str, datetime | None]] = {}
            query = select(t.c.dedup_key, t.c.state, t.c.resolved_at).where(t.c.dedup_key.in_(chunk))
            for key, state, resolved_at in self.conn.execute(query.order_by(t.c.opened_at)):
                found[key] = (state, resolved_at)  # ordered by opening: the newest wins
            for key in chunk:
                self.last_alerts[key] = found.get(key, ("none", None))

    def last_alert(self, key: str) -> tuple[str, datetime | None] | None:
        if key not in self.last_alerts:
            t = schema.alerts
            row = self.conn.execute(
                select(t.c.state, t.c.resolved_at).where(t.c.dedup_key == key).order_by(t.c.opened_at.desc()).limit(1)
            ).first()
            self.last_alerts[key] = ("none", None) if row is None else (row.state, row.resolved_at)
        last = self.last_alerts[key]
        return None if last[0] == "none" else last


class AlertEngine:
    """Rule evaluation against the database. Every alert it opens or resolves goes to `deliver`: by default its
    own notifier (MQTT, webhook, e-mail); the ingest writer process instead collects them and hands them to the
    ingest process, which owns the MQTT connection."""

    def __init__(self, db: Database, rules: RulesFile, deliver: Callable[[Alert], None] | None = None) -> None:
        self.db = db
        self.rules = rules
        self.notifier = Notifier(rules.notify)
        self.deliver = deliver or self.notifier.submit

    def attach_mqtt(self, client: mqtt.Client) -> None:
        self.notifier.client = client

    def start(self) -> None:
        self.notifier.start()

    def stop(self) -> None:
        self.notifier.stop()

    # --- message rules -----------------------------------------------------------------------------
    def on_stored(self, batch: list[Facts]) -> None:
        """Evaluate the message rules on stored messages in a transaction of their own."""
        with self.db.engine.begin() as conn:
            self.evaluate(conn, batch)

    def evaluate(self, conn: Connection, batch: list[Facts]) -> None:
        """Evaluate the message rules on a batch's new messages, in message time order, inside the caller's
        transaction (the ingest writer's, so that scores, rule states and alerts commit together).

        Rule states of the batch's devices are read in one query and written back in one statement, and each
        dedup key's last alert is looked up once per batch, so a batch costs a few statements, not several
        per message (the ingest's rate holds with rules on).
        """
        facts = sorted(batch, key=lambda f: f.end)
        if not facts or not self.rules.rules:
            return
        thresholds, screenings, health = self._by_message_kind
        pass_ = _BatchState(conn, self._load_states(conn, {f"{f.site}/{f.device_id}" for f in facts}))
        if screenings:
            # A positive screening is its own incident (the default key holds its message id): one query for
            # the batch's candidates instead of one per screening.
            hits = (self._screening_hit(r, f) for f in facts if f.kind == "gait" for r in screenings)
            pass_.prefetch({hit[0] for hit in hits if hit is not None})
        for fact in facts:
            site = fact.site
            if fact.kind == "heartbeat":
                for health_rule in health:
                    if not health_rule.sites or site in health_rule.sites:
                        self._health(pass_, health_rule, fact)
            elif fact.kind == "gait":
                for screening_rule in screenings:
                    self._screening(pass_, screening_rule, fact)
            for rule in thresholds.get(fact.kind, ()):
                value = fact.metrics.get(rule.metric)
                if value is not None and (not rule.sites or site in rule.sites):
                    self._threshold(pass_, rule, fact, value)
        self._open_pending(pass_)
        self._save_states(conn, pass_)

    @cached_property
    def _by_message_kind(
        self,
    ) -> tuple[dict[str, list[ThresholdRule]], list[ScreeningRule], list[HealthRule]]:
        """The message rules split by the messages they read, so that a message meets only its own rules."""
        thresholds: dict[str, list[ThresholdRule]] = {}
        screenings: list[ScreeningRule] = []
        health: list[HealthRule] = []
        for rule in self.rules.rules:
            if isinstance(rule, ThresholdRule):
                thresholds.setdefault(rule.kind, []).append(rule)
            elif isinstance(rule, ScreeningRule):
                screenings.append(rule)
            elif isinstance(rule, FpsBelowRule | OutboxGrowingRule | DroppedScoresRule):
                health.append(rule)
        return thresholds, screenings, health

    @staticmethod
    def _screening_hit(rule: ScreeningRule, msg: Facts) -> tuple[str, float] | None:
        """The dedup key and probability when the screening meets the rule."""
        if rule.sites and msg.site not in rule.sites:
            return None
        p = msg.metrics.get(f"prob.{rule.predicted}")
        screened = msg.outcome == "screened" and msg.predicted == rule.predicted
        if not (screened and p is not None and p >= rule.min_probability):
            return None
        day = msg.end.date().isoformat()
        key = _key(rule.dedup, rule=rule.name, site=msg.site, device=msg.device_id, day=day, ident=msg.message_id)
        return key, p

    def _screening(self, pass_: _BatchState, rule: ScreeningRule, msg: Facts) -> None:
        hit = self._screening_hit(rule, msg)
        if hit is not None:
            key, p = hit
            summary = f"gait screening {rule.predicted} (p={p:.2f}) at {msg.device_id}"
            self._raise(pass_, rule, site=msg.site, device=msg.device_id, summary=summary, key=key, at=msg.end)

    def _threshold(self, pass_: _BatchState, rule: ThresholdRule, msg: Facts, value: float) -> None:
        start, end = msg.start, msg.end
        day = end.date().isoformat()
        state = pass_.state(rule.name, f"{msg.site}/{msg.device_id}")
        period = day if rule.period == "day" else "-"
        if state["period"] != period:
            state.update(period=period, accumulated_s=0.0, active=False)
        clear = rule.clear_below if rule.clear_below is not None else rule.above
        was_active = state["active"]
        active = value >= clear if was_active else value > rule.above
        if active:
            state["accumulated_s"] += max((end - start).total_seconds(), 0.0)
        elif rule.period == "continuous":
            state["accumulated_s"] = 0.0
        state.update(active=active, last_at=end, last_value=value)
        if not (active and state["accumulated_s"] >= rule.min_duration_minutes * 60) and not (
            was_active and not active and rule.auto_resolve
        ):
            return
        key = _key(rule.dedup, rule=rule.name, site=msg.site, device=msg.device_id, day=day, ident=msg.message_id)
        if active and state["accumulated_s"] >= rule.min_duration_minutes * 60:
            minutes = state["accumulated_s"] / 60
            summary = f"{rule.metric} above {rule.above:g} for {minutes:.0f} min at {msg.device_id} (now {value:.3g})"
            self._raise(pass_, rule, site=msg.site, device=msg.device_id, summary=summary, key=key, at=end)
        if was_active and not active and rule.auto_resolve:
            self._resolve(pass_, key, end)

    def _health(self, pass_: _BatchState, rule: HealthRule, hb: Facts) -> None:
        at = hb.end
        state = pass_.state(rule.name, f"{hb.site}/{hb.device_id}")
        was_active = bool(state["active"])
        bad = False
        summary = ""
        if isinstance(rule, FpsBelowRule):
            fps = hb.metrics.get("fps.min")
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
            depth = hb.metrics["outbox_depth"]
            bad = depth > rule.depth_above and previous is not None and depth > previous
            if bad:
                summary = f"{hb.device_id} outbox at {depth:.0f} and growing (was {previous:.0f})"
            elif depth <= rule.depth_above:
                state["active"] = False
            state["last_value"] = depth
        else:
            previous = state["last_value"]
            dropped = hb.metrics["outbox_dropped"]
            bad = previous is not None and dropped > previous
            if bad:
                summary = f"{hb.device_id} dropped {dropped - previous:.0f} scores (outbox full)"
            state["last_value"] = dropped
        resolving = not bad and was_active and not state["active"] and rule.auto_resolve
        if not (bad or resolving):
            return
        day = at.date().isoformat()
        key = _key(rule.dedup, rule=rule.name, site=hb.site, device=hb.device_id, day=day, ident=hb.message_id)
        if bad:
            state["active"] = True
            self._raise(pass_, rule, site=hb.site, device=hb.device_id, summary=summary, key=key, at=at)
        else:
            # Only on the turn from bad to good: an alert of this rule is open only while its state is active.
            self._resolve(pass_, key, at)

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
            pass_ = _BatchState(conn, {})
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
                        self._raise(pass_, rule, site=site, device=device, summary=summary, key=key, at=now)
                    elif rule.auto_resolve and state != "offline":
                        self._resolve(pass_, key, now)
            self._open_pending(pass_)

    # --- storage -----------------------------------------------------------------------------------
    def _load_states(self, conn: Connection, subjects: set[str]) -> dict[tuple[str, str], dict[str, Any]]:
        t = schema.alert_state
        states: dict[tuple[str, str], dict[str, Any]] = {}
        ordered = sorted(subjects)
        for start in range(0, len(ordered), 500):
            # FOR UPDATE (PostgreSQL): two collectors on a shared subscription may see one device's messages.
            query = select(t).where(t.c.subject.in_(ordered[start : start + 500])).with_for_update()
            for row in conn.execute(query).mappings():
                states[(row["rule"], row["subject"])] = dict(row)
        return states

    def _save_states(self, conn: Connection, pass_: _BatchState) -> None:
        if not pass_.touched:
            return
        rows = [
            {"rule": rule, "subject": subject, **{k: state.get(k) for k in _STATE_COLUMNS}}
            for (rule, subject), state in pass_.states.items()
            if (rule, subject) in pass_.touched
        ]
        stmt = self.db.insert(schema.alert_state)
        stmt = stmt.on_conflict_do_update(
            index_elements=["rule", "subject"], set_={k: stmt.excluded[k] for k in _STATE_COLUMNS}
        )
        conn.execute(stmt, rows)

    def _raise(
        self, pass_: _BatchState, rule: AnyRule, *, site: str, device: str | None, summary: str, key: str, at: datetime
    ) -> None:
        """Open an alert unless one is open for this key or the last one ended within the cool-down."""
        name = rule.name
        last = pass_.last_alert(key)
        if last is not None:
            state, resolved_at = last
            if state != "resolved":
                return
            cooldown = timedelta(minutes=rule.cooldown_minutes)
            if resolved_at is not None and at - resolved_at < cooldown:
                return
        now = utcnow_naive()
        alert_id = uuid.uuid4()
        row = {
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
        }
        pass_.last_alerts[key] = ("open", None)
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
        pass_.opening.append((row, alert))

    def _open_pending(self, pass_: _BatchState) -> None:
        """Insert the alerts the pass opened and deliver those inserted; one that another collector on the
        shared subscription opened first under the same key (the partial unique index) is skipped."""
        t = schema.alerts
        pending, pass_.opening = pass_.opening, []
        opened: set[str] = set()
        for start in range(0, len(pending), 500):
            rows = [row for row, _ in pending[start : start + 500]]
            stmt = self.db.insert(t).values(rows).on_conflict_do_nothing().returning(t.c.alert_id)
            opened.update(str(r[0]) for r in pass_.conn.execute(stmt))
        for row, alert in pending:
            if row["alert_id"] in opened:
                log.info("alert %s: %s", alert.rule, alert.summary)
                self.deliver(alert)

    def _resolve(self, pass_: _BatchState, key: str, at: datetime) -> None:
        t = schema.alerts
        conn = pass_.conn
        last = pass_.last_alerts.get(key, ("unknown", None))
        if last[0] == "resolved" or (key in pass_.last_alerts and last[0] == "none"):
            return  # nothing open under this key (looked up earlier in this batch)
        self._open_pending(pass_)  # the alert to resolve may be one this pass opened
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
            self.deliver(alert)
            pass_.last_alerts[key] = ("resolved", at)
