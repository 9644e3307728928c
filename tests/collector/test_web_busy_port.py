"""`edgescreen collector run --http HOST:PORT` on a port another process holds: one line naming the address, at
once, instead of a traceback after a ten-second wait."""

from __future__ import annotations

import socket
import subprocess
import time
from pathlib import Path

from tests.support.broker import MosquittoBroker
from tests.support.collector import collector_cmd

REPO = Path(__file__).resolve().parents[2]


def test_http_on_a_busy_port_is_one_line(tmp_path: Path, broker: MosquittoBroker) -> None:
    with socket.socket() as held:
        held.bind(("127.0.0.1", 0))
        held.listen()
        address = f"127.0.0.1:{held.getsockname()[1]}"
        cmd = collector_cmd(broker.url, f"sqlite:///{tmp_path}/c.db", "collector-busy", "--http", address)
        started = time.monotonic()
        run = subprocess.run(cmd, cwd=REPO, capture_output=True, text=True, timeout=60, check=False)
        took = time.monotonic() - started
    assert run.returncode == 1, run.stderr[-3000:]
    assert "Traceback" not in run.stderr, run.stderr[-3000:]
    errors = [line for line in run.stderr.splitlines() if line.startswith("error:") or " ERROR " in line]
    assert errors == [f"error: --http {address}: cannot listen there: address already in use"], run.stderr[-3000:]
    assert took < 8, f"{took:.1f} s to report a busy port"
