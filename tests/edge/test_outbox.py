"""The durable outbox: order, acknowledgement, the counted bound, restarts and a full disk."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from edge.outbox import Outbox, OutboxFull


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
        assert box.next_seq() == 20
        assert box.next_seq(persist=True) == 21
    with Outbox(path, max_messages=1000) as box:
        assert box.next_seq() == 22


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
