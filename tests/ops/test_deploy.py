"""systemd units (verified and scored by systemd-analyze) and the install/uninstall scripts."""

from __future__ import annotations

import configparser
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
UNITS = sorted(p.name for p in (ROOT / "systemd").iterdir() if p.suffix in {".service", ".timer"})
SERVICES = [u for u in UNITS if u.endswith(".service")]
EXPOSURE_LIMIT = 4.0  # systemd-analyze security: "OK" or better

pytestmark = pytest.mark.skipif(shutil.which("systemd-analyze") is None, reason="systemd-analyze not installed")


def _unit_dir(tmp_path: Path) -> Path:
    """The units with their install paths pointed at this checkout, so that verify can find every binary."""
    out = tmp_path / "units"
    out.mkdir()
    edgescreen = Path(sys.executable).with_name("edgescreen")
    for name in UNITS:
        text = (ROOT / "systemd" / name).read_text()
        text = text.replace("/opt/edgescreen/venv/bin/edgescreen", str(edgescreen))
        text = text.replace("/opt/edgescreen/scripts/", f"{ROOT}/scripts/")
        (out / name).write_text(text)
    return out


def _instance(name: str) -> str:
    return name.replace("@.", "@office-posture.")


def _directives(name: str) -> dict[str, list[str]]:
    parser = configparser.ConfigParser(strict=False, interpolation=None, delimiters=("=",))
    parser.optionxform = str  # type: ignore[assignment,method-assign]
    values: dict[str, list[str]] = {}
    for line in (ROOT / "systemd" / name).read_text().splitlines():
        if "=" in line and not line.startswith(("#", "[")):
            key, value = line.split("=", 1)
            values.setdefault(key.strip(), []).append(value.strip())
    return values


@pytest.mark.parametrize("unit", UNITS)
def test_unit_verifies(tmp_path: Path, unit: str) -> None:
    units = _unit_dir(tmp_path)
    target = units / _instance(unit)
    if target.name != unit:
        shutil.copy(units / unit, target)
    result = subprocess.run(
        ["systemd-analyze", "verify", "--man=no", str(target)], capture_output=True, text=True, timeout=60
    )
    # Only our own unit counts: the host may have unrelated broken units systemd-analyze mentions.
    problems = [line for line in result.stderr.splitlines() if unit.split("@", maxsplit=1)[0] in line]
    assert result.returncode == 0 and not problems, result.stderr


def test_gait_booth_drop_in_gives_the_runtime_its_console(tmp_path: Path) -> None:
    """Student codes come on standard input; a service's is /dev/null unless the booth's drop-in applies."""
    units = _unit_dir(tmp_path)
    drop_in = "edgescreen-edge@gait-booth.service.d"
    shutil.copytree(ROOT / "systemd" / drop_in, units / drop_in)
    shutil.copy(units / "edgescreen-edge@.service", units / "edgescreen-edge@gait-booth.service")
    result = subprocess.run(
        ["systemd-analyze", "verify", "--man=no", str(units / "edgescreen-edge@gait-booth.service")],
        capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    problems = [line for line in result.stderr.splitlines() if "edgescreen" in line and "subject-codes" in line]
    assert result.returncode == 0 and not problems, result.stderr
    text = (units / drop_in / "subject-codes.conf").read_text()
    assert "StandardInput=tty-force" in text and "StandardOutput=journal" in text
    tty = re.search(r"^TTYPath=(\S+)$", text, flags=re.M)
    assert tty and f"DeviceAllow={tty.group(1)} rw" in text, "DevicePolicy=closed would refuse the tty"
    profile = (ROOT / "firmware_config" / "profiles" / "gait-booth.yaml").read_text()
    assert re.search(r'^\s+input: "-"', profile, flags=re.M), "the shipped booth profile reads standard input"

    dest = tmp_path / "root"
    env = {**os.environ, "DESTDIR": str(dest)}
    subprocess.run([str(ROOT / "scripts" / "install.sh"), "--component", "device", "--no-venv"], check=True, env=env)
    assert (dest / "etc/systemd/system" / drop_in / "subject-codes.conf").read_text() == text
    subprocess.run([str(ROOT / "scripts" / "uninstall.sh")], check=True, env=env, capture_output=True)
    assert not (dest / "etc/systemd/system" / drop_in).exists()


@pytest.mark.parametrize("unit", SERVICES)
def test_unit_exposure_is_ok_or_better(tmp_path: Path, unit: str) -> None:
    units = _unit_dir(tmp_path)
    result = subprocess.run(
        ["systemd-analyze", "security", "--offline=true", "--no-pager", str(units / unit)],
        capture_output=True,
        text=True,
        timeout=60,
    )
    match = re.search(r"Overall exposure level for \S+: ([0-9.]+)", result.stdout)
    assert match, result.stdout + result.stderr
    assert float(match.group(1)) <= EXPOSURE_LIMIT


@pytest.mark.parametrize("unit", ["edgescreen-edge@.service", "edgescreen-collector.service"])
def test_long_running_services_are_supervised(unit: str) -> None:
    d = _directives(unit)
    assert d["Type"] == ["notify"]
    assert d["Restart"] == ["on-failure"]
    assert "WatchdogSec" in d and "MemoryMax" in d and "StartLimitBurst" in d
    assert d["ProtectSystem"] == ["strict"] and d["NoNewPrivileges"] == ["yes"]
    assert any(v.startswith("@system-service") for v in d["SystemCallFilter"])
    assert all(":" in v for v in d["LoadCredential"])  # secrets only as credentials
    assert d["User"] == ["edgescreen"]


def test_edge_unit_reaches_only_camera_and_gpu_devices() -> None:
    d = _directives("edgescreen-edge@.service")
    assert d["DevicePolicy"] == ["closed"]
    allowed = {v.split()[0] for v in d["DeviceAllow"]}
    assert allowed == {"char-video4linux", "char-nvidia-frontend", "char-nvidia-uvm", "char-nvhost", "char-nvmap"}
    engine = _directives("edgescreen-engine@.service")
    assert engine["Type"] == ["oneshot"]
    assert "edgescreen-engine@%i.service" in " ".join(d["After"])


def test_install_lays_out_files_and_keeps_edited_profiles(tmp_path: Path) -> None:
    dest = tmp_path / "root"
    env = {**os.environ, "DESTDIR": str(dest)}
    subprocess.run([str(ROOT / "scripts" / "install.sh"), "--no-venv"], check=True, env=env, capture_output=True)
    profile = dest / "etc/edgescreen/profiles/office-posture.yaml"
    assert profile.read_text() == (ROOT / "firmware_config/profiles/office-posture.yaml").read_text()
    assert (dest / "etc/systemd/system/edgescreen-edge@.service").exists()
    assert (dest / "etc/udev/rules.d/99-edgescreen-camera.rules").exists()
    assert (dest / "etc/edgescreen/credentials").stat().st_mode & 0o777 == 0o700

    profile.write_text(profile.read_text() + "\n# edited on site\n")
    result = subprocess.run(
        [str(ROOT / "scripts" / "install.sh"), "--no-venv"], check=True, env=env, capture_output=True, text=True
    )
    assert "keeping edited" in result.stdout
    assert profile.read_text().endswith("# edited on site\n")

    subprocess.run([str(ROOT / "scripts" / "uninstall.sh")], check=True, env=env, capture_output=True)
    assert not (dest / "etc/systemd/system/edgescreen-edge@.service").exists()
    assert not (dest / "opt/edgescreen").exists()
    assert profile.exists()  # configuration stays unless --purge
    subprocess.run([str(ROOT / "scripts" / "uninstall.sh"), "--purge"], check=True, env=env, capture_output=True)
    assert not (dest / "etc/edgescreen").exists()


def test_collector_install_makes_its_settings_and_secrets_once(tmp_path: Path) -> None:
    dest = tmp_path / "root"
    env = {**os.environ, "DESTDIR": str(dest)}
    install = [str(ROOT / "scripts" / "install.sh"), "--component", "collector", "--no-venv"]
    subprocess.run(install, check=True, env=env, capture_output=True)
    settings = dict(
        line.split("=", 1)
        for line in (dest / "etc/edgescreen/collector.env").read_text().splitlines()
        if line and not line.startswith("#")
    )
    assert set(settings) == {"BROKER_URL", "DB_URL", "HTTP_LISTEN"}, "every ${VAR} of the unit's ExecStart"
    unit = (ROOT / "systemd" / "edgescreen-collector.service").read_text()
    assert all(f"${{{name}}}" in unit for name in settings)
    secrets = dest / "etc/edgescreen/credentials/collector"
    assert secrets.stat().st_mode & 0o777 == 0o700
    keys = {name: (secrets / name).read_bytes() for name in ("session-key", "webhook-secret")}
    for name, key in keys.items():
        assert (secrets / name).stat().st_mode & 0o777 == 0o600
        assert len(key.strip()) >= 16, name
    assert keys["session-key"] != keys["webhook-secret"]
    # Every credential the unit loads from there is either made here or named in docs/deploy.md.
    loaded = re.findall(r"^LoadCredential=[\w-]+:/etc/edgescreen/credentials/collector/(\S+)$", unit, flags=re.M)
    deploy = (ROOT / "docs" / "deploy.md").read_text()
    assert sorted(set(loaded) - set(keys)) == ["ca.crt", "cert.pem", "key.pem"]
    assert all(f"credentials/collector/{name}" in deploy for name in ("ca.crt", "cert.pem", "key.pem"))

    (dest / "etc/edgescreen/collector.env").write_text("BROKER_URL=mqtts://mqtt.school1.lan:8883\n")
    subprocess.run(install, check=True, env=env, capture_output=True)
    assert {name: (secrets / name).read_bytes() for name in keys} == keys, "an upgrade must keep the secrets"
    assert "mqtt.school1.lan" in (dest / "etc/edgescreen/collector.env").read_text()


def test_install_rejects_unknown_component(tmp_path: Path) -> None:
    env = {**os.environ, "DESTDIR": str(tmp_path)}
    result = subprocess.run(
        [str(ROOT / "scripts" / "install.sh"), "--component", "toaster"], env=env, capture_output=True, text=True
    )
    assert result.returncode == 2 and "--component" in result.stderr


def test_jetson_setup_skips_missing_tools_cleanly(tmp_path: Path) -> None:
    env = {"PATH": "/usr/bin:/bin", "NVPMODEL_MODE": "0", "JETSON_CLOCKS": "1", "FAN_PWM": "180"}
    result = subprocess.run(
        [str(ROOT / "scripts" / "jetson-setup.sh")], env=env, capture_output=True, text=True, timeout=30
    )
    assert result.returncode == 0
    assert "nvpmodel not found" in result.stdout and "jetson_clocks not found" in result.stdout
