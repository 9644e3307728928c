"""The device runtime: camera → perception → role analyzer → outbox → MQTT, with heartbeat and systemd.

Frames live only inside `CameraResults.poll` (grabbed, run through perception, dropped); what leaves
this module is the analyzer's score messages, committed to the outbox before the publisher sends them.

Frame results come from a `FrameResultSource`: normally `CameraResults` (grabber + perception); a
recorded-results replay (the gait booth's `--replay FILE`) plugs in here without touching the loop.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

from contract.sdnotify import Notifier
from contract.wire import CameraState, ModelRef, encode, topic_for
from edge.backends.base import BackendUnavailable
from edge.config import Profile, SecretError, read_secret
from edge.heartbeat import HealthSnapshot, StageMeter, build_heartbeat
from edge.mqtt_client import MqttPublisher
from edge.outbox import Outbox, OutboxError
from edge.perception.pipeline import PerceptionConfig, PerceptionPipeline
from edge.perception.types import FrameResult
from edge.roles.base import EmitContext, Image, RoleAnalyzer, ScoreMessage
from edge.roles.registry import analyzer_class, create_analyzer

log = logging.getLogger(__name__)

POLL_TIMEOUT_S = 0.5  # the loop wakes at least this often (watchdog, heartbeat, stop requests)
MAX_UNSTORED = 1000  # scores kept in memory while the outbox cannot store them (disk full)


@dataclass
class CameraHealth:
    state: CameraState = "open"
    frames_dropped: int = 0
    frames_corrupt: int = 0
    reopens: int = 0


class FrameResultSource(Protocol):
    """Where the loop gets perception results from."""

    def start(self) -> None: ...

    def poll(self, timeout: float, meter: StageMeter) -> FrameResult | None:
        """The next result, or None when nothing arrived within `timeout`."""

    def take_image(self) -> Image | None:
        """The frame of the result `poll` returned last, handed over once (None when frames are not kept)."""

    @property
    def finished(self) -> bool:
        """True once a finite input is exhausted."""

    def health(self) -> CameraHealth: ...

    def stop(self) -> None: ...


class FrameFeed(Protocol):
    """The grabber as the runtime uses it (latest frame wins; reopen with backoff)."""

    def start(self) -> None: ...

    def get(self, timeout: float) -> tuple[object, float] | None: ...

    @property
    def finished(self) -> bool: ...

    def health(self) -> CameraHealth: ...

    def stop(self) -> None: ...


class CameraResults:
    """Grabber frames run through the perception pipeline, one at a time. A frame is kept only for an analyzer
    that reads pixels (`keep_image`), and only until the loop has handed it to the analyzer (`take_image`)."""

    def __init__(self, feed: FrameFeed, pipeline: PerceptionPipeline, keep_image: bool = False) -> None:
        self.feed = feed
        self.pipeline = pipeline
        self.keep_image = keep_image
        self._image: Image | None = None

    def take_image(self) -> Image | None:
        image, self._image = self._image, None
        return image

    def start(self) -> None:
        self.feed.start()

    def poll(self, timeout: float, meter: StageMeter) -> FrameResult | None:
        item = self.feed.get(timeout)
        if item is None:
            return None
        frame, timestamp = item
        t0 = time.perf_counter()
        result = self.pipeline.process(frame, timestamp)  # type: ignore[arg-type]
        self._image = frame if self.keep_image else None  # type: ignore[assignment]
        del frame, item
        meter.add_time("perception", (time.perf_counter() - t0) * 1e3)
        for stage, ms in result.stage_ms.items():
            if stage != "total":
                meter.add_time(stage, ms)
        return result

    @property
    def finished(self) -> bool:
        return self.feed.finished

    def health(self) -> CameraHealth:
        return self.feed.health()

    def stop(self) -> None:
        self.feed.stop()


class ReplayResults:
    """Recorded or synthetic perception results from a replay file (`edgescreen edge run --replay FILE`),
    fed as fast as the analyzer takes them; the file is validated before the first frame."""

    def __init__(self, path: Path) -> None:
        from edge.replay import read_replay

        self.path = path
        self._frames = read_replay(path)
        self._first = next(self._frames, None)  # validates the whole file now, before the runtime starts
        self._done = self._first is None

    def start(self) -> None:
        pass

    def take_image(self) -> Image | None:
        return None  # a replay holds perception results only

    def poll(self, timeout: float, meter: StageMeter) -> FrameResult | None:
        first, self._first = self._first, None
        if first is not None:
            return first
        frame = next(self._frames, None)
        self._done = frame is None
        return frame

    @property
    def finished(self) -> bool:
        return self._done

    def health(self) -> CameraHealth:
        return CameraHealth(state="ended" if self._done else "open")

    def stop(self) -> None:
        self._done = True


@dataclass
class RunLimits:
    max_frames: int | None = None
    duration_s: float | None = None


@dataclass
class RunSummary:
    frames: int = 0
    messages: int = 0
    heartbeats: int = 0
    drained: bool = True
    reason: str = ""
    failed: bool = False
    kinds: dict[str, int] = field(default_factory=dict)


class EdgeRuntime:
    """The frame loop. Construct with `build_runtime`; `run()` returns when input ends, a limit is hit or
    `request_stop()` is called (SIGTERM)."""

    def __init__(
        self,
        profile: Profile,
        results: FrameResultSource,
        analyzer: RoleAnalyzer,
        outbox: Outbox,
        publisher: MqttPublisher | None,
        *,
        notifier: Notifier | None = None,
        models: list[ModelRef] | None = None,
        backend: str = "onnxruntime",
        backend_fallback: bool = False,
        limits: RunLimits | None = None,
        on_message: Callable[[ScoreMessage], None] | None = None,
    ) -> None:
        self.profile = profile
        self.results = results
        self.analyzer = analyzer
        self.outbox = outbox
        self.publisher = publisher
        self.notifier = notifier or Notifier({})
        self.models = models or []
        self.backend = backend
        self.backend_fallback = backend_fallback
        self.limits = limits or RunLimits()
        self.on_message = on_message
        self.meter = StageMeter()
        self.summary = RunSummary()
        self._stop = threading.Event()
        self._unstored: list[ScoreMessage] = []
        self._started = time.monotonic()

    def request_stop(self, reason: str = "stop requested") -> None:
        if not self._stop.is_set():
            self.summary.reason = reason
            self.notifier.stopping()
            self._stop.set()

    def run(self) -> RunSummary:
        self._started = time.monotonic()
        self.results.start()
        self.notifier.ready(f"running role {self.profile.role} on {self.profile.camera.source}")
        next_heartbeat = time.monotonic() + self.profile.heartbeat_s
        try:
            while not self._stop.is_set():
                self.notifier.watchdog()
                result = self.results.poll(POLL_TIMEOUT_S, self.meter)
                if result is not None:
                    self.meter.count("processed")
                    self.summary.frames += 1
                    t0 = time.perf_counter()
                    image = self.results.take_image()
                    messages = self.analyzer.process(result, image)
                    del image
                    self.meter.add_time("analyzer", (time.perf_counter() - t0) * 1e3)
                    del result
                    self._store(messages)
                elif self.results.finished:
                    # a camera that failed for good ends the run with an error (systemd restarts the service)
                    self.summary.failed = self.results.health().state == "failed"
                    self.summary.reason = self.summary.reason or (
                        "camera failed" if self.summary.failed else "end of input"
                    )
                    break
                if self._unstored:
                    self._store([])
                now = time.monotonic()
                if now >= next_heartbeat:
                    self._heartbeat()
                    next_heartbeat = now + self.profile.heartbeat_s
                if self._limit_reached(now):
                    break
        finally:
            self._shutdown()
        return self.summary

    def _limit_reached(self, now: float) -> bool:
        if self.limits.max_frames is not None and self.summary.frames >= self.limits.max_frames:
            self.summary.reason = f"--max-frames {self.limits.max_frames} reached"
            return True
        if self.limits.duration_s is not None and now - self._started >= self.limits.duration_s:
            self.summary.reason = f"--duration {self.limits.duration_s:g}s reached"
            return True
        return False

    def _store(self, messages: list[ScoreMessage]) -> None:
        """Commit scores to the outbox (before any is sent). If the disk is full, keep them in memory and
        retry; this is logged as critical and shown in the systemd status."""
        batch = [*self._unstored, *messages]
        if not batch:
            return
        site, device = self.profile.device.site, self.profile.device.device_id
        try:
            self.outbox.put_many((topic_for(site, device, m.kind), encode(m), m.seq) for m in batch)
        except OutboxError as exc:
            self._unstored = batch[-MAX_UNSTORED:]
            lost = len(batch) - len(self._unstored)
            self.notifier.status(f"ERROR outbox cannot store scores: {exc}")
            log.critical("%s; %d score(s) held in memory, %d lost", exc, len(self._unstored), lost)
            return
        self._unstored = []
        for m in batch:
            self.summary.messages += 1
            self.summary.kinds[m.kind] = self.summary.kinds.get(m.kind, 0) + 1
            log.info("score %s seq=%d window %s..%s queued", m.kind, m.seq, m.window_start, m.window_end)
            if self.on_message is not None:
                self.on_message(m)
        if self.publisher is not None:
            self.publisher.wake()

    def health(self) -> HealthSnapshot:
        camera = self.results.health()
        return HealthSnapshot(
            frames_dropped=camera.frames_dropped,
            frames_corrupt=camera.frames_corrupt,
            absent_windows=self.analyzer.absent_windows,
            outbox_depth=self.outbox.depth(),
            outbox_dropped=self.outbox.dropped,
            camera_state=camera.state,
            camera_reopens=camera.reopens,
            backend=self.backend,
            backend_fallback=self.backend_fallback,
            models=self.models,
        )

    def _heartbeat(self) -> None:
        health = self.health()
        beat = build_heartbeat(
            site=self.profile.device.site,
            device_id=self.profile.device.device_id,
            seq=self.outbox.current_seq(),
            uptime_s=time.monotonic() - self._started,
            fps=self.meter.snapshot(),
            health=health,
        )
        self.meter.reset()
        self.summary.heartbeats += 1
        sent = self.publisher.publish_now(beat, "heartbeat") if self.publisher is not None else False
        fps = beat.fps.get("processed", 0.0)
        self.notifier.status(
            f"{fps:.1f} fps, camera {health.camera_state}, outbox {health.outbox_depth} queued"
            f"{', broker connected' if sent else ', broker not connected'}"
        )
        log.info(
            "heartbeat: fps=%s camera=%s dropped=%d corrupt=%d absent=%d outbox=%d (dropped %d)%s",
            beat.fps,
            health.camera_state,
            health.frames_dropped,
            health.frames_corrupt,
            health.absent_windows,
            health.outbox_depth,
            health.outbox_dropped,
            "" if sent else " [not sent: broker not connected]",
        )

    def _shutdown(self) -> None:
        """Close open windows into the outbox, stop the camera, send what is queued for a bounded time."""
        try:
            self.results.stop()
        finally:
            self._store(self.analyzer.flush())
            if self.publisher is not None:
                self.summary.drained = self.publisher.stop(drain_s=self.profile.outbox.drain_on_stop_s)
            else:
                self.summary.drained = self.outbox.depth() == 0


# -- assembly -------------------------------------------------------------------------------------------


def build_pipeline(profile: Profile, model_dir: Path, needs_face: bool, needs_segmentation: bool) -> tuple[
    PerceptionPipeline, bool
]:  # fmt: skip
    """Load the perception models the role needs; falls back to ONNX Runtime only when the profile allows
    it (and reports it), never silently."""
    config = profile.perception.model_copy(
        update={"face": needs_face, "segmentation": needs_segmentation, "pose": True}
    )
    config = PerceptionConfig.model_validate(config.model_dump())
    try:
        return PerceptionPipeline(config, model_dir), False
    except BackendUnavailable as exc:
        if not (config.backend.allow_fallback and config.backend.type != "onnxruntime"):
            raise
        log.warning("%s; falling back to ONNX Runtime (perception.backend.allow_fallback is true)", exc)
        fallback = config.model_copy(
            update={"backend": config.backend.model_copy(update={"type": "onnxruntime", "providers": ["cpu"]})}
        )
        return PerceptionPipeline(fallback, model_dir), True


def build_runtime(
    profile: Profile,
    *,
    model_dir: Path,
    feed: FrameFeed | None = None,
    results: FrameResultSource | None = None,
    limits: RunLimits | None = None,
    notifier: Notifier | None = None,
    connect: bool = True,
) -> EdgeRuntime:
    """Assemble a runtime from a profile: outbox, models (loaded and warmed), analyzer, publisher, camera.

    `results` replaces camera + perception (the replay seam); otherwise `feed` or the profile's camera is
    used through the frame grabber.
    """
    notifier = notifier or Notifier()
    cls = analyzer_class(profile.role)
    outbox = Outbox(profile.outbox_path(), max_messages=profile.outbox.max_messages)
    models: list[ModelRef] = []
    backend, fallback = profile.perception.backend.type, False
    if results is None:
        notifier.status("loading models")
        pipeline, fallback = build_pipeline(profile, model_dir, cls.needs.face, cls.needs.segmentation)
        if fallback:
            backend = "onnxruntime"
        pipeline.warmup()
        models = pipeline.models
        if feed is None:
            feed = open_camera_feed(profile)
        results = CameraResults(feed, pipeline)
    ctx = EmitContext(
        site=profile.device.site, device_id=profile.device.device_id, models=models, next_seq=outbox.next_seq
    )
    analyzer = create_analyzer(profile.role, ctx, profile.role_config())
    if isinstance(results, CameraResults):
        results.keep_image = analyzer.reads_image  # e.g. the head-pose shift regressor cuts its crop from the frame
    if getattr(analyzer, "needs_site_key", False):  # the gait booth hashes student codes with the site secret
        if profile.secrets.site_hmac_key is None:
            raise SecretError("gait.subject_codes.input is set but secrets.site_hmac_key is not")
        analyzer.use_site_key(read_secret(profile.secrets.site_hmac_key, "secrets.site_hmac_key"))  # type: ignore[attr-defined]
    publisher = None
    if connect:
        password = read_secret(profile.broker.password, "broker.password") if profile.broker.password else None
        publisher = MqttPublisher(
            profile.broker,
            outbox,
            site=profile.device.site,
            device_id=profile.device.device_id,
            role=profile.role,
            client_id=profile.client_id,
            password=password,
        )
        publisher.start()
    return EdgeRuntime(
        profile,
        results,
        analyzer,
        outbox,
        publisher,
        notifier=notifier,
        models=models,
        backend=backend,
        backend_fallback=fallback,
        limits=limits,
    )


def open_camera_feed(profile: Profile) -> FrameFeed:
    """The profile's camera behind the frame grabber (latest frame wins, reopened with backoff)."""
    from edge.grabber import grabber_for_profile

    feed: FrameFeed = grabber_for_profile(profile.camera)
    return feed
