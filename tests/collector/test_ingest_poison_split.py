"""A message the database refuses (a trigger here, as a constraint would) never stops the stream: its batch is
halved until the message is found, which is dead-lettered with the database's error; the rest is stored, with
the alerts of the stored messages raised and delivered once. On SQLite and PostgreSQL, real ingest and broker."""

from __future__ import annotations

from collections.abc import Callable
from multiprocessing import Pipe

from sqlalchemy import event, select

from collector.alerts.config import parse_rules
from collector.simulate import mixed_stream
from collector.storage import Database, schema
from collector.storage.writes import BatchBuilder
from collector.timeutil import utcnow_naive
from contract.wire import Alert, decode
from edge.roles.gait.message import GaitScreening
from tests.collector.test_collector_ingest import count, wait_until
from tests.collector.test_ingest_poison import message_ids, publish, start_ingest, stored_ids
from tests.support.broker import MosquittoBroker


def refuse_device(db: Database, device: str) -> None:
    """A trigger that makes the database refuse every score row of `device`, as a constraint would."""
    message = f"scores refuses device {device}"
    with db.engine.begin() as conn:
        if db.dialect == "sqlite":
            conn.exec_driver_sql(
                f"CREATE TRIGGER refuse_device BEFORE INSERT ON scores WHEN NEW.device_id = '{device}' "
                f"BEGIN SELECT RAISE(ABORT, '{message}'); END"
            )
        else:
            conn.exec_driver_sql(
                "CREATE FUNCTION refuse_device() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN "
                f"IF NEW.device_id = '{device}' THEN RAISE EXCEPTION '{message}' USING ERRCODE = 'check_violation'; "
                "END IF; RETURN NEW; END $$"
            )
            conn.exec_driver_sql(
                "CREATE TRIGGER refuse_device BEFORE INSERT ON scores FOR EACH ROW EXECUTE FUNCTION refuse_device()"
            )


SCREENING_RULES = "notify: {mqtt: false}\nrules: [{name: gait_positive, type: screening, predicted: positive}]\n"


def test_a_message_the_database_refuses_is_dead_lettered_with_its_error_and_its_batch_is_stored(
    db: Database, broker: MosquittoBroker
) -> None:
    refuse_device(db, "cursed")
    delivered: list[Alert] = []
    ing = start_ingest(broker, db, settings={"rules": parse_rules(SCREENING_RULES)}, on_alerts=delivered.extend)
    try:
        assert ing._writer is not None
        writer = ing._writer.process
        good = [m for k in range(2) for m in mixed_stream("school-r", f"booth-{k}", 240, seed=20 + k)]
        cursed = mixed_stream("school-r", "cursed", 3, seed=22)
        stream = good[:5] + cursed[:1] + good[5:250] + cursed[1:2] + good[250:] + cursed[2:]
        publish(broker, stream, "pub-r")
        wait_until(lambda: ing.stats.received >= len(stream), timeout=30, what="every message processed")
        assert stored_ids(db) == message_ids(good)
        with db.reader.connect() as conn:
            dead = conn.execute(select(schema.dead_letters.c.reason, schema.dead_letters.c.detail,
                                       schema.dead_letters.c.payload)).all()  # fmt: skip
            alert_keys = sorted(r[0] for r in conn.execute(select(schema.alerts.c.dedup_key)))
        assert sorted(p for _, _, p in dead) == sorted(p.decode() for _, p in cursed)
        assert all(r == "store_error" and "scores refuses device cursed" in d for r, d, _ in dead), dead
        assert count(db, schema.metric_values, schema.metric_values.c.device_id == "cursed") == 0
        # Alerts of the good screenings: stored once and delivered once; none of a rolled-back attempt.
        expected = sorted(f"gait_positive:{m.site}:{m.device_id}:{m.message_id}" for m in positives(good))
        assert len(expected) > 3 and alert_keys == expected
        wait_until(lambda: len(delivered) >= len(expected), timeout=10, what="alerts delivered")
        assert sorted(a.dedup_key for a in delivered) == expected
        assert ing.stats.stored == len(good)
        assert ing._writer.process is writer
    finally:
        ing.stop()


def positives(messages: list[tuple[str, bytes]]) -> list[GaitScreening]:
    """The screenings the rule SCREENING_RULES alerts on (positive, screened, probability at least 0.5)."""
    screenings = [m for m in (decode(p, t) for t, p in messages) if isinstance(m, GaitScreening)]
    return [
        m
        for m in screenings
        if m.outcome == "screened" and m.predicted == "positive" and (m.probabilities or {})["positive"] >= 0.5
    ]


def test_a_refused_message_is_found_by_halving_its_batch_not_by_storing_one_by_one(db: Database) -> None:
    """The writer, in this process, on a real database: a batch of 512 with one refused message costs a few
    transactions per halving, not one per message."""
    from collector.ingest_writer import WriterSettings, _Writer

    refuse_device(db, "cursed")
    good = mixed_stream("school-h", "booth-1", 511, seed=30)
    cursed = mixed_stream("school-h", "cursed", 1, seed=31)
    builder = BatchBuilder(db.dialect)
    now = utcnow_naive()
    for topic, payload in good[:300] + cursed + good[300:]:
        builder.add(decode(payload, topic), payload.decode(), now)
    transactions = counter(db)
    parent, child = Pipe()
    writer = _Writer(child, db, WriterSettings(db.url))
    new = writer._commit(builder.build())
    assert new is not None and len(new) == len(good)
    assert stored_ids(db) == message_ids(good)
    with db.reader.connect() as conn:
        dead = conn.execute(select(schema.dead_letters.c.reason, schema.dead_letters.c.detail)).all()
    assert len(dead) == 1 and dead[0][0] == "store_error" and "refuses device cursed" in dead[0][1]
    # One attempt of the whole, then two halves per level down to the refused message (9 levels for 512), then
    # the dead letter: about 20. Storing one by one would take over 512.
    assert transactions() <= 25, transactions()
    parent.close()
    child.close()


def counter(db: Database) -> Callable[[], int]:
    begun = [0]

    def on_begin(_conn: object) -> None:
        begun[0] += 1

    event.listen(db.engine, "begin", on_begin)
    return lambda: begun[0]
