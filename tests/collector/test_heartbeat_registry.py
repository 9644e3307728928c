"""The device registry and the heartbeat: a message stored before (same site, device and message_id) changes
nothing in the registry when it comes again, on SQLite and PostgreSQL; the heartbeat's `scores_lost` count is
accepted, flattened and stored, and a heartbeat without it (an older device) still validates."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select

from collector.flatten import flatten
from collector.simulate import heartbeat, posture, status
from collector.storage import Database, open_database, schema
from collector.storage.writes import BatchBuilder, write_prepared
from contract.wire import DeviceMessage, Heartbeat, WireError, decode, encode, topic_for
from tests.support.storage import store_batch

T0 = datetime(2026, 3, 2, 9, 0, 0)  # naive UTC, as the collector stores it


@pytest.fixture(params=["sqlite", "postgresql"])
def db(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Database]:
    url = f"sqlite:///{tmp_path}/c.db" if request.param == "sqlite" else request.getfixturevalue("pg_url")
    database = open_database(url)
    yield database
    database.dispose()


def registry(db: Database) -> dict[str, Any]:
    with db.reader.connect() as conn:
        row = conn.execute(select(schema.devices)).mappings().one()
    return dict(row)


def store(db: Database, messages: list[DeviceMessage], received_at: datetime) -> list[int]:
    with db.engine.begin() as conn:
        return store_batch(conn, db, messages, received_at=received_at)[1]


def at(minutes: float) -> datetime:
    return (T0 + timedelta(minutes=minutes)).replace(tzinfo=UTC)


def test_a_heartbeat_stored_before_changes_nothing_when_it_comes_again(db: Database) -> None:
    beat = heartbeat("s", "cam-1", 5, at(0), fps=12.0, outbox_depth=3)
    assert store(db, [beat], T0) == [0]
    before = registry(db)
    assert before["last_seen"] == T0 and before["outbox_depth"] == 3
    # the broker redelivers it an hour later: a duplicate, stored nowhere and changing nothing
    assert store(db, [beat], T0 + timedelta(hours=1)) == []
    assert registry(db) == before


def test_a_conflicting_heartbeat_changes_nothing_in_the_registry(db: Database) -> None:
    beat = heartbeat("s", "cam-1", 5, at(0), fps=12.0, outbox_depth=3)
    store(db, [beat], T0)
    before = registry(db)
    forged = beat.model_copy(update={"outbox_depth": 900, "at": at(30)})  # same message_id, other content
    assert store(db, [forged], T0 + timedelta(minutes=30)) == []
    assert registry(db) == before
    with db.reader.connect() as conn:
        reasons = conn.execute(select(schema.dead_letters.c.reason)).scalars().all()
    assert reasons == ["conflict"]


def test_a_duplicate_in_a_batch_with_new_messages_leaves_only_theirs(db: Database) -> None:
    first = heartbeat("s", "cam-1", 5, at(10), fps=12.0, outbox_depth=3)
    online = status("s", "cam-1", 6, at(10), state="online")
    store(db, [first, online], T0 + timedelta(minutes=10))  # received when stamped (never before: see writes.py)
    older = heartbeat("s", "cam-1", 4, at(5), fps=30.0, outbox_depth=1)  # new, but older than the stored one
    offline = status("s", "cam-1", 7, at(20), state="offline")
    window = posture("s", "cam-1", 8, at(20))
    later = T0 + timedelta(minutes=20)
    assert store(db, [first, online, older, offline, window], later) == [2, 3, 4]
    row = registry(db)
    assert row["last_seen"] == later, "the new messages move last_seen"
    assert (row["outbox_depth"], row["fps"]) == (3, 12.0), "an older heartbeat does not replace a newer one"
    assert row["state"] == "offline"
    # a batch of nothing but duplicates, received later still, moves nothing
    store(db, [first, online, older, offline, window], later + timedelta(hours=1))
    assert registry(db) == row


def test_a_duplicate_inside_one_batch_does_not_move_last_seen(db: Database) -> None:
    beat = heartbeat("s", "cam-1", 5, at(0))
    payload = encode(beat).decode()
    builder = BatchBuilder(db.dialect)
    assert builder.add(beat, payload, T0)
    assert not builder.add(beat, payload, T0 + timedelta(minutes=5))  # redelivered before the batch was stored
    with db.engine.begin() as conn:
        write_prepared(conn, db, builder.build(), 100)
    assert registry(db)["last_seen"] == T0


def test_scores_lost_is_accepted_flattened_and_optional() -> None:
    beat = heartbeat("s", "cam-1", 5, at(0)).model_copy(update={"scores_lost": 7})
    topic = topic_for("s", "cam-1", "heartbeat")
    decoded = decode(encode(beat), topic)
    assert isinstance(decoded, Heartbeat) and decoded.scores_lost == 7
    assert flatten(decoded)["scores_lost"] == 7.0
    older = json.loads(encode(beat))
    del older["scores_lost"]  # a device from before the field
    decoded = decode(json.dumps(older).encode(), topic)
    assert isinstance(decoded, Heartbeat) and decoded.scores_lost == 0
    with pytest.raises(WireError, match="scores_lost"):
        decode(json.dumps({**older, "scores_lost": -1}).encode(), topic)
