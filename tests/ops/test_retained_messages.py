"""Retained messages on the shipped broker: one device tried to fill it with 1,000 retained messages of 60 kB
under its own topics. Mosquitto keeps every retained message in memory and in its persistence file until it
is replaced, so what a device may retain is bounded by the topics the ACL lets it write (one per message kind)
and by max_packet_size.
"""

from __future__ import annotations

import os
import signal
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from contract.wire import device_kinds
from edgescreen.cli import main
from tests.support.shipped_broker import Client, Pki, ShippedBroker, issue_school1, shipped_broker_for, wait_for

FLOOD = 1000
SIZE = 60_000
NOT_AUTHORIZED = 0x87  # MQTT v5 PUBACK reason code
MAX_PACKET = 69632  # max_packet_size in the shipped file
DEVICE_KINDS = device_kinds()


@pytest.fixture
def site(tmp_path: Path) -> Pki:
    return issue_school1(tmp_path / "pki")


@pytest.fixture
def broker(site: Pki, tmp_path: Path) -> Iterator[ShippedBroker]:
    with shipped_broker_for(site, tmp_path) as b:
        yield b


def _retained(broker: ShippedBroker, site: Pki, settle_s: float = 2.0) -> dict[str, int]:
    """Topic -> payload size of every retained message a fresh subscriber to the whole tree gets."""
    reader = Client(broker, site.creds("collector.school1.c1"), site.ca())
    assert reader.connect()
    try:
        reader.client.subscribe("edgescreen/v1/#", qos=1)
        wait_for(lambda: bool(reader.subacks), what="the subscription")
        seen = -1
        while seen != len(reader.messages):  # until nothing more arrives for settle_s
            seen = len(reader.messages)
            time.sleep(settle_s)
        return {topic: len(payload) for topic, payload in reader.messages}
    finally:
        reader.close()


def test_one_device_cannot_fill_the_broker_with_retained_messages(
    site: Pki, broker: ShippedBroker, tmp_path: Path
) -> None:
    device = Client(broker, site.creds("school1.dev-a"), site.ca())
    assert device.connect()
    try:
        mids = [
            device.client.publish(f"edgescreen/v1/school1/dev-a/r{i}", bytes([i % 251]) * SIZE, qos=1, retain=True).mid
            for i in range(FLOOD)
        ]
        # Its own message topics: retained, one message each, the newest replacing the last.
        for kind in DEVICE_KINDS:
            for n in range(3):
                mids.append(
                    device.client.publish(
                        f"edgescreen/v1/school1/dev-a/{kind}", bytes([n]) * SIZE, qos=1, retain=True
                    ).mid
                )
        wait_for(lambda: all(m in device.pubacks for m in mids), 60, "a PUBACK for every publish")
        refused = sum(device.pubacks[m] == NOT_AUTHORIZED for m in mids[:FLOOD])
        assert device.client.is_connected()
    finally:
        device.close()

    retained = _retained(broker, site)
    expected = {f"edgescreen/v1/school1/dev-a/{kind}": SIZE for kind in DEVICE_KINDS}
    assert retained == expected, f"{len(retained)} retained messages, {sum(retained.values())} bytes"
    assert refused == FLOOD, "every publish outside the device's message topics is refused"

    # What the broker saves to disk is bounded the same way: one message per kind, each under max_packet_size.
    broker.stop()  # a clean stop writes the persistence file
    saved = (tmp_path / "broker" / "mosquitto.db").stat().st_size
    assert saved < len(DEVICE_KINDS) * MAX_PACKET + 64 * 1024, f"persistence file of {saved} bytes"


def test_a_revoked_devices_retained_messages_are_no_longer_delivered(site: Pki, broker: ShippedBroker) -> None:
    """check_retain_source: a retained message is delivered only while its publisher may still write its topic."""
    for device in ("dev-a", "dev-b"):
        client = Client(broker, site.creds(f"school1.{device}"), site.ca())
        assert client.connect()
        mid = client.client.publish(f"edgescreen/v1/school1/{device}/status", b"online", qos=1, retain=True).mid
        wait_for(lambda: mid in client.pubacks, what=f"{device}'s PUBACK")  # noqa: B023 (waited for in the loop)
        assert client.pubacks[mid] < 0x80, "accepted (0x10: no subscriber yet)"
        client.close()
    assert set(_retained(broker, site, settle_s=0.5)) == {
        "edgescreen/v1/school1/dev-a/status",
        "edgescreen/v1/school1/dev-b/status",
    }

    assert main(["provision", "revoke", "--pki", str(site.root), "--site", "school1", "dev-a"]) == 0
    assert broker.proc is not None
    os.kill(broker.proc.pid, signal.SIGHUP)  # systemctl reload mosquitto
    wait_for(
        lambda: set(_retained(broker, site, settle_s=0.5)) == {"edgescreen/v1/school1/dev-b/status"},
        10,
        "the revoked device's retained status withheld",
    )


def test_the_nightly_maintenance_brings_an_upgraded_site_the_bounded_acl(
    site: Pki, broker: ShippedBroker, capsys: pytest.CaptureFixture[str]
) -> None:
    """A site provisioned by an older release has `topic write <device>/#` in the broker's ACL; the nightly
    maintenance regenerates the ACL from the registry, refreshes the broker's copy and reloads the broker."""
    old = (
        (site.root / "acl")
        .read_text()
        .replace("topic write edgescreen/v1/school1/dev-a/posture\n", "topic write edgescreen/v1/school1/dev-a/#\n")
    )
    assert "dev-a/#" in old
    (site.root / "acl").write_text(old)
    (broker.files / "acl").write_text(old)
    assert broker.proc is not None
    os.kill(broker.proc.pid, signal.SIGHUP)
    device = Client(broker, site.creds("school1.dev-a"), site.ca())
    assert device.connect()

    def publish(topic: str) -> int:
        mid = device.client.publish(f"edgescreen/v1/school1/dev-a/{topic}", b"x" * 100, qos=1, retain=True).mid
        wait_for(lambda: mid in device.pubacks, what="a PUBACK")
        return device.pubacks[mid]

    try:
        wait_for(lambda: publish("r1") < 0x80, what="the old ACL loaded")
        reload = f"kill -HUP {broker.proc.pid}"
        assert main(["maintenance", "--pki", str(site.root), "--reload-broker", reload]) == 0
        assert f"broker files updated in {broker.files}, broker reloaded" in capsys.readouterr().out
        assert "dev-a/#" not in (broker.files / "acl").read_text()
        wait_for(lambda: publish("r2") == NOT_AUTHORIZED, what="the regenerated ACL loaded")
        assert publish("status") < 0x80
    finally:
        device.close()
