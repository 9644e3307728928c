"""The shipped broker configuration (firmware_config/mosquitto/edgescreen.conf), started for real on a test PKI.

Only paths, the port and the log destination are changed; every security setting is the shipped one.
"""

from __future__ import annotations

import grp
import os
import re
import ssl
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

from edgescreen.broker_files import install_broker_files
from edgescreen.provision import SitePKI, write_acl
from tests.support.broker import MosquittoBroker

ROOT = Path(__file__).resolve().parents[2]
SHIPPED_CONF = ROOT / "firmware_config" / "mosquitto" / "edgescreen.conf"


class ShippedBroker(MosquittoBroker):
    """Mosquitto running the shipped edgescreen.conf with its paths pointed at broker files installed by
    `provision broker-files` from a test PKI."""

    def __init__(self, workdir: Path, files: Path) -> None:
        super().__init__(workdir)
        self.files = files

    def config_text(self) -> str:
        text = SHIPPED_CONF.read_text()
        assert "/etc/mosquitto/edgescreen/" in text
        text = text.replace("/etc/mosquitto/edgescreen", str(self.files))
        text = re.sub(r"^listener 8883$", f"listener {self.port} {self.host}", text, flags=re.M)
        text = text.replace("/var/lib/mosquitto/", f"{self.workdir}/")
        text = text.replace("log_dest syslog", f"log_dest file {self.workdir}/broker.log")
        return text + ("\nuser root\n" if os.geteuid() == 0 else "")

    def broker_log(self) -> str:
        path = self.workdir / "broker.log"
        return path.read_text(errors="replace") if path.exists() else ""


def start_shipped_broker(pki_root: Path, site: str, files: Path, workdir: Path) -> ShippedBroker:
    """Install the broker files of `site` (issued as `broker.<site>.mqtt`) into `files` and start the broker."""
    install_broker_files(pki_root, site, "mqtt", files, group=grp.getgrgid(os.getgid()).gr_name)
    return ShippedBroker(workdir, files).start()  # type: ignore[return-value]


@contextmanager
def shipped_broker_for(site: Pki, workdir: Path) -> Iterator[ShippedBroker]:
    """The shipped broker of school1 on `site`, its files in `workdir/files` and its state in `workdir/broker`."""
    broker = start_shipped_broker(site.root, "school1", workdir / "files", workdir / "broker")
    try:
        yield broker
    finally:
        broker.stop()


@dataclass
class Pki:
    root: Path
    site: SitePKI

    def creds(self, identity: str, site: str = "school1") -> Path:
        return self.root / site / "issued" / identity

    def ca(self, site: str = "school1") -> Path:
        return self.root / site / "ca.crt"


def issue_school1(
    root: Path,
    devices: Sequence[str] = ("dev-a", "dev-b"),
    *,
    collector: str | None = "c1",
    revoked: Sequence[str] = (),
) -> Pki:
    """A school1 PKI as `provision` makes it: the CA, the broker's certificate for 127.0.0.1, `devices` (those in
    `revoked` then revoked), the collector, and the ACL."""
    school = SitePKI(root, "school1")
    school.create_ca()
    school.issue("broker", "mqtt", hosts=("127.0.0.1", "localhost"))
    for device in devices:
        school.issue("device", device)
    if collector is not None:
        school.issue("collector", collector)
    for device in revoked:
        school.revoke("device", device)
    write_acl(root)
    return Pki(root=root, site=school)


class Client:
    """A paho MQTT v5 client that records what happened, for assertions."""

    def __init__(
        self,
        broker: MosquittoBroker,
        creds: Path | None,
        ca: Path,
        client_id: str | None = None,
        will: tuple[str, bytes] | None = None,
    ) -> None:
        self.client = mqtt.Client(
            CallbackAPIVersion.VERSION2, client_id=client_id or f"t-{time.monotonic_ns()}", protocol=mqtt.MQTTv5
        )
        context = ssl.create_default_context(ssl.Purpose.SERVER_AUTH, cafile=str(ca))
        if creds is not None:
            context.load_cert_chain(str(creds / "cert.pem"), str(creds / "key.pem"))
        self.client.tls_set_context(context)
        if will is not None:
            self.client.will_set(will[0], will[1], qos=1, retain=True)
        self.broker = broker
        self.connected = threading.Event()
        self.session_present: bool | None = None
        self.disconnects: list[str] = []
        self.subacks: list[list[int]] = []
        self.pubacks: dict[int, int] = {}
        self.messages: list[tuple[str, bytes]] = []
        self.client.on_connect = self._on_connect
        self.client.on_disconnect = lambda c, u, f, rc, p: self.disconnects.append(str(rc))
        self.client.on_subscribe = lambda c, u, mid, codes, p: self.subacks.append([int(rc.value) for rc in codes])
        self.client.on_publish = lambda c, u, mid, rc, p: self.pubacks.__setitem__(mid, int(rc.value))
        self.client.on_message = lambda c, u, m: self.messages.append((m.topic, bytes(m.payload)))

    def _on_connect(self, client: mqtt.Client, userdata: object, flags: object, rc: object, props: object) -> None:
        if not getattr(rc, "is_failure", True):
            self.session_present = bool(getattr(flags, "session_present", False))
            self.connected.set()

    def connect(self, timeout: float = 5.0, clean_start: bool = True, session_expiry_s: int = 0) -> bool:
        props = Properties(PacketTypes.CONNECT)
        props.SessionExpiryInterval = session_expiry_s
        try:
            self.client.connect(
                self.broker.host, self.broker.port, keepalive=10, clean_start=clean_start, properties=props
            )
        except (ssl.SSLError, OSError):
            return False
        self.client.loop_start()
        return self.connected.wait(timeout)

    def close(self) -> None:
        self.client.loop_stop()
        self.client.disconnect()


def connects(broker: MosquittoBroker, site: Pki, identity: str, timeout: float = 3.0) -> bool:
    """Whether `identity` of school1 completes a TLS + MQTT connection within `timeout` seconds."""
    client = Client(broker, site.creds(identity), site.ca())
    try:
        return client.connect(timeout=timeout)
    finally:
        client.close()


def wait_for(cond: Callable[[], bool], timeout: float = 5.0, what: str = "condition") -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if cond():
            return
        time.sleep(0.05)
    raise AssertionError(f"{what} not met within {timeout}s")
