"""Which client id a device or a collector connects with: the certificate's identity, else a kept random id."""

from __future__ import annotations

import stat
from pathlib import Path

import pytest

from collector.client_id import collector_client_id
from collector.mqtt_url import TlsFiles
from contract.tls_identity import CertificateIdentityError, certificate_identity
from edge.config import BrokerConfig
from edge.mqtt_client import MqttConfigError, client_id_for
from edgescreen.provision import SitePKI


@pytest.fixture(scope="module")
def creds(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The credentials bundle of device dev-a and of collector c1 of site school1, under one folder."""
    root = tmp_path_factory.mktemp("pki")
    site = SitePKI(root, "school1")
    site.create_ca()
    site.issue("device", "dev-a")
    site.issue("collector", "c1")
    return root / "school1" / "issued"


def _broker(creds: Path | None, client_id: str | None = None) -> BrokerConfig:
    tls = None if creds is None else {"ca": creds / "ca.crt", "cert": creds / "cert.pem", "key": creds / "key.pem"}
    return BrokerConfig.model_validate(
        {"url": "mqtts://broker:8883", "tls": tls or {"ca": "/x"}, "client_id": client_id}
    )


def test_certificate_identity_is_the_subject_cn(creds: Path, tmp_path: Path) -> None:
    assert certificate_identity(creds / "school1.dev-a" / "cert.pem") == "school1.dev-a"
    assert certificate_identity(creds / "collector.school1.c1" / "cert.pem") == "collector.school1.c1"
    with pytest.raises(CertificateIdentityError, match=r"key\.pem: not a PEM certificate"):
        certificate_identity(creds / "school1.dev-a" / "key.pem")
    with pytest.raises(CertificateIdentityError, match=r"nope\.pem: cannot read"):
        certificate_identity(tmp_path / "nope.pem")


def test_a_device_with_a_certificate_connects_as_its_identity(creds: Path) -> None:
    device = creds / "school1.dev-a"
    assert client_id_for(_broker(device), "school1-dev-a") == "school1.dev-a"
    assert client_id_for(_broker(device, client_id="school1.dev-a"), "x") == "school1.dev-a"
    assert client_id_for(_broker(None), "school1-dev-a") == "school1-dev-a"  # no certificate: as configured
    with pytest.raises(MqttConfigError, match=r"broker.client_id 'kiosk': .* identity 'school1.dev-a'; drop"):
        client_id_for(_broker(device, client_id="kiosk"), "kiosk")
    broken = BrokerConfig.model_validate(
        {"url": "mqtts://b", "tls": {"ca": device / "ca.crt", "cert": device / "nope.pem", "key": device / "key.pem"}}
    )
    with pytest.raises(MqttConfigError, match=r"broker.tls.cert: .*nope.pem: cannot read"):
        client_id_for(broken, "x")


def test_a_collector_with_a_certificate_connects_as_its_identity(creds: Path, tmp_path: Path) -> None:
    c1 = creds / "collector.school1.c1"
    tls = TlsFiles(c1 / "ca.crt", c1 / "cert.pem", c1 / "key.pem")
    assert collector_client_id(None, tls, "sqlite:///c.db", None, state_dir=tmp_path) == "collector.school1.c1"
    assert collector_client_id("collector.school1.c1", tls, "sqlite:///c.db", "g", state_dir=tmp_path)
    with pytest.raises(ValueError, match=r"--client-id 'edgescreen-collector-x': .*drop --client-id"):
        collector_client_id("edgescreen-collector-x", tls, "sqlite:///c.db", None, state_dir=tmp_path)
    with pytest.raises(ValueError, match=r"--workers 3 with --tls-cert"):
        collector_client_id(None, tls, "sqlite:///c.db", None, workers=3, state_dir=tmp_path)
    assert not list(tmp_path.iterdir())  # nothing kept: the certificate is the identity


def test_without_a_certificate_the_collector_id_is_random_and_kept(tmp_path: Path) -> None:
    plain = TlsFiles()
    first = collector_client_id(None, plain, "sqlite:///c.db", None, state_dir=tmp_path / "a")
    assert first == collector_client_id(None, plain, "sqlite:///c.db", None, state_dir=tmp_path / "a")  # restart
    elsewhere = collector_client_id(None, plain, "sqlite:///c.db", None, state_dir=tmp_path / "b")
    assert elsewhere != first  # not derived from anything an attacker can know (host name, database, group)
    assert first.startswith("edgescreen-collector-") and len(first.rsplit("-", 1)[1]) == 16
    other_db = collector_client_id(None, plain, "sqlite:///other.db", None, state_dir=tmp_path / "a")
    other_group = collector_client_id(None, plain, "sqlite:///c.db", "g", state_dir=tmp_path / "a")
    assert len({first, other_db, other_group}) == 3  # each database and share group has a session of its own
    kept = list((tmp_path / "a").iterdir())
    assert len(kept) == 3 and all(stat.S_IMODE(p.stat().st_mode) == 0o600 for p in kept)
    assert collector_client_id("mine", plain, "sqlite:///c.db", None, state_dir=tmp_path / "a") == "mine"


def test_a_collector_id_that_cannot_be_kept_is_one_clear_error(tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("not a folder")
    with pytest.raises(ValueError, match=r"cannot keep the collector's client id in .*file/.*: give --client-id"):
        collector_client_id(None, TlsFiles(), "sqlite:///c.db", None, state_dir=blocker)
