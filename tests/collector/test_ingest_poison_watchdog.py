"""The systemd watchdog follows ingest's progress: while messages wait and none is stored for longer than
WatchdogSec it is not fed (systemd then restarts the collector), and it is fed again once messages are stored. Real
collector process, real NOTIFY_SOCKET, real broker, SQLite and PostgreSQL."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import threading
import time
from pathlib import Path

from collector.simulate import mixed_stream
from collector.storage import Database
from tests.collector.test_collector_ingest import REPO, count_safe, wait_until
from tests.collector.test_ingest_poison import publish
from tests.support.broker import MosquittoBroker
from tests.support.collector import collector_cmd


class NotifyListener:
    """systemd's side of $NOTIFY_SOCKET: every datagram with the time it arrived."""

    def __init__(self, path: Path) -> None:
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.sock.bind(str(path))
        self.sock.settimeout(0.1)
        self.path = path
        self.notes: list[tuple[float, str]] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._read, daemon=True)
        self._thread.start()

    def _read(self) -> None:
        while not self._stop.is_set():
            try:
                self.notes.append((time.monotonic(), self.sock.recv(4096).decode()))
            except TimeoutError:
                continue

    def pings(self, start: float, end: float) -> list[float]:
        return [t for t, n in self.notes if start <= t <= end and "WATCHDOG=1" in n]

    def statuses(self, start: float, end: float) -> list[str]:
        return [n for t, n in self.notes if start <= t <= end and "STATUS=" in n]

    def close(self) -> None:
        self._stop.set()
        self._thread.join()
        self.sock.close()


def test_the_watchdog_is_not_fed_while_messages_wait_and_none_is_stored(
    db: Database, broker: MosquittoBroker, tmp_path: Path
) -> None:
    """A writer blocked by a lock another client holds (no error, no commit): with messages waiting for longer
    than WatchdogSec the pings stop, so systemd would restart the collector; once it stores again they resume."""
    listener = NotifyListener(tmp_path / "notify")
    env = {**os.environ, "NOTIFY_SOCKET": str(listener.path), "WATCHDOG_USEC": "1000000"}
    log = tmp_path / "collector.log"
    cmd = collector_cmd(broker.url, db.url, "collector-stall", "--batch", "20")
    proc = subprocess.Popen(cmd, cwd=REPO, env=env, stdout=log.open("ab"), stderr=subprocess.STDOUT)
    messages = mixed_stream("school-w", "booth-1", 60, seed=40)
    try:
        wait_until(lambda: any("broker subscribed" in n for _, n in listener.notes), what=f"collector start ({log})")
        with db.engine.begin() as lock:  # SQLite: BEGIN IMMEDIATE takes the write lock
            if db.dialect == "postgresql":
                lock.exec_driver_sql("LOCK TABLE scores IN ACCESS EXCLUSIVE MODE")
            blocked = time.monotonic()
            publish(broker, messages, "pub-w")
            time.sleep(7.0)
            released = time.monotonic()
        wait_until(lambda: count_safe(db) == len(messages), what="every message stored after the lock")
        time.sleep(3.0)
        end = time.monotonic()
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=30) == 0, log.read_text()[-3000:]
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        listener.close()
    # Before the stall: fed. During it, after one WatchdogSec of no progress: not fed for the rest of the lock.
    assert listener.pings(blocked - 3.0, blocked), "fed before the stall"
    late_pings = listener.pings(blocked + 3.0, released)
    assert not late_pings, f"fed {len(late_pings)} times while nothing could be stored"
    assert any("ingest stalled" in s for s in listener.statuses(blocked, released)), listener.notes
    assert len(listener.pings(released, end)) >= 2, "fed again once messages are stored"
    assert "ingest stalled" not in listener.statuses(blocked, end)[-1]
