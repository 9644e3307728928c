"""A device revoked while it is connected: what a reload does to its open connection, and the documented
procedure that drops it (docs/deploy.md, "Revoking a device"), on the shipped configuration and a real Mosquitto.
"""

from __future__ import annotations

import os
import signal
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from edgescreen.cli import main
from tests.support.shipped_broker import (
    Client,
    Pki,
    ShippedBroker,
    connects,
    issue_school1,
    shipped_broker_for,
    wait_for,
)

NOT_AUTHORIZED = 0x87  # MQTT v5 PUBACK reason code


@pytest.fixture
def site(tmp_path: Path) -> Pki:
    return issue_school1(tmp_path / "pki")


@pytest.fixture
def broker(site: Pki, tmp_path: Path) -> Iterator[ShippedBroker]:
    with shipped_broker_for(site, tmp_path) as b:
        yield b


def _publish(client: Client, device: str, payload: bytes) -> int:
    info = client.client.publish(f"edgescreen/v1/school1/{device}/posture", payload, qos=1)
    wait_for(lambda: info.mid in client.pubacks, what=f"PUBACK from {device}")
    return client.pubacks[info.mid]


def test_a_reload_keeps_a_revoked_connection_and_a_restart_drops_it(site: Pki, broker: ShippedBroker) -> None:
    collector = Client(broker, site.creds("collector.school1.c1"), site.ca())
    assert collector.connect(clean_start=False, session_expiry_s=3600)
    collector.client.subscribe("edgescreen/v1/school1/+/posture", qos=1)
    wait_for(lambda: bool(collector.subacks), what="the collector's subscription")
    revoked, other = (
        Client(broker, site.creds("school1.dev-a"), site.ca()),
        Client(broker, site.creds("school1.dev-b"), site.ca()),
    )
    probes: list[Client] = []
    try:
        assert revoked.connect() and other.connect()
        assert _publish(revoked, "dev-a", b"before") == 0

        # `provision revoke` writes the CRL and the ACL into the broker's folder; the broker is reloaded. A device
        # provisioned meanwhile may publish only once the reload is done: it tells when the broker has reloaded.
        assert main(["provision", "device", "--pki", str(site.root), "--site", "school1", "dev-c"]) == 0
        probe = Client(broker, site.creds("school1.dev-c"), site.ca())
        probes.append(probe)
        assert probe.connect() and _publish(probe, "dev-c", b"probe") == NOT_AUTHORIZED
        assert main(["provision", "revoke", "--pki", str(site.root), "--site", "school1", "dev-a"]) == 0
        assert broker.proc is not None
        os.kill(broker.proc.pid, signal.SIGHUP)  # systemctl reload mosquitto
        wait_for(lambda: _publish(probe, "dev-c", b"probe") == 0, what="the reload")
        assert not connects(broker, site, "school1.dev-a", timeout=2.0), (
            "the reloaded CRL refuses the revoked certificate"
        )

        # The limit: the open TLS session stays, but the reloaded ACL no longer lets it publish anything.
        assert revoked.client.is_connected() and revoked.disconnects == []
        assert _publish(revoked, "dev-a", b"after revoke") == NOT_AUTHORIZED
        assert _publish(other, "dev-b", b"valid") == 0
        wait_for(lambda: any(p == b"valid" for _, p in collector.messages), what="the valid device's score")
        assert [p for t, p in collector.messages if t.endswith("/dev-a/posture")] == [b"before"]

        # The procedure: restart the broker (systemctl restart mosquitto). Every connection drops; the revoked
        # device cannot come back, the others reconnect on their own and the collector keeps its session.
        broker.restart(down_s=0.2)
        wait_for(lambda: revoked.disconnects != [], what="the revoked connection dropped")
        wait_for(lambda: other.client.is_connected() and collector.client.is_connected(), 15, "the reconnections")
        assert _publish(other, "dev-b", b"after restart") == 0
        wait_for(lambda: any(p == b"after restart" for _, p in collector.messages), what="the score after restart")
        time.sleep(2.0)  # paho retries the revoked device's connection after 1 s, then 2 s
        assert not revoked.client.is_connected()
        assert "certificate verify failed" in broker.broker_log()
    finally:
        for client in (revoked, other, collector, *probes):
            client.close()
