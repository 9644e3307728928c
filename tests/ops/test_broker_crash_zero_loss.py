"""Zero loss across broker crashes: the shipped broker (persistence on, its 30 s autosave) is killed with SIGKILL
mid-stream, again and again, while devices publish through their real outbox and publisher and the real collector
stores. Mosquitto acknowledges a score before it saves it, so each crash can lose scores the broker had already
acknowledged; the devices keep every score until the collector's receipt names it, and send again what no receipt
confirmed. At the end every message id is stored exactly once.
"""

from __future__ import annotations

import os
import threading
import time
import uuid
from pathlib import Path

import pytest
from sqlalchemy import func, select

from collector.ingest import Ingestor, IngestSettings
from collector.mqtt_url import TlsFiles
from collector.simulate import posture
from collector.storage import open_database, schema
from contract.wire import encode, topic_for, utcnow
from edge.config import BrokerConfig, DeliveryConfig, TlsConfig
from edge.mqtt_client import MqttPublisher
from edge.outbox import Outbox
from edgescreen.provision import SitePKI, write_acl
from tests.support.shipped_broker import Pki, ShippedBroker, start_shipped_broker

SITE = "school1"
DEVICES = ("dev-a", "dev-b")


def _pki(root: Path) -> Pki:
    school = SitePKI(root, SITE)
    school.create_ca()
    school.issue("broker", "mqtt", hosts=("127.0.0.1", "localhost"))
    for device in DEVICES:
        school.issue("device", device)
    school.issue("collector", "c1")
    write_acl(root)
    return Pki(root=root, site=school)


class Device:
    """A device's delivery as the runtime runs it: scores into the outbox, the publisher drains it."""

    def __init__(self, pki: Pki, broker: ShippedBroker, name: str, state: Path, period_s: float) -> None:
        creds = pki.creds(f"{SITE}.{name}")
        config = BrokerConfig(
            url=f"mqtts://{broker.host}:{broker.port}",
            tls=TlsConfig.model_validate(
                {"ca": creds / "ca.crt", "cert": creds / "cert.pem", "key": creds / "key.pem"}
            ),
            keepalive_s=5,
            reconnect_min_s=0.5,
            reconnect_max_s=1.0,
        )
        # Short waits for the receipt, so that the test ends in seconds; the default is 60 s, doubling to 600 s.
        delivery = DeliveryConfig(receipt_timeout_s=2.0, receipt_timeout_max_s=4.0)
        self.name = name
        self.outbox = Outbox(state / f"{name}.sqlite")
        self.publisher = MqttPublisher(config, self.outbox, site=SITE, device_id=name, role="posture",
                                       client_id=name, delivery=delivery)  # fmt: skip
        self.period_s = period_s
        self.sent: list[str] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._produce, name=f"produce-{name}", daemon=True)

    def start(self) -> None:
        self.publisher.start()
        self._thread.start()

    def _produce(self) -> None:
        topic = topic_for(SITE, self.name, "posture")
        while not self._stop.wait(self.period_s):
            seq = self.outbox.next_seq()
            window = posture(SITE, self.name, seq, utcnow())
            self.outbox.put(topic, encode(window), seq)
            self.sent.append(str(window.message_id))
            self.publisher.wake()

    def stop_producing(self) -> None:
        self._stop.set()
        self._thread.join(5)

    def close(self) -> None:
        self.stop_producing()
        self.publisher.stop(drain_s=0)
        self.outbox.close()


def _run(tmp_path: Path, crashes: int, up_s: float, period_s: float) -> None:
    pki = _pki(tmp_path / "pki")
    broker = start_shipped_broker(pki.root, SITE, tmp_path / "broker-files", tmp_path / "broker")
    assert "persistence true" in broker.config_text() and "autosave_interval 30" in broker.config_text()
    creds = pki.creds(f"collector.{SITE}.c1")
    db = open_database(f"sqlite:///{tmp_path}/collector.db")
    settings = IngestSettings(
        f"mqtts://{broker.host}:{broker.port}",
        f"collector.{SITE}.c1",
        batch_max=200,
        tls=TlsFiles(creds / "ca.crt", creds / "cert.pem", creds / "key.pem"),
    )
    ingestor = Ingestor(settings, db)
    devices = [Device(pki, broker, name, tmp_path, period_s) for name in DEVICES]
    try:
        ingestor.start()
        assert ingestor.wait_connected(15), "the collector did not subscribe"
        for device in devices:
            device.start()
        for _ in range(crashes):
            time.sleep(up_s)
            broker.stop(kill=True)  # SIGKILL: no save; what came since the last autosave is gone
            time.sleep(0.3)
            broker.start()
        time.sleep(up_s)
        for device in devices:
            device.stop_producing()
        deadline = time.monotonic() + 45
        while time.monotonic() < deadline and any(d.outbox.depth() for d in devices):
            time.sleep(0.2)
        left = {d.name: d.outbox.depth() for d in devices}
        with db.reader.connect() as conn:
            rows = conn.execute(
                select(schema.scores.c.device_id, schema.scores.c.message_id).where(schema.scores.c.kind == "posture")
            ).all()
            (total,) = conn.execute(select(func.count()).select_from(schema.scores)).one()
        sent = sum(len(d.sent) for d in devices)
        resent = sum(d.publisher.stats.resent for d in devices)
        print(
            f"\nbroker crashes: {crashes}; sent {sent}, stored {len(rows)}, duplicates dropped "
            f"{ingestor.stats.duplicates}, re-sent for want of a receipt {resent}, still queued {left}"
        )
        assert left == dict.fromkeys(DEVICES, 0), "scores never confirmed by a receipt"
        for device in devices:
            stored = [m for d, m in rows if d == device.name]
            assert len(stored) == len(set(stored))  # exactly once
            assert set(stored) == set(device.sent), f"{device.name}: lost {len(set(device.sent) - set(stored))}"
        assert total >= len(rows)
        assert all(uuid.UUID(m) for _, m in rows)
    finally:
        for device in devices:
            device.close()
        ingestor.stop()
        broker.stop()


def test_broker_killed_three_times_mid_stream_loses_nothing_and_stores_each_score_once(tmp_path: Path) -> None:
    _run(tmp_path, crashes=3, up_s=3.0, period_s=0.02)


@pytest.mark.slow
def test_broker_killed_ten_times_under_a_longer_stream(tmp_path: Path) -> None:
    _run(tmp_path, crashes=int(os.environ.get("EDGESCREEN_CRASHES", "10")), up_s=6.0, period_s=0.01)
