"""Device profiles: validation errors that name the file, key path and reason; secrets outside the profile."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml

from edge.config import ProfileError, SecretError, load_profile, read_secret, secret_path

ROOT = Path(__file__).resolve().parents[2]
PROFILES = ROOT / "firmware_config" / "profiles"


def _base() -> dict[str, Any]:
    return {
        "device": {"site": "site-1", "device_id": "dev-1"},
        "role": "posture",
        "camera": {"source": "clip.mp4"},
        "broker": {"url": "mqtt://127.0.0.1:1883"},
        "outbox": {"path": "state/outbox.sqlite"},
    }


def _write(tmp_path: Path, data: dict[str, Any], name: str = "profile.yaml") -> Path:
    path = tmp_path / name
    path.write_text(yaml.safe_dump(data))
    return path


@pytest.mark.parametrize("name", ["office-posture.yaml", "gait-booth.yaml", "head-pose-station.yaml"])
def test_shipped_profiles_validate(name: str) -> None:
    profile = load_profile(PROFILES / name)
    expected_role = {"office-posture.yaml": "posture", "gait-booth.yaml": "gait", "head-pose-station.yaml": "headpose"}
    assert profile.role == expected_role[name]
    assert profile.role_config() is getattr(profile, profile.role)
    # the shipped profiles use mutual TLS with keys from systemd credentials, never inline
    assert profile.broker.url.startswith("mqtts://")
    assert profile.broker.tls is not None and profile.broker.tls.key is not None
    assert profile.broker.tls.key.credential is not None


def test_unknown_key_names_file_path_and_suggestion(tmp_path: Path) -> None:
    data = _base()
    data["camera"]["sorce"] = data["camera"].pop("source")
    path = _write(tmp_path, data)
    with pytest.raises(ProfileError) as info:
        load_profile(path)
    text = str(info.value)
    assert str(path) in text
    assert "camera.sorce: unknown key; did you mean 'source'?" in text
    assert "camera.source: Field required" in text


def test_unknown_nested_key_and_top_level_key(tmp_path: Path) -> None:
    data = _base()
    data["broker"]["tls"] = {"ca": "ca.pem", "cert": "c.pem", "kye": "k.pem"}
    data["hearbeat_s"] = 10
    with pytest.raises(ProfileError) as info:
        load_profile(_write(tmp_path, data))
    text = str(info.value)
    assert "broker.tls.kye: unknown key; did you mean 'key'?" in text
    assert "hearbeat_s: unknown key; did you mean 'heartbeat_s'?" in text


def test_bad_values_name_their_key(tmp_path: Path) -> None:
    data = _base()
    data["broker"]["url"] = "http://broker:80"
    data["camera"]["fps"] = -5
    data["device"]["site"] = "Bad Site!"
    with pytest.raises(ProfileError) as info:
        load_profile(_write(tmp_path, data))
    text = str(info.value)
    assert "broker.url: scheme must be mqtt:// or mqtts://" in text
    assert "camera.fps: Input should be greater than 0" in text
    assert "device.site:" in text
    assert "3 problem(s)" in text


def test_inline_secret_is_rejected(tmp_path: Path) -> None:
    data = _base()
    data["broker"].update(username="dev-1", password="hunter2")
    with pytest.raises(ProfileError, match=r"broker\.password: secrets are not written in the profile"):
        load_profile(_write(tmp_path, data))


def test_role_section_must_match_role(tmp_path: Path) -> None:
    data = _base()
    data["gait"] = {}
    with pytest.raises(ProfileError, match="section 'gait' given but role is 'posture'"):
        load_profile(_write(tmp_path, data))


def test_yaml_syntax_error_names_line(tmp_path: Path) -> None:
    path = tmp_path / "broken.yaml"
    path.write_text("device:\n  site: a\n  device_id: [unclosed\nrole: posture\n")
    with pytest.raises(ProfileError, match=r"broken\.yaml: line \d+, column \d+: not valid YAML"):
        load_profile(path)


def test_missing_file_is_named(tmp_path: Path) -> None:
    with pytest.raises(ProfileError, match=r"nope\.yaml: cannot read"):
        load_profile(tmp_path / "nope.yaml")


def test_relative_paths_resolve_against_the_profile_folder(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    folder = tmp_path / "etc"
    folder.mkdir()
    data = _base()
    data["broker"]["tls"] = {"ca": "tls/ca.pem"}
    path = _write(folder, data)
    monkeypatch.chdir(tmp_path)
    profile = load_profile(path)
    assert profile.outbox_path() == folder / "state" / "outbox.sqlite"
    assert profile.broker.tls is not None
    assert secret_path(profile.broker.tls.ca, "broker.tls.ca") == folder / "tls" / "ca.pem"


def test_outbox_defaults_to_the_state_directory(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    data = _base()
    del data["outbox"]
    monkeypatch.setenv("EDGESCREEN_STATE_DIR", str(tmp_path / "state"))
    assert load_profile(_write(tmp_path, data)).outbox_path() == tmp_path / "state" / "outbox.sqlite"


def test_secrets_from_file_and_from_systemd_credentials(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "mqtt.pw").write_text("s3cret-from-file\n")
    creds = tmp_path / "creds"
    creds.mkdir()
    (creds / "site-secret").write_bytes(b"\x00\x01site-key")
    data = _base()
    data["broker"].update(username="dev-1", password={"file": "mqtt.pw"})
    data["secrets"] = {"site_hmac_key": {"credential": "site-secret"}}
    profile = load_profile(_write(tmp_path, data))
    assert profile.broker.password is not None
    assert read_secret(profile.broker.password, "broker.password") == b"s3cret-from-file"
    assert profile.secrets.site_hmac_key is not None

    monkeypatch.delenv("CREDENTIALS_DIRECTORY", raising=False)
    with pytest.raises(SecretError, match=r"secrets\.site_hmac_key: credential 'site-secret' needs \$CREDENTIALS"):
        read_secret(profile.secrets.site_hmac_key, "secrets.site_hmac_key")
    monkeypatch.setenv("CREDENTIALS_DIRECTORY", str(creds))
    assert read_secret(profile.secrets.site_hmac_key, "secrets.site_hmac_key") == b"\x00\x01site-key"

    (creds / "site-secret").write_bytes(b"\n")
    with pytest.raises(SecretError, match="is empty"):
        read_secret(profile.secrets.site_hmac_key, "secrets.site_hmac_key")


def test_secret_ref_needs_exactly_one_source(tmp_path: Path) -> None:
    data = _base()
    data["broker"].update(username="u", password={"file": "a", "credential": "b"})
    with pytest.raises(ProfileError, match=r"broker\.password: give exactly one of 'file' or 'credential'"):
        load_profile(_write(tmp_path, data))
