"""Delivery against a real Mosquitto: broker outages, a SIGKILLed device, the last will, mutual TLS.

A subscriber counts score messages by `seq` and `message_id` and must find no gap; duplicates are allowed
(QoS 1) and are the collector's to remove. No collector runs here, so the publishers confirm on PUBACK
(`delivery.confirm: puback`); receipts are tested in tests/edge/test_receipts.py.
"""

from __future__ import annotations

import json
import signal
import ssl
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import paho.mqtt.client as mqtt
import pytest
from paho.mqtt.enums import CallbackAPIVersion
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

from contract.wire import Status, decode, encode, topic_for
from edge.config import BrokerConfig, DeliveryConfig
from edge.mqtt_client import MqttPublisher, check_broker
from edge.outbox import Outbox
from edge.roles.posture.message import PostureWindow, WindowStats
from tests.support.broker import MosquittoBroker
from tests.support.certs import CertPair, TestCA

ROOT = Path(__file__).resolve().parents[2]
SITE, DEVICE = "site-1", "dev-1"
PUBACK = DeliveryConfig(confirm="puback")


def _window(seq: int) -> PostureWindow:
    start = datetime(2026, 1, 1, tzinfo=UTC) + timedelta(minutes=seq)
    stats = WindowStats(mean=45.0, p10=40.0, p50=45.0, p90=50.0, valid_frames=10, bands={"ok": 1.0})
    return PostureWindow(
        device_id=DEVICE,
        site=SITE,
        seq=seq,
        window_start=start,
        window_end=start + timedelta(minutes=1),
        frames=10,
        presence_s=60.0,
        posture_changes=0,
        metrics={"cva_deg": stats},
    )


def _broker_config(url: str, **extra: Any) -> BrokerConfig:
    return BrokerConfig.model_validate(
        {"url": url, "keepalive_s": 5, "reconnect_min_s": 1, "reconnect_max_s": 2, **extra}
    )


class Subscriber:
    """A persistent-session subscriber that records every decoded device message."""

    def __init__(self, broker: MosquittoBroker, topic: str = "edgescreen/v1/#", tls: CertPair | None = None,
                 ca: Path | None = None) -> None:  # fmt: skip
        self.messages: list[tuple[Any, bool]] = []
        self.lock = threading.Lock()
        self.client = mqtt.Client(
            callback_api_version=CallbackAPIVersion.VERSION2, client_id=f"sub-{uuid.uuid4().hex[:8]}",
            protocol=mqtt.MQTTv5,
        )  # fmt: skip
        if ca is not None:
            self.client.tls_set(
                ca_certs=str(ca),
                certfile=str(tls.cert) if tls else None,
                keyfile=str(tls.key) if tls else None,
                tls_version=ssl.PROTOCOL_TLS_CLIENT,
            )
        self.client.reconnect_delay_set(1, 2)
        self.topic = topic
        self.subscribed = threading.Event()
        self.client.on_connect = self._on_connect
        self.client.on_message = self._on_message
        self.client.on_subscribe = lambda *a: self.subscribed.set()
        props = Properties(PacketTypes.CONNECT)
        props.SessionExpiryInterval = 3600
        self.client.connect_async(broker.host, broker.port, keepalive=5, clean_start=False, properties=props)
        self.client.loop_start()
        assert self.subscribed.wait(10), "subscriber could not subscribe"

    def _on_connect(self, client: mqtt.Client, userdata: Any, flags: Any, rc: Any, props: Any) -> None:
        if not rc.is_failure:
            client.subscribe(self.topic, qos=1)

    def _on_message(self, client: mqtt.Client, userdata: Any, msg: mqtt.MQTTMessage) -> None:
        message = decode(bytes(msg.payload), msg.topic)  # every payload must validate against the wire schema
        with self.lock:
            self.messages.append((message, bool(msg.retain)))

    def scores(self) -> list[PostureWindow]:
        with self.lock:
            return [m for m, _ in self.messages if isinstance(m, PostureWindow)]

    def wait_for(self, predicate: Callable[[], bool], timeout: float) -> bool:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if predicate():
                return True
            time.sleep(0.05)
        return predicate()

    def seqs(self) -> set[int]:
        return {m.seq for m in self.scores()}

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()


def retained_status(broker: MosquittoBroker, timeout: float = 5.0) -> Status | None:
    """The retained status message a fresh subscriber gets."""
    sub = Subscriber(broker, topic_for(SITE, DEVICE, "status"))
    try:
        sub.wait_for(lambda: bool(sub.messages), timeout)
        with sub.lock:
            found = [m for m, retained in sub.messages if retained and isinstance(m, Status)]
        return found[-1] if found else None
    finally:
        sub.close()


def _assert_no_gap(sub: Subscriber, total: int) -> None:
    scores = sub.scores()
    seqs = {m.seq for m in scores}
    assert seqs == set(range(total)), f"missing seq: {sorted(set(range(total)) - seqs)[:20]}"
    # one message_id per seq: duplicates are redeliveries of the same message, never new ones
    ids_by_seq: dict[int, set[uuid.UUID]] = {}
    for m in scores:
        ids_by_seq.setdefault(m.seq, set()).add(m.message_id)
    assert all(len(ids) == 1 for ids in ids_by_seq.values())


@pytest.fixture
def subscriber(broker: MosquittoBroker) -> Iterator[Subscriber]:
    sub = Subscriber(broker)
    yield sub
    sub.close()


def _posture_publisher(url: str, outbox: Outbox) -> MqttPublisher:
    """dev-1's posture publisher on `outbox`, deleting a score only once the broker acknowledged it."""
    return MqttPublisher(
        _broker_config(url), outbox, site=SITE, device_id=DEVICE, role="posture", client_id="dev-1", delivery=PUBACK
    )


def test_broker_restart_mid_stream_loses_nothing(
    tmp_path: Path, broker: MosquittoBroker, subscriber: Subscriber
) -> None:
    total = 150
    outbox = Outbox(tmp_path / "outbox.sqlite", max_messages=10_000)
    publisher = _posture_publisher(broker.url, outbox)
    publisher.start()
    assert publisher.wait_connected(10)
    for seq in range(total):
        outbox.put(topic_for(SITE, DEVICE, "posture"), encode(_window(seq)), seq=seq)
        publisher.wake()
        if seq == total // 3:
            assert subscriber.wait_for(lambda: len(subscriber.seqs()) > 10, 10)
            broker.stop()
            assert subscriber.wait_for(lambda: not publisher.connected, 5)
        if seq == 2 * total // 3:
            assert not publisher.connected
            assert outbox.depth() > 0  # scores queued while the broker was down
            broker.start()
        time.sleep(0.01)
    assert subscriber.wait_for(lambda: len(subscriber.seqs()) == total, 30)
    _assert_no_gap(subscriber, total)
    assert publisher.wait_drained(10)
    assert publisher.stop(drain_s=5)
    assert publisher.stats.disconnects >= 1 and publisher.stats.connects >= 2
    outbox.close()


def _producer_main(outbox_path: str, url: str, count: int, interval: float) -> None:
    """The device side of the SIGKILL test: produce `count` scores into the outbox and publish them."""
    outbox = Outbox(outbox_path, max_messages=10_000)
    publisher = _posture_publisher(url, outbox)
    publisher.start()
    for _ in range(count):
        seq = outbox.next_seq()
        outbox.put(topic_for(SITE, DEVICE, "posture"), encode(_window(seq)), seq=seq)
        publisher.wake()
        time.sleep(interval)
    if not publisher.wait_drained(30):
        raise SystemExit(3)
    publisher.stop(drain_s=5)


def _start_producer(outbox: Path, url: str, count: int) -> subprocess.Popen[bytes]:
    code = (
        f"from tests.edge.test_delivery import _producer_main; _producer_main({str(outbox)!r}, {url!r}, {count}, 0.02)"
    )
    return subprocess.Popen([sys.executable, "-c", code], cwd=ROOT)


def test_device_sigkill_mid_stream_loses_nothing_and_fires_last_will(
    tmp_path: Path, broker: MosquittoBroker, subscriber: Subscriber
) -> None:
    total, more = 120, 20
    outbox = tmp_path / "outbox.sqlite"
    proc = _start_producer(outbox, broker.url, total)
    try:
        assert subscriber.wait_for(lambda: len(subscriber.seqs()) >= 30, 20), "device never published"
        status = retained_status(broker)
        assert status is not None and status.state == "online"
        proc.send_signal(signal.SIGKILL)
        assert proc.wait(10) == -signal.SIGKILL
        assert len(subscriber.seqs()) < total
        # The broker publishes the retained last will as soon as the connection drops without DISCONNECT.
        assert subscriber.wait_for(lambda: (s := retained_status(broker, 1.0)) is not None and s.state == "offline", 10)
        with Outbox(outbox) as box:
            waiting = {json.loads(m.payload)["seq"] for m in box.pending()}
        committed = subscriber.seqs() | waiting
        assert committed == set(range(len(committed))), "a committed score is missing"
        # restart the device: it replays the outbox and carries on after every number handed out before the kill
        proc = _start_producer(outbox, broker.url, more)
        assert proc.wait(60) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert subscriber.wait_for(lambda: len(subscriber.seqs()) == len(committed) + more, 20)
    new = sorted(subscriber.seqs() - committed)
    assert len(new) == more and new[0] > max(committed) and new == list(range(new[0], new[0] + more))
    ids_by_seq: dict[int, set[uuid.UUID]] = {}
    for m in subscriber.scores():
        ids_by_seq.setdefault(m.seq, set()).add(m.message_id)
    assert all(len(ids) == 1 for ids in ids_by_seq.values()), "a sequence number was used twice"
    with Outbox(outbox) as box:
        assert box.depth() == 0
    final = retained_status(broker)
    assert final is not None and final.state == "offline"  # the clean stop marks the device offline


@pytest.fixture
def tls_broker(tmp_path: Path) -> Iterator[tuple[MosquittoBroker, TestCA, CertPair]]:
    ca = TestCA(tmp_path / "pki")
    server = ca.issue("broker", server=True)
    extra = (
        f"cafile {ca.cert_path}\ncertfile {server.cert}\nkeyfile {server.key}\n"
        "require_certificate true\nuse_identity_as_username true\n"
    )
    broker = MosquittoBroker(tmp_path / "broker", extra_config=extra)
    broker.start()
    yield broker, ca, ca.issue("dev-1")
    broker.stop()


def test_mutual_tls_accepts_a_device_certificate_and_refuses_none(
    tmp_path: Path, tls_broker: tuple[MosquittoBroker, TestCA, CertPair]
) -> None:
    broker, ca, device = tls_broker
    url = f"mqtts://{broker.host}:{broker.port}"
    good = _broker_config(url, tls={"ca": str(ca.cert_path), "cert": str(device.cert), "key": str(device.key)})
    no_cert = _broker_config(url, tls={"ca": str(ca.cert_path)})

    assert "accepted" in check_broker(good, "dev-1", None, timeout=5)
    with pytest.raises((ConnectionError, ssl.SSLError, OSError)):
        check_broker(no_cert, "dev-1", None, timeout=3)

    sub = Subscriber(broker, ca=ca.cert_path, tls=ca.issue("collector"))
    outbox = Outbox(tmp_path / "outbox.sqlite")
    publisher = MqttPublisher(
        good, outbox, site=SITE, device_id=DEVICE, role="posture", client_id="dev-1", delivery=PUBACK
    )
    publisher.start()
    try:
        for seq in range(5):
            outbox.put(topic_for(SITE, DEVICE, "posture"), encode(_window(seq)), seq=seq)
        publisher.wake()
        assert sub.wait_for(lambda: len(sub.seqs()) == 5, 10)
        _assert_no_gap(sub, 5)
    finally:
        publisher.stop(drain_s=2)
        sub.close()

    # a device without a client certificate never gets connected, and its scores stay queued
    outbox2 = Outbox(tmp_path / "outbox2.sqlite")
    outbox2.put(topic_for(SITE, DEVICE, "posture"), encode(_window(99)), seq=99)
    refused = MqttPublisher(
        no_cert, outbox2, site=SITE, device_id=DEVICE, role="posture", client_id="dev-x", delivery=PUBACK
    )
    refused.start()
    try:
        assert not refused.wait_connected(3)
    finally:
        refused.stop(drain_s=0)
    assert outbox2.depth() == 1
    outbox.close()
    outbox2.close()


def test_password_is_sent_from_the_secret_file(tmp_path: Path) -> None:
    pwfile = tmp_path / "passwd"
    subprocess.run(["mosquitto_passwd", "-b", "-c", str(pwfile), "dev-1", "right-password"], check=True)
    broker = MosquittoBroker(tmp_path / "broker", extra_config=f"password_file {pwfile}\n")
    broker.config_text = lambda: MosquittoBroker.config_text(broker).replace(  # type: ignore[method-assign]
        "allow_anonymous true", "allow_anonymous false"
    )
    broker.start()
    try:
        ok = _broker_config(broker.url, username="dev-1")
        assert "accepted" in check_broker(ok, "dev-1", b"right-password", timeout=5)
        with pytest.raises(ConnectionError, match="refused"):
            check_broker(ok, "dev-1", b"wrong", timeout=5)
    finally:
        broker.stop()
