"""The site CRL expires (30 days after it was signed) and the broker then refuses every client; the nightly
`edgescreen maintenance --pki` re-signs it well before that and reloads the broker, and `provision` warns.

Every broker here is the shipped configuration on a real Mosquitto, with the PKI of `edgescreen provision`.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
from cryptography import x509

from edgescreen import provision
from edgescreen.cli import main
from edgescreen.provision import SitePKI
from tests.support.shipped_broker import Pki, ShippedBroker, connects, issue_school1, shipped_broker_for

CRL_DAYS = 30  # what `provision` signs


def _sign_crl_at(pki: SitePKI, monkeypatch: pytest.MonkeyPatch, signed: dt.datetime) -> x509.CertificateRevocationList:
    """Re-sign the site's CRL as `provision` would have at `signed` (the project's own signing code)."""
    with monkeypatch.context() as m:
        m.setattr(provision, "_now", lambda: signed)
        path = pki.write_crl()
    return x509.load_pem_x509_crl(path.read_bytes())


@pytest.fixture
def site(tmp_path: Path) -> Pki:
    return issue_school1(tmp_path / "pki", ("dev-a", "dev-revoked"), collector=None, revoked=("dev-revoked",))


def _maintenance(site: Pki, broker: ShippedBroker, capsys: pytest.CaptureFixture[str]) -> dict[str, object]:
    assert broker.proc is not None
    reload = f"kill -HUP {broker.proc.pid}"  # what `systemctl reload mosquitto` does (ExecReload=)
    code = main(["maintenance", "--pki", str(site.root), "--reload-broker", reload, "--json"])
    out = capsys.readouterr().out
    assert code == 0, out
    report: dict[str, object] = json.loads(out)
    return report


def test_an_expired_crl_shuts_out_valid_clients_until_maintenance_renews_it_and_reloads_the_broker(
    site: Pki,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    # Signed 30 days ago, less 3 seconds: valid now, expired in 3 s (the last provision or revoke, a month ago).
    signed = dt.datetime.now(dt.UTC) - dt.timedelta(days=CRL_DAYS) + dt.timedelta(seconds=3)
    crl = _sign_crl_at(site.site, monkeypatch, signed)
    expires = crl.next_update_utc
    assert expires is not None
    with shipped_broker_for(site, tmp_path) as broker:
        assert connects(broker, site, "school1.dev-a"), "the CRL is still valid"

        time.sleep(max(0.0, (expires - dt.datetime.now(dt.UTC)).total_seconds()) + 0.5)
        assert not connects(broker, site, "school1.dev-a"), "an expired CRL refuses every client"
        assert "certificate verify failed" in broker.broker_log()

        report = _maintenance(site, broker, capsys)
        [row] = report["crl"]["sites"]  # type: ignore[index]
        assert row["site"] == "school1" and row["renewed"] is True and row["error"] is None
        renewed = x509.load_pem_x509_crl((tmp_path / "files" / "crl.pem").read_bytes())
        assert renewed.next_update_utc is not None
        assert renewed.next_update_utc - dt.datetime.now(dt.UTC) > dt.timedelta(days=CRL_DAYS - 1)
        assert report["crl"]["broker_files"] == [str(tmp_path / "files")]  # type: ignore[index]
        assert report["crl"]["reloaded"] is True  # type: ignore[index]

        assert connects(broker, site, "school1.dev-a"), "after the renewal and a reload the device is back"
        assert not connects(broker, site, "school1.dev-revoked"), "the renewed CRL still revokes"


def test_a_crl_is_renewed_only_once_less_than_half_its_validity_is_left(
    site: Pki, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    now = dt.datetime.now(dt.UTC)
    crl_path = site.root / "school1" / "crl.pem"
    _sign_crl_at(site.site, monkeypatch, now - dt.timedelta(days=14))
    before = crl_path.read_bytes()
    # 16 days left of 30: kept; and nothing changed, so the broker is not reloaded (`false` would fail).
    assert main(["maintenance", "--pki", str(site.root), "--reload-broker", "false", "--json"]) == 0
    [row] = json.loads(capsys.readouterr().out)["crl"]["sites"]
    assert row["renewed"] is False and crl_path.read_bytes() == before

    _sign_crl_at(site.site, monkeypatch, now - dt.timedelta(days=16))
    # 14 days left: renewed, with every revoked serial still in it.
    assert main(["maintenance", "--pki", str(site.root), "--json"]) == 0
    [row] = json.loads(capsys.readouterr().out)["crl"]["sites"]
    assert row["renewed"] is True
    crl = x509.load_pem_x509_crl(crl_path.read_bytes())
    revoked = site.site.registry()["revoked"]
    assert isinstance(revoked, list) and len(revoked) == 1
    assert crl.get_revoked_certificate_by_serial_number(int(revoked[0])) is not None
    assert crl.next_update_utc is not None and crl.next_update_utc > now + dt.timedelta(days=CRL_DAYS - 1)


def test_a_failed_reload_is_an_error_and_names_the_command(
    site: Pki, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    from edgescreen.broker_files import install_broker_files

    install_broker_files(site.root, "school1", "mqtt", tmp_path / "files", group=None)
    _sign_crl_at(site.site, monkeypatch, dt.datetime.now(dt.UTC) - dt.timedelta(days=29))
    assert main(["maintenance", "--pki", str(site.root), "--reload-broker", "false"]) == 1
    captured = capsys.readouterr()
    assert "site school1: CRL renewed" in captured.out
    assert "error: the broker did not reload (`false` exited with 1)" in captured.err
    renewed = x509.load_pem_x509_crl((tmp_path / "files" / "crl.pem").read_bytes())
    assert renewed.next_update_utc is not None and renewed.next_update_utc > dt.datetime.now(dt.UTC)


def test_provision_warns_in_one_line_when_the_crl_is_close_to_expiry(
    site: Pki, monkeypatch: pytest.MonkeyPatch
) -> None:
    env = {**os.environ, "EDGESCREEN_PKI_DIR": str(site.root)}

    def provision_device(name: str) -> list[str]:
        cmd = [sys.executable, "-m", "edgescreen", "provision", "device", "--site", "school1", name]
        done = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=120, check=True)
        return [line for line in done.stderr.splitlines() if "CRL" in line]

    assert provision_device("dev-b") == [], "a fresh CRL gives no warning"
    _sign_crl_at(site.site, monkeypatch, dt.datetime.now(dt.UTC) - dt.timedelta(days=26))
    [warning] = provision_device("dev-c")
    assert "WARNING" in warning and "site school1" in warning and "expires" in warning
    assert f"edgescreen maintenance --pki {site.root}" in warning, "it says how to renew it"

    _sign_crl_at(site.site, monkeypatch, dt.datetime.now(dt.UTC) - dt.timedelta(days=31))
    [warning] = provision_device("dev-d")
    assert "expired" in warning and "refuses every client" in warning


def test_the_nightly_unit_renews_a_due_crl_where_the_pki_lives(site: Pki, monkeypatch: pytest.MonkeyPatch) -> None:
    """The command edgescreen-maintenance-crl.service runs (pulled in by the nightly maintenance) renews the CRL
    in the folder that `provision` uses by default, and is skipped on hosts where that folder is empty."""
    units = Path(__file__).resolve().parents[2] / "systemd"
    crl_unit = (units / "edgescreen-maintenance-crl.service").read_text()
    assert "Wants=edgescreen-maintenance-crl.service" in (units / "edgescreen-maintenance.service").read_text()
    default_pki = "/etc/edgescreen/pki"  # `provision`'s default (commands/provision.py)
    assert f"ConditionDirectoryNotEmpty={default_pki}\n" in crl_unit
    [exec_start] = [line.split("=", 1)[1] for line in crl_unit.splitlines() if line.startswith("ExecStart=")]
    argv = exec_start.replace(default_pki, str(site.root)).split()
    argv[0] = str(Path(sys.executable).with_name("edgescreen"))

    _sign_crl_at(site.site, monkeypatch, dt.datetime.now(dt.UTC) - dt.timedelta(days=20))
    done = subprocess.run(argv, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    next_update = site.site.crl_dates()[1]
    assert next_update > dt.datetime.now(dt.UTC) + dt.timedelta(days=CRL_DAYS - 1)
    assert f"site school1: CRL renewed, next update {next_update.isoformat(timespec='seconds')}" in done.stdout
