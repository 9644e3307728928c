"""Time sanity, on SQLite and PostgreSQL: a device's timestamp far ahead of the collector's clock (or before any
clock was set) is dead-lettered as `clock`; the device registry and the alerts never move on a single outlier;
no page fails on any date stored in the database."""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import insert, select

from collector.alerts.config import parse_rules
from collector.alerts.engine import AlertEngine
from collector.service import CollectorService, ServiceSettings
from collector.simulate import Publisher, gait, headpose, heartbeat, posture, status
from collector.storage import Database, open_database, schema
from collector.timeutil import utcnow_naive
from collector.users import add_user
from contract.wire import DeviceMessage, encode, topic_for
from tests.support.broker import MosquittoBroker
from tests.support.storage import store_batch
from tests.support.web import PASSWORD, logged_in

FORWARD_HEAD = """
notify: {mqtt: false}
rules:
  - name: forward_head
    type: threshold
    kind: posture
    metric: cva_deg.band.high
    above: 0.5
    clear_below: 0.3
    min_duration_minutes: 20
    cooldown_minutes: 30
"""


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def db_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    return f"sqlite:///{tmp_path}/c.db" if request.param == "sqlite" else str(request.getfixturevalue("pg_url"))


@pytest.fixture
def db(db_url: str) -> Iterator[Database]:
    database = open_database(db_url)
    yield database
    database.dispose()


def _rows(db: Database, table: Any) -> list[dict[str, Any]]:
    with db.reader.connect() as conn:
        return [dict(r) for r in conn.execute(select(table)).mappings()]


def _publish(broker: MosquittoBroker, messages: list[DeviceMessage]) -> None:
    pub = Publisher(broker.url, "desk-1")
    pub.publish_all([(topic_for(m.site, m.device_id, m.kind), encode(m)) for m in messages])
    pub.close()


def _wait(db: Database, stored: int, rejected: int, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if len(_rows(db, schema.scores)) >= stored and len(_rows(db, schema.dead_letters)) >= rejected:
            return
        time.sleep(0.1)
    raise AssertionError(f"expected {stored} stored and {rejected} dead-lettered")


def test_times_ahead_of_the_collector_are_dead_lettered_and_move_nothing(
    tmp_path: Path, db_url: str, broker: MosquittoBroker
) -> None:
    rules = tmp_path / "rules.yaml"
    rules.write_text(FORWARD_HEAD)
    service = CollectorService(
        ServiceSettings(broker_url=broker.url, db_url=db_url, client_id="c1", rules_path=rules, max_clock_ahead_s=300)
    )
    service.start()
    db = service.db
    try:
        assert service.ingestor.wait_connected()
        now = datetime.now(UTC)
        # Forward head for the last 40 minutes (a backfill): the alert opens.
        severe = [
            posture("s", "desk-1", i, now - timedelta(minutes=40 - 10 * i), high=0.9, minutes=10) for i in range(4)
        ]
        _publish(broker, [status("s", "desk-1", 10, now), heartbeat("s", "desk-1", 11, now, outbox_depth=2), *severe])
        _wait(db, 6, 0)
        assert [a["state"] for a in _rows(db, schema.alerts)] == ["open"]
        y2099 = datetime(2099, 1, 1, tzinfo=UTC)
        outliers = [
            posture("s", "desk-1", 20, y2099, high=0.0),  # would resolve the alert in 2099
            posture("s", "desk-1", 21, datetime(9999, 12, 31, 23, 0, tzinfo=UTC), high=0.0),
            posture("s", "desk-1", 22, datetime(1970, 1, 1, 0, 5, tzinfo=UTC), high=0.0),  # a clock never set
            status("s", "desk-1", 23, y2099, state="online"),  # would pin the registry "online"
            heartbeat("s", "desk-1", 24, y2099, outbox_depth=999),
        ]
        _publish(broker, outliers)
        _wait(db, 6, 5)
        # A device a little ahead of the collector (within the allowed skew) is still heard.
        _publish(broker, [posture("s", "desk-1", 30, datetime.now(UTC) + timedelta(minutes=2), high=0.9)])
        _wait(db, 7, 5)
        dead = _rows(db, schema.dead_letters)
        assert sorted(d["reason"] for d in dead) == ["clock"] * 5
        assert all("clock" in d["detail"] or "ahead" in d["detail"] or "before" in d["detail"] for d in dead), dead
        assert {r["reason"]: r["count"] for r in _rows(db, schema.reject_counts)} == {"clock": 5}
        assert [a["state"] for a in _rows(db, schema.alerts)] == ["open"], "a 2099 window resolved the alert"
        device = _rows(db, schema.devices)[0]
        assert device["outbox_depth"] == 2 and device["state_at"] <= utcnow_naive()
        assert device["last_heartbeat"] <= utcnow_naive()
        # The device goes offline now: the registry follows (no 2099 status pins it).
        _publish(broker, [status("s", "desk-1", 40, datetime.now(UTC), state="offline")])
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline and _rows(db, schema.devices)[0]["state"] != "offline":
            time.sleep(0.1)
        assert _rows(db, schema.devices)[0]["state"] == "offline"
    finally:
        service.stop()


def test_one_outlier_within_the_skew_never_pins_the_registry(db: Database) -> None:
    received = utcnow_naive()
    ahead = (received + timedelta(minutes=4)).replace(tzinfo=UTC)
    with db.engine.begin() as conn:
        store_batch(conn, db, [status("s", "cam", 1, ahead), heartbeat("s", "cam", 2, ahead, outbox_depth=50)],
                    received_at=received)  # fmt: skip
    later = received + timedelta(seconds=30)
    with db.engine.begin() as conn:
        now = later.replace(tzinfo=UTC)
        store_batch(conn, db, [status("s", "cam", 3, now, state="offline"), heartbeat("s", "cam", 4, now)],
                    received_at=later)  # fmt: skip
    device = _rows(db, schema.devices)[0]
    assert device["state"] == "offline", "a status stamped 4 minutes ahead held the registry"
    assert device["outbox_depth"] == 0
    assert device["state_at"] <= later and device["last_heartbeat"] <= later


def test_an_alert_is_never_opened_or_resolved_in_the_future(db: Database) -> None:
    engine = AlertEngine(db, parse_rules(FORWARD_HEAD), deliver=lambda _a: None)
    now = datetime.now(UTC)

    def feed(*messages: DeviceMessage) -> None:
        with db.engine.begin() as conn:
            batch, new = store_batch(conn, db, messages)
        engine.on_stored(batch.facts(new))

    # Stored without the ingest's check (an older collector, or a restore): the rules still stay on this clock.
    feed(*(posture("s", "d", i, now + timedelta(hours=1, minutes=10 * i), high=0.9, minutes=10) for i in range(3)))
    feed(posture("s", "d", 9, now + timedelta(hours=3), high=0.0))
    (alert,) = _rows(db, schema.alerts)
    assert alert["state"] == "resolved"
    assert alert["opened_at"] <= utcnow_naive() and alert["resolved_at"] <= utcnow_naive()


EXTREMES = (datetime(1, 1, 1), datetime(1970, 1, 1), datetime(9999, 12, 31, 23, 59, 59))


def test_no_page_fails_on_any_stored_date(db: Database) -> None:
    """Rows with extreme dates written straight into the database: every page and export still answers."""
    now = datetime.now(UTC)
    with db.engine.begin() as conn:
        store_batch(conn, db, [posture("s", "desk-1", 1, now), gait("s", "booth-1", 1, now, predicted="positive"),
                               headpose("s", "station-1", 1, now), status("s", "desk-1", 2, now)])  # fmt: skip
        scores = [dict(r) for r in conn.execute(select(schema.scores)).mappings()]
        metrics = [dict(r) for r in conn.execute(select(schema.metric_values)).mappings()]
        for n, when in enumerate(EXTREMES):
            for row in scores:
                mid = str(uuid.uuid4())
                conn.execute(insert(schema.scores).values({**row, "message_id": mid, "seq": 100 + n,
                                                           "window_start": when, "window_end": when,
                                                           "received_at": when}))  # fmt: skip
                for metric in metrics:
                    if metric["message_id"] == row["message_id"]:
                        values = {k: v for k, v in metric.items() if k != "id"}
                        conn.execute(insert(schema.metric_values).values({**values, "message_id": mid, "at": when}))
            conn.execute(
                insert(schema.alerts).values(
                    alert_id=str(uuid.uuid4()), site="s", device_id="desk-1", rule=f"r{n}", severity="warning",
                    state="resolved", summary="desk-1 dropped 3 scores", dedup_key=f"k{n}", opened_at=when,
                    updated_at=when, resolved_at=when,
                )
            )  # fmt: skip
        conn.execute(
            schema.devices.update().values(last_seen=EXTREMES[-1], state_at=EXTREMES[-1], last_heartbeat=EXTREMES[0])
        )
    add_user(db, "nurse", PASSWORD, ["s"], role="nurse")  # the follow-up list is a nurse's
    client = logged_in(db, "nurse")
    pages = ["/", "/alerts", "/alerts?show=all", "/sites/s", "/sites/s/screening", "/sites/s/headpose",
             "/sites/s/followup", "/sites/s/export/screening.csv", "/sites/s/export/headpose.csv"]  # fmt: skip
    pages += [f"/sites/s/devices/{d}?days={days}" for d in ("desk-1", "booth-1", "station-1") for days in (1, 7, 366)]
    failed = {}
    for page in pages:
        try:
            answer = client.get(page).status_code
        except Exception as exc:  # the test client raises what the app raised: a 500 with a traceback
            failed[page] = f"{type(exc).__name__}: {exc}"
        else:
            if answer != 200:
                failed[page] = str(answer)
    assert failed == {}
