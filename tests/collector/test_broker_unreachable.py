"""A collector started while its broker is unreachable (`edgescreen collector run` in its own process, a real
NOTIFY_SOCKET, the real dashboard over HTTP): it logs each failed connection with backoff, tells systemd it is
not ready (a status saying since when, no READY=1) while feeding the watchdog, and every dashboard page shows
a banner; once the broker is there it is ready, and the banner is gone."""

from __future__ import annotations

import os
import re
import signal
import socket
import subprocess
import time
from pathlib import Path

import httpx

from collector.storage import open_database
from collector.users import add_user
from tests.support.broker import MosquittoBroker, free_port, wait_for_port
from tests.support.collector import collector_cmd
from tests.support.web import PASSWORD

REPO = Path(__file__).resolve().parents[2]
BANNER = "Not connected to the broker since"


def _page(base: str, path: str = "/") -> str:
    with httpx.Client(base_url=base, follow_redirects=True, timeout=10) as client:
        form = client.get("/login").text
        token = re.search(r'name="csrf_token" value="([^"]+)"', form)
        assert token, form[:500]
        login = {"username": "officer", "password": PASSWORD, "csrf_token": token.group(1)}
        assert client.post("/login", data=login).status_code == 200
        return client.get(path).text


def test_an_unreachable_broker_is_logged_reported_to_systemd_and_shown_on_the_dashboard(tmp_path: Path) -> None:
    db_url = f"sqlite:///{tmp_path}/c.db"
    db = open_database(db_url)
    add_user(db, "officer", PASSWORD, ["office"])
    db.dispose()
    port, http = free_port(), free_port()
    notify = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    notify.bind(str(tmp_path / "notify"))
    notify.settimeout(1.0)
    env = {**os.environ, "NOTIFY_SOCKET": str(tmp_path / "notify"), "WATCHDOG_USEC": "2000000"}
    cmd = collector_cmd(f"mqtt://127.0.0.1:{port}", db_url, "c-banner", "--http", f"127.0.0.1:{http}",
                        "--insecure-cookies")  # fmt: skip
    log = tmp_path / "collector.log"
    notes: list[str] = []
    broker: MosquittoBroker | None = None
    with log.open("w") as err:
        proc = subprocess.Popen(cmd, cwd=REPO, env=env, stdout=subprocess.DEVNULL, stderr=err, text=True)
    try:
        wait_for_port("127.0.0.1", http, timeout=60)
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and len(re.findall(r"cannot connect to the broker", log.read_text())) < 3:
            try:
                notes.append(notify.recv(4096).decode())
            except TimeoutError:
                pass
        failures = re.findall(r"cannot connect to the broker at 127\.0\.0\.1:\d+ \(attempt (\d+), not connected since "
                              r"(\S+ \S+) UTC\)", log.read_text())  # fmt: skip
        assert [int(n) for n, _ in failures[:3]] == [1, 2, 3], log.read_text()[-3000:]
        assert not any("READY=1" in n for n in notes), notes
        assert any(n.startswith("STATUS=starting: broker not connected since") for n in notes), notes
        assert any("WATCHDOG=1" in n for n in notes), "the watchdog is fed while the broker is away"
        page = _page(f"http://127.0.0.1:{http}")
        assert BANNER in page, page[:2000]
        assert f"{BANNER} {failures[0][1][:16]} UTC" in page

        # The broker comes: READY=1, the status says subscribed, the banner goes.
        broker = MosquittoBroker(tmp_path / "broker", port=port).start()
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and not any("READY=1" in n for n in notes):
            try:
                notes.append(notify.recv(4096).decode())
            except TimeoutError:
                pass
        ready = [n for n in notes if "READY=1" in n]
        assert len(ready) == 1 and "STATUS=broker subscribed" in ready[0], notes
        assert BANNER not in _page(f"http://127.0.0.1:{http}", "/alerts")
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        notify.close()
        if broker is not None:
            broker.stop()
    assert proc.returncode == 0, log.read_text()[-3000:]
