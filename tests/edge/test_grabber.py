"""The frame grabber: latest frame wins, reopen with backoff, corrupt frames skipped, finite sources end."""

from __future__ import annotations

import threading
import time
import tracemalloc
from pathlib import Path

import cv2
import numpy as np
import pytest

from edge.config import CameraConfig
from edge.grabber import FrameGrabber, grabber_for_profile, probe_camera
from edge.sources.base import CorruptFrame, Frame, FrameSource, SourceError
from edge.sources.factory import make_source
from edgescreen.clips import make_corrupt_copy, make_posture_clip, make_truncated_copy


class CountingCamera(FrameSource):
    """A live camera at ~`fps` producing numbered 480x640 frames; scripted to fail or corrupt."""

    finite = False

    def __init__(self, fps: float = 200.0, *, lose_after: int | None = None, refuse_opens: int = 0,
                 corrupt_every: int = 0) -> None:  # fmt: skip
        self.period = 1.0 / fps
        self.lose_after = lose_after
        self.refuse_opens = refuse_opens
        self.corrupt_every = corrupt_every
        self.count = 0
        self.open_times: list[float] = []
        self.is_open = False
        self.lock = threading.Lock()

    def open(self) -> None:
        with self.lock:
            self.open_times.append(time.monotonic())
            if self.lose_after is None and self.refuse_opens > 0:
                self.refuse_opens -= 1
                raise SourceError("camera test: unplugged")
            self.is_open = True

    def read(self) -> tuple[Frame, float] | None:
        time.sleep(self.period)
        with self.lock:
            if not self.is_open:
                raise SourceError("camera test: read while closed")
            self.count += 1
            if self.lose_after is not None and self.count >= self.lose_after:
                self.lose_after = None  # vanish once; then refuse `refuse_opens` reopen tries
                self.is_open = False
                raise SourceError("camera test: device vanished")
            if self.corrupt_every and self.count % self.corrupt_every == 0:
                raise CorruptFrame(f"camera test: frame {self.count} undecodable")
            frame = np.empty((480, 640, 3), np.uint8)
            frame[0, 0, 0] = self.count % 256
            return frame, time.monotonic()

    def close(self) -> None:
        self.is_open = False

    def describe(self) -> str:
        return "camera test"


def test_latest_frame_wins_with_a_slow_consumer_and_memory_stays_bounded() -> None:
    camera = CountingCamera(fps=400)
    tracemalloc.start()
    with FrameGrabber(camera) as grabber:
        taken = []
        base, _ = tracemalloc.get_traced_memory()
        peak_growth = 0
        for _ in range(15):
            time.sleep(0.03)  # a consumer ~10x slower than the camera
            item = grabber.get(timeout=1.0)
            assert item is not None
            taken.append(item.frame_index)
            current, _ = tracemalloc.get_traced_memory()
            peak_growth = max(peak_growth, current - base)
        stats = grabber.stats()
    tracemalloc.stop()
    frame_bytes = 480 * 640 * 3
    assert peak_growth < 4 * frame_bytes  # the slot, the frame in hand and one being read: never a queue
    assert stats.frames_dropped > 3 * len(taken)
    assert stats.frames_read - stats.frames_dropped - stats.frames_delivered in (0, 1)  # at most one in the slot
    assert taken == sorted(taken) and taken[-1] - taken[0] > len(taken)  # newest each time, skipping stale ones
    assert stats.state in ("open", "ended")


def test_vanished_camera_is_reopened_with_exponential_backoff() -> None:
    camera = CountingCamera(fps=500, lose_after=5, refuse_opens=3)
    states = []
    with FrameGrabber(camera, backoff_s=0.05, backoff_max_s=1.0) as grabber:
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline:
            states.append(grabber.stats().state)
            if grabber.stats().reopens == 1 and grabber.get(0.2) is not None:
                break
            time.sleep(0.005)
        stats = grabber.stats()
    assert stats.reopens == 1 and "reopening" in states
    assert "device vanished" in (stats.last_error or "") or "unplugged" in (stats.last_error or "")
    # first open, then 3 refused tries and 1 good one; the waits double: 0.05, 0.1, 0.2, 0.4
    gaps = np.diff(camera.open_times[1:])
    assert len(camera.open_times) == 5
    # a wait is never shorter than its backoff; the upper bound leaves room for a loaded machine
    for gap, nominal in zip(gaps, (0.1, 0.2, 0.4), strict=True):
        assert nominal - 0.01 <= gap <= nominal + 0.25, list(gaps)


def test_camera_missing_at_start_stays_reopening_and_never_raises() -> None:
    camera = CountingCamera(refuse_opens=10**6)
    with FrameGrabber(camera, backoff_s=0.02, backoff_max_s=0.05) as grabber:
        assert grabber.get(0.3) is None
        stats = grabber.stats()
        assert stats.state == "reopening" and not grabber.finished
        assert "unplugged" in (stats.last_error or "")
    assert len(camera.open_times) >= 4  # the wait is capped at backoff_max_s


def test_corrupt_frames_are_skipped_and_counted() -> None:
    camera = CountingCamera(fps=300, corrupt_every=3)
    with FrameGrabber(camera) as grabber:
        got = [grabber.get(1.0) for _ in range(10)]
        stats = grabber.stats()
    assert all(item is not None for item in got)
    assert all(int(item.frame[0, 0, 0]) % 3 != 0 for item in got if item is not None)
    assert stats.frames_corrupt >= 3 and stats.state in ("open", "ended")


def test_file_source_is_read_without_drops_and_ends(tmp_path: Path) -> None:
    clip = make_posture_clip(tmp_path / "c.avi", seconds=1.5, fps=10, size=(160, 120))
    with FrameGrabber(make_source(str(clip.path))) as grabber:
        stamps = []
        while not grabber.finished:
            item = grabber.get(1.0)
            if item is not None:
                time.sleep(0.01)  # slow consumer: a file still gives every frame
                stamps.append(item.timestamp)
        stats = grabber.stats()
    assert len(stamps) == clip.frames and stats.frames_dropped == 0 and stats.state == "ended"
    assert stamps == pytest.approx([i / 10 for i in range(clip.frames)], abs=1e-3)
    assert grabber.get(0.05) is None


def test_file_removed_before_reopen_is_reported_failed(tmp_path: Path) -> None:
    clip = make_posture_clip(tmp_path / "c.avi", seconds=0.5, fps=10, size=(160, 120))
    source = make_source(str(clip.path))
    clip.path.unlink()
    with FrameGrabber(source, backoff_s=0.01, backoff_max_s=0.02) as grabber:
        deadline = time.monotonic() + 3
        while not grabber.finished and time.monotonic() < deadline:
            time.sleep(0.01)
        stats = grabber.stats()
    assert stats.state == "failed" and "no such file" in (stats.last_error or "")


def test_profile_feed_reports_health_for_the_heartbeat(tmp_path: Path) -> None:
    clip = make_posture_clip(tmp_path / "c.avi", seconds=0.5, fps=10, size=(160, 120))
    camera = CameraConfig(source=str(clip.path))
    assert "160x120 frame" in probe_camera(camera, timeout=5)
    feed = grabber_for_profile(camera)
    feed.start()
    frames = 0
    while not feed.finished:
        if feed.get(1.0) is not None:
            frames += 1
    health = feed.health()
    feed.stop()
    assert frames == 5 and health.state == "ended" and health.frames_dropped == 0
    with pytest.raises(SourceError, match="no such file"):
        probe_camera(CameraConfig(source=str(tmp_path / "gone.avi")), timeout=1)


def _drain(grabber: FrameGrabber) -> int:
    frames = 0
    deadline = time.monotonic() + 30
    while not grabber.finished and time.monotonic() < deadline:
        if grabber.get(1.0) is not None:
            frames += 1
    return frames


def test_damaged_recordings_never_crash_the_grabber(tmp_path: Path) -> None:
    clip = make_posture_clip(tmp_path / "c.avi", seconds=2.0, fps=10, size=(160, 120))
    cut = make_truncated_copy(clip.path, tmp_path / "cut.avi", keep=0.5)
    noisy = make_corrupt_copy(clip.path, tmp_path / "noisy.avi", at=0.4, length=3000)
    for path, most in ((cut, clip.frames - 1), (noisy, clip.frames)):
        with FrameGrabber(make_source(str(path))) as grabber:
            frames = _drain(grabber)
            stats = grabber.stats()
        assert stats.state == "ended" and 3 <= frames <= most, (path.name, frames)
        assert stats.frames_delivered == frames


def test_folder_with_a_corrupt_image_is_read_to_the_end_with_it_counted(tmp_path: Path) -> None:
    for i in range(4):
        cv2.imwrite(str(tmp_path / f"img{i:02d}.png"), np.full((32, 32, 3), 50 * i, np.uint8))
    (tmp_path / "img02.png").write_bytes(b"\x89PNG broken")
    with FrameGrabber(make_source(str(tmp_path))) as grabber:
        frames = _drain(grabber)
        stats = grabber.stats()
    assert frames == 3 and stats.frames_corrupt == 1 and stats.state == "ended" and stats.frames_dropped == 0
