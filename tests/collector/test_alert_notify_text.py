"""Alerts as staff get them: opened at their own time after a backfill, and notified in the plain words of the
alerts page with a link to the alert (real SMTP and HTTP servers)."""

from __future__ import annotations

import hashlib
import hmac
import json
import time
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy import select

from collector.alerts.config import parse_rules
from collector.alerts.engine import AlertEngine
from collector.alerts.notify import Notifier, registry_roles
from collector.simulate import gait, status
from collector.storage import Database, open_database, schema
from collector.users import add_user
from contract.wire import Alert
from tests.support.http_sink import HttpSink
from tests.support.smtp_server import SmtpServer
from tests.support.storage import store_batch
from tests.support.web import PASSWORD, logged_in

SCREENING = "rules: [{name: gait_positive, type: screening, predicted: positive, min_probability: 0.7}]"


def _database(tmp_path: Path, dialect: str, request: pytest.FixtureRequest) -> Database:
    url = request.getfixturevalue("pg_url") if dialect == "postgresql" else f"sqlite:///{tmp_path}/c.db"
    return open_database(url)


@pytest.mark.parametrize("dialect", ["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def test_backfilled_alerts_are_opened_at_their_own_time(
    tmp_path: Path, dialect: str, request: pytest.FixtureRequest
) -> None:
    db = _database(tmp_path, dialect, request)
    engine = AlertEngine(db, parse_rules(SCREENING), deliver=lambda _a: None)
    # A booth that was offline for three days delivers its screenings in one backfill.
    days_ago = datetime.now(UTC).replace(microsecond=0) - timedelta(days=3)
    ends = [days_ago + timedelta(hours=h, minutes=7 * h) for h in range(4)]
    messages = [gait("school", "booth-1", i, end, predicted="positive", p=0.9) for i, end in enumerate(ends)]
    with db.engine.begin() as conn:
        batch, new = store_batch(conn, db, messages)
    engine.on_stored(batch.facts(new))
    with db.reader.connect() as conn:
        opened = [r[0] for r in conn.execute(select(schema.alerts.c.opened_at).order_by(schema.alerts.c.opened_at))]
    assert opened == [end.replace(tzinfo=None) for end in ends]
    # The alerts page shows each one's own minute.
    add_user(db, "nurse", PASSWORD, ["school"])
    page = logged_in(db, "nurse").get("/alerts").text
    for end in ends:
        assert f'<td class="opened">{end:%Y-%m-%d %H:%M}</td>' in page
    db.dispose()


def test_notifications_read_like_the_alerts_page_and_link_the_alert(tmp_path: Path) -> None:
    db = open_database(f"sqlite:///{tmp_path}/c.db")
    now = datetime.now(UTC)
    with db.engine.begin() as conn:
        store_batch(conn, db, [status("school", "station-2", 1, now, role="headpose")])
    key = tmp_path / "webhook.key"
    key.write_text("s3cret-key\n")
    alert = Alert(
        alert_id=uuid.uuid4(), site="school", device_id="station-2", rule="station_offline", severity="warning",
        state="open", summary="station-2 offline for 45 min (last seen 2026-01-01 08:00 UTC)",
        dedup_key="station_offline:school:station-2", at=now,
    )  # fmt: skip
    with HttpSink() as sink, SmtpServer() as smtp:
        config = parse_rules(
            f"""
notify:
  mqtt: false
  dashboard_url: https://dash.school.example/
  webhook: {{url: "{sink.url}", secret_file: "{key}"}}
  smtp: {{host: 127.0.0.1, port: {smtp.port}, sender: edgescreen@localhost, recipients: [nurse@localhost]}}
rules: []
"""
        ).notify
        notifier = Notifier(config, role_of=registry_roles(db))
        notifier.start()
        notifier.submit(alert)
        notifier.submit(alert.model_copy(update={"state": "resolved"}))
        deadline = time.monotonic() + 15
        while time.monotonic() < deadline and not (len(sink.requests) == 2 and len(smtp.messages) == 2):
            time.sleep(0.05)
        notifier.stop()
    link = f"https://dash.school.example/alerts?show=all#alert-{alert.alert_id}"
    assert len(smtp.messages) == 2 and len(sink.requests) == 2
    _sender, to, mail = smtp.messages[0]
    payload = mail.get_payload(decode=True)
    assert isinstance(payload, bytes)
    subject, body = " ".join(str(mail["Subject"]).split()), payload.decode()
    # The device's role comes from the registry: a head-pose station, in the words of the alerts page.
    assert to == ["nurse@localhost"]
    assert (
        subject == "[EdgeScreen warning] school: The head-pose station station-2 has not been heard from for 45 minutes"
    )
    assert "Check that it has power and network" in body and link in body and "offline for 45 min" in body
    resolved = " ".join(str(smtp.messages[1][2]["Subject"]).split())
    assert resolved.startswith("[EdgeScreen warning] school: Resolved: The head-pose station station-2")
    _path, headers, raw = sink.requests[0]
    assert headers["x-edgescreen-signature"] == "sha256=" + hmac.new(b"s3cret-key", raw, hashlib.sha256).hexdigest()
    hook = json.loads(raw)
    assert hook["alert_id"] == str(alert.alert_id) and hook["state"] == "open" and hook["link"] == link
    assert hook["subject"] == subject and hook["text"].startswith("The head-pose station station-2 has not been")
    db.dispose()
