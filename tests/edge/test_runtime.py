"""The frame loop with a real outbox, a real broker and a real systemd notify socket.

Perception is replaced through the runtime's FrameResultSource seam (the same seam a replay uses), and the
role by a small analyzer, so this checks the loop itself: scores committed then published, heartbeats,
limits, the SIGTERM flush and the sd_notify sequence.
"""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import ClassVar

import numpy as np
import pytest

from contract.sdnotify import Notifier
from contract.wire import Heartbeat, Status
from edge.config import Profile, validate_profile
from edge.frame_loop import EdgeRuntime, RunLimits
from edge.grabber import CameraHealth
from edge.heartbeat import StageMeter, cpu_temperature_c
from edge.mqtt_client import MqttPublisher
from edge.outbox import Outbox
from edge.perception.types import FrameResult, Person
from edge.roles.base import EmitContext, Image, PerceptionNeeds, RoleAnalyzer, ScoreMessage
from edge.roles.posture.message import PostureWindow, WindowStats
from tests.edge.test_delivery import Subscriber
from tests.support.broker import MosquittoBroker


class ListResults:
    """FrameResults from a list, paced like a camera."""

    def __init__(self, n: int, interval: float = 0.01, endless: bool = False) -> None:
        self.n, self.interval, self.endless = n, interval, endless
        self.i = 0
        self.stopped = False

    def start(self) -> None:
        pass

    def poll(self, timeout: float, meter: StageMeter) -> FrameResult | None:
        if self.i >= self.n and not self.endless:
            return None
        time.sleep(self.interval)
        self.i += 1
        meter.count("capture")
        person = Person(score=0.9, bbox=(0, 0, 1, 1), keypoints=np.zeros((33, 3), np.float32),
                        world=np.zeros((33, 3), np.float32))  # fmt: skip
        return FrameResult(timestamp=self.i / 30, width=640, height=480, persons=[person])

    def take_image(self) -> None:
        return None

    @property
    def finished(self) -> bool:
        return self.i >= self.n and not self.endless

    def health(self) -> CameraHealth:
        return CameraHealth(state="ended" if self.finished else "open", frames_dropped=3, frames_corrupt=1)

    def stop(self) -> None:
        self.stopped = True


class EveryTenFrames(RoleAnalyzer):
    """Emits one posture window per ten frames; flush closes the open one."""

    role: ClassVar[str] = "posture"
    needs: ClassVar[PerceptionNeeds] = PerceptionNeeds()

    def __init__(self, ctx: EmitContext) -> None:
        super().__init__(ctx)
        self.frames = 0

    def _window(self) -> PostureWindow:
        start = datetime(2026, 1, 1, tzinfo=UTC)
        stats = WindowStats(mean=10.0, p10=9.0, p50=10.0, p90=11.0, valid_frames=self.frames)
        return PostureWindow(
            device_id=self.ctx.device_id, site=self.ctx.site, seq=self.ctx.next_seq(), window_start=start,
            window_end=start + timedelta(seconds=1), frames=self.frames, presence_s=1.0, posture_changes=0,
            metrics={"head_tilt_deg": stats},
        )  # fmt: skip

    def process(self, frame: FrameResult, image: Image | None = None) -> list[ScoreMessage]:
        self.frames += 1
        if self.frames == 10:
            message = self._window()
            self.frames = 0
            return [message]
        return []

    def flush(self) -> list[ScoreMessage]:
        if not self.frames:
            return []
        message = self._window()
        self.frames = 0
        return [message]


def _profile(tmp_path: Path, url: str) -> Profile:
    data = {
        "device": {"site": "site-1", "device_id": "dev-1"},
        "role": "posture",
        "camera": {"source": "unused.mp4"},
        "broker": {"url": url, "keepalive_s": 5, "reconnect_min_s": 1, "reconnect_max_s": 2},
        "outbox": {"path": str(tmp_path / "outbox.sqlite"), "drain_on_stop_s": 5},
        "delivery": {"confirm": "puback"},  # no collector here to send receipts
        "heartbeat_s": 1,
    }
    return validate_profile(data, source="test")


class NotifyListener:
    """Plays systemd's side of $NOTIFY_SOCKET: reads every datagram as it arrives."""

    def __init__(self, path: Path) -> None:
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.sock.bind(str(path))
        self.sock.settimeout(0.1)
        self.env = {"NOTIFY_SOCKET": str(path), "WATCHDOG_USEC": "200000"}
        self.notes: list[str] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._read, daemon=True)
        self._thread.start()

    def _read(self) -> None:
        while not self._stop.is_set():
            try:
                self.notes.append(self.sock.recv(4096).decode())
            except TimeoutError:
                continue

    def close(self) -> list[str]:
        time.sleep(0.2)
        self._stop.set()
        self._thread.join()
        self.sock.close()
        return self.notes


@pytest.fixture
def notify_socket(tmp_path: Path) -> Iterator[NotifyListener]:
    listener = NotifyListener(tmp_path / "notify.sock")
    yield listener
    listener.close()


def _runtime(profile: Profile, results: ListResults, notifier: Notifier, limits: RunLimits) -> EdgeRuntime:
    outbox = Outbox(profile.outbox_path(), max_messages=1000)
    ctx = EmitContext(site="site-1", device_id="dev-1", next_seq=outbox.next_seq)
    publisher = MqttPublisher(profile.broker, outbox, site="site-1", device_id="dev-1", role="posture",
                              client_id="dev-1", delivery=profile.delivery)  # fmt: skip
    publisher.start()
    assert publisher.wait_connected(10)
    return EdgeRuntime(profile, results, EveryTenFrames(ctx), outbox, publisher, notifier=notifier, limits=limits)


def test_loop_publishes_scores_heartbeats_and_notifies_systemd(
    tmp_path: Path, broker: MosquittoBroker, notify_socket: NotifyListener
) -> None:
    env = notify_socket.env
    sub = Subscriber(broker)
    try:
        runtime = _runtime(_profile(tmp_path, broker.url), ListResults(95, 0.015), Notifier(env), RunLimits())
        summary = runtime.run()
        assert summary.reason == "end of input"
        assert summary.frames == 95
        assert summary.messages == 10  # 9 full windows + the flushed partial one
        assert summary.drained and runtime.outbox.depth() == 0
        assert sub.wait_for(lambda: sub.seqs() == set(range(10)), 10)
        with sub.lock:
            beats = [m for m, _ in sub.messages if isinstance(m, Heartbeat)]
            states = [m.state for m, _ in sub.messages if isinstance(m, Status)]
        assert beats, "no heartbeat within a 1.4 s run with heartbeat_s=1"
        assert beats[0].fps["processed"] > 10 and beats[0].frames_dropped == 3 and beats[0].frames_corrupt == 1
        assert states[0] == "online" and states[-1] == "offline"
    finally:
        sub.close()
    notes = notify_socket.close()
    assert notes[0].startswith("READY=1\nSTATUS=running role posture")
    assert "WATCHDOG=1" in notes
    assert any(n.startswith("STATUS=") and "fps" in n for n in notes)


def test_stop_request_flushes_the_open_window(
    tmp_path: Path, broker: MosquittoBroker, notify_socket: NotifyListener
) -> None:
    env = notify_socket.env
    sub = Subscriber(broker)
    runtime = _runtime(_profile(tmp_path, broker.url), ListResults(0, 0.01, endless=True), Notifier(env), RunLimits())
    try:
        stopper = threading.Timer(0.6, runtime.request_stop, args=("signal SIGTERM",))
        stopper.start()
        summary = runtime.run()
        assert summary.reason == "signal SIGTERM"
        assert summary.frames > 20
        expected = -(-summary.frames // 10)  # the partial window is flushed, not lost
        assert summary.messages == expected
        assert sub.wait_for(lambda: sub.seqs() == set(range(expected)), 10)
    finally:
        sub.close()
    assert any(n.startswith("STOPPING=1") for n in notify_socket.close())


def test_max_frames_limit_and_a_full_outbox_reported_in_the_heartbeat(tmp_path: Path) -> None:
    profile = _profile(tmp_path, "mqtt://127.0.0.1:1")
    outbox = Outbox(profile.outbox_path(), max_messages=2)
    ctx = EmitContext(site="site-1", device_id="dev-1", next_seq=outbox.next_seq)
    runtime = EdgeRuntime(profile, ListResults(1000, 0.0), EveryTenFrames(ctx), outbox, None, limits=RunLimits(25))
    summary = runtime.run()
    assert summary.frames == 25 and summary.reason == "--max-frames 25 reached"
    # without a broker the scores wait in the outbox: 2 full windows + the flushed one, bounded at 2
    assert [m.topic for m in outbox.pending()] == ["edgescreen/v1/site-1/dev-1/posture"] * 2
    assert not summary.drained
    health = runtime.health()
    assert (health.outbox_depth, health.outbox_dropped) == (2, 1)
    assert health.camera == CameraHealth(state="open", frames_dropped=3, frames_corrupt=1)


def test_cpu_temperature_reads_sysfs_layout(tmp_path: Path) -> None:
    for i, (kind, milli) in enumerate([("acpitz", "27800"), ("x86_pkg_temp", "51000")]):
        zone = tmp_path / f"thermal_zone{i}"
        zone.mkdir()
        (zone / "type").write_text(kind + "\n")
        (zone / "temp").write_text(milli + "\n")
    assert cpu_temperature_c(tmp_path) == 51.0
    assert cpu_temperature_c(tmp_path / "missing") is None


def test_notifier_is_silent_outside_systemd_and_uses_abstract_sockets() -> None:
    assert not Notifier({}).ready("x")
    name = f"edgescreen-test-{time.monotonic_ns()}"
    server = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    server.bind("\0" + name)
    server.settimeout(1)
    try:
        assert Notifier({"NOTIFY_SOCKET": "@" + name}).status("hello")
        assert server.recv(100) == b"STATUS=hello"
    finally:
        server.close()


def test_duration_limit(tmp_path: Path) -> None:
    profile = _profile(tmp_path, "mqtt://127.0.0.1:1")
    outbox = Outbox(profile.outbox_path())
    ctx = EmitContext(site="site-1", device_id="dev-1", next_seq=outbox.next_seq)
    runtime = EdgeRuntime(
        profile, ListResults(0, 0.01, endless=True), EveryTenFrames(ctx), outbox, None, limits=RunLimits(None, 0.3)
    )
    started = time.monotonic()
    summary = runtime.run()
    assert 0.3 <= time.monotonic() - started < 3.0
    assert summary.reason == "--duration 0.3s reached" and summary.frames > 5
