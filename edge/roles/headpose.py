"""The head-pose / cervical station: per-frame head angles and shifts → one `HeadPoseWindow` per session window.

Per window and metric: mean, minimum, maximum, range, the seconds its magnitude stayed above the configured
threshold, and the frames it was measured in; plus TWSTRS-2-like item scores from each metric's median
magnitude (docs/metrics.md, "Head pose"). Windows are cut on frame time (`WindowClock`); a window in which
nobody was seen sends nothing and is counted in `absent_windows`.
"""

from __future__ import annotations

import logging

import numpy as np

from edge.perception.types import FrameResult
from edge.roles.base import EmitContext, PerceptionNeeds, RoleAnalyzer, ScoreMessage
from edge.roles.headpose_config import HEADPOSE_METRICS, HeadPoseConfig
from edge.roles.headpose_metrics import compute_headpose, severity_items
from edge.roles.posture_metrics import main_person
from edge.roles.windows import FrameTimeline, WindowClock
from edge.wire import HeadPoseStats, HeadPoseWindow

log = logging.getLogger(__name__)


class _Series:
    """One metric's values in the open window and the time its magnitude spent above the threshold."""

    def __init__(self, threshold: float) -> None:
        self.threshold = threshold
        self.values: list[float] = []
        self.above_s = 0.0

    def add(self, value: float, dt: float) -> None:
        self.values.append(value)
        if abs(value) > self.threshold:
            self.above_s += dt

    def stats(self) -> HeadPoseStats:
        if not self.values:
            return HeadPoseStats(mean=None, minimum=None, maximum=None, range=None, time_above_s=0.0, valid_frames=0)
        a = np.asarray(self.values, np.float64)
        lo, hi = float(a.min()), float(a.max())
        return HeadPoseStats(
            mean=float(a.mean()), minimum=lo, maximum=hi, range=hi - lo, time_above_s=self.above_s,
            valid_frames=len(self.values),
        )  # fmt: skip

    def typical(self) -> float | None:
        return float(np.median(np.abs(self.values))) if self.values else None

    def clear(self) -> None:
        self.values = []
        self.above_s = 0.0


class HeadPoseAnalyzer(RoleAnalyzer):
    role = "headpose"
    needs = PerceptionNeeds(pose=True, face=True)

    def __init__(self, ctx: EmitContext, config: HeadPoseConfig | None = None) -> None:
        super().__init__(ctx)
        self.config = config or HeadPoseConfig()
        self.clock = WindowClock(self.config.window_s)
        above = self.config.above
        self._series = {name: _Series(getattr(above, name)) for name in HEADPOSE_METRICS}
        self._frames = 0
        self._present = 0
        self._present_s = 0.0
        self.timeline = FrameTimeline()

    def process(self, frame: FrameResult) -> list[ScoreMessage]:
        t = frame.timestamp
        if not self.timeline.accept(t):
            return []
        messages: list[ScoreMessage] = []
        for start, end in self.clock.advance(t):
            message = self._close(start, end)
            if message is not None:
                messages.append(message)
        # each frame stands for the time until the next one; the first frame for none
        dt = 0.0 if self.timeline.dt is None else min(self.timeline.dt, self.config.max_gap_s)
        self._add(frame, dt)
        return messages

    def flush(self) -> list[ScoreMessage]:
        if self._frames == 0 or self.clock.origin is None:
            return []
        start = self.clock.start()
        end = max(start, min(self.clock.end(), self.timeline.last if self.timeline.last is not None else start))
        message = self._close(start, end)
        self.clock.index += 1
        return [message] if message is not None else []

    def _add(self, frame: FrameResult, dt: float) -> None:
        self._frames += 1
        person = main_person(frame.persons)
        if person is None:
            return
        self._present += 1
        self._present_s += dt
        metrics = compute_headpose(person, self.config.min_visibility, self.config.neutral_sagittal_cm)
        for name, value in metrics.values.items():
            if value is not None:
                self._series[name].add(value, dt)

    def _close(self, start: float, end: float) -> HeadPoseWindow | None:
        frames, present, present_s = self._frames, self._present, self._present_s
        stats = {name: s.stats() for name, s in self._series.items()}
        severity = severity_items({name: s.typical() for name, s in self._series.items()}, self.config.severity)
        for s in self._series.values():
            s.clear()
        self._frames = self._present = 0
        self._present_s = 0.0
        if frames == 0:
            return None
        if present == 0:
            self.absent_windows += 1
            return None
        return HeadPoseWindow(
            device_id=self.ctx.device_id,
            site=self.ctx.site,
            seq=self.ctx.next_seq(),
            window_start=self.timeline.wall(start),
            window_end=self.timeline.wall(end),
            models=list(self.ctx.models),
            frames=frames,
            presence_s=min(present_s, max(0.0, end - start)),
            metrics=stats,
            severity=severity,
        )
