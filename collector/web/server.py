"""Run the dashboard with uvicorn in a background thread of the collector."""

from __future__ import annotations

import logging
import os
import socket
import threading
import time
from collections.abc import Callable
from datetime import datetime
from typing import Any

import uvicorn

from collector.storage.engine import Database
from collector.web.app import create_app
from contract.errors import EdgeScreenError

log = logging.getLogger(__name__)


class WebServerError(EdgeScreenError):
    """The dashboard cannot serve on the address it was given."""


def parse_host_port(value: str) -> tuple[str, int]:
    host, sep, port = value.rpartition(":")
    if not sep or not port.isdigit():
        raise ValueError(f"--http {value!r}: expected HOST:PORT, e.g. 127.0.0.1:8080")
    return host.strip("[]") or "127.0.0.1", int(port)


def listen(http: str) -> socket.socket:
    """A socket listening on `http` (HOST:PORT). Bound here, not inside uvicorn, so that a busy port or an address
    this host does not have is one error line at once (uvicorn logs it and exits its thread)."""
    host, port = parse_host_port(http)
    try:
        family, kind, proto, _name, address = socket.getaddrinfo(
            host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE
        )[0]
        sock = socket.socket(family, kind, proto)
    except OSError as exc:
        raise WebServerError(f"--http {http}: cannot listen there: {_reason(exc)}") from exc
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # a restart need not wait out TIME_WAIT
        sock.bind(address)
        sock.listen(2048)
    except OSError as exc:
        sock.close()
        raise WebServerError(f"--http {http}: cannot listen there: {_reason(exc)}") from exc
    return sock


def _reason(exc: OSError) -> str:
    return (exc.strerror or os.strerror(exc.errno) if exc.errno else str(exc)).lower()


class WebServer:
    def __init__(
        self,
        db: Database,
        http: str,
        secret: bytes,
        settings: Any,
        broker_down_since: Callable[[], datetime | None] | None = None,
    ) -> None:
        self._socket = listen(http)
        host, port = parse_host_port(http)
        app = create_app(
            db,
            secret,
            secure_cookies=settings.secure_cookies,
            k_anonymity=settings.k_anonymity,
            broker_down_since=broker_down_since,
        )
        config = uvicorn.Config(app, host=host, port=port, log_level="warning", access_log=False)
        self.server = uvicorn.Server(config)
        self._thread = threading.Thread(
            target=self.server.run, kwargs={"sockets": [self._socket]}, name="collector-web", daemon=True
        )
        self.url = f"http://{host}:{port}"

    def start(self) -> None:
        self._thread.start()
        deadline = time.monotonic() + 10
        while not self.server.started and time.monotonic() < deadline and self._thread.is_alive():
            time.sleep(0.02)
        if not self.server.started:
            self._socket.close()
            raise WebServerError(f"dashboard did not start on {self.url} (see the log above)")
        log.info("dashboard on %s", self.url)

    def stop(self) -> None:
        self.server.should_exit = True
        self._thread.join(timeout=10)
        self._socket.close()
