"""The device's frame loop: results → role analyzer → outbox → MQTT, with the heartbeat and systemd.

What leaves this module is the analyzer's score messages, committed to the outbox before the publisher sends
them. The loop is assembled by `edge.assembly.build_runtime`; its results come from a `FrameResultSource`
(edge/result_sources.py).
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from contract.sdnotify import Notifier
from contract.wire import ModelRef, encode, topic_for
from edge.config import Profile
from edge.heartbeat import HealthSnapshot, StageMeter, build_heartbeat
from edge.mqtt_client import MqttPublisher
from edge.outbox import Outbox, OutboxError
from edge.result_sources import FrameResultSource
from edge.roles.base import RoleAnalyzer, ScoreMessage

log = logging.getLogger(__name__)

POLL_TIMEOUT_S = 0.5  # the loop wakes at least this often (watchdog, heartbeat, stop requests)
MAX_UNSTORED = 1000  # scores kept in memory while the outbox cannot store them (disk full)


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
            self.outbox.record_lost(lost, f"the disk is full and {MAX_UNSTORED} scores are held in memory already")
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
        return HealthSnapshot(
            camera=self.results.health(),
            absent_windows=self.analyzer.absent_windows,
            outbox_depth=self.outbox.depth(),
            outbox_dropped=self.outbox.dropped,
            scores_lost=self.outbox.lost,
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
            f"{fps:.1f} fps, camera {health.camera.state}, outbox {health.outbox_depth} queued"
            f"{', broker connected' if sent else ', broker not connected'}"
        )
        log.info(
            "heartbeat: fps=%s camera=%s dropped=%d corrupt=%d absent=%d outbox=%d (dropped %d)%s",
            beat.fps,
            health.camera.state,
            health.camera.frames_dropped,
            health.camera.frames_corrupt,
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
            self.outbox.record_lost(len(self._unstored), "held in memory at exit, the disk being full")
            if self.publisher is not None:
                self.summary.drained = self.publisher.stop(drain_s=self.profile.outbox.drain_on_stop_s)
            else:
                self.summary.drained = self.outbox.depth() == 0
