"""Delivery confirmed by the collector's receipts, against a real Mosquitto and the real collector ingest.

A score leaves the device's outbox only when a receipt names it (`delivery.confirm: receipt`, the default);
a PUBACK alone marks it "sent, awaiting receipt", and a score without a receipt is sent again with backoff.
`delivery.confirm: puback` deletes on PUBACK, for a collector that sends no receipts.
"""

from __future__ import annotations

import json
import sqlite3
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from sqlalchemy import func, select

from collector.ingest import Ingestor, IngestSettings
from collector.storage import Database, open_database, schema
from contract.wire import encode, topic_for
from edge.config import DeliveryConfig
from edge.mqtt_client import MqttPublisher
from edge.outbox import Outbox
from tests.edge.test_delivery import DEVICE, SITE, _broker_config, _window
from tests.support.broker import MosquittoBroker

TOPIC = topic_for(SITE, DEVICE, "posture")
FAST = DeliveryConfig(receipt_timeout_s=1.0, receipt_timeout_max_s=2.0)


def _wait(cond: Callable[[], bool], timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if cond():
            return
        time.sleep(0.05)
    raise AssertionError(f"{what} not met within {timeout}s")


def _stored(db: Database) -> int:
    with db.reader.connect() as conn:
        return int(
            conn.execute(
                select(func.count()).select_from(schema.scores).where(schema.scores.c.kind == "posture")
            ).scalar()
            or 0
        )


@pytest.fixture
def collector(broker: MosquittoBroker, tmp_path: Path) -> Iterator[Callable[[], tuple[Ingestor, Database]]]:
    made: list[Ingestor] = []

    def start() -> tuple[Ingestor, Database]:
        db = open_database(f"sqlite:///{tmp_path}/collector.db")
        ing = Ingestor(IngestSettings(broker.url, "collector-r", batch_max=200), db)
        ing.start()
        assert ing.wait_connected(10), "collector did not subscribe"
        made.append(ing)
        return ing, db

    yield start
    for ing in made:
        ing.stop()


def _publisher(broker: MosquittoBroker, outbox: Outbox, delivery: DeliveryConfig) -> MqttPublisher:
    pub = MqttPublisher(_broker_config(broker.url), outbox, site=SITE, device_id=DEVICE, role="posture",
                        client_id=DEVICE, delivery=delivery)  # fmt: skip
    pub.start()
    assert pub.wait_connected(10)
    return pub


def test_a_puback_alone_keeps_the_score_and_the_receipt_deletes_it(
    broker: MosquittoBroker, tmp_path: Path, collector: Callable[[], tuple[Ingestor, Database]]
) -> None:
    outbox = Outbox(tmp_path / "outbox.sqlite")
    pub = _publisher(broker, outbox, FAST)
    try:
        for seq in range(5):
            outbox.put(TOPIC, encode(_window(seq)), seq)
        pub.wake()
        # Nobody stores them yet: the broker acknowledges, the scores stay, awaiting a receipt.
        _wait(lambda: pub.stats.acked >= 5, 10, "PUBACKs")
        assert outbox.depth() == 5 and outbox.awaiting() == 5
        _wait(lambda: pub.stats.resent >= 5, 10, "re-sends after the receipt timeout")
        assert outbox.depth() == 5
        ing, db = collector()
        assert pub.wait_drained(15), f"not confirmed: {pub.stats}"
        assert pub.stats.confirmed == 5 and pub.stats.bad_receipts == 0
        _wait(lambda: _stored(db) == 5, 5, "stored")
        assert ing.stats.receipts >= 1
        assert not ing.stats.rejected  # the collector neither stores nor dead-letters receipts
    finally:
        pub.stop(drain_s=0)
        outbox.close()


def test_a_duplicate_is_confirmed_too_and_stored_once(
    broker: MosquittoBroker, tmp_path: Path, collector: Callable[[], tuple[Ingestor, Database]]
) -> None:
    """A score the collector stored before (its receipt lost, say) is named in the next receipt as well."""
    ing, db = collector()
    payload = encode(_window(0))
    first = Outbox(tmp_path / "first.sqlite")
    pub = _publisher(broker, first, FAST)
    try:
        first.put(TOPIC, payload, 0)
        pub.wake()
        assert pub.wait_drained(10)
    finally:
        pub.stop(drain_s=0)
    again = Outbox(tmp_path / "again.sqlite")  # the same score queued again, as after a lost receipt
    pub = _publisher(broker, again, FAST)
    try:
        again.put(TOPIC, payload, 0)
        pub.wake()
        assert pub.wait_drained(10), f"a duplicate was not confirmed: {pub.stats}"
    finally:
        pub.stop(drain_s=0)
    assert _stored(db) == 1 and ing.stats.duplicates >= 1


def test_receipts_resubscribed_after_a_broker_that_lost_its_state(
    broker: MosquittoBroker, tmp_path: Path, collector: Callable[[], tuple[Ingestor, Database]]
) -> None:
    """A broker killed before its save comes back without the device's subscription: it is made again on CONNACK."""
    ing, db = collector()
    outbox = Outbox(tmp_path / "outbox.sqlite")
    pub = _publisher(broker, outbox, FAST)
    try:
        broker.stop(kill=True)
        for path in broker.workdir.glob("*.db"):
            path.unlink()  # nothing saved: no session, no subscription
        broker.start()
        _wait(lambda: pub.stats.connects >= 2 and ing.stats.subscribed, 15, "reconnects")
        outbox.put(TOPIC, encode(_window(0)), 0)
        pub.wake()
        assert pub.wait_drained(15), f"not confirmed after the broker lost its state: {pub.stats}"
        assert _stored(db) == 1
    finally:
        pub.stop(drain_s=0)
        outbox.close()


def test_puback_delivery_empties_the_outbox_without_a_collector(broker: MosquittoBroker, tmp_path: Path) -> None:
    """For a collector that sends no receipts: with `confirm: puback` the outbox does not keep what was sent."""
    outbox = Outbox(tmp_path / "outbox.sqlite")
    for seq in range(3):
        outbox.put(TOPIC, encode(_window(seq)), seq)
    outbox.mark_sent([1], time.time())  # left awaiting a receipt by a run with `confirm: receipt`
    pub = _publisher(broker, outbox, DeliveryConfig(confirm="puback"))
    try:
        assert pub.wait_drained(10), f"not drained on PUBACK: {pub.stats}"
        assert pub.stats.acked == 3 and pub.stats.confirmed == 0
    finally:
        pub.stop(drain_s=0)
        outbox.close()


def test_overdue_scores_come_back_with_a_doubling_wait(tmp_path: Path) -> None:
    with Outbox(tmp_path / "o.sqlite") as box:
        (row,) = box.put_many([(TOPIC, encode(_window(0)), 0)])
        assert box.due(1e9, 10, 40, 10) == []  # never sent: pending, not due
        box.mark_sent([row], 1000.0)
        assert [m.id for m in box.pending()] == []
        assert box.due(1009.0, 10, 40, 10) == [] and [m.id for m in box.due(1010.0, 10, 40, 10)] == [row]
        box.mark_sent([row], 1010.0)  # second attempt: twice the wait
        assert box.due(1029.0, 10, 40, 10) == [] and len(box.due(1030.0, 10, 40, 10)) == 1
        for at in (1030.0, 1070.0):  # third (40 s) and fourth (capped at 40 s)
            box.mark_sent([row], at)
            assert box.due(at + 39, 10, 40, 10) == [] and len(box.due(at + 40, 10, 40, 10)) == 1
        assert box.confirm([json.loads(box.get(row).payload)["message_id"]]) == 1  # type: ignore[union-attr]
        assert box.depth() == 0


def test_an_outbox_file_from_before_receipts_is_migrated_in_order(tmp_path: Path) -> None:
    path = tmp_path / "old.sqlite"
    payloads = [encode(_window(seq)) for seq in range(3)]
    db = sqlite3.connect(path)
    db.executescript(
        "CREATE TABLE outbox (id INTEGER PRIMARY KEY AUTOINCREMENT, topic TEXT NOT NULL, payload BLOB NOT NULL,"
        " created REAL NOT NULL DEFAULT (julianday('now'))); CREATE TABLE meta (name TEXT PRIMARY KEY, value INTEGER"
        " NOT NULL); INSERT INTO meta VALUES ('seq', 3);"
    )
    db.executemany("INSERT INTO outbox (topic, payload) VALUES (?, ?)", [(TOPIC, p) for p in payloads])
    db.commit()
    db.close()
    with Outbox(path) as box:
        assert [m.payload for m in box.pending()] == payloads
        assert box.confirm([json.loads(payloads[1])["message_id"]]) == 1
        assert [m.payload for m in box.pending()] == [payloads[0], payloads[2]] and box.next_seq() == 3
