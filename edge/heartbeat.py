"""The heartbeat: how the device is doing, every N seconds (fps per stage, drops, outbox, camera, models)."""

from __future__ import annotations

import logging
import time
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path

from contract.wire import Heartbeat, ModelRef, utcnow
from edge.grabber import CameraHealth

log = logging.getLogger(__name__)

THERMAL_ROOT = Path("/sys/class/thermal")
# Zone types that mean "the CPU" on x86, Raspberry Pi and Jetson boards, in order of preference.
_CPU_ZONE_TYPES = ("x86_pkg_temp", "cpu-thermal", "cpu_thermal", "CPU-therm", "soc_thermal", "cpu")


def cpu_temperature_c(root: Path = THERMAL_ROOT) -> float | None:
    """CPU temperature from /sys/class/thermal, or None where the platform does not expose one."""
    zones: dict[str, float] = {}
    for zone in sorted(root.glob("thermal_zone*")):
        try:
            kind = (zone / "type").read_text().strip()
            millideg = int((zone / "temp").read_text().strip())
        except (OSError, ValueError):
            continue
        zones.setdefault(kind, millideg / 1000.0)
    for wanted in _CPU_ZONE_TYPES:
        for kind, value in zones.items():
            if kind.lower() == wanted.lower():
                return value
    return next(iter(zones.values()), None)


@dataclass
class StageMeter:
    """Frames and time per stage since the last heartbeat, turned into frames per second."""

    started: float = field(default_factory=time.monotonic)
    counts: dict[str, int] = field(default_factory=lambda: defaultdict(int))
    busy_ms: dict[str, float] = field(default_factory=lambda: defaultdict(float))

    def count(self, stage: str, n: int = 1) -> None:
        self.counts[stage] += n

    def add_time(self, stage: str, ms: float) -> None:
        self.busy_ms[stage] += ms

    def snapshot(self) -> dict[str, float]:
        """Rates over the interval: `<stage>` frames/s for counted stages (capture, processed); for timed
        stages the throughput that stage alone would allow (frames / busy seconds)."""
        elapsed = max(time.monotonic() - self.started, 1e-6)
        fps = {stage: n / elapsed for stage, n in self.counts.items()}
        processed = self.counts.get("processed", 0)
        for stage, ms in self.busy_ms.items():
            if processed and ms > 0:
                fps[stage] = processed / (ms / 1000.0)
        return {k: round(v, 2) for k, v in list(fps.items())[:16]}

    def reset(self) -> None:
        self.started = time.monotonic()
        self.counts = defaultdict(int)
        self.busy_ms = defaultdict(float)


@dataclass
class HealthSnapshot:
    """Everything the heartbeat reports besides identity and fps."""

    camera: CameraHealth = field(default_factory=CameraHealth)  # the grabber's snapshot, as it was taken
    absent_windows: int = 0
    outbox_depth: int = 0
    outbox_dropped: int = 0
    scores_lost: int = 0  # made but never stored (disk full): Outbox.lost
    backend: str = "onnxruntime"
    backend_fallback: bool = False
    models: list[ModelRef] = field(default_factory=list)


def build_heartbeat(
    *, site: str, device_id: str, seq: int, uptime_s: float, fps: dict[str, float], health: HealthSnapshot
) -> Heartbeat:
    return Heartbeat(
        device_id=device_id,
        site=site,
        seq=seq,
        at=utcnow(),
        uptime_s=max(0.0, uptime_s),
        fps=fps,
        frames_dropped=health.camera.frames_dropped,
        frames_corrupt=health.camera.frames_corrupt,
        absent_windows=health.absent_windows,
        outbox_depth=health.outbox_depth,
        outbox_dropped=health.outbox_dropped,
        scores_lost=health.scores_lost,
        camera_state=health.camera.state,
        camera_reopens=health.camera.reopens,
        camera_no_frame_s=health.camera.no_frame_s,
        backend=health.backend,
        backend_fallback=health.backend_fallback,
        models=health.models,
        cpu_temp_c=cpu_temperature_c(),
    )
