"""The head-pose / cervical station: per-frame head angles and shifts → one `HeadPoseWindow` per session window.

Per window and metric: mean, minimum, maximum, range, the seconds its magnitude stayed above the configured
threshold, and the frames it was measured in; plus TWSTRS-2-like item scores from each metric's median
magnitude (docs/metrics.md, "Head pose"). Windows are cut on frame time (`WindowClock`); a window in which
nobody was seen sends nothing and is counted in `absent_windows`.

The shifts come from the keypoints, from the synthetic-trained shift regressor (`headpose_shift_model`), or
both (`headpose.shift_source`). The regressor reads the camera frame, which the caller hands to `process` with
the perception result (`image=`); the frame is used for that call only.
"""

from __future__ import annotations

import logging

import numpy as np
import numpy.typing as npt

from edge.perception.types import FrameResult, Person
from edge.roles.base import EmitContext, Image, PerceptionNeeds, RoleAnalyzer, ScoreMessage
from edge.roles.common import main_person
from edge.roles.headpose.config import ANGLE_METRICS, HEADPOSE_METRICS, MODEL_SHIFT_METRICS, HeadPoseConfig
from edge.roles.headpose.message import HeadPoseStats, HeadPoseWindow
from edge.roles.headpose.metrics import compute_headpose, severity_items
from edge.roles.headpose.shift_model import HeadShiftModel
from edge.roles.windows import FrameTimeline, WindowClock, close_windows

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
        # Angles from the keypoints only stand in for a window in which the face was never found: on avatars they
        # read a quarter to two thirds of the true angle where the face fit reads it whole (docs/results.md).
        self._fallback = {name: _Series(getattr(above, name)) for name in ANGLE_METRICS}
        source = self.config.shift_source
        self.shift_model: HeadShiftModel | None = None
        # metric each regressor output goes to: the shift metrics themselves, or their own beside them
        self._model_targets: tuple[str, str] = ("lateral_shift_cm", "sagittal_shift_cm")
        if source != "keypoints":
            assert self.config.shift_model is not None  # HeadPoseConfig enforces it
            self.shift_model = HeadShiftModel(self.config.shift_model)
        if source == "both":
            self._model_targets = (MODEL_SHIFT_METRICS["lateral_shift_cm"], MODEL_SHIFT_METRICS["sagittal_shift_cm"])
            for kp_name, name in MODEL_SHIFT_METRICS.items():
                self._series[name] = _Series(getattr(above, kp_name))
        self._model_due_in = 0  # frames with a person until the regressor runs again
        self._model_skipped_s = 0.0  # frame time the skipped frames stand for, added to the next value
        self._warned_no_image = False
        self._frames = 0
        self._present = 0
        self._present_s = 0.0
        self.timeline = FrameTimeline()

    @property
    def reads_image(self) -> bool:
        """True when the shift regressor is configured: each result's frame must come with it (`image=`)."""
        return self.shift_model is not None

    def process(self, frame: FrameResult, image: Image | None = None) -> list[ScoreMessage]:
        """Add one perception result; `image` is its BGR frame, read by the shift regressor when configured."""
        t = frame.timestamp
        if not self.timeline.accept(t):
            return []
        messages: list[ScoreMessage] = close_windows(self.clock, t, self._close)
        # each frame stands for the time until the next one; the first frame for none
        dt = 0.0 if self.timeline.dt is None else min(self.timeline.dt, self.config.max_gap_s)
        self._add(frame, dt, image)
        return messages

    def flush(self) -> list[ScoreMessage]:
        if self._frames == 0 or self.clock.origin is None:
            return []
        start = self.clock.start()
        end = max(start, min(self.clock.end(), self.timeline.last if self.timeline.last is not None else start))
        message = self._close(start, end)
        self.clock.index += 1
        return [message] if message is not None else []

    def _add(self, frame: FrameResult, dt: float, image: npt.NDArray[np.uint8] | None) -> None:
        self._frames += 1
        person = main_person(frame.persons)
        if person is None:
            return
        self._present += 1
        self._present_s += dt
        metrics = compute_headpose(person, self.config.min_visibility, self.config.neutral_sagittal_cm)
        values = metrics.values
        if self.config.shift_source == "model":
            values = {k: v for k, v in values.items() if k not in MODEL_SHIFT_METRICS}
        for name, value in values.items():
            if value is None:
                continue
            fallback = name in self._fallback and metrics.source != "face"
            (self._fallback[name] if fallback else self._series[name]).add(value, dt)
        if self.shift_model is not None:
            self._add_model_shift(self.shift_model, person, dt, image)

    def _add_model_shift(
        self, model: HeadShiftModel, person: Person, dt: float, image: npt.NDArray[np.uint8] | None
    ) -> None:
        """Every n-th frame with a person: the regressor's shifts, each standing for the frames since the last
        run; a frame it cannot read (no image, shoulders not placed) is retried on the next one."""
        if self._model_due_in > 0:
            self._model_due_in -= 1
            self._model_skipped_s += dt
            return
        stands_for = self._model_skipped_s + dt
        self._model_skipped_s = 0.0
        if image is None:
            if not self._warned_no_image:
                log.warning("headpose.shift_model is configured but frames reach the role without their image (a "
                            "replay, or a caller that does not pass image=): no model shifts")  # fmt: skip
                self._warned_no_image = True
            return
        shift = model.predict(image, person.keypoints, self.config.min_visibility)
        if shift is None:
            return
        for name, value in zip(self._model_targets, shift, strict=True):
            self._series[name].add(value, stands_for)
        self._model_due_in = model.config.every_n_frames - 1

    def _close(self, start: float, end: float) -> HeadPoseWindow | None:
        frames, present, present_s = self._frames, self._present, self._present_s
        chosen = {
            name: self._fallback[name] if name in self._fallback and not s.values else s
            for name, s in self._series.items()
        }
        stats = {name: s.stats() for name, s in chosen.items()}
        severity = severity_items({name: s.typical() for name, s in chosen.items()}, self.config.severity)
        for s in (*self._series.values(), *self._fallback.values()):
            s.clear()
        self._model_due_in, self._model_skipped_s = 0, 0.0  # each window starts with a model run
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
            models=[*self.ctx.models, *([self.shift_model.ref] if self.shift_model is not None else [])],
            frames=frames,
            presence_s=min(present_s, max(0.0, end - start)),
            metrics=stats,
            severity=severity,
        )
