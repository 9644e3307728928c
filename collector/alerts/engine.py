"""Evaluate alert rules on each committed batch and periodically; store alerts once per incident.

The engine owns evaluation only: which rules a message meets (by the kinds each rule `reads`), the rules' state,
and the alerts table. What a rule checks is in its own module (collector/alerts/rules/). Every alert it opens or
resolves goes to `deliver`: in the ingest writer process, a list sent back with the batch's commit report; in
the collector's main process (the periodic rules), the notifier.
"""

from __future__ import annotations

import dataclasses
import logging
import uuid
from collections.abc import Callable
from datetime import datetime, timedelta
from functools import cached_property

from sqlalchemy import Connection, and_, or_, select, update

from collector.alerts.config import RulesFile
from collector.alerts.rules import DeviceStatus, RuleBase, RuleState
from collector.storage import schema
from collector.storage.engine import Database
from collector.storage.writes import Facts
from collector.timeutil import to_aware_utc, utcnow_naive
from contract.wire import Alert

log = logging.getLogger(__name__)

_STATE_COLUMNS = tuple(f.name for f in dataclasses.fields(RuleState))


class _Pass:
    """One evaluation pass (a committed batch, or a tick) inside one transaction: the rule states it read and
    changed, and the last alert per dedup key as far as this pass has seen it. Rules see it as an `Evaluation`."""

    def __init__(
        self, conn: Connection, db: Database, deliver: Callable[[Alert], None], states: dict[tuple[str, str], RuleState]
    ) -> None:
        self.conn = conn
        self.db = db
        self.deliver = deliver
        self.states = states
        self.touched: set[tuple[str, str]] = set()
        # dedup key -> (state of its newest alert, resolved_at); "none" when it has no alert
        self.last_alerts: dict[str, tuple[str, datetime | None]] = {}
        self.opening: list[tuple[dict[str, object], Alert]] = []  # alerts to insert, in one statement per 500

    def state(self, rule: str, subject: str) -> RuleState:
        key = (rule, subject)
        self.touched.add(key)
        found = self.states.get(key)
        if found is None:
            found = self.states[key] = RuleState()
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

    def _last_alert(self, key: str) -> tuple[str, datetime | None] | None:
        if key not in self.last_alerts:
            t = schema.alerts
            row = self.conn.execute(
                select(t.c.state, t.c.resolved_at).where(t.c.dedup_key == key).order_by(t.c.opened_at.desc()).limit(1)
            ).first()
            self.last_alerts[key] = ("none", None) if row is None else (row.state, row.resolved_at)
        last = self.last_alerts[key]
        return None if last[0] == "none" else last

    def open(self, rule: RuleBase, *, site: str, device: str | None, summary: str, key: str, at: datetime) -> None:
        last = self._last_alert(key)
        if last is not None:
            state, resolved_at = last
            if state != "resolved":
                return
            cooldown = timedelta(minutes=rule.cooldown_minutes)
            if resolved_at is not None and at - resolved_at < cooldown:
                return
        now = utcnow_naive()
        # Opened at the time of what opened it, on the messages' clock (never ahead of this one): a backfill of
        # last week's windows opens last week's alerts, not a pile of alerts all opened this minute.
        opened = min(at, now)
        alert = Alert(
            alert_id=uuid.uuid4(),
            site=site,
            device_id=device,
            rule=rule.name,
            severity=rule.severity,
            state="open",
            summary=summary[:500],
            dedup_key=key,
            at=to_aware_utc(opened),
        )
        row: dict[str, object] = {
            "alert_id": str(alert.alert_id),
            "site": site,
            "device_id": device,
            "rule": rule.name,
            "severity": rule.severity,
            "state": "open",
            "summary": alert.summary,
            "dedup_key": key,
            "opened_at": opened,
            "updated_at": now,
        }
        self.last_alerts[key] = ("open", None)
        self.opening.append((row, alert))

    def flush(self) -> None:
        """Insert the alerts the pass opened and deliver those inserted; one that another collector on the
        shared subscription opened first under the same key (the partial unique index) is skipped."""
        t = schema.alerts
        pending, self.opening = self.opening, []
        opened: set[str] = set()
        for start in range(0, len(pending), 500):
            rows = [row for row, _ in pending[start : start + 500]]
            stmt = self.db.insert(t).values(rows).on_conflict_do_nothing().returning(t.c.alert_id)
            opened.update(str(r[0]) for r in self.conn.execute(stmt))
        for row, alert in pending:
            if row["alert_id"] in opened:
                log.info("alert %s: %s", alert.rule, alert.summary)
                self.deliver(alert)

    def resolve(self, key: str, at: datetime) -> None:
        t = schema.alerts
        # Never resolved in the future: a resolution stamped ahead would make the cool-down silence every real
        # reading until then.
        at = min(at, utcnow_naive())
        last = self.last_alerts.get(key, ("unknown", None))
        if last[0] == "resolved" or (key in self.last_alerts and last[0] == "none"):
            return  # nothing open under this key (looked up earlier in this batch)
        self.flush()  # the alert to resolve may be one this pass opened
        rows = self.conn.execute(
            select(t).where(and_(t.c.dedup_key == key, or_(t.c.state == "open", t.c.state == "acknowledged")))
        ).mappings()
        for row in rows.all():
            now = utcnow_naive()
            self.conn.execute(
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
            self.last_alerts[key] = ("resolved", at)


class AlertEngine:
    """Rule evaluation against the database; each alert opened or resolved goes to `deliver`."""

    def __init__(self, db: Database, rules: RulesFile, deliver: Callable[[Alert], None]) -> None:
        self.db = db
        self.rules = rules
        self.deliver = deliver

    @cached_property
    def _by_message_kind(self) -> dict[str, list[RuleBase]]:
        """The message rules by the message kinds they read, so that a message meets only its own rules."""
        by_kind: dict[str, list[RuleBase]] = {}
        for rule in self.rules.rules:
            for kind in rule.reads():
                by_kind.setdefault(kind, []).append(rule)
        return by_kind

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
        by_kind = self._by_message_kind
        if not facts or not by_kind:
            return
        pass_ = _Pass(conn, self.db, self.deliver, self._load_states(conn, {f"{f.site}/{f.device_id}" for f in facts}))
        pass_.prefetch(
            {
                key
                for f in facts
                for rule in by_kind.get(f.kind, ())
                if rule.applies_to(f.site) and (key := rule.prefetch_key(f)) is not None
            }
        )
        for fact in facts:
            for rule in by_kind.get(fact.kind, ()):
                if rule.applies_to(fact.site):
                    rule.on_message(pass_, fact)
        pass_.flush()
        self._save_states(conn, pass_)

    def tick(self, now: datetime | None = None) -> None:
        """Evaluate the periodic rules (device offline) on the device registry."""
        now = now or utcnow_naive()
        rules = [r for r in self.rules.rules if r.periodic]
        if not rules:
            return
        d = schema.devices.c
        with self.db.engine.begin() as conn:
            rows = conn.execute(select(d.site, d.device_id, d.state, d.state_at, d.last_seen)).all()
            devices = [DeviceStatus(*row) for row in rows]
            pass_ = _Pass(conn, self.db, self.deliver, {})
            for rule in rules:
                rule.on_tick(pass_, devices, now)
            pass_.flush()

    # --- rule state --------------------------------------------------------------------------------
    def _load_states(self, conn: Connection, subjects: set[str]) -> dict[tuple[str, str], RuleState]:
        t = schema.alert_state
        states: dict[tuple[str, str], RuleState] = {}
        ordered = sorted(subjects)
        for start in range(0, len(ordered), 500):
            # FOR UPDATE (PostgreSQL): two collectors on a shared subscription may see one device's messages.
            query = select(t).where(t.c.subject.in_(ordered[start : start + 500])).with_for_update()
            for row in conn.execute(query).mappings():
                states[(row["rule"], row["subject"])] = RuleState(**{k: row[k] for k in _STATE_COLUMNS})
        return states

    def _save_states(self, conn: Connection, pass_: _Pass) -> None:
        if not pass_.touched:
            return
        rows = [
            {"rule": rule, "subject": subject, **dataclasses.asdict(pass_.states[(rule, subject)])}
            for (rule, subject) in sorted(pass_.touched)
        ]
        stmt = self.db.insert(schema.alert_state)
        stmt = stmt.on_conflict_do_update(
            index_elements=["rule", "subject"], set_={k: stmt.excluded[k] for k in _STATE_COLUMNS}
        )
        conn.execute(stmt, rows)
