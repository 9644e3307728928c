"""The shipped broker configuration, started for real with certificates from `edgescreen provision`."""

from __future__ import annotations

import datetime as dt
import grp
import os
import re
import shutil
import subprocess
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import select

from collector.simulate import posture
from collector.storage import Database, open_database, schema
from contract.wire import encode, topic_for
from edgescreen.provision import SitePKI, write_acl
from tests.support.collector import collector_cmd
from tests.support.shipped_broker import ROOT, Client, Pki, ShippedBroker, start_shipped_broker, wait_for


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> Pki:
    root = tmp_path_factory.mktemp("pki")
    school = SitePKI(root, "school1")
    school.create_ca()
    school.issue("broker", "mqtt", hosts=("127.0.0.1", "localhost"))
    for device in ("dev-a", "dev-b", "dev-revoked"):
        school.issue("device", device)
    school.issue("device", "dev-expired", days=1, not_before=dt.datetime.now(dt.UTC) - dt.timedelta(days=3))
    school.issue("collector", "c1")
    school.revoke("device", "dev-revoked")
    other = SitePKI(root, "school2")
    other.create_ca()
    other.issue("device", "dev-a")
    write_acl(root)
    return Pki(root=root, site=school)


@pytest.fixture(scope="module")
def secure_broker(pki: Pki, tmp_path_factory: pytest.TempPathFactory) -> Iterator[ShippedBroker]:
    files = tmp_path_factory.mktemp("broker-files")
    broker = start_shipped_broker(pki.root, "school1", files, tmp_path_factory.mktemp("broker"))
    yield broker
    broker.stop()


def _connects(broker: ShippedBroker, creds: Path | None, ca: Path) -> bool:
    client = Client(broker, creds, ca)
    try:
        return client.connect(timeout=3.0)
    finally:
        client.close()


def test_device_with_valid_certificate_connects(pki: Pki, secure_broker: ShippedBroker) -> None:
    ca = pki.root / "school1" / "ca.crt"
    assert _connects(secure_broker, pki.creds("school1.dev-a"), ca)


@pytest.mark.parametrize(
    ("identity", "site"),
    [
        (None, "school1"),  # no client certificate
        ("school2.dev-a", "school2"),  # a certificate of another site's CA
        ("school1.dev-expired", "school1"),  # expired
        ("school1.dev-revoked", "school1"),  # revoked: listed in the CRL the broker reads
    ],
)
def test_broker_refuses_bad_client_certificates(
    pki: Pki, secure_broker: ShippedBroker, identity: str | None, site: str
) -> None:
    ca = pki.root / "school1" / "ca.crt"
    creds = None if identity is None else pki.creds(identity, site)
    assert not _connects(secure_broker, creds, ca)


def test_acl_confines_devices_and_collectors(pki: Pki, secure_broker: ShippedBroker) -> None:
    ca = pki.root / "school1" / "ca.crt"
    collector = Client(secure_broker, pki.creds("collector.school1.c1"), ca)
    dev_a = Client(secure_broker, pki.creds("school1.dev-a"), ca)
    try:
        assert collector.connect() and dev_a.connect()
        collector.client.subscribe("edgescreen/v1/#", qos=1)
        dev_a.client.subscribe("edgescreen/v1/#", qos=1)
        wait_for(lambda: len(collector.subacks) == 1 and len(dev_a.subacks) == 1)
        assert collector.subacks[0] == [1]  # granted QoS 1
        # Mosquitto grants a subscription and applies the read ACL per message: a device receives nothing.

        own = dev_a.client.publish("edgescreen/v1/school1/dev-a/posture", b"own", qos=1)
        foreign = dev_a.client.publish("edgescreen/v1/school1/dev-b/posture", b"foreign", qos=1)
        forged = collector.client.publish("edgescreen/v1/school1/dev-b/posture", b"forged", qos=1)
        alert = collector.client.publish("edgescreen/v1/school1/alerts", b"alert", qos=1)
        wait_for(
            lambda: {own.mid, foreign.mid} <= set(dev_a.pubacks) and {forged.mid, alert.mid} <= set(collector.pubacks)
        )
        time.sleep(0.5)
        received = {payload for _, payload in collector.messages}
        assert b"own" in received
        assert b"alert" in received
        assert b"foreign" not in received  # device A cannot publish on device B's topic
        assert b"forged" not in received  # a collector cannot publish device scores
        assert not dev_a.messages  # not even its own scores or the site's alerts
    finally:
        collector.close()
        dev_a.close()


def test_acl_file_lists_exactly_the_issued_identities(pki: Pki) -> None:
    acl = (pki.root / "acl").read_text()
    assert "user school1.dev-a\ntopic write edgescreen/v1/school1/dev-a/posture\n" in acl
    assert "user school1.dev-revoked" not in acl  # revocation also drops the ACL entry
    assert (
        "user collector.school1.c1\ntopic read edgescreen/v1/#\ntopic write edgescreen/v1/+/alerts\n"
        "topic write edgescreen/v1/+/+/receipts\n"
    ) in acl
    reads = {
        block.split("\n", 1)[0]: re.findall(r"^topic read (.*)$", block, flags=re.M) for block in acl.split("user ")[1:]
    }
    # A device reads its own receipts and nothing else.
    assert reads["school1.dev-a"] == ["edgescreen/v1/school1/dev-a/receipts"]
    assert reads["school1.dev-b"] == ["edgescreen/v1/school1/dev-b/receipts"]


def test_a_device_reads_only_its_own_receipts_and_only_collectors_write_them(
    pki: Pki, secure_broker: ShippedBroker
) -> None:
    """The receipts that let a device delete its scores: device A gets its own, never device B's, and no device can
    forge one (for itself or another); the collector's reach the device."""
    ca = pki.root / "school1" / "ca.crt"
    collector = Client(secure_broker, pki.creds("collector.school1.c1"), ca)
    dev_a = Client(secure_broker, pki.creds("school1.dev-a"), ca)
    dev_b = Client(secure_broker, pki.creds("school1.dev-b"), ca)
    try:
        assert collector.connect() and dev_a.connect() and dev_b.connect()
        dev_a.client.subscribe("edgescreen/v1/school1/+/receipts", qos=1)
        dev_b.client.subscribe("edgescreen/v1/school1/dev-b/receipts", qos=1)
        wait_for(lambda: len(dev_a.subacks) == 1 and len(dev_b.subacks) == 1)
        for_a = collector.client.publish("edgescreen/v1/school1/dev-a/receipts", b"receipt-a", qos=1)
        for_b = collector.client.publish("edgescreen/v1/school1/dev-b/receipts", b"receipt-b", qos=1)
        forged_own = dev_a.client.publish("edgescreen/v1/school1/dev-a/receipts", b"forged-own", qos=1)
        forged_b = dev_a.client.publish("edgescreen/v1/school1/dev-b/receipts", b"forged-b", qos=1)
        wait_for(lambda: {for_a.mid, for_b.mid} <= set(collector.pubacks))
        wait_for(lambda: {forged_own.mid, forged_b.mid} <= set(dev_a.pubacks))
        wait_for(lambda: len(dev_a.messages) >= 1 and len(dev_b.messages) >= 1, what="the receipts")
        time.sleep(0.5)
        assert collector.pubacks[for_a.mid] == 0 and collector.pubacks[for_b.mid] == 0  # the collector may write
        assert dev_a.messages == [("edgescreen/v1/school1/dev-a/receipts", b"receipt-a")]  # not B's
        assert dev_b.messages == [("edgescreen/v1/school1/dev-b/receipts", b"receipt-b")]  # nothing A forged
    finally:
        for client in (collector, dev_a, dev_b):
            client.close()


def _collector_cmd(tmp_path: Path, broker_url: str, *options: str, client_id: str | None = None) -> list[str]:
    return collector_cmd(broker_url, f"sqlite:///{tmp_path}/c.db", client_id or f"c1-{tmp_path.name}", *options)


def test_collector_with_its_certificate_stores_what_a_device_publishes(
    pki: Pki, secure_broker: ShippedBroker, tmp_path: Path
) -> None:
    """The collector as the systemd unit runs it against the shipped broker: site CA, client certificate."""
    creds = pki.creds("collector.school1.c1")
    tls = [
        "--tls-ca",
        str(creds / "ca.crt"),
        "--tls-cert",
        str(creds / "cert.pem"),
        "--tls-key",
        str(creds / "key.pem"),
    ]
    log = tmp_path / "collector.log"
    url = f"mqtts://{secure_broker.host}:{secure_broker.port}"
    cmd = _collector_cmd(tmp_path, url, *tls, client_id="collector.school1.c1")  # its certificate's identity
    proc = subprocess.Popen(cmd, cwd=ROOT, stdout=log.open("ab"), stderr=subprocess.STDOUT)
    device = Client(secure_broker, pki.creds("school1.dev-a"), pki.root / "school1" / "ca.crt")
    db = open_database(f"sqlite:///{tmp_path}/c.db")
    try:
        wait_for(lambda: "subscribed to" in log.read_text(), timeout=30)
        assert device.connect()
        window = posture("school1", "dev-a", 0, dt.datetime.now(dt.UTC))
        device.client.publish(topic_for("school1", "dev-a", "posture"), encode(window), qos=1)
        wait_for(lambda: _stored(db) == [str(window.message_id)], timeout=15)
    finally:
        device.close()
        proc.terminate()
        proc.wait(timeout=20)
        db.dispose()


def test_collector_tls_and_secret_options_are_checked_before_it_starts(pki: Pki, tmp_path: Path) -> None:
    creds = pki.creds("collector.school1.c1")
    short = tmp_path / "short.key"
    short.write_text("abc\n")
    http = ["--http", "127.0.0.1:18081", "--secret-file"]
    pair = ["--tls-cert", str(creds / "cert.pem"), "--tls-key", str(creds / "key.pem")]
    cases = [
        ("mqtt://127.0.0.1:1", [*http, str(tmp_path / "nope.key")], "--secret-file .*nope.key: cannot read it"),
        ("mqtt://127.0.0.1:1", [*http, str(short)], "--secret-file .*short.key: 3 bytes"),
        ("mqtts://127.0.0.1:1", ["--tls-ca", str(tmp_path / "nope.crt")], "--tls-ca .*nope.crt: no such file"),
        ("mqtts://127.0.0.1:1", ["--tls-cert", str(creds / "cert.pem")], "--tls-cert and --tls-key go together"),
        ("mqtts://127.0.0.1:1", ["--tls-ca", str(creds / "key.pem")], "--tls-ca .*key.pem: not a PEM CA"),
        ("mqtt://127.0.0.1:1", ["--tls-ca", str(creds / "ca.crt")], "need an mqtts:// --broker"),
        # With a certificate the client id is its identity: another --client-id, or several ingest processes
        # sharing one certificate (the broker would let them replace each other), are refused.
        ("mqtts://127.0.0.1:1", pair, "--client-id 'c1-.*': .* identity 'collector.school1.c1'; drop --client-id"),
    ]
    for url, tls, error in cases:
        done = subprocess.run(_collector_cmd(tmp_path, url, *tls), cwd=ROOT, capture_output=True, text=True, timeout=60)
        assert done.returncode == 2, (tls, done.stderr)
        assert re.search(error, done.stderr), done.stderr
        assert len(done.stderr.strip().splitlines()) == 1, done.stderr
    workers = _collector_cmd(tmp_path, "mqtts://127.0.0.1:1", *pair, "--workers", "2", client_id="collector.school1.c1")
    done = subprocess.run(workers, cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert done.returncode == 2 and "--workers 2 with --tls-cert" in done.stderr, done.stderr
    assert not (tmp_path / "c.db").exists(), "a refused start touched the database"


def _stored(db: Database) -> list[str]:
    with db.reader.connect() as conn:
        return [str(r[0]) for r in conn.execute(select(schema.scores.c.message_id))]


@pytest.mark.skipif(shutil.which("runuser") is None, reason="runuser not installed")
def test_broker_files_are_readable_by_the_broker_group_only_and_follow_revocations(tmp_path: Path) -> None:
    """Mosquitto reads its files as the mosquitto user; the CA key stays in the PKI folder, and a revocation
    reaches the broker's copy of the CRL and ACL without another step."""
    from edgescreen.cli import main

    try:
        group = grp.getgrnam("mosquitto").gr_name
    except KeyError:
        pytest.skip("no mosquitto group on this machine")
    root = tmp_path / "pki"
    site = SitePKI(root, "school9")
    site.create_ca()
    site.issue("broker", "mqtt")
    site.issue("device", "dev-x")
    write_acl(root)
    # A folder the mosquitto user can reach (pytest's own temporary folders are root-only).
    outside = Path(tempfile.mkdtemp(prefix="edgescreen-broker-files-"))
    outside.chmod(0o755)
    dest = outside / "edgescreen"
    try:
        args = ["provision", "broker-files", "--pki", str(root), "--site", "school9", "mqtt"]
        assert main([*args, "--dest", str(dest), "--group", group]) == 0
        assert sorted(p.name for p in dest.iterdir()) == ["acl", "ca.crt", "cert.pem", "crl.pem", "key.pem"]
        assert dest.stat().st_mode & 0o777 == 0o750
        for path in dest.iterdir():
            assert path.stat().st_mode & 0o777 == 0o640 and grp.getgrgid(path.stat().st_gid).gr_name == group
        read = subprocess.run(
            ["runuser", "-u", "mosquitto", "--", "cat", str(dest / "key.pem")], capture_output=True, check=False
        )
        assert (
            read.returncode == 0 and read.stdout == (root / "school9/issued/broker.school9.mqtt/key.pem").read_bytes()
        )
        ca_key = subprocess.run(["runuser", "-u", "mosquitto", "--", "cat", str(root / "school9/ca.key")],
                                capture_output=True, check=False)  # fmt: skip
        assert ca_key.returncode != 0, "the broker's user must not read the CA key"

        assert "user school9.dev-x" in (dest / "acl").read_text()
        assert main(["provision", "revoke", "--pki", str(root), "--site", "school9", "dev-x"]) == 0
        assert (dest / "crl.pem").read_bytes() == (root / "school9/crl.pem").read_bytes()
        assert "user school9.dev-x" not in (dest / "acl").read_text()
    finally:
        shutil.rmtree(outside)


def test_broker_files_need_the_broker_certificate(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from edgescreen.cli import main

    SitePKI(tmp_path / "pki", "school9").create_ca()
    args = ["provision", "broker-files", "--pki", str(tmp_path / "pki"), "--site", "school9", "mqtt"]
    assert main([*args, "--dest", str(tmp_path / "files"), "--group", grp.getgrgid(os.getgid()).gr_name]) == 1
    err = capsys.readouterr().err
    assert "broker.school9.mqtt/cert.pem" in err and "provision broker first" in err
    assert not (tmp_path / "files").exists()
