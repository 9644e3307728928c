"""`edgescreen demo`: the office posture monitor end to end on a built-in clip, printing what a collector receives.

Builds a clip from a real photo (no download), starts Mosquitto on a free port unless a broker is
given, runs the real device runtime (`edgescreen edge run`) as a child process, and prints every
message a subscriber receives on `edgescreen/v1/#`.
"""

from __future__ import annotations

import logging
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, TextIO

import yaml

from contract.errors import EdgeScreenError

log = logging.getLogger(__name__)

SITE, DEVICE = "demo-office", "demo-desk"
INSTALL_HINT = (
    "the demo needs an MQTT broker: install Mosquitto (Debian/Ubuntu: `sudo apt-get install mosquitto`, "
    "macOS: `brew install mosquitto`) or pass --broker mqtt://HOST:PORT"
)


class DemoError(EdgeScreenError):
    """The demo cannot run here; the message says what to do."""


def find_mosquitto() -> str | None:
    found = shutil.which("mosquitto")
    if found:
        return found
    for candidate in ("/usr/sbin/mosquitto", "/usr/local/sbin/mosquitto", "/opt/homebrew/sbin/mosquitto"):
        if os.access(candidate, os.X_OK):
            return candidate
    return None


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


@contextmanager
def local_broker(workdir: Path) -> Iterator[str]:
    """A Mosquitto on a free loopback port with its own config; yields its URL."""
    binary = find_mosquitto()
    if binary is None:
        raise DemoError(INSTALL_HINT)
    port = _free_port()
    conf = workdir / "mosquitto.conf"
    run_as = "user root\n" if hasattr(os, "geteuid") and os.geteuid() == 0 else ""
    conf.write_text(f"listener {port} 127.0.0.1\nallow_anonymous true\npersistence false\n{run_as}")
    log_path = workdir / "mosquitto.log"
    with log_path.open("ab") as log_file:
        proc = subprocess.Popen([binary, "-c", str(conf)], stdout=log_file, stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + 10
        while True:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
                break
            except OSError as exc:
                if proc.poll() is not None or time.monotonic() > deadline:
                    raise DemoError(f"mosquitto did not start: {log_path.read_text()[-1000:]}") from exc
                time.sleep(0.05)
        yield f"mqtt://127.0.0.1:{port}"
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=5)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


class Printer:
    """Subscribes to everything under edgescreen/v1/ and prints each message as it arrives."""

    def __init__(self, url: str, out: TextIO) -> None:
        import paho.mqtt.client as mqtt
        from paho.mqtt.enums import CallbackAPIVersion

        from edge.config import BrokerConfig

        self.out = out
        self.counts: dict[str, int] = {}
        self.lock = threading.Lock()
        self._subscribed = threading.Event()
        broker = BrokerConfig(url=url)
        self.client = mqtt.Client(
            callback_api_version=CallbackAPIVersion.VERSION2,
            client_id=f"demo-subscriber-{uuid.uuid4().hex[:6]}",
            protocol=mqtt.MQTTv5,
        )
        self.client.on_connect = lambda c, u, f, rc, p: c.subscribe("edgescreen/v1/#", qos=1)
        self.client.on_subscribe = lambda *a: self._subscribed.set()
        self.client.on_message = self._on_message
        self.client.connect(broker.host, broker.port, keepalive=30)
        self.client.loop_start()
        if not self._subscribed.wait(10):
            raise DemoError(f"could not subscribe at {url}")

    def _on_message(self, client: Any, userdata: Any, msg: Any) -> None:
        from contract.wire import WireError, decode

        try:
            message = decode(bytes(msg.payload), msg.topic)
        except WireError as exc:
            line = f"{msg.topic}: INVALID ({exc})"
            kind = "invalid"
        else:
            kind = message.kind
            line = f"{msg.topic}\n    {describe(message)}"
        with self.lock:
            self.counts[kind] = self.counts.get(kind, 0) + 1
            print(line, file=self.out, flush=True)

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()


def describe(message: Any) -> str:
    """One readable summary of a wire message (what the collector would store)."""
    kind = message.kind
    if kind == "posture":
        head = (
            f"seq={message.seq} window {message.window_start:%H:%M:%S}–{message.window_end:%H:%M:%S} "
            f"frames={message.frames} presence={message.presence_s:.1f}s changes={message.posture_changes}"
        )
        parts = []
        for name, stats in sorted(message.metrics.items()):
            if stats.mean is None:
                parts.append(f"{name}=n/a")
                continue
            bands = " ".join(f"{b}:{v:.0%}" for b, v in stats.bands.items())
            risk = " SUSTAINED" if stats.sustained_risk else ""
            parts.append(f"{name} mean={stats.mean:+.1f} p10={stats.p10:+.1f} p90={stats.p90:+.1f} [{bands}]{risk}")
        return head + "".join(f"\n      {p}" for p in parts)
    if kind == "status":
        return f"status {message.state} (role {message.role}) at {message.at:%H:%M:%S}"
    if kind == "heartbeat":
        fps = " ".join(f"{k}={v:.1f}" for k, v in message.fps.items())
        return (
            f"heartbeat fps[{fps}] camera={message.camera_state} dropped={message.frames_dropped} "
            f"absent_windows={message.absent_windows} outbox={message.outbox_depth} backend={message.backend}"
        )
    return f"{kind} seq={message.seq}"


def demo_profile(clip: Path, broker_url: str, outbox: Path, window_s: float) -> dict[str, Any]:
    return {
        "device": {"site": SITE, "device_id": DEVICE},
        "role": "posture",
        # paced at the clip's own frame rate, like a live camera
        "camera": {"source": str(clip), "width": 640, "height": 480, "realtime": True},
        "perception": {"backend": {"type": "onnxruntime", "providers": ["cpu"], "threads": 2}},
        "broker": {"url": broker_url, "keepalive_s": 10},
        "outbox": {"path": str(outbox), "drain_on_stop_s": 10},
        # No collector runs in the demo, so no receipt ever comes: the broker's acknowledgement empties the outbox.
        "delivery": {"confirm": "puback"},
        "heartbeat_s": 5.0,
        "posture": {"window_s": window_s},
    }


def run_demo(
    broker_url: str | None, out: TextIO, *, seconds: float = 12.0, window_s: float = 4.0, fps: float = 15.0
) -> int:
    """Run the demo; returns an exit status. Output goes to `out`; the runtime's log to stderr."""
    from edgescreen.clips import make_posture_clip

    with tempfile.TemporaryDirectory(prefix="edgescreen-demo-") as tmp:
        work = Path(tmp)
        clip = work / "posture-clip.mp4"
        print(
            f"making a {seconds:g} s clip from skimage's astronaut photo (tilting and leaning over time) ...", file=out
        )
        make_posture_clip(clip, seconds=seconds, fps=fps)
        with _broker(broker_url, work) as url:
            print(f"broker: {url}  (subscribed to edgescreen/v1/#)\n", file=out, flush=True)
            printer = Printer(url, out)
            try:
                profile = work / "demo-profile.yaml"
                profile.write_text(yaml.safe_dump(demo_profile(clip, url, work / "outbox.sqlite", window_s)))
                rc = subprocess.call(
                    [sys.executable, "-m", "edgescreen", "edge", "run", "--profile", str(profile)],
                    stdout=sys.stderr,
                )
                time.sleep(1.0)  # let the last messages arrive
            finally:
                printer.close()
        counts = ", ".join(f"{n} {k}" for k, n in sorted(printer.counts.items()))
        print(f"\nreceived: {counts or 'nothing'}", file=out)
        if rc != 0:
            raise EdgeScreenError(f"the device runtime exited with status {rc}", exit_code=rc)
        return 0 if printer.counts.get("posture") else 1


@contextmanager
def _broker(url: str | None, work: Path) -> Iterator[str]:
    if url:
        yield url
    else:
        with local_broker(work) as started:
            yield started
