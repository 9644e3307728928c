"""`edgescreen maintenance`: outboxes compacted without losing a queued message; collector retention."""

from __future__ import annotations

import json
import sqlite3
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy import func, select

from collector.simulate import posture
from collector.storage import Database, open_database, schema
from collector.storage.writes import Rejected
from collector.timeutil import utcnow_naive
from contract.wire import topic_for
from edge.outbox import Outbox
from edgescreen import maintenance
from edgescreen.cli import main
from tests.support.storage import store_batch


def _filled_outbox(path: Path, total: int, keep: int) -> list[bytes]:
    """An outbox that held `total` 1 KiB messages of which the newest `keep` are still waiting."""
    with Outbox(path) as box:
        ids = box.put_many([("t/x", bytes([i % 251]) * 1024, i) for i in range(total)])
        box.ack_many(ids[: total - keep])
        return [m.payload for m in box.pending()]


def test_outboxes_are_compacted_and_keep_every_queued_message(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    state = tmp_path / "state"
    waiting = {
        state / "outbox.sqlite": _filled_outbox(state / "outbox.sqlite", 1500, 7),
        state / "gait-booth" / "outbox.sqlite": _filled_outbox(state / "gait-booth" / "outbox.sqlite", 800, 0),
    }
    sizes = {p: sum(f.stat().st_size for f in (p, Path(f"{p}-wal")) if f.exists()) for p in waiting}

    assert main(["maintenance", "--state-dir", str(state), "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    rows = {Path(r["path"]): r for r in report["outboxes"]}
    assert set(rows) == set(waiting)
    for path, payloads in waiting.items():
        row = rows[path]
        assert row["error"] is None and row["skipped"] is None
        assert row["depth"] == len(payloads) and row["dropped"] == 0
        assert row["bytes_before"] == sizes[path]
        assert row["bytes_after"] < sizes[path] / 4, "free pages and the WAL were not reclaimed"
        with Outbox(path) as box:
            assert [m.payload for m in box.pending()] == payloads
            assert box.next_seq() == {7: 1500, 0: 800}[len(payloads)], "the sequence number survived"


def test_a_busy_outbox_is_skipped_and_a_corrupt_one_is_an_error(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setattr(maintenance, "BUSY_TIMEOUT_MS", 100)
    state = tmp_path / "state"
    busy_path = state / "posture" / "outbox.sqlite"
    payloads = _filled_outbox(busy_path, 50, 5)
    writer = sqlite3.connect(busy_path, isolation_level=None)
    writer.execute("BEGIN IMMEDIATE")  # a device in the middle of a write
    writer.execute("INSERT INTO outbox (topic, payload) VALUES ('t/x', x'00')")
    assert main(["maintenance", "--state-dir", str(state)]) == 0
    out = capsys.readouterr().out
    assert f"{busy_path}: depth 5, dropped 0, skipped (not compacted:" in out
    writer.execute("COMMIT")
    writer.close()
    with Outbox(busy_path) as box:
        assert [m.payload for m in box.pending()][:5] == payloads and box.depth() == 6

    (state / "headpose").mkdir()
    (state / "headpose" / "outbox.sqlite").write_bytes(b"this is not a database" * 100)
    assert main(["maintenance", "--state-dir", str(state)]) == 1
    captured = capsys.readouterr()
    (error,) = [line for line in captured.err.splitlines() if line.startswith("error:")]
    assert error.startswith(f"error: {state / 'headpose' / 'outbox.sqlite'}: ")
    assert f"{busy_path}: depth 6, dropped 0," in captured.out, "the good outbox is still compacted"


def test_missing_state_dir_is_named(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["maintenance", "--state-dir", str(tmp_path / "nope")]) == 1
    assert f"--state-dir {tmp_path / 'nope'} is not a folder" in capsys.readouterr().err


def _seed(db: Database) -> dict[str, str]:
    now = datetime.now(UTC)
    old = posture("school-m", "booth-1", 1, now - timedelta(days=400))
    recent = posture("school-m", "booth-1", 2, now - timedelta(days=2))
    received = utcnow_naive()
    with db.engine.begin() as conn:
        rejected = [
            Rejected(
                topic_for("school-m", "booth-1", "posture"), "invalid", "old", b"{}", received - timedelta(days=60)
            ),
            Rejected(topic_for("school-m", "booth-1", "posture"), "invalid", "new", b"{}", received),
        ]
        store_batch(conn, db, [old, recent], rejected, received_at=received)
        long_ago = received - timedelta(days=500)
        base = {"site": "school-m", "device_id": "booth-1", "rule": "forward_head", "severity": "warning"}
        for state, resolved in (("resolved", long_ago), ("open", None)):
            conn.execute(
                schema.alerts.insert().values(
                    alert_id=str(uuid.uuid4()),
                    state=state,
                    summary=state,
                    dedup_key=f"k-{state}",
                    opened_at=long_ago,
                    updated_at=long_ago,
                    resolved_at=resolved,
                    **base,
                )
            )
    return {"old": str(old.message_id), "recent": str(recent.message_id)}


@pytest.mark.parametrize("dialect", ["sqlite", "postgresql"])
def test_retention_deletes_only_what_is_older_than_the_cutoff(
    tmp_path: Path, dialect: str, request: pytest.FixtureRequest, capsys: pytest.CaptureFixture[str]
) -> None:
    url = f"sqlite:///{tmp_path}/c.db" if dialect == "sqlite" else str(request.getfixturevalue("pg_url"))
    db = open_database(url)
    ids = _seed(db)
    state = tmp_path / "state"
    state.mkdir()
    code = main(["maintenance", "--state-dir", str(state), "--db", url, "--retain-days", "365", "--json"])
    assert code == 0
    deleted = json.loads(capsys.readouterr().out)["retention"]["deleted"]
    assert deleted["scores"] == 1 and deleted["dead_letters"] == 1 and deleted["alerts"] == 1
    assert deleted["metric_values"] > 0
    with db.reader.connect() as conn:
        assert [r[0] for r in conn.execute(select(schema.scores.c.message_id))] == [ids["recent"]]
        metric_ids = {r[0] for r in conn.execute(select(schema.metric_values.c.message_id))}
        assert metric_ids == {ids["recent"]}
        assert [r[0] for r in conn.execute(select(schema.dead_letters.c.detail))] == ["new"]
        assert [r[0] for r in conn.execute(select(schema.alerts.c.state))] == ["open"]
        assert conn.execute(select(func.count()).select_from(schema.devices)).scalar() == 1
    db.dispose()


def test_retention_applies_to_the_collector_database_named_in_the_environment(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """The timer's unit reads /etc/edgescreen/collector.env, whose DB_URL names the collector's database."""
    url = f"sqlite:///{tmp_path}/c.db"
    db = open_database(url)
    ids = _seed(db)
    (tmp_path / "state").mkdir()
    monkeypatch.setenv("DB_URL", url)
    assert main(["maintenance", "--state-dir", str(tmp_path / "state"), "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["retention"]["deleted"]["scores"] == 1
    with db.reader.connect() as conn:
        assert [r[0] for r in conn.execute(select(schema.scores.c.message_id))] == [ids["recent"]]
    db.dispose()
    monkeypatch.delenv("DB_URL")
    assert main(["maintenance", "--state-dir", str(tmp_path / "state"), "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["retention"] is None, "a device host has no collector database"


def test_retention_refuses_a_zero_day_window(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (tmp_path / "s").mkdir()
    url = f"sqlite:///{tmp_path}/c.db"
    assert main(["maintenance", "--state-dir", str(tmp_path / "s"), "--db", url, "--retain-days", "0"]) == 1
    assert "retention must be at least 1 day" in capsys.readouterr().err


def test_an_outbox_open_in_a_running_device_is_compacted_and_stays_usable(tmp_path: Path) -> None:
    state = tmp_path / "state"
    with Outbox(state / "edge" / "outbox.sqlite") as device:
        ids = device.put_many([("t/x", b"y" * 2048, i) for i in range(600)])
        device.ack_many(ids[:595])
        report = maintenance.compact_outbox(state / "edge" / "outbox.sqlite")
        assert report.ok and report.skipped is None and report.depth == 5
        assert report.bytes_after < report.bytes_before / 10
        device.put("t/x", b"after", 600)  # the device's own connection goes on writing
        assert [m.payload for m in device.pending()] == [b"y" * 2048] * 5 + [b"after"]
