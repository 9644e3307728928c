"""IP cameras over RTSP, against a real RTSP server (GStreamer's gst-rtsp-server, tests/support/rtsp_server.py)
streaming a real recording (opencv-doc's vtest.avi, people walking; for the runtime, a clip of the astronaut
photo that the pose model finds) as MJPEG over RTP.

The stream is read by the project's `StreamSource` (OpenCV's FFmpeg backend) behind the frame grabber. The
server is killed mid-run and started again on the same port, as a camera losing power does: the grabber
reconnects with backoff, the heartbeat counts the reconnect and the seconds without frames, and the score
windows around the outage count only the frames that really arrived.
"""

from __future__ import annotations

import itertools
import logging
import math
import os
import signal
import threading
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import pytest

from contract.wire import Heartbeat, decode, encode
from edge.config import validate_profile
from edge.frame_loop import RunLimits
from edge.grabber import CameraFeed, FrameGrabber, grabber_for_camera
from edge.heartbeat import HealthSnapshot, build_heartbeat
from edge.roles.base import ScoreMessage
from edge.roles.posture.message import PostureWindow
from edge.sources.base import Frame
from edge.sources.factory import make_source
from edge.sources.stream import StreamSource
from edgescreen.clips import make_posture_clip
from tests.support.broker import free_port
from tests.support.rtsp_server import RtspServer, make_clip, server_unavailable

_WHY_NOT = server_unavailable()
pytestmark = pytest.mark.skipif(_WHY_NOT is not None, reason=_WHY_NOT or "")


@pytest.fixture(scope="module")
def clip(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("rtsp") / "vtest-mjpeg.avi"
    make_clip(path)  # 795 frames at 10 fps: longer than any test here, so the stream never ends on its own
    return path


@pytest.fixture
def server(clip: Path, tmp_path: Path) -> Iterator[RtspServer]:
    srv = RtspServer(clip, free_port(), tmp_path / "rtsp-server.log")
    srv.start()
    yield srv
    srv.stop()


def _wait(predicate: object, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():  # type: ignore[operator]
            return
        time.sleep(0.05)
    raise AssertionError(f"{what}: not within {timeout} s")


def test_frames_arrive_from_a_real_rtsp_camera(server: RtspServer) -> None:
    source = make_source(server.url)
    assert isinstance(source, StreamSource)
    source.open()
    try:
        stamps = []
        for _ in range(15):
            item = source.read()
            assert item is not None
            frame, stamp = item
            stamps.append(stamp)
    finally:
        source.close()
    assert frame.shape == (288, 384, 3) and frame.dtype.name == "uint8"
    assert float(frame.std()) > 10.0  # a real picture, not a blank or grey concealment frame
    rate = (len(stamps) - 1) / (stamps[-1] - stamps[0])
    assert 5.0 < rate < 20.0  # the server paces the 10 fps recording in real time


def test_server_restart_is_reconnected_with_backoff_and_the_gap_counted(
    server: RtspServer, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING, logger="edge.grabber")
    down_s = 2.5
    grabber = FrameGrabber(StreamSource(server.url), backoff_s=0.2, backoff_max_s=1.0)
    with grabber:
        _wait(lambda: grabber.get(0.1) is not None and grabber.stats().frames_read >= 5, 30, "first frames")
        before = grabber.stats()
        assert before.state == "open" and before.reopens == 0 and before.outages == 0
        killed = time.monotonic()
        server.stop()
        _wait(lambda: grabber.stats().state == "reopening", 10, "loss noticed")
        time.sleep(down_s)
        during = grabber.stats()
        assert during.state == "reopening" and during.outages == 1
        assert during.no_frame_s >= before.no_frame_s + down_s  # the outage in progress is counted already
        server.start()
        _wait(lambda: grabber.stats().reopens == 1, 30, "reconnect")
        _wait(lambda: grabber.get(0.5) is not None, 10, "frames after the reconnect")
        back = time.monotonic()
        after = grabber.stats()
    outage = after.no_frame_s - before.no_frame_s
    assert after.reopens == 1 and after.outages == 1
    assert down_s <= outage <= back - killed + 0.5  # from the last frame before the kill to the first after

    # Backoff, as it happened: the waits from the loss to each failed reconnect attempt double from backoff_s
    # and stop at backoff_max_s (a refused connection fails at once, so the gaps between attempts are the waits).
    lost = [r.created for r in caplog.records if ": lost: " in r.getMessage()]
    tries = [r.created for r in caplog.records if "cannot be opened" in r.getMessage()]
    assert len(lost) == 1 and len(tries) >= 3, caplog.text
    waits = [b - a for a, b in itertools.pairwise([lost[0], *tries])]
    expected = [min(0.2 * 2**i, 1.0) for i in range(len(waits))]
    for wait, want in zip(waits, expected, strict=True):
        assert want * 0.95 <= wait <= want + 0.5, (waits, expected)

    beat = build_heartbeat(site="s", device_id="d", seq=1, uptime_s=1.0, fps={}, health=HealthSnapshot(camera=after))
    wire = decode(encode(beat))
    assert isinstance(wire, Heartbeat)
    assert wire.camera_reopens == 1 and wire.camera_no_frame_s == pytest.approx(after.no_frame_s)


def test_a_frozen_camera_times_out_instead_of_hanging_the_loop(server: RtspServer) -> None:
    # The server process is stopped (SIGSTOP): the TCP connection stays up but nothing more arrives.
    grabber = FrameGrabber(StreamSource(server.url, open_timeout_s=3, read_timeout_s=2), backoff_s=0.2,
                           backoff_max_s=0.5)  # fmt: skip
    assert server.proc is not None
    with grabber:
        _wait(lambda: grabber.get(0.1) is not None, 30, "first frame")
        os.kill(server.proc.pid, signal.SIGSTOP)
        try:
            frozen = time.monotonic()
            _wait(lambda: grabber.stats().state == "reopening", 8, "stalled stream reported lost")
            noticed = time.monotonic() - frozen
            assert "none within 2 s" in (grabber.stats().last_error or "")
            time.sleep(4.0)  # reconnect attempts against the frozen server give up on the open timeout
            assert grabber.stats().state == "reopening"
        finally:
            os.kill(server.proc.pid, signal.SIGCONT)
        stop_started = time.monotonic()
    assert time.monotonic() - stop_started < 5.0  # the grabber thread stops within one timeout
    assert noticed < 4.5  # the 2 s read timeout, not FFmpeg's socket timeouts (10 s here without it)


class RecordingFeed(CameraFeed):
    """The profile's camera feed, noting each frame timestamp it hands to the runtime (for the checks below)."""

    def __init__(self, grabber: FrameGrabber) -> None:
        super().__init__(grabber)
        self.stamps: list[float] = []

    def get(self, timeout: float) -> tuple[Frame, float] | None:
        item = super().get(timeout)
        if item is not None:
            self.stamps.append(item[1])
        return item


@pytest.fixture
def posture_server(tmp_path: Path) -> Iterator[RtspServer]:
    """The server streaming a seated person (the astronaut photo, tilting), large enough for the pose model."""
    clip = tmp_path / "astronaut.avi"
    make_posture_clip(clip, seconds=120.0, fps=10.0, size=(320, 240))
    srv = RtspServer(clip, free_port(), tmp_path / "rtsp-server.log")
    srv.start()
    yield srv
    srv.stop()


@pytest.mark.slow
def test_runtime_windows_around_a_camera_outage_count_only_real_frames(
    posture_server: RtspServer, tmp_path: Path
) -> None:
    from edge.assembly import build_runtime

    server = posture_server

    window_s, down_s = 4.0, 9.0
    profile = validate_profile(
        {
            "device": {"site": "site-1", "device_id": "cam-1"},
            "role": "posture",
            "camera": {"source": server.url, "reopen_backoff_s": 0.25, "reopen_backoff_max_s": 1.0},
            "perception": {"backend": {"type": "onnxruntime", "providers": ["cpu"], "threads": 1}},
            "broker": {"url": "mqtt://127.0.0.1:1"},
            "outbox": {"path": str(tmp_path / "outbox.sqlite")},
            "heartbeat_s": 1,
            "posture": {"window_s": window_s},
        },
        source="test",
    )
    feed = RecordingFeed(grabber_for_camera(profile.camera))
    messages: list[ScoreMessage] = []
    runtime = build_runtime(
        profile,
        model_dir=Path(os.environ.get("EDGESCREEN_MODEL_DIR", Path.home() / ".cache/edgescreen/models")),
        feed=feed,
        limits=RunLimits(duration_s=600),
        connect=False,
    )
    runtime.on_message = messages.append
    runner = threading.Thread(target=runtime.run, daemon=True)
    runner.start()
    try:
        _wait(lambda: len(feed.stamps) >= 25, 120, "frames through perception before the outage")
        server.stop()
        time.sleep(down_s)
        mid = runtime.health().camera
        server.start()
        _wait(lambda: feed.health().reopens == 1, 60, "reconnect")
        resumed = len(feed.stamps)
        _wait(lambda: len(feed.stamps) >= resumed + 25, 120, "frames through perception after the outage")
    finally:
        runtime.request_stop("test done")
        runner.join(60)
    assert not runner.is_alive()
    assert mid.state == "reopening" and mid.no_frame_s >= down_s
    health = feed.health()
    assert health.reopens == 1 and health.outages == 1

    analyzer = runtime.analyzer
    origin = analyzer.clock.origin  # type: ignore[attr-defined]
    stamps = feed.stamps
    assert origin == stamps[0] and stamps == sorted(stamps)
    gaps = [(a, b) for a, b in itertools.pairwise(stamps) if b - a > down_s]
    assert len(gaps) == 1, "exactly one outage in the frame timestamps"
    gap_start, gap_end = gaps[0]
    # Frames each window really got, by the window clock's own cut.
    per_window = Counter(math.floor((t - origin) / window_s) for t in stamps)
    wall0 = analyzer.timeline.wall(origin)  # type: ignore[attr-defined]
    windows = {round((m.window_start - wall0).total_seconds() / window_s): m for m in messages}
    assert windows, f"no score window at all ({analyzer.absent_windows} absent, frames per window {per_window})"
    for k, message in windows.items():
        assert isinstance(message, PostureWindow)
        assert message.frames == per_window[k], f"window {k}: {message.frames} frames reported, {per_window[k]} came"
        in_window = [t for t in stamps if math.floor((t - origin) / window_s) == k]
        covered = max(in_window) - min(in_window)
        step = 2.0 * (covered / (len(in_window) - 1)) if len(in_window) > 1 else window_s
        # Presence is time with frames: never the outage. Its estimate (frames x mean interval) may lag the frame
        # rate a little, never by the outage's seconds.
        assert message.presence_s <= min(window_s, 1.4 * covered + step) + 1e-6, (k, message.presence_s, covered)
    first_k, last_k = math.floor((gap_start - origin) / window_s), math.floor((gap_end - origin) / window_s)
    # The window that resumes after the outage: its presence is the frames' own time, not the outage's.
    resumed_in = [t for t in stamps if math.floor((t - origin) / window_s) == last_k]
    resumed_span = max(resumed_in) - min(resumed_in)
    resumed_step = resumed_span / (len(resumed_in) - 1) if len(resumed_in) > 1 else window_s
    after_gap = windows.get(last_k)
    assert isinstance(after_gap, PostureWindow), "a person is in view after the reconnect: the window must report"
    assert after_gap.presence_s <= 1.15 * resumed_span + resumed_step, (after_gap.presence_s, resumed_span)
    silent = range(first_k + 1, last_k)
    assert len(silent) >= 2 and not any(k in windows for k in silent)  # windows inside the outage send nothing
    # Windows with frames but no message are the absent ones the heartbeat counts.
    absent = [k for k in per_window if k not in windows and k != max(per_window)]
    assert analyzer.absent_windows >= len(absent)
