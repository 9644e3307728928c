"""Names the system uses as topic levels cannot be a site or a device: a device named `alerts` would get the
ACL `edgescreen/v1/<site>/alerts/#`, which covers the site's alert topic."""

from __future__ import annotations

import datetime as dt
import json
import uuid
from pathlib import Path

import pytest
from pydantic import ValidationError

from collector.simulate import posture
from contract.wire import RESERVED_NAMES, Alert, WireError, decode, encode, topic_for
from edge.config import ProfileError, validate_profile
from edgescreen.cli import main
from edgescreen.provision import SitePKI, render_acl

# Every level of the topic tree the system uses itself, and what MQTT gives a meaning to.
SYSTEM_LEVELS = ["edgescreen", "v1", "alerts", "receipts", "posture", "gait", "headpose", "status", "heartbeat"]
MQTT_SPECIAL = ["+", "#", "$SYS", "$share", "a/b", "a+", ""]


def test_every_level_the_system_uses_is_reserved() -> None:
    assert set(SYSTEM_LEVELS) <= RESERVED_NAMES


@pytest.fixture
def pki(tmp_path: Path) -> Path:
    root = tmp_path / "pki"
    assert main(["provision", "ca", "--pki", str(root), "--site", "school1"]) == 0
    return root


@pytest.mark.parametrize("name", SYSTEM_LEVELS + MQTT_SPECIAL)
def test_provision_refuses_a_device_named_after_a_topic_level(
    pki: Path, name: str, capsys: pytest.CaptureFixture[str]
) -> None:
    acl = (pki / "acl").read_text()
    capsys.readouterr()
    assert main(["provision", "device", "--pki", str(pki), "--site", "school1", name]) == 1
    err = capsys.readouterr().err
    assert len(err.strip().splitlines()) == 1 and err.startswith("error: device "), err
    if name in SYSTEM_LEVELS:
        assert f"{name!r} is a topic level the system uses" in err
    assert not (pki / "school1" / "issued").exists()  # no certificate issued
    assert (pki / "acl").read_text() == acl


@pytest.mark.parametrize("name", ["alerts", "status", "+", "#", "$SYS"])
def test_provision_refuses_a_site_named_after_a_topic_level(
    tmp_path: Path, name: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["provision", "ca", "--pki", str(tmp_path / "pki"), "--site", name]) == 1
    err = capsys.readouterr().err
    assert len(err.strip().splitlines()) == 1 and err.startswith("error: site "), err
    assert not (tmp_path / "pki" / name).exists()


def test_a_device_issued_under_a_reserved_name_before_gets_no_acl_entry(pki: Path) -> None:
    """A registry from before names were reserved: its device `alerts` must not keep write access to the site's
    alert topic; it can still be revoked."""
    site = SitePKI(pki, "school1")
    site.issue("device", "dev-a")
    registry = json.loads((site.dir / "registry.json").read_text())
    registry["issued"]["school1.alerts"] = {"kind": "device", "name": "alerts", "serial": 12345, "not_after": "x"}
    (site.dir / "registry.json").write_text(json.dumps(registry))
    acl = render_acl(pki)
    assert "topic write edgescreen/v1/school1/dev-a/posture" in acl
    assert "school1.alerts" not in acl and "edgescreen/v1/school1/alerts" not in acl
    assert site.revoke("device", "alerts") == 12345


@pytest.mark.parametrize(("site", "device"), [("school1", "alerts"), ("school1", "status"), ("receipts", "dev-a")])
def test_the_wire_schema_rejects_reserved_sites_and_devices(site: str, device: str) -> None:
    now = dt.datetime.now(dt.UTC)
    payload = encode(posture("school1", "dev-a", 0, now)).replace(b'"school1"', f'"{site}"'.encode())
    payload = payload.replace(b'"dev-a"', f'"{device}"'.encode())
    with pytest.raises(WireError) as info:
        decode(payload, topic_for(site, device, "posture"))
    assert info.value.reason == "invalid" and "is a topic level the system uses" in info.value.detail
    with pytest.raises(ValidationError, match="is a topic level the system uses"):
        Alert(
            alert_id=uuid.uuid4(),
            site=site,
            device_id=device,
            rule="r",
            severity="info",
            state="open",
            summary="s",
            dedup_key="k",
            at=now,
        )


def test_a_profile_with_a_reserved_device_id_is_refused() -> None:
    data = {
        "device": {"site": "school1", "device_id": "heartbeat"},
        "role": "posture",
        "camera": {"source": "clip.mp4"},
        "broker": {"url": "mqtt://127.0.0.1:1883"},
    }
    with pytest.raises(ProfileError, match=r"device.device_id: 'heartbeat' is a topic level the system uses"):
        validate_profile(data, source="p.yaml")
