"""Dashboard costs under load: a device page over a year, and a burst of parallel logins.

1. Device page data: a device with 366 days of nine metric series, one window every 15 minutes (316k rows),
   read the way the device page reads it (`collector.web.queries.device_series`), once and four at once;
   with the peak of Python allocations of one read.
2. Logins: the dashboard alone in a child process (uvicorn, SQLite), 24 logins released at the same moment,
   with Argon2 bounded as shipped (`ARGON2_CONCURRENCY`) and, for comparison, with the bound lifted.
   Prints the child's resident memory before and its peak (VmHWM) after.

    python benchmarks/collector_dashboard.py
"""

from __future__ import annotations

import argparse
import re
import socket
import subprocess
import sys
import tempfile
import threading
import time
import tracemalloc
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from datetime import timedelta
from pathlib import Path

import httpx

from collector.storage import open_database, schema
from collector.timeutil import utcnow_naive
from collector.users import ARGON2_CONCURRENCY
from collector.web.queries import device_series

PASSWORD = "correct horse battery"
# The dashboard alone: port, Argon2 slots and the password come as arguments.
SERVER = """
import sys, tempfile, threading
import uvicorn
import collector.users as users
from collector.storage import open_database
from collector.web.app import create_app
port, slots = int(sys.argv[1]), int(sys.argv[2])
users._ARGON2_SLOTS = threading.BoundedSemaphore(slots)
db = open_database(f"sqlite:///{tempfile.mkdtemp()}/c.db")
users.add_user(db, "alice", sys.argv[3], ["s"])
uvicorn.run(create_app(db, b"k" * 32, secure_cookies=False), host="127.0.0.1", port=port, log_level="warning")
"""


def device_page(url: str) -> str:
    db = open_database(url)
    now = utcnow_naive()
    start, step = now - timedelta(days=366), timedelta(minutes=15)
    n = int(timedelta(days=366) / step)
    rows = [
        {"message_id": f"m{i}", "site": "bench", "device_id": "d", "kind": "posture", "at": start + step * i,
         "name": f"metric{j}.mean", "value": float(i % 97)}
        for i in range(n) for j in range(9)
    ]  # fmt: skip
    with db.engine.begin() as conn:
        conn.execute(schema.metric_values.insert(), rows)
    try:

        def read() -> None:
            device_series(db, "bench", "d", start, now)

        read()
        one = min(_timed(read) for _ in range(3))
        threads = [threading.Thread(target=read) for _ in range(4)]
        began = time.perf_counter()
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        four = time.perf_counter() - began
        tracemalloc.start()
        read()
        peak = tracemalloc.get_traced_memory()[1] / 2**20
        tracemalloc.stop()
        return f"| device page data, {db.dialect} | {len(rows):,} rows | {one:.2f} s | {four:.2f} s | {peak:.1f} MiB |"
    finally:
        db.dispose()


def _timed(fn: Callable[[], None]) -> float:
    began = time.perf_counter()
    fn()
    return time.perf_counter() - began


def _kib(pid: int, key: str) -> float:
    text = Path(f"/proc/{pid}/status").read_text()
    match = re.search(rf"{key}:\s+(\d+)", text)
    assert match
    return int(match.group(1)) / 1024


def logins(slots: int, port: int, count: int = 24) -> str:
    server = subprocess.Popen([sys.executable, "-c", SERVER, str(port), str(slots), PASSWORD])
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                httpx.get(f"{base}/login")
                break
            except httpx.TransportError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.1)
        before = _kib(server.pid, "VmRSS")
        barrier = threading.Barrier(count)

        def login(_: int) -> int:
            with httpx.Client(base_url=base) as client:
                token = re.search(r'name="csrf_token" value="([^"]+)"', client.get("/login").text)
                assert token
                data = {"username": "alice", "password": PASSWORD, "csrf_token": token.group(1)}
                barrier.wait()
                return client.post("/login", data=data, timeout=120).status_code

        began = time.perf_counter()
        with ThreadPoolExecutor(count) as pool:
            codes = list(pool.map(login, range(count)))
        took = time.perf_counter() - began
        ok = sum(c == 303 for c in codes)
        label = f"{slots} at a time (shipped)" if slots == ARGON2_CONCURRENCY else "unbounded"
        peak = _kib(server.pid, "VmHWM")
        cells = [f"{count} parallel logins, Argon2 {label}", f"{ok}/{count}", f"{took:.1f} s", f"{before:.0f} MiB"]
        return "| " + " | ".join([*cells, f"{peak:.0f} MiB"]) + " |"
    finally:
        server.terminate()
        server.wait(timeout=20)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def main() -> None:
    argparse.ArgumentParser(description=__doc__.splitlines()[0]).parse_args()
    print("| what | size | one | four at once | Python allocations, peak |")
    print("| --- | ---: | ---: | ---: | ---: |")
    with tempfile.TemporaryDirectory() as tmp:
        print(device_page(f"sqlite:///{tmp}/c.db"))
    print()
    print("| what | logged in | wall time | resident before | resident peak |")
    print("| --- | ---: | ---: | ---: | ---: |")
    for slots in (ARGON2_CONCURRENCY, 1000):
        print(logins(slots, free_port()))


if __name__ == "__main__":
    main()
