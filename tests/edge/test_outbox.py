"""The durable outbox: order, acknowledgement, the counted bound, restarts and a full disk."""

from __future__ import annotations

import sqlite3
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from edge.outbox import SEQ_RESERVE, Outbox, OutboxDamaged, OutboxFull
from edgescreen.cli import main
from tests.edge.test_edge_e2e import _profile

REPO = Path(__file__).resolve().parents[2]


def _payload(i: int) -> bytes:
    return f'{{"n": {i}}}'.encode()


def test_pending_keeps_put_order_and_ack_removes_only_that_message(tmp_path: Path) -> None:
    with Outbox(tmp_path / "o.sqlite", max_messages=100) as box:
        ids = [box.put(f"t/{i % 3}", _payload(i)) for i in range(10)]
        assert ids == sorted(ids)
        assert [m.payload for m in box.pending()] == [_payload(i) for i in range(10)]
        box.ack(ids[3])
        box.ack_many([ids[0], ids[9]])
        left = box.pending()
        assert [m.payload for m in left] == [_payload(i) for i in (1, 2, 4, 5, 6, 7, 8)]
        assert [m.topic for m in left] == [f"t/{i % 3}" for i in (1, 2, 4, 5, 6, 7, 8)]
        assert box.depth() == 7
        # paging after an id continues in order
        assert [m.payload for m in box.pending(limit=2, after_id=ids[4])] == [_payload(5), _payload(6)]


def test_bound_drops_oldest_and_counts_persistently(tmp_path: Path) -> None:
    path = tmp_path / "o.sqlite"
    with Outbox(path, max_messages=5) as box:
        for i in range(8):
            box.put("t", _payload(i))
        assert [m.payload for m in box.pending()] == [_payload(i) for i in range(3, 8)]
        assert box.dropped == 3
    with Outbox(path, max_messages=5) as box:
        assert box.dropped == 3
        box.put_many([("t", _payload(8), None), ("t", _payload(9), None)])
        assert box.dropped == 5
        assert [m.payload for m in box.pending()] == [_payload(i) for i in range(5, 10)]


def test_restart_after_kill_keeps_pending_and_sequence(tmp_path: Path) -> None:
    """A process that commits and is SIGKILLed leaves every committed message and its seq high-water mark."""
    path = tmp_path / "o.sqlite"
    code = textwrap.dedent(
        f"""
        import os, signal
        from edge.outbox import Outbox
        box = Outbox({str(path)!r}, max_messages=1000)
        for i in range(20):
            seq = box.next_seq()
            box.put("t", b"%d" % seq, seq=seq)
        box.ack(1)
        os.kill(os.getpid(), signal.SIGKILL)
        """
    )
    proc = subprocess.run([sys.executable, "-c", code], cwd=Path(__file__).resolve().parents[2], check=False)
    assert proc.returncode == -9
    with Outbox(path, max_messages=1000) as box:
        assert [m.payload for m in box.pending()] == [b"%d" % i for i in range(1, 20)]
        after_kill = box.next_seq()
        assert 20 <= after_kill <= 20 + SEQ_RESERVE, "numbers reserved before the kill are skipped, none reused"
    with Outbox(path, max_messages=1000) as box:
        assert box.next_seq() == after_kill + 1, "a clean close continues without a gap"


def test_full_database_fails_loudly_and_keeps_what_it_had(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    path = tmp_path / "o.sqlite"
    box = Outbox(path, max_messages=1_000_000, max_db_pages=12)
    stored: list[bytes] = []
    big = b"x" * 900
    with pytest.raises(OutboxFull, match="full"):
        for i in range(10_000):
            payload = b"%05d" % i + big
            box.put("t", payload)
            stored.append(payload)
    assert len(stored) > 5  # it did store some before filling up
    assert any(r.levelname == "CRITICAL" for r in caplog.records)
    # the failed put stored nothing, and everything before it is intact and in order
    assert [m.payload for m in box.pending()] == stored
    # acknowledging frees room, after which storing works again
    box.ack_many(m.id for m in box.pending()[:3])
    box.put("t", b"after")
    assert box.pending()[-1].payload == b"after"
    box.close()
    with Outbox(path, max_messages=1_000_000) as reopened:
        assert [m.payload for m in reopened.pending()] == [*stored[3:], b"after"]


def _damage_mid_file(path: Path) -> None:
    """Overwrite one page in the middle of the file with garbage, as a bad sector or a torn copy would."""
    page = 4096
    size = path.stat().st_size
    with path.open("r+b") as f:
        f.seek((size // page // 2) * page)
        f.write(bytes(range(256)) * (page // 256))


def test_a_damaged_outbox_is_refused_at_open_with_one_clear_error(tmp_path: Path) -> None:
    path = tmp_path / "o.sqlite"
    with Outbox(path) as box:
        box.put_many(("t", bytes([i % 251]) * 1500, i) for i in range(400))
    with sqlite3.connect(path) as conn:
        conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")  # everything in the main file, as after a quiet night
    _damage_mid_file(path)
    with pytest.raises(OutboxDamaged, match=r"o\.sqlite is damaged .*docs/runtime\.md") as caught:
        Outbox(path)
    assert "\n" not in str(caught.value)


def test_edge_run_on_a_damaged_outbox_stops_at_start_with_one_line(tmp_path: Path) -> None:
    path = tmp_path / "state" / "desk-outbox.sqlite"
    with Outbox(path) as box:
        box.put_many(("t", bytes([i % 251]) * 1500, i) for i in range(400))
    with sqlite3.connect(path) as conn:
        conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    _damage_mid_file(path)
    profile = _profile(tmp_path, "desk", "mqtt://127.0.0.1:1", tmp_path / "state")
    run = subprocess.run(
        [sys.executable, "-m", "edgescreen", "edge", "run", "--profile", str(profile), "--source", "missing.mp4"],
        cwd=REPO, capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
    log = run.stdout + run.stderr
    assert run.returncode == 1 and "Traceback" not in log, log[-3000:]
    errors = [line for line in log.splitlines() if "ERROR" in line or "CRITICAL" in line]
    assert len(errors) == 1 and f"outbox {path} is damaged" in errors[0] and "outbox-salvage" in errors[0], log


def test_salvage_keeps_every_readable_message_and_the_sequence_mark(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """The recovery docs/runtime.md gives: `edgescreen edge outbox-salvage FILE` with the device stopped."""
    path = tmp_path / "outbox.sqlite"
    with Outbox(path) as box:
        box.put_many(("t", i.to_bytes(2, "big") * 750, i) for i in range(400))
        box.record_lost(2, "test")
    with sqlite3.connect(path) as conn:
        conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    _damage_mid_file(path)
    assert main(["edge", "outbox-salvage", str(path)]) == 0
    out = capsys.readouterr().out
    assert "queued message(s) kept" in out and "sequence continues from 400" in out
    with Outbox(path) as box:
        kept = box.pending()
        assert 390 <= len(kept) < 400, "the messages of the damaged page are gone, the others are kept"
        order = [int.from_bytes(m.payload[:2], "big") for m in kept]
        assert order == sorted(set(order)), "the salvaged queue is out of order"
        assert all(m.payload == m.payload[:2] * 750 for m in kept), "a salvaged message changed"
        assert box.next_seq() == 400 and box.lost == 2
    aside = [p for p in tmp_path.glob("outbox.sqlite.damaged-*") if not p.name.endswith(("-wal", "-shm"))]
    assert len(aside) == 1 and aside[0].stat().st_size > 0, "the damaged file was not kept for inspection"
