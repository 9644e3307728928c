"""Ingest through a real Mosquitto into real SQLite and PostgreSQL: once, and nothing lost."""

from __future__ import annotations

import json
import logging
import os
import signal
import socket
import subprocess
import threading
import time
from collections.abc import Callable, Iterator
from datetime import datetime
from pathlib import Path

import pytest
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.reasoncodes import ReasonCode
from sqlalchemy import func, select

from collector.ingest import Ingestor, IngestSettings
from collector.simulate import Publisher, mixed_stream
from collector.storage import Database, open_database, schema
from contract.wire import MAX_PAYLOAD_BYTES, decode
from edge.roles.gait.message import GaitScreening
from tests.support.broker import MosquittoBroker, free_port
from tests.support.collector import collector_cmd

REPO = Path(__file__).resolve().parents[2]


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
    from collector.storage.writes import Rejected
    from collector.timeutil import utcnow_naive
    from tests.support.storage import store_batch

    db = open_database(f"sqlite:///{tmp_path}/c.db")
    for i in range(5):
        with db.engine.begin() as conn:
            rows = [Rejected("t", "invalid", f"n{i}-{j}", b"\xff" * 5000, utcnow_naive()) for j in range(4)]
            store_batch(conn, db, [], rows, dead_letter_limit=6)
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
    wait_until(lambda: ing.stats.subscribed, what="reconnect after the broker restart")
    second = mixed_stream("site-a", "dev-2", 200, seed=6)
    publish(broker, second, "pub2")
    wait_until(lambda: count(db, schema.scores) == len(first) + len(second), what="all stored after broker restart")
    time.sleep(0.5)
    assert count(db, schema.scores) == len(first) + len(second)
    db.dispose()


def _start_collector(
    broker: MosquittoBroker, db_url: str, log: Path, rules: Path | None = None
) -> subprocess.Popen[bytes]:
    cmd = collector_cmd(broker.url, db_url, "collector-killed", "--batch", "200")
    cmd += ["--rules", str(rules)] if rules else []
    return subprocess.Popen(cmd, cwd=REPO, stdout=log.open("ab"), stderr=subprocess.STDOUT)


def _children(pid: int) -> list[int]:
    return [int(c) for task in Path(f"/proc/{pid}/task").iterdir() for c in (task / "children").read_text().split()]


def _running(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except FileNotFoundError:
        return False
    return state not in ("Z", "X")


@pytest.mark.parametrize("with_rules", [False, True], ids=["no-rules", "screening-rule"])
def test_collector_killed_and_restarted_loses_and_doubles_nothing(
    tmp_path: Path, broker: MosquittoBroker, with_rules: bool
) -> None:
    db_url = f"sqlite:///{tmp_path}/c.db"
    db = open_database(db_url)
    log = tmp_path / "collector.log"
    rules = tmp_path / "rules.yaml" if with_rules else None
    if rules is not None:
        rules.write_text(
            "notify: {mqtt: false}\n"
            "rules: [{name: gait_positive, type: screening, predicted: positive, min_probability: 0.7}]\n"
        )
    proc = _start_collector(broker, db_url, log, rules)
    messages = [m for k in range(3) for m in mixed_stream("site-k", f"dev-{k}", 600, seed=10 + k)]
    try:
        wait_until(lambda: "subscribed to" in log.read_text(), what=f"collector start ({log})")
        sender = threading.Thread(target=publish, args=(broker, messages))
        sender.start()
        wait_until(lambda: count_safe(db) > 200, what="some messages stored")
        helpers = _children(proc.pid)
        assert helpers, "the collector stores through a writer process"
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait()
        # Its writer notices that the collector is gone and exits; it does not store on alone.
        wait_until(lambda: not any(_running(p) for p in helpers), timeout=15, what="writer exit after the kill")
        stored_at_kill = count(db, schema.scores)
        sender.join()
        proc = _start_collector(broker, db_url, log, rules)
        wait_until(lambda: count_safe(db) == len(messages), timeout=60, what="all stored after restart")
    finally:
        proc.terminate()
        proc.wait(timeout=20)
    assert stored_at_kill < len(messages)
    expected_metrics = sum(len(_flat(p)) for _, p in messages)
    assert count(db, schema.metric_values) == expected_metrics, "a replayed message was flattened twice"
    if with_rules:
        # Rules are evaluated in the transaction that stores their batch: a kill loses or doubles no alert.
        screenings = [m for m in (decode(p, t) for t, p in messages) if isinstance(m, GaitScreening)]
        expected = sorted(
            f"gait_positive:{m.site}:{m.device_id}:{m.message_id}"
            for m in screenings
            if m.outcome == "screened" and m.predicted == "positive" and (m.probabilities or {})["positive"] >= 0.7
        )
        with db.reader.connect() as conn:
            keys = sorted(r[0] for r in conn.execute(select(schema.alerts.c.dedup_key)))
        assert len(expected) > 10
        assert keys == expected, f"{len(keys)} alerts for {len(expected)} positive screenings"
    db.dispose()


def test_sigterm_to_the_whole_service_stops_it_cleanly_and_a_restart_stores_the_rest(
    tmp_path: Path, broker: MosquittoBroker
) -> None:
    """systemd stops a service by signalling every process in it, the writer included."""
    db_url = f"sqlite:///{tmp_path}/c.db"
    db = open_database(db_url)
    log = tmp_path / "collector.log"
    cmd = collector_cmd(broker.url, db_url, "collector-group", "--batch", "200", "--http", f"127.0.0.1:{free_port()}")
    messages = mixed_stream("site-t", "dev-1", 1500, seed=40)
    with log.open("ab") as out:
        proc = subprocess.Popen(cmd, cwd=REPO, stdout=out, stderr=out, start_new_session=True)
        try:
            wait_until(lambda: "subscribed to" in log.read_text(), what=f"collector start ({log})")
            sender = threading.Thread(target=publish, args=(broker, messages))
            sender.start()
            wait_until(lambda: count_safe(db) > 100, what="some messages stored")
            os.killpg(proc.pid, signal.SIGTERM)
            assert proc.wait(timeout=30) == 0, "the collector stops cleanly"
            sender.join()
        finally:
            if proc.poll() is None:
                proc.kill()
        assert "starting another" not in log.read_text(), "a stopping service must not replace its writer"
        proc = subprocess.Popen(cmd, cwd=REPO, stdout=out, stderr=out)
        try:
            wait_until(lambda: count_safe(db) == len(messages), timeout=60, what="the rest stored after restart")
        finally:
            proc.terminate()
            proc.wait(timeout=30)
    assert count(db, schema.metric_values) == sum(len(_flat(p)) for _, p in messages)
    db.dispose()


def test_a_killed_writer_process_is_replaced_and_its_batches_are_stored_once(
    tmp_path: Path, broker: MosquittoBroker, ingestor_factory: Callable[..., Ingestor]
) -> None:
    db = open_database(f"sqlite:///{tmp_path}/c.db")
    ing = ingestor_factory(db)
    messages = [m for k in range(2) for m in mixed_stream("site-w", f"dev-{k}", 1500, seed=30 + k)]
    sender = threading.Thread(target=publish, args=(broker, messages))
    sender.start()
    wait_until(lambda: ing.stats.stored > 0, what="a first batch stored")
    assert ing._writer is not None
    first = ing._writer.process
    os.kill(first.pid, signal.SIGKILL)  # type: ignore[arg-type]
    sender.join()
    wait_until(lambda: ing.stats.received >= len(messages), timeout=60, what="all processed by the new writer")
    assert ing._writer.process is not first and ing._writer.process.is_alive()
    assert count(db, schema.scores) == len(messages)
    assert count(db, schema.metric_values) == sum(len(_flat(p)) for _, p in messages)
    db.dispose()


def test_collector_with_two_ingest_processes_stores_each_message_once(tmp_path: Path, broker: MosquittoBroker) -> None:
    db_url = f"sqlite:///{tmp_path}/c.db"
    db = open_database(db_url)
    log = tmp_path / "collector.log"
    out = log.open("ab")
    cmd = collector_cmd(broker.url, db_url, "multi", "--workers", "2")
    proc = subprocess.Popen(cmd, cwd=REPO, stdout=out, stderr=out)
    try:
        subscribed = lambda: log.read_text().count("subscribed to") >= 2  # noqa: E731
        wait_until(subscribed, timeout=60, what=f"both ingest processes ({log})")
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


def _version_1_database(url: str) -> None:
    """A database as schema version 1 left it: metric_values with no key and a series index; a scores device index."""
    from sqlalchemy import create_engine

    from collector.storage.engine import normalise_url
    from collector.storage.migrations import MIGRATIONS
    from collector.timeutil import utcnow_naive

    engine = create_engine(normalise_url(url))
    with engine.begin() as conn:
        schema.metadata.create_all(conn, tables=[t for t in schema.metadata.sorted_tables if t.name != "metric_values"])
        conn.exec_driver_sql(
            "CREATE TABLE metric_values (message_id VARCHAR(36) NOT NULL, site VARCHAR(63) NOT NULL, "
            "device_id VARCHAR(63) NOT NULL, kind VARCHAR(16) NOT NULL, at TIMESTAMP NOT NULL, "
            "name VARCHAR(112) NOT NULL, value FLOAT NOT NULL)"
        )
        conn.exec_driver_sql("CREATE INDEX ix_metric_values_series ON metric_values (site, device_id, name, at)")
        conn.exec_driver_sql("CREATE INDEX ix_scores_device_time ON scores (site, device_id, window_end)")
        conn.execute(schema.schema_migrations.insert().values(version=1, description=MIGRATIONS[0].description,
                                                              applied_at=utcnow_naive()))  # fmt: skip
        rows = [
            {"message_id": f"m{i}", "site": "s", "device_id": f"d{i % 2}", "kind": "posture",
             "at": utcnow_naive(), "name": "cva_deg.mean", "value": float(i)}
            for i in range(20)
        ]  # fmt: skip
        conn.execute(schema.metric_values.insert(), rows)
    engine.dispose()


@pytest.mark.parametrize("backend", ["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def test_version_1_database_is_migrated_and_its_metric_values_kept(
    backend: str, tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    from sqlalchemy import inspect

    from collector.storage.migrations import LATEST
    from collector.web.queries import metric_series

    url = f"sqlite:///{tmp_path}/c.db" if backend == "sqlite" else request.getfixturevalue("pg_url")
    _version_1_database(url)
    db = open_database(url)
    with db.reader.connect() as conn:
        insp = inspect(conn)
        assert insp.get_pk_constraint("metric_values")["constrained_columns"] == [
            "site", "device_id", "name", "at", "message_id"
        ]  # fmt: skip
        assert "ix_metric_values_series" not in {ix["name"] for ix in insp.get_indexes("metric_values")}
        assert {ix["name"] for ix in insp.get_indexes("scores")} == {"ix_scores_site_kind_time"}
        version = conn.execute(select(func.max(schema.schema_migrations.c.version))).scalar()
        if backend == "sqlite":
            ddl = conn.exec_driver_sql("SELECT sql FROM sqlite_master WHERE name = 'metric_values'").scalar()
            assert "WITHOUT ROWID" in str(ddl)
    assert version == LATEST
    assert count(db, schema.metric_values) == 20
    series = metric_series(db, "s", "d1", datetime(2000, 1, 1))
    assert [v for _, v in series["cva_deg.mean"]] == [float(i) for i in range(1, 20, 2)]
    assert db.migrate() == [], "a migrated database is left alone"
    db.dispose()


def _publish_packet(topic: bytes, mid: int, payload: bytes, qos: int = 1, props: bytes = b"\x00") -> bytes:
    body = len(topic).to_bytes(2, "big") + topic + (mid.to_bytes(2, "big") if qos else b"") + props + payload
    length, n = b"", len(body)
    while True:
        byte, n = n & 0x7F, n >> 7
        length += bytes([byte | (0x80 if n else 0)])
        if not n:
            break
    return bytes([0x30 | (qos << 1)]) + length + body


def test_buffered_publishes_are_taken_in_one_pass_up_to_the_first_other_or_partial_packet() -> None:
    import paho.mqtt.client as mqtt
    from paho.mqtt.enums import CallbackAPIVersion

    from collector.mqtt_client import BufferedClient

    client = BufferedClient(CallbackAPIVersion.VERSION2, client_id="t", protocol=mqtt.MQTTv5, manual_ack=True)
    got: list[tuple[bytes, int, int, bytes]] = []
    client.on_raw_message = lambda *args: got.append(args)
    big = b"x" * 20_000  # a three-byte remaining length
    packets = [
        _publish_packet(b"a/b", 1, b"small"),
        _publish_packet(b"a/c", 2, big),
        _publish_packet(b"a/d", 3, b"with properties", props=b"\x02\x01\x01"),  # paho's way from here
        _publish_packet(b"a/e", 4, b"after"),
    ]
    sock = object()
    client._sock = client._buffered_socket = sock  # type: ignore[assignment]
    client._read_buffer, client._read_pos = b"".join(packets), 0
    client._drain_publishes()
    assert got == [(b"a/b", 1, 1, b"small"), (b"a/c", 2, 1, big)]
    assert client._read_pos == len(packets[0]) + len(packets[1])
    # A packet cut by the end of the buffer waits for paho to read the rest; a QoS 0 one is paho's too.
    got.clear()
    whole = _publish_packet(b"a/f", 5, b"cut")
    client._read_buffer, client._read_pos = packets[3] + whole[:-2], 0
    client._drain_publishes()
    assert got == [(b"a/e", 4, 1, b"after")] and client._read_pos == len(packets[3])
    got.clear()
    client._read_buffer, client._read_pos = _publish_packet(b"a/g", 0, b"q0", qos=0) + packets[0], 0
    client._drain_publishes()
    assert got == [] and client._read_pos == 0
    client._sock = None  # not a real socket: nothing to close


def test_subscription_refused_by_the_broker_is_logged_and_not_ready(
    tmp_path: Path, broker: MosquittoBroker, caplog: pytest.LogCaptureFixture
) -> None:
    # Mosquitto grants every filter and applies its ACL on delivery; brokers that check ACLs at SUBSCRIBE (EMQX,
    # HiveMQ) answer "Not authorized", which is handed to the collector's SUBACK handler here as paho would.
    ing = Ingestor(IngestSettings(broker.url, "collector-denied"), open_database(f"sqlite:///{tmp_path}/c.db"))
    try:
        ing.start()
        assert ing.wait_connected(), "Mosquitto grants the subscription"
        ing.stats.subscribed = False
        with caplog.at_level(logging.INFO, logger="collector.ingest"):
            ing._on_subscribe(ing.client, None, 2, [ReasonCode(PacketTypes.SUBACK, "Not authorized")], None)
        assert not ing.wait_connected(timeout=0.5), "a refused subscription must not count as ready"
        assert any("refused the subscription to edgescreen/v1/" in r.getMessage() for r in caplog.records)
    finally:
        ing.stop()


def test_collector_tells_systemd_ready_feeds_the_watchdog_and_says_stopping(
    tmp_path: Path, broker: MosquittoBroker
) -> None:
    """The unit is Type=notify with WatchdogSec: without READY=1 systemd would fail the start, without
    WATCHDOG=1 it would kill the collector every minute."""
    notify = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    notify.bind(str(tmp_path / "notify"))
    notify.settimeout(30)
    env = {**os.environ, "NOTIFY_SOCKET": str(tmp_path / "notify"), "WATCHDOG_USEC": "1000000"}
    cmd = collector_cmd(broker.url, f"sqlite:///{tmp_path}/c.db", "collector-systemd")
    proc = subprocess.Popen(cmd, cwd=REPO, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    notes: list[str] = []
    try:
        while sum("WATCHDOG=1" in n for n in notes) < 2 or not any("broker subscribed" in n for n in notes):
            notes.append(notify.recv(4096).decode())
        proc.send_signal(signal.SIGTERM)
        _, stderr = proc.communicate(timeout=30)
        notify.settimeout(1.0)
        while not notes[-1].startswith("STOPPING=1"):
            notes.append(notify.recv(4096).decode())
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        notify.close()
    assert proc.returncode == 0, stderr[-3000:]
    # READY=1 once the broker granted the subscription; before it, only a status saying so.
    ready = [i for i, n in enumerate(notes) if n.startswith("READY=1")]
    assert len(ready) == 1 and notes[ready[0]].startswith("READY=1\nSTATUS=broker subscribed"), notes
    assert all(n.startswith(("STATUS=starting: ", "WATCHDOG=1")) for n in notes[: ready[0]]), notes
    assert any("STATUS=broker subscribed; database ok" in n for n in notes), notes
    assert "STOPPING=1" in notes[-1]
