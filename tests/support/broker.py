"""A real Mosquitto broker started by a test on a free loopback port, with its own configuration."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import time
from pathlib import Path

MOSQUITTO = shutil.which("mosquitto") or "/usr/sbin/mosquitto"
# Mosquitto started as root drops to the `mosquitto` user, which cannot read a test's private temp files.
_RUN_AS = "user root\n" if os.geteuid() == 0 else ""


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def wait_for_port(host: str, port: int, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            with socket.create_connection((host, port), timeout=0.2):
                return
        except OSError:
            time.sleep(0.05)
    raise TimeoutError(f"nothing listening on {host}:{port} after {timeout}s")


class MosquittoBroker:
    """Start/stop/restart a broker; persistence on so that queued QoS 1 messages survive a restart."""

    def __init__(self, workdir: Path, extra_config: str = "", port: int | None = None) -> None:
        self.workdir = workdir
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.host = "127.0.0.1"
        self.port = port or free_port()
        self.extra_config = extra_config
        self.proc: subprocess.Popen[bytes] | None = None
        self.log_path = workdir / "mosquitto.log"

    @property
    def url(self) -> str:
        return f"mqtt://{self.host}:{self.port}"

    def config_text(self) -> str:
        return (
            f"listener {self.port} {self.host}\n"
            "allow_anonymous true\n"
            "persistence true\n"
            f"persistence_location {self.workdir}/\n"
            "max_queued_messages 0\n"
            f"{_RUN_AS}"
            "autosave_interval 1\n"
            f"{self.extra_config}\n"
        )

    def start(self) -> MosquittoBroker:
        conf = self.workdir / "mosquitto.conf"
        conf.write_text(self.config_text())
        log = self.log_path.open("ab")
        self.proc = subprocess.Popen([MOSQUITTO, "-c", str(conf)], stdout=log, stderr=subprocess.STDOUT)
        try:
            wait_for_port(self.host, self.port)
        except TimeoutError as exc:
            raise RuntimeError(f"mosquitto did not start: {self.log_path.read_text()[-2000:]}") from exc
        return self

    def stop(self, kill: bool = False) -> None:
        if self.proc is None:
            return
        if kill:
            self.proc.kill()
        else:
            self.proc.terminate()
        self.proc.wait(timeout=10)
        self.proc = None

    def restart(self, down_s: float = 0.5) -> None:
        self.stop()
        time.sleep(down_s)
        self.start()
