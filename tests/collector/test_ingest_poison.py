"""A NUL never stops the stream, on SQLite and PostgreSQL, through a real Mosquitto and the real ingest.

A payload holding a NUL (a raw byte, or the JSON escape for it) is refused as `encoding` before storage, and a dead
letter keeps any bytes (PostgreSQL text refuses NUL). Helpers here serve the other
tests/collector/test_ingest_poison_*.py.
"""

from __future__ import annotations

import json
import re
from typing import Any

from sqlalchemy import select

from collector.ingest import Ingestor, IngestSettings
from collector.simulate import Publisher, mixed_stream
from collector.storage import Database, schema
from collector.storage.writes import Rejected
from collector.timeutil import utcnow_naive
from tests.collector.test_collector_ingest import wait_until
from tests.support.broker import MosquittoBroker
from tests.support.storage import store_batch


def publish(broker: MosquittoBroker, messages: list[tuple[str, bytes]], client_id: str) -> None:
    pub = Publisher(broker.url, client_id)
    try:
        pub.publish_all(messages)
    finally:
        pub.close()


def start_ingest(broker: MosquittoBroker, db: Database, **kwargs: Any) -> Ingestor:
    ing = Ingestor(IngestSettings(broker.url, "collector-poison", batch_max=500, **kwargs.pop("settings", {})), db,
                   **kwargs)  # fmt: skip
    ing.start()
    assert ing.wait_connected(), "collector did not connect"
    return ing


def message_ids(messages: list[tuple[str, bytes]]) -> set[str]:
    return {json.loads(p)["message_id"] for _, p in messages}


def stored_ids(db: Database) -> set[str]:
    with db.reader.connect() as conn:
        return {r[0] for r in conn.execute(select(schema.scores.c.message_id))}


def nul_poisons() -> dict[str, tuple[str, bytes]]:
    """Payloads that hold a NUL, each otherwise a valid message of its topic."""
    topic, payload = next((t, p) for t, p in mixed_stream("school-p", "booth-1", 20, seed=9) if t.endswith("posture"))
    raw = json.loads(payload)
    text = payload.decode()
    site = f'"site":"{raw["site"]}"'
    stats = next(iter(raw["metrics"].values()))
    return {
        "raw NUL byte inside a string": (topic, text.replace(site, site[:-1] + '\x00"').encode()),
        "raw NUL byte after the object": (topic, payload + b"\x00"),
        "escaped NUL in a value": (topic, json.dumps({**raw, "device_id": "booth-1\u0000"}).encode()),
        "escaped NUL as a key": (topic, json.dumps({**raw, "\u0000": 1}).encode()),
        "escaped NUL in a nested key": (topic, json.dumps({**raw, "metrics": {"cva\u0000": stats}}).encode()),
    }


def test_nul_payloads_among_good_ones_are_dead_lettered_as_encoding_and_the_stream_goes_on(
    db: Database, broker: MosquittoBroker
) -> None:
    ing = start_ingest(broker, db)
    try:
        assert ing._writer is not None
        writer = ing._writer.process
        before = mixed_stream("school-p", "booth-1", 150, seed=1)
        after = mixed_stream("school-p", "booth-1", 150, start_seq=150, seed=2)
        poisons = nul_poisons()
        # In one stream, so that the poison shares its batch with good messages on both sides.
        publish(broker, before + list(poisons.values()) + after, "pub-1")
        later = mixed_stream("school-p", "booth-2", 50, seed=3)
        publish(broker, later, "pub-2")
        total = len(before) + len(poisons) + len(after) + len(later)
        wait_until(lambda: ing.stats.received >= total, timeout=30, what="every message processed")
        assert stored_ids(db) == message_ids(before + after + later)
        with db.reader.connect() as conn:
            dead = conn.execute(select(schema.dead_letters).order_by(schema.dead_letters.c.id)).all()
            rejects = dict(conn.execute(select(schema.reject_counts.c.reason, schema.reject_counts.c["count"])).all())
        assert rejects == {"encoding": len(poisons)}
        assert [r.reason for r in dead] == ["encoding"] * len(poisons)
        assert all("NUL" in r.detail for r in dead), [r.detail for r in dead]
        # Kept readable: the raw NUL byte as the four characters \x00, JSON escapes as they came.
        kept = {r.payload for r in dead}
        for name, (_, payload) in poisons.items():
            assert payload.decode().replace("\x00", "\\x00") in kept, name
        assert all(r.payload_size == len(p) for r, (_, p) in zip(dead, poisons.values(), strict=True))
        assert ing._writer.process is writer, "the writer process died and was replaced"
    finally:
        ing.stop()


def test_a_dead_letter_keeps_any_bytes_and_any_text(db: Database) -> None:
    """PostgreSQL text refuses NUL, and neither database stores a lone surrogate: the dead letter escapes them."""
    payload = "é".encode() + bytes(range(256)) * 8
    bad = Rejected("edgescreen/v1/s/d/\x00posture", "encoding", "loc \x00 and \ud800 here", payload, utcnow_naive())
    with db.engine.begin() as conn:
        store_batch(conn, db, [], [bad])
    with db.reader.connect() as conn:
        row = conn.execute(select(schema.dead_letters)).one()
    # Valid UTF-8 is kept as text; NUL and each byte that is not UTF-8 are written \xNN.
    expected = "é" + "".join(f"\\x{b:02x}" if b == 0 or b >= 0x80 else chr(b) for b in bytes(range(256))) * 8
    # Bounded to 2,048 characters, never ending in a cut escape.
    assert row.payload == expected[: len(row.payload)] and 2048 - 4 < len(row.payload) <= 2048
    assert not re.search(r"\\x[0-9a-f]?$", row.payload), row.payload[-8:]
    assert row.payload_size == len(payload)
    assert row.topic == "edgescreen/v1/s/d/\\x00posture"
    assert row.detail == "loc \\x00 and \\ud800 here"
