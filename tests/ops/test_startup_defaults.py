"""Start-up defaults that used to surprise: `collector user add` without --db, `edge run` without --outbox."""

from __future__ import annotations

from pathlib import Path

import pytest

from edgescreen.cli import main

REPO = Path(__file__).resolve().parents[2]


def test_user_add_uses_the_services_database_or_refuses(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    from collector.storage import open_database
    from collector.users import active_account

    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("DB_URL", raising=False)
    monkeypatch.setenv("EDGESCREEN_COLLECTOR_ENV", str(tmp_path / "missing.env"))
    password = tmp_path / "pw"
    password.write_text("correct horse battery\n")
    add = ["collector", "user", "add", "--site", "s1", "--password-file", str(password), "ann"]
    assert main(add) == 2
    assert "which database? give --db" in capsys.readouterr().err
    assert not list(tmp_path.glob("*.db")), "no database guessed in the current folder"
    env = tmp_path / "collector.env"
    env.write_text(f"# as installed\nBROKER_URL=mqtts://localhost:8883\nDB_URL=sqlite:///{tmp_path}/service.db\n")
    monkeypatch.setenv("EDGESCREEN_COLLECTOR_ENV", str(env))
    assert main(add) == 0
    db = open_database(f"sqlite:///{tmp_path}/service.db")
    try:
        account = active_account(db, "ann")
        assert account is not None and account.sites == ["s1"] and account.role == "staff"
    finally:
        db.dispose()
    monkeypatch.setenv("DB_URL", f"sqlite:///{tmp_path}/from-env.db")
    assert main(["collector", "user", "disable", "ann"]) == 1, "$DB_URL wins over collector.env: no ann there"


def test_edge_run_by_hand_gets_its_own_outbox(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from edge.commands.runtime import _own_outbox_outside_systemd
    from edge.config import load_profile

    profile = load_profile(REPO / "firmware_config" / "profiles" / "office-posture.yaml")
    for name in ("INVOCATION_ID", "STATE_DIRECTORY", "EDGESCREEN_STATE_DIR"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("XDG_STATE_HOME", str(tmp_path))
    own = _own_outbox_outside_systemd(profile).outbox_path()
    assert own.parent.parent == tmp_path / "edgescreen" and own.parent.is_dir()
    assert profile.device.device_id in str(own)
    monkeypatch.setenv("INVOCATION_ID", "0123")  # under systemd the unit's state directory stays the default
    assert _own_outbox_outside_systemd(profile).outbox_path() == profile.outbox_path()
