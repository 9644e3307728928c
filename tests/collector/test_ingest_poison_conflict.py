"""A reused message_id: de-duplication is keyed by site, device and message id, and the same key with other
content is dead-lettered as `conflict` instead of being counted as a duplicate. SQLite and PostgreSQL, real
broker and ingest; and a database of schema version 3 (keyed by message id alone) is migrated with its rows."""

from __future__ import annotations

import json
from typing import Any

from sqlalchemy import inspect, select

from collector.simulate import mixed_stream
from collector.storage import Database, open_database, schema
from contract.wire import topic_for
from tests.collector.test_collector_ingest import wait_until
from tests.collector.test_ingest_poison import publish, start_ingest
from tests.support.broker import MosquittoBroker


def posture(site: str, device: str, seed: int, **changes: Any) -> tuple[str, bytes]:
    """A posture window of `site`/`device`, with some fields replaced."""
    payload = next(p for t, p in mixed_stream(site, device, 20, seed=seed) if t.endswith("/posture"))
    raw = {**json.loads(payload), **changes}
    return topic_for(site, device, "posture"), json.dumps(raw).encode()


def stored(db: Database) -> dict[tuple[str, str, str], str]:
    with db.reader.connect() as conn:
        rows = conn.execute(select(schema.scores.c.site, schema.scores.c.device_id, schema.scores.c.message_id,
                                   schema.scores.c.payload)).all()  # fmt: skip
    return {(r[0], r[1], r[2]): r[3] for r in rows}


def test_a_reused_message_id_with_other_content_is_a_conflict_and_other_devices_may_use_it(
    db: Database, broker: MosquittoBroker
) -> None:
    ing = start_ingest(broker, db)
    try:
        first = posture("school-c", "booth-1", 1)
        mid = json.loads(first[1])["message_id"]
        other_device = posture("school-c", "booth-2", 2, message_id=mid)
        other_site = posture("school-d", "booth-1", 3, message_id=mid)
        publish(broker, [first, other_device, other_site], "pub-1")
        wait_until(lambda: ing.stats.received >= 3, what="the first three")
        changed = posture("school-c", "booth-1", 4, message_id=mid, seq=7)
        publish(broker, [first, changed], "pub-2")  # an honest replay, then other content under the same id
        wait_until(lambda: ing.stats.received >= 5, what="the replay and the conflict")
        # Both in one batch: the first is stored, the second is the conflict.
        again = posture("school-c", "booth-3", 5)
        again_changed = posture("school-c", "booth-3", 6, message_id=json.loads(again[1])["message_id"], seq=9)
        publish(broker, [again, again_changed], "pub-3")
        wait_until(lambda: ing.stats.received >= 7, what="the conflict inside one batch")
        rows = stored(db)
        assert rows[("school-c", "booth-1", mid)] == first[1].decode()
        assert rows[("school-c", "booth-2", mid)] == other_device[1].decode()
        assert rows[("school-d", "booth-1", mid)] == other_site[1].decode()
        assert rows[("school-c", "booth-3", json.loads(again[1])["message_id"])] == again[1].decode()
        assert len(rows) == 4
        with db.reader.connect() as conn:
            dead = conn.execute(select(schema.dead_letters.c.reason, schema.dead_letters.c.payload)).all()
            rejects = dict(conn.execute(select(schema.reject_counts.c.reason, schema.reject_counts.c["count"])).all())
        assert sorted(dead) == sorted([("conflict", changed[1].decode()), ("conflict", again_changed[1].decode())])
        assert rejects == {"conflict": 2}
        assert ing.stats.duplicates == 1, "only the honest replay is a duplicate"
        assert ing.stats.rejected == {"conflict": 2}
        assert ing.stats.stored == 4
    finally:
        ing.stop()


def test_a_version_3_database_is_keyed_by_site_device_and_message_id_after_migration(db_url: str) -> None:
    db = open_database(db_url)
    with db.engine.begin() as conn:
        # Schema version 3: scores keyed by message_id alone.
        conn.exec_driver_sql("DROP TABLE scores")
        conn.exec_driver_sql(
            "CREATE TABLE scores (message_id VARCHAR(36) NOT NULL PRIMARY KEY, site VARCHAR(63) NOT NULL, "
            "device_id VARCHAR(63) NOT NULL, kind VARCHAR(16) NOT NULL, seq BIGINT NOT NULL, "
            "window_start TIMESTAMP NOT NULL, window_end TIMESTAMP NOT NULL, received_at TIMESTAMP NOT NULL, "
            "label VARCHAR(32), outcome VARCHAR(32), payload TEXT NOT NULL)"
        )
        conn.exec_driver_sql("CREATE INDEX ix_scores_site_kind_time ON scores (site, kind, window_end)")
        conn.execute(schema.schema_migrations.delete().where(schema.schema_migrations.c.version > 3))
        for i in range(5):
            conn.exec_driver_sql(
                "INSERT INTO scores VALUES "
                f"('m{i}', 's', 'd{i % 2}', 'posture', {i}, '2026-01-01 00:00:00', '2026-01-01 00:01:00', "
                f"'2026-01-01 00:01:01', NULL, NULL, '{{\"i\": {i}}}')"
            )
    db.dispose()
    db = open_database(db_url)
    try:
        with db.reader.connect() as conn:
            insp = inspect(conn)
            assert insp.get_pk_constraint("scores")["constrained_columns"] == ["site", "device_id", "message_id"]
            assert {ix["name"] for ix in insp.get_indexes("scores")} == {"ix_scores_site_kind_time"}
            rows = conn.execute(select(schema.scores.c.message_id, schema.scores.c.payload)).all()
        assert sorted(rows) == [(f"m{i}", f'{{"i": {i}}}') for i in range(5)]
        assert db.migrate() == [], "a migrated database is left alone"
    finally:
        db.dispose()
