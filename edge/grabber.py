"""The frame grabber: a thread that reads the camera and keeps only the newest frame.

One slot: a frame not taken before the next arrives is overwritten and counted as dropped, so memory
stays bounded whatever the inference speed. A live camera that fails or vanishes is reopened with
exponential backoff; a corrupt frame is skipped and counted. A finite source (file, folder) is read
without drops unless it is paced in real time, so a replay analyses every frame and is deterministic.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, NamedTuple

from contract.wire import CameraState
from edge.sources.base import CorruptFrame, Frame, FrameSource, SourceError
from edge.sources.factory import make_source

if TYPE_CHECKING:
    from edge.config import CameraConfig

log = logging.getLogger(__name__)

FINITE_REOPEN_TRIES = 3  # a file that vanishes mid-read is retried a few times, then reported failed


class Grabbed(NamedTuple):
    frame: Frame
    timestamp: float
    frame_index: int  # position in the source's stream (dropped frames count too)


@dataclass(frozen=True)
class CameraHealth:
    """What the heartbeat reports about the camera: one snapshot, from the grabber (or a replay) to the heartbeat."""

    state: CameraState = "open"
    frames_dropped: int = 0
    frames_corrupt: int = 0
    reopens: int = 0  # reconnects after the camera was lost (the first open is not one)
    outages: int = 0  # times a camera that had delivered frames was lost
    # Seconds with no frame from the camera since the grabber started: before its first frame, and from the
    # last frame before each loss to the first after the reconnect (the outage in progress included).
    no_frame_s: float = 0.0


@dataclass(frozen=True)
class GrabberStats(CameraHealth):
    """The grabber's counters: its camera health, and what `edge check` and the tests read besides."""

    frames_read: int = 0
    frames_delivered: int = 0
    read_fps: float = 0.0
    last_error: str | None = None


class FrameGrabber:
    """Reads `source` on a daemon thread into a one-frame slot.

    `lossless=None` picks: finite sources not paced in real time wait for the consumer (no drops);
    everything else overwrites (latest frame wins).
    """

    def __init__(
        self,
        source: FrameSource,
        *,
        backoff_s: float = 1.0,
        backoff_max_s: float = 30.0,
        lossless: bool | None = None,
        max_reopen_tries: int | None = None,
        sleep: Callable[[float], None] | None = None,
    ) -> None:
        if backoff_s <= 0 or backoff_max_s < backoff_s:
            raise ValueError(f"backoff must satisfy 0 < backoff_s <= backoff_max_s, got {backoff_s}, {backoff_max_s}")
        self.source = source
        self.backoff_s, self.backoff_max_s = backoff_s, backoff_max_s
        realtime = bool(getattr(source, "realtime", False))
        self.lossless = (source.finite and not realtime) if lossless is None else lossless
        self.max_reopen_tries = (
            (FINITE_REOPEN_TRIES if source.finite else None) if max_reopen_tries is None else (max_reopen_tries)
        )
        self._cond = threading.Condition()
        self._stop = threading.Event()
        self._slot: Grabbed | None = None
        self._thread: threading.Thread | None = None
        self._state: CameraState = "reopening"
        self._read = self._delivered = self._dropped = self._corrupt = self._reopens = 0
        self._last_error: str | None = None
        self._started_at = 0.0
        self._outages = 0
        self._last_frame_at: float | None = None
        self._gap_since: float | None = None  # when the camera last stopped delivering (None while it delivers)
        self._gap_total = 0.0  # seconds of gaps that have ended

    # -- consumer side -------------------------------------------------------------------------------------
    def start(self) -> None:
        if self._thread is not None:
            return
        self._started_at = self._gap_since = time.monotonic()
        self._thread = threading.Thread(target=self._run, name="frame-grabber", daemon=True)
        self._thread.start()

    def get(self, timeout: float) -> Grabbed | None:
        """The newest frame not yet taken, waiting up to `timeout` s; None if none came (or input ended)."""
        deadline = time.monotonic() + timeout
        with self._cond:
            while self._slot is None:
                if self._state in ("ended", "failed") or self._stop.is_set():
                    return None
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    return None
                self._cond.wait(remaining)
            item, self._slot = self._slot, None
            self._delivered += 1
            self._cond.notify_all()
            return item

    @property
    def finished(self) -> bool:
        """True once the source has ended (or failed for good) and its last frame was taken."""
        with self._cond:
            return self._state in ("ended", "failed") and self._slot is None

    @property
    def state(self) -> CameraState:
        return self._state

    def stats(self) -> GrabberStats:
        with self._cond:
            now = time.monotonic()
            elapsed = now - self._started_at if self._started_at else 0.0
            gap = self._gap_total
            if self._gap_since is not None and self._state != "ended":  # an ended file is not a camera gap
                gap += now - self._gap_since
            return GrabberStats(
                state=self._state,
                frames_read=self._read,
                frames_delivered=self._delivered,
                frames_dropped=self._dropped,
                frames_corrupt=self._corrupt,
                reopens=self._reopens,
                outages=self._outages,
                no_frame_s=round(gap, 3),
                read_fps=self._read / elapsed if elapsed > 0 else 0.0,
                last_error=self._last_error,
            )

    def stop(self, timeout: float = 5.0) -> None:
        self._stop.set()
        with self._cond:
            self._cond.notify_all()
        if self._thread is not None:
            self._thread.join(timeout)
            if self._thread.is_alive():
                log.warning("%s: grabber thread did not stop within %.1f s", self.source.describe(), timeout)
        self._thread = None
        with self._cond:
            self._slot = None

    def __enter__(self) -> FrameGrabber:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # -- grabber thread ------------------------------------------------------------------------------------
    def _set_state(self, state: CameraState, error: str | None = None) -> None:
        with self._cond:
            if state != self._state:
                log.info("camera %s: %s -> %s", self.source.describe(), self._state, state)
            self._state = state
            if error is not None:
                self._last_error = error
            self._cond.notify_all()

    def _run(self) -> None:
        try:
            self._loop()
        finally:
            try:
                self.source.close()
            except Exception as exc:  # a failing close must not hide why the loop ended
                log.warning("camera %s: close failed: %s", self.source.describe(), exc)
            if self._state not in ("ended", "failed"):
                self._set_state("ended")

    def _loop(self) -> None:
        delay = self.backoff_s
        failures = 0  # consecutive failed opens (or losses) since the last good frame
        ever_opened = False
        while not self._stop.is_set():
            if failures:
                if self.max_reopen_tries is not None and failures > self.max_reopen_tries:
                    self._set_state("failed")
                    log.error("camera %s: giving up after %d tries: %s", self.source.describe(), failures,
                              self._last_error)  # fmt: skip
                    return
                self._set_state("reopening")
                if self._stop.wait(delay):
                    return
                delay = min(delay * 2.0, self.backoff_max_s)
            try:
                self.source.open()
            except SourceError as exc:
                failures += 1
                self._set_state("reopening", str(exc))
                log.warning("camera %s: %s (next try in %.1f s)", self.source.describe(), exc, delay)
                continue
            if ever_opened:
                with self._cond:
                    self._reopens += 1
            ever_opened = True
            self._set_state("open")
            outcome = self._read_until_lost()
            if outcome == "ended":
                self._set_state("ended")
                return
            if outcome == "stopped":
                return
            if outcome == "lost_after_frames":  # it worked for a while: start the backoff afresh
                failures, delay = 1, self.backoff_s
            else:
                failures += 1

    def _read_until_lost(self) -> str:
        """Read frames into the slot; returns 'ended', 'stopped', 'lost' or 'lost_after_frames'."""
        got_frame = False
        while not self._stop.is_set():
            try:
                item = self.source.read()
            except CorruptFrame as exc:
                with self._cond:
                    self._corrupt += 1
                    self._read += 1
                log.warning("camera %s: skipped corrupt frame: %s", self.source.describe(), exc)
                continue
            except SourceError as exc:
                self._lost(str(exc))
                return "lost_after_frames" if got_frame else "lost"
            if item is None:
                if self.source.finite:
                    return "ended"
                self._lost("live source returned no frame")
                return "lost_after_frames" if got_frame else "lost"
            got_frame = True
            frame, timestamp = item
            self._put(frame, timestamp)
        return "stopped"

    def _lost(self, error: str) -> None:
        log.warning("camera %s: lost: %s", self.source.describe(), error)
        with self._cond:
            if self._gap_since is None:  # the gap began with the last frame, not when the loss was noticed
                self._gap_since = self._last_frame_at if self._last_frame_at is not None else time.monotonic()
                self._outages += 1
        try:
            self.source.close()
        except Exception as exc:  # the device may already be gone
            log.debug("camera %s: close after loss failed: %s", self.source.describe(), exc)
        self._set_state("reopening", error)

    def _put(self, frame: Frame, timestamp: float) -> None:
        with self._cond:
            if self.lossless:
                while self._slot is not None and not self._stop.is_set():
                    self._cond.wait(0.1)
            if self._slot is not None:
                self._dropped += 1
            self._slot = Grabbed(frame, timestamp, self._read)
            self._read += 1
            now = time.monotonic()
            if self._gap_since is not None:
                self._gap_total += now - self._gap_since
                self._gap_since = None
            self._last_frame_at = now
            self._cond.notify_all()


class CameraFeed:
    """The grabber as the runtime loop uses it: `get` → (frame, timestamp); `health()` for the heartbeat."""

    def __init__(self, grabber: FrameGrabber) -> None:
        self.grabber = grabber

    def start(self) -> None:
        self.grabber.start()

    def get(self, timeout: float) -> tuple[Frame, float] | None:
        item = self.grabber.get(timeout)
        return None if item is None else (item.frame, item.timestamp)

    @property
    def finished(self) -> bool:
        return self.grabber.finished

    def health(self) -> CameraHealth:
        return self.grabber.stats()

    def stop(self) -> None:
        self.grabber.stop()


def grabber_for_camera(camera: CameraConfig) -> FrameGrabber:
    source = make_source(
        camera.source, width=camera.width, height=camera.height, fps=camera.fps, realtime=camera.realtime
    )
    return FrameGrabber(source, backoff_s=camera.reopen_backoff_s, backoff_max_s=camera.reopen_backoff_max_s)


def grabber_for_profile(camera: CameraConfig) -> CameraFeed:
    """The profile's camera behind a grabber, as the runtime's frame feed (not started)."""
    return CameraFeed(grabber_for_camera(camera))


def probe_camera(camera: CameraConfig, timeout: float = 5.0) -> str:
    """Open the camera and read one frame (for `edge check`); raises SourceError saying why not."""
    source = make_source(camera.source, width=camera.width, height=camera.height, fps=camera.fps)
    source.open()  # fail fast with the source's own error rather than waiting out the backoff
    grabber = FrameGrabber(source, backoff_s=min(1.0, timeout), backoff_max_s=max(1.0, timeout), lossless=True)
    started = time.monotonic()
    with grabber:
        item = grabber.get(timeout)
        stats = grabber.stats()
    if item is None:
        why = stats.last_error or ("source ended before its first frame" if stats.state == "ended" else "no frame")
        raise SourceError(f"{source.describe()}: no frame within {timeout:g} s ({why})")
    height, width = item.frame.shape[:2]
    ms = (time.monotonic() - started) * 1e3
    return f"{source.describe()}: {width}x{height} frame in {ms:.0f} ms"
