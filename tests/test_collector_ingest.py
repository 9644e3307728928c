"""Ingest through a real Mosquitto into real SQLite and PostgreSQL: once, and nothing lost."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from sqlalchemy import func, select

from collector.ingest import Ingestor, IngestSettings
from collector.simulate import Publisher, mixed_stream
from collector.storage import Database, open_database, schema
from edge.wire import MAX_PAYLOAD_BYTES, decode
from tests.support.broker import MosquittoBroker

REPO = Path(__file__).resolve().parents[1]


def wait_until(cond: Callable[[], bool], timeout: float = 30.0, what: str = "condition") -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if cond():
            return
        time.sleep(0.05)
    raise AssertionError(f"timed out after {timeout}s waiting for {what}")


def count(db: Database, table: object, *where: object) -> int:
    with db.reader.connect() as conn:
        stmt = select(func.count()).select_from(table)  # type: ignore[arg-type]
        for w in where:
            stmt = stmt.where(w)  # type: ignore[arg-type]
        return int(conn.execute(stmt).scalar() or 0)


@pytest.fixture
def ingestor_factory(broker: MosquittoBroker) -> Iterator[Callable[..., Ingestor]]:
    made: list[Ingestor] = []

    def make(db: Database, client_id: str = "collector-a", share: str | None = None) -> Ingestor:
        ing = Ingestor(IngestSettings(broker.url, client_id, share_group=share, batch_max=500), db)
        ing.start()
        assert ing.wait_connected(), "collector did not connect"
        time.sleep(0.2)  # let SUBACK arrive before publishing
        made.append(ing)
        return ing

    yield make
    for ing in made:
        ing.stop()


def publish(broker: MosquittoBroker, messages: list[tuple[str, bytes]], client_id: str = "pub") -> None:
    pub = Publisher(broker.url, client_id)
    try:
        pub.publish_all(messages)
    finally:
        pub.close()


def test_valid_stored_once_bad_rejected_by_reason_and_ingest_goes_on(
    tmp_path: Path, broker: MosquittoBroker, ingestor_factory: Callable[..., Ingestor]
) -> None:
    db = open_database(f"sqlite:///{tmp_path}/c.db")
    ing = ingestor_factory(db)
    good = mixed_stream("school-a", "booth-1", 300, seed=1)
    topic, payload = good[0]
    raw = json.loads(payload)
    bad = [
        (topic, b"{not json"),
        (topic, b"x" * (MAX_PAYLOAD_BYTES + 1)),
        (topic, json.dumps({**raw, "seq": "seven"}).encode()),
        (topic, json.dumps({**raw, "schema_version": 2}).encode()),
        ("edgescreen/v1/school-a/other-device/" + raw["kind"], payload),
        (topic, json.dumps({**raw, "frames_base64": "AAAA"}).encode()),
    ]
    duplicates = good[:50]
    publish(broker, good + bad + duplicates)
    later = mixed_stream("school-a", "booth-2", 20, seed=2)
    publish(broker, later, "pub2")
    total = len(good) + len(bad) + len(duplicates) + len(later)
    wait_until(lambda: ing.stats.received >= total, what="all messages processed")

    assert count(db, schema.scores) == len(good) + len(later)
    assert ing.stats.duplicates == len(duplicates)
    with db.reader.connect() as conn:
        rejects = dict(conn.execute(select(schema.reject_counts.c.reason, schema.reject_counts.c["count"])).all())
        dead = conn.execute(select(schema.dead_letters.c.reason, schema.dead_letters.c.topic)).all()
    assert rejects == {"malformed_json": 1, "oversized": 1, "invalid": 2, "unknown_version": 1, "wrong_topic": 1}
    assert sorted(r for r, _ in dead) == sorted(
        ["malformed_json", "oversized", "invalid", "invalid", "unknown_version", "wrong_topic"]
    )
    # Metrics are flattened once per stored message, never for a duplicate.
    expected_metrics = sum(len(_flat(p)) for _, p in good + later)
    assert count(db, schema.metric_values) == expected_metrics
    # The registry knows both devices, with heartbeat fields from booth-1.
    with db.reader.connect() as conn:
        devices = {r.device_id: r for r in conn.execute(select(schema.devices))}
    assert set(devices) == {"booth-1", "booth-2"}
    assert devices["booth-1"].fps == pytest.approx(28.0)
    db.dispose()


def _flat(payload: bytes) -> dict[str, float]:
    from collector.flatten import flatten

    return flatten(decode(payload))


def test_dead_letters_are_bounded(tmp_path: Path) -> None:
    from collector.storage.writes import Rejected, write_batch
    from collector.timeutil import utcnow_naive

    db = open_database(f"sqlite:///{tmp_path}/c.db")
    for i in range(5):
        with db.engine.begin() as conn:
            rows = [Rejected("t", "invalid", f"n{i}-{j}", b"\xff" * 5000, utcnow_naive()) for j in range(4)]
            write_batch(conn, db, [], rows, dead_letter_limit=6)
    with db.reader.connect() as conn:
        details = [r[0] for r in conn.execute(select(schema.dead_letters.c.detail).order_by(schema.dead_letters.c.id))]
        payloads = [r[0] for r in conn.execute(select(schema.dead_letters.c.payload))]
    assert details == ["n3-2", "n3-3", "n4-0", "n4-1", "n4-2", "n4-3"]
    assert all(len(p) == 2048 for p in payloads)
    assert count(db, schema.reject_counts) == 1
    db.dispose()


@pytest.mark.postgres
def test_two_collectors_on_a_shared_subscription_store_each_message_once(
    pg_url: str, broker: MosquittoBroker, ingestor_factory: Callable[..., Ingestor]
) -> None:
    db_a, db_b = open_database(pg_url), open_database(pg_url)
    a = ingestor_factory(db_a, "collector-a", share="fleet")
    b = ingestor_factory(db_b, "collector-b", share="fleet")
    messages = [m for k in range(4) for m in mixed_stream("district", f"dev-{k}", 250, seed=k)]
    publish(broker, messages)
    wait_until(lambda: a.stats.received + b.stats.received >= len(messages), what="both collectors drained")
    assert a.stats.received > 0 and b.stats.received > 0, "the shared subscription did not split the load"
    assert count(db_a, schema.scores) == len(messages)
    assert a.stats.stored + b.stats.stored == len(messages)
    db_a.dispose()
    db_b.dispose()


def _pg_ctl(action: str) -> None:
    version = sorted(os.listdir("/etc/postgresql"))[-1]
    subprocess.run(
        ["pg_ctlcluster", "--skip-systemctl-redirect", version, "main", action], check=True, capture_output=True
    )


@pytest.mark.postgres
def test_postgres_stopped_and_started_mid_stream_loses_nothing(
    pg_url: str, broker: MosquittoBroker, ingestor_factory: Callable[..., Ingestor]
) -> None:
    db = open_database(pg_url)
    ing = ingestor_factory(db)
    first = mixed_stream("site-a", "dev-1", 200, seed=3)
    second = mixed_stream("site-a", "dev-1", 300, start_seq=200, seed=4)
    publish(broker, first)
    wait_until(lambda: ing.stats.stored >= 100, what="some stored before the outage")
    try:
        _pg_ctl("stop")
        publish(broker, second, "pub2")  # accepted by the broker while the database is down
        wait_until(lambda: not ing.stats.db_ok, what="collector noticing the outage")
        time.sleep(1.0)
    finally:
        _pg_ctl("start")
    wait_until(lambda: count_safe(db) == len(first) + len(second), timeout=60, what="all stored after the restart")
    assert ing.stats.db_errors > 0
    assert ing.stats.db_ok
    db.dispose()


def count_safe(db: Database) -> int:
    try:
        return count(db, schema.scores)
    except Exception:
        return -1


def test_broker_restart_loses_nothing(
    tmp_path: Path, broker: MosquittoBroker, ingestor_factory: Callable[..., Ingestor]
) -> None:
    db = open_database(f"sqlite:///{tmp_path}/c.db")
    ing = ingestor_factory(db)
    first = mixed_stream("site-a", "dev-1", 400, seed=5)
    publish(broker, first)
    broker.restart()
    wait_until(lambda: ing.stats.connected, what="reconnect after the broker restart")
    second = mixed_stream("site-a", "dev-2", 200, seed=6)
    publish(broker, second, "pub2")
    wait_until(lambda: count(db, schema.scores) == len(first) + len(second), what="all stored after broker restart")
    time.sleep(0.5)
    assert count(db, schema.scores) == len(first) + len(second)
    db.dispose()


def _start_collector(broker: MosquittoBroker, db_url: str, log: Path) -> subprocess.Popen[bytes]:
    cmd = [sys.executable, "-m", "edgescreen", "collector", "run", "--broker", broker.url, "--db", db_url]
    cmd += ["--client-id", "collector-killed", "--batch", "200"]
    return subprocess.Popen(cmd, cwd=REPO, stdout=log.open("ab"), stderr=subprocess.STDOUT)


def test_collector_killed_and_restarted_loses_and_doubles_nothing(tmp_path: Path, broker: MosquittoBroker) -> None:
    db_url = f"sqlite:///{tmp_path}/c.db"
    db = open_database(db_url)
    log = tmp_path / "collector.log"
    proc = _start_collector(broker, db_url, log)
    messages = [m for k in range(3) for m in mixed_stream("site-k", f"dev-{k}", 600, seed=10 + k)]
    try:
        wait_until(lambda: "connected to" in log.read_text(), what=f"collector start ({log})")
        time.sleep(0.3)
        sender = threading.Thread(target=publish, args=(broker, messages))
        sender.start()
        wait_until(lambda: count_safe(db) > 200, what="some messages stored")
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait()
        stored_at_kill = count(db, schema.scores)
        sender.join()
        proc = _start_collector(broker, db_url, log)
        wait_until(lambda: count_safe(db) == len(messages), timeout=60, what="all stored after restart")
    finally:
        proc.terminate()
        proc.wait(timeout=20)
    assert stored_at_kill < len(messages)
    expected_metrics = sum(len(_flat(p)) for _, p in messages)
    assert count(db, schema.metric_values) == expected_metrics, "a replayed message was flattened twice"
    db.dispose()


def test_collector_with_two_ingest_processes_stores_each_message_once(tmp_path: Path, broker: MosquittoBroker) -> None:
    db_url = f"sqlite:///{tmp_path}/c.db"
    db = open_database(db_url)
    log = tmp_path / "collector.log"
    cmd = [sys.executable, "-m", "edgescreen", "collector", "run", "--broker", broker.url, "--db", db_url]
    out = log.open("ab")
    proc = subprocess.Popen([*cmd, "--client-id", "multi", "--workers", "2"], cwd=REPO, stdout=out, stderr=out)
    try:
        connected = lambda: log.read_text().count("connected to") >= 2  # noqa: E731
        wait_until(connected, timeout=60, what=f"both ingest processes ({log})")
        time.sleep(0.3)
        messages = [m for k in range(4) for m in mixed_stream("site-m", f"dev-{k}", 300, seed=20 + k)]
        publish(broker, messages)
        wait_until(lambda: count_safe(db) == len(messages), timeout=60, what="all stored")
        time.sleep(0.5)
        with db.reader.connect() as conn:
            per_batch = conn.execute(select(schema.scores.c.received_at).distinct()).all()
        assert count(db, schema.scores) == len(messages) and len(per_batch) > 1
    finally:
        proc.terminate()
        proc.wait(timeout=30)
        out.close()
    assert proc.returncode == 0, "main process and worker stop cleanly on SIGTERM"
    db.dispose()


def test_bad_command_line_values_are_reported_before_anything_starts(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from edgescreen.cli import main

    rules = tmp_path / "rules.yaml"
    rules.write_text("rules: [{name: x, type: screening, min_probabilty: 0.5}]\n")
    db_path = tmp_path / "c.db"
    cases = {
        ("--db", "mysql://host/db"): "only sqlite:///path and postgresql://",
        ("--db", f"sqlite:///{db_path}", "--rules", str(rules)): "did you mean 'min_probability'",
        ("--db", f"sqlite:///{db_path}", "--http", "8080"): "expected HOST:PORT",
        ("--db", f"sqlite:///{db_path}", "--broker", "http://host"): "expected mqtt://host",
    }
    for extra, message in cases.items():
        code = main(["collector", "run", "--broker", "mqtt://127.0.0.1:9", *extra])
        err = capsys.readouterr().err
        assert code == 2 and message in err, (extra, err[-500:])
    assert not db_path.exists(), "a rejected command line must not create the database"


def test_a_message_that_fails_to_store_is_dead_lettered_and_the_rest_goes_on(
    tmp_path: Path, broker: MosquittoBroker, ingestor_factory: Callable[..., Ingestor], monkeypatch: pytest.MonkeyPatch
) -> None:
    from collector.storage import writes

    real_flatten = writes.flatten

    def flatten_failing_for_one_device(message: object) -> dict[str, float]:
        if getattr(message, "device_id", "") == "cursed":
            raise TypeError("cannot flatten this one")
        return real_flatten(message)  # type: ignore[arg-type]

    monkeypatch.setattr(writes, "flatten", flatten_failing_for_one_device)
    db = open_database(f"sqlite:///{tmp_path}/c.db")
    ing = ingestor_factory(db)
    good = mixed_stream("site-a", "fine", 100, seed=7)
    bad = mixed_stream("site-a", "cursed", 3, seed=8)
    publish(broker, good[:50] + bad + good[50:])
    wait_until(lambda: ing.stats.received >= len(good) + len(bad), what="all processed")
    assert count(db, schema.scores, schema.scores.c.device_id == "fine") == len(good)
    assert count(db, schema.scores, schema.scores.c.device_id == "cursed") == 0
    assert count(db, schema.dead_letters, schema.dead_letters.c.reason == "store_error") == len(bad)
    db.dispose()


def test_publishes_outside_the_fast_path_are_stored_once_too(
    tmp_path: Path, broker: MosquittoBroker, ingestor_factory: Callable[..., Ingestor]
) -> None:
    """QoS 0, QoS 2 and a publish with MQTT v5 properties take paho's own decoding path, not the fast one."""
    import paho.mqtt.client as mqtt
    from paho.mqtt.enums import CallbackAPIVersion
    from paho.mqtt.packettypes import PacketTypes
    from paho.mqtt.properties import Properties

    db = open_database(f"sqlite:///{tmp_path}/c.db")
    ing = ingestor_factory(db)
    stream = mixed_stream("school-a", "booth-9", 6, seed=3)
    client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id="odd-publisher", protocol=mqtt.MQTTv5)
    host, port = broker.url.removeprefix("mqtt://").split(":")
    client.connect(host, int(port))
    client.loop_start()
    try:
        props = Properties(PacketTypes.PUBLISH)
        props.UserProperty = ("origin", "test")
        props.MessageExpiryInterval = 3600
        infos = [
            client.publish(*stream[0], qos=0),
            client.publish(*stream[1], qos=2),
            client.publish(*stream[2], qos=1, properties=props),
            client.publish(*stream[3], qos=2, properties=props),
            client.publish(*stream[4], qos=1),  # the fast path, for comparison
            client.publish(*stream[4], qos=2),  # the same message again: a duplicate
        ]
        for info in infos:
            info.wait_for_publish(timeout=10)
    finally:
        client.loop_stop()
        client.disconnect()
    wait_until(lambda: ing.stats.received >= len(infos), what="every publish processed")
    assert count(db, schema.scores) == 5
    assert ing.stats.duplicates == 1
    db.dispose()
