"""A client's MQTT client id is its certificate's identity on the shipped broker: no certificate of the site
can take over another client's session, kick another client off, or fire its last will.

Everything runs against firmware_config/mosquitto/edgescreen.conf (paths and port changed only), a real
Mosquitto, and certificates from `edgescreen provision`.
"""

from __future__ import annotations

import datetime as dt
import re
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import select

from collector.simulate import posture
from collector.storage import open_database, schema
from contract.wire import decode, encode, topic_for
from edge.config import BrokerConfig, TlsConfig
from edge.mqtt_client import MqttPublisher
from edge.outbox import Outbox
from edgescreen.provision import SitePKI, write_acl
from tests.support.shipped_broker import ROOT, Client, Pki, ShippedBroker, start_shipped_broker, wait_for

SCORES = "edgescreen/v1/+/+/+"


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> Pki:
    root = tmp_path_factory.mktemp("pki")
    school = SitePKI(root, "school1")
    school.create_ca()
    school.issue("broker", "mqtt", hosts=("127.0.0.1", "localhost"))
    for device in ("dev-a", "dev-b"):
        school.issue("device", device)
    for collector in ("c1", "c2"):
        school.issue("collector", collector)
    write_acl(root)
    return Pki(root=root, site=school)


@pytest.fixture
def shipped(pki: Pki, tmp_path: Path) -> Iterator[ShippedBroker]:
    """A fresh shipped broker per test: each test leaves sessions behind."""
    broker = start_shipped_broker(pki.root, "school1", tmp_path / "broker-files", tmp_path / "broker")
    yield broker
    broker.stop()


def _client(broker: ShippedBroker, pki: Pki, identity: str, client_id: str | None = None, **kw: object) -> Client:
    return Client(broker, pki.creds(identity), pki.ca(), client_id=client_id, **kw)  # type: ignore[arg-type]


def test_a_device_cannot_kick_the_collector_or_wipe_its_session(pki: Pki, shipped: ShippedBroker) -> None:
    """Online: the collector stays connected and keeps its subscription when a device reuses its client id."""
    collector = _client(shipped, pki, "collector.school1.c1", client_id="collector.school1.c1")
    device = _client(shipped, pki, "school1.dev-a")
    attacker = _client(shipped, pki, "school1.dev-b", client_id="collector.school1.c1")
    try:
        assert collector.connect(clean_start=False, session_expiry_s=3600)
        collector.client.subscribe(SCORES, qos=1)
        wait_for(lambda: bool(collector.subacks), what="suback")
        assert attacker.connect(clean_start=True)  # the broker accepts the certificate, under its own identity
        time.sleep(1.0)
        assert collector.disconnects == [], "the collector was disconnected"
        assert device.connect()
        for i in range(20):
            device.client.publish(topic_for("school1", "dev-a", "posture"), f"m{i}".encode(), qos=1)
        wait_for(lambda: len(collector.messages) == 20, what="20 messages at the collector")
        assert collector.disconnects == [] and attacker.messages == []
    finally:
        for c in (collector, device, attacker):
            c.close()


def test_a_device_cannot_kick_another_device_or_fire_its_last_will(
    pki: Pki, shipped: ShippedBroker, tmp_path: Path
) -> None:
    """The device publisher as the runtime runs it; another device certificate tries both ids it could guess:
    the profile's default `<site>-<device>` and the certificate identity `<site>.<device>`."""
    creds = pki.creds("school1.dev-a")
    broker = BrokerConfig(
        url=f"mqtts://{shipped.host}:{shipped.port}",
        tls=TlsConfig.model_validate({"ca": creds / "ca.crt", "cert": creds / "cert.pem", "key": creds / "key.pem"}),
        keepalive_s=5,
    )
    outbox = Outbox(tmp_path / "outbox.sqlite")
    victim = MqttPublisher(broker, outbox, site="school1", device_id="dev-a", role="posture", client_id="school1-dev-a")
    watcher = _client(shipped, pki, "collector.school1.c2")
    try:
        assert watcher.connect()
        watcher.client.subscribe("edgescreen/v1/school1/dev-a/#", qos=1)
        wait_for(lambda: bool(watcher.subacks), what="suback")
        assert victim.client_id == "school1.dev-a"  # its certificate's identity, not the profile's default
        victim.start()
        assert victim.wait_connected(10)
        wait_for(lambda: _states(watcher) == ["online"], what="the retained online status")
        for guess in ("school1-dev-a", "school1.dev-a"):
            attacker = _client(shipped, pki, "school1.dev-b", client_id=guess)
            try:
                assert attacker.connect(clean_start=True)
                time.sleep(1.0)
            finally:
                attacker.close()
        window = posture("school1", "dev-a", 0, dt.datetime.now(dt.UTC))
        outbox.put(topic_for("school1", "dev-a", "posture"), encode(window), seq=0)
        victim.wake()
        wait_for(lambda: any(t.endswith("/posture") for t, _ in watcher.messages), what="a score after the attempts")
        assert victim.stats.disconnects == 0 and victim.stats.connects == 1, victim.stats
        assert _states(watcher) == ["online"], "the victim's last will was published"
    finally:
        victim.stop(drain_s=1.0)
        watcher.close()
        outbox.close()


def test_collectors_with_their_own_certificates_share_the_stream(pki: Pki, shipped: ShippedBroker) -> None:
    """Several collectors on one shared subscription need one certificate each: two connections with one
    certificate get one client id from the broker, and each new one closes the other (the collector
    reconnects, and they take turns for ever)."""
    pair = [_client(shipped, pki, f"collector.school1.{name}") for name in ("c1", "c2")]
    twins = [_client(shipped, pki, "collector.school1.c1") for _ in range(2)]
    device = _client(shipped, pki, "school1.dev-a")
    try:
        for c in pair:
            assert c.connect(clean_start=False, session_expiry_s=3600)
            c.client.subscribe(f"$share/g/{SCORES}", qos=1)
        wait_for(lambda: all(c.subacks for c in pair), what="subacks")
        assert device.connect()
        for i in range(40):
            device.client.publish(topic_for("school1", "dev-a", "posture"), f"m{i}".encode(), qos=1)
        wait_for(lambda: sum(len(c.messages) for c in pair) == 40, what="40 messages at the two collectors")
        assert all(c.messages for c in pair) and not any(c.disconnects for c in pair)
        assert {p for c in pair for _, p in c.messages} == {f"m{i}".encode() for i in range(40)}
        for c in pair:
            c.close()

        assert twins[0].connect()
        assert twins[1].connect()
        wait_for(lambda: bool(twins[0].disconnects), what="the first connection closed by the second")
    finally:
        for c in (*pair, *twins, device):
            c.close()


def _states(client: Client) -> list[str]:
    states = []
    for topic, payload in client.messages:
        if topic.endswith("/status"):
            message = decode(payload, topic)
            states.append(message.state)  # type: ignore[attr-defined]
    return states


def test_queued_scores_survive_a_takeover_attempt_while_the_collector_is_offline(
    pki: Pki, shipped: ShippedBroker, tmp_path: Path
) -> None:
    """The collector as systemd runs it (certificate, no --client-id). While it is stopped a device certificate
    connects with the collector's exact client id and a clean start; every score queued meanwhile is stored."""
    creds = pki.creds("collector.school1.c1")
    db_url = f"sqlite:///{tmp_path}/c.db"
    cmd = [sys.executable, "-m", "edgescreen", "collector", "run", "--broker", f"mqtts://{shipped.host}:{shipped.port}"]
    cmd += ["--db", db_url, "--tls-ca", str(creds / "ca.crt")]
    cmd += ["--tls-cert", str(creds / "cert.pem"), "--tls-key", str(creds / "key.pem")]
    env = {"STATE_DIRECTORY": str(tmp_path / "state"), "PATH": "/usr/bin:/bin"}

    def run_collector(log: Path) -> subprocess.Popen[bytes]:
        proc = subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=log.open("ab"), stderr=subprocess.STDOUT)
        wait_for(lambda: "subscribed to" in log.read_text() or proc.poll() is not None, timeout=30, what="subscribe")
        assert proc.poll() is None, log.read_text()
        return proc

    first = run_collector(tmp_path / "first.log")
    first.terminate()
    first.wait(timeout=20)
    found = re.search(r"client id (\S+)\)", (tmp_path / "first.log").read_text())
    assert found, (tmp_path / "first.log").read_text()
    client_id = found.group(1)

    device = _client(shipped, pki, "school1.dev-a")
    sent = []
    try:
        assert device.connect()
        start = dt.datetime.now(dt.UTC) - dt.timedelta(hours=1)
        for i in range(50):
            window = posture("school1", "dev-a", i, start + dt.timedelta(minutes=i))
            info = device.client.publish(topic_for("school1", "dev-a", "posture"), encode(window), qos=1)
            sent.append((info.mid, str(window.message_id)))
        wait_for(lambda: all(mid in device.pubacks for mid, _ in sent), what="pubacks")
    finally:
        device.close()
    attacker = _client(shipped, pki, "school1.dev-b", client_id=client_id)
    try:
        assert attacker.connect(clean_start=True)
        attacker.client.subscribe(SCORES, qos=1)
        wait_for(lambda: bool(attacker.subacks), what="suback")
        time.sleep(0.5)
        assert attacker.messages == []  # a device reads nothing, not even through another client id
    finally:
        attacker.close()

    second = run_collector(tmp_path / "second.log")
    db = open_database(db_url)
    try:
        expected = sorted(message_id for _, message_id in sent)
        wait_for(lambda: _stored(db) == expected, timeout=20, what="all 50 queued scores stored")
    finally:
        second.terminate()
        second.wait(timeout=20)
        db.dispose()


def _stored(db: object) -> list[str]:
    with db.reader.connect() as conn:  # type: ignore[attr-defined]
        return sorted(str(r[0]) for r in conn.execute(select(schema.scores.c.message_id)))
