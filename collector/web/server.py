"""Run the dashboard with uvicorn in a background thread of the collector."""

from __future__ import annotations

import logging
import threading
import time
from typing import Any

import uvicorn

from collector.storage.engine import Database
from collector.web.app import create_app

log = logging.getLogger(__name__)


def parse_host_port(value: str) -> tuple[str, int]:
    host, sep, port = value.rpartition(":")
    if not sep or not port.isdigit():
        raise ValueError(f"--http {value!r}: expected HOST:PORT, e.g. 127.0.0.1:8080")
    return host.strip("[]") or "127.0.0.1", int(port)


class WebServer:
    def __init__(self, db: Database, http: str, secret: bytes, settings: Any) -> None:
        host, port = parse_host_port(http)
        app = create_app(db, secret, secure_cookies=settings.secure_cookies, k_anonymity=settings.k_anonymity)
        config = uvicorn.Config(app, host=host, port=port, log_level="warning", access_log=False)
        self.server = uvicorn.Server(config)
        self._thread = threading.Thread(target=self.server.run, name="collector-web", daemon=True)
        self.url = f"http://{host}:{port}"

    def start(self) -> None:
        self._thread.start()
        deadline = time.monotonic() + 10
        while not self.server.started and time.monotonic() < deadline:
            time.sleep(0.02)
        if not self.server.started:
            raise RuntimeError(f"dashboard did not start on {self.url}")
        log.info("dashboard on %s", self.url)

    def stop(self) -> None:
        self.server.should_exit = True
        self._thread.join(timeout=10)
