"""The walk-through detector: cuts the frame stream into walk-throughs and judges whether each is screenable.

A walk-through opens when someone is in view and closes when nobody has been seen for `leave_s` (or after
`max_walk_s`). Its quality outcome (docs/metrics.md, "Gait"): `multiple_people` when two or more people were in
view for more than `max_multi_fraction` of the frames; `standing_still` when the person's horizontal travel
stayed under `min_travel` of the image width; `partial_walk` when the net travel from entry to exit is less
than `min_crossing` (turned back, or came and went on the same side); `wrong_direction` when it crossed the
other way; `poor_view` when too few frames had usable keypoints and a mask; `too_few_cycles` when fewer than
`min_cycles` gait cycles were found; otherwise `screened`.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import numpy.typing as npt

from edge.roles.gait.config import ALONG_DIRECTIONS, GaitConfig
from edge.roles.gait.message import GaitOutcome
from edge.roles.gait.silhouette import Silhouette

F32 = npt.NDArray[np.float32]
_ENDS = 3  # frames at each end whose median position is the entry / exit point


@dataclass
class WalkFrame:
    """What a walk keeps of one frame (in memory only; dropped when the walk's message is built)."""

    t: float
    people: int
    cx: float | None = None  # the main person's horizontal centre, fraction of the image width
    height: float | None = None  # the main person's box height, fraction of the image height
    keypoints: F32 | None = None  # (33, 3) image pixels and visibility
    world: F32 | None = None  # (33, 3) metres
    silhouette: Silhouette | None = None


@dataclass
class Walk:
    frames: list[WalkFrame] = field(default_factory=list)
    closed_at: float = 0.0  # timestamp of the frame at which the walk was closed

    @property
    def present(self) -> list[WalkFrame]:
        return [f for f in self.frames if f.people > 0]

    @property
    def first_seen(self) -> float:
        return self.present[0].t

    @property
    def last_seen(self) -> float:
        return self.present[-1].t

    def drop(self) -> None:
        """Forget every per-frame record (silhouettes, keypoint tracks)."""
        self.frames.clear()


class WalkDetector:
    """Feeds frames in time order; `update` returns a Walk when one closes."""

    def __init__(self, config: GaitConfig) -> None:
        self.config = config
        self.open: Walk | None = None
        self._last_seen = 0.0
        self.ignored = 0  # appearances shorter than min_walk_frames

    def update(self, frame: WalkFrame) -> Walk | None:
        if self.open is None:
            if frame.people == 0:
                return None
            self.open = Walk([frame])
            self._last_seen = frame.t
            return None
        walk = self.open
        if frame.people > 0:
            walk.frames.append(frame)
            self._last_seen = frame.t
            if frame.t - walk.frames[0].t >= self.config.max_walk_s:
                return self._close(frame.t)
            return None
        walk.frames.append(frame)
        if frame.t - self._last_seen >= self.config.leave_s:
            return self._close(frame.t)
        return None

    def flush(self, t: float | None = None) -> Walk | None:
        if self.open is None:
            return None
        return self._close(self.open.frames[-1].t if t is None else t)

    def _close(self, t: float) -> Walk | None:
        walk, self.open = self.open, None
        assert walk is not None
        while walk.frames and walk.frames[-1].people == 0:
            walk.frames.pop()  # trailing empty frames are not part of the walk
        walk.closed_at = t
        if len(walk.present) < self.config.min_walk_frames:
            self.ignored += 1
            walk.drop()
            return None
        return walk


@dataclass(frozen=True)
class WalkQuality:
    outcome: GaitOutcome
    direction: int  # +1 crossed towards image right, -1 towards image left, 0 no net travel
    counts: dict[str, float]


def frontal_ratio(frames: list[WalkFrame]) -> float:
    """Median shoulder width over trunk length in the image (about 0.6-0.9 seen from the front or back, under
    0.3 from the side); NaN when the shoulders and hips were never seen."""
    ratios = []
    for f in frames:
        kp = f.keypoints
        if kp is None or (kp[[11, 12, 23, 24], 2] < 0.5).any():
            continue
        trunk = float(np.linalg.norm((kp[11, :2] + kp[12, :2]) / 2 - (kp[23, :2] + kp[24, :2]) / 2))
        if trunk > 1e-6:
            ratios.append(float(np.linalg.norm(kp[11, :2] - kp[12, :2])) / trunk)
    return float(np.median(ratios)) if ratios else float("nan")


def along_direction(frames: list[WalkFrame], min_approach: float) -> tuple[int, float, float]:
    """(direction, net, travel) of a walk towards (+1) or away from (-1) the camera, from the trend of
    ln(person height in the image): the apparent height is inversely proportional to the distance."""
    hs = np.array([f.height for f in frames if f.height is not None and f.height > 0], np.float64)
    if hs.size == 0:
        return 0, 0.0, 0.0
    ln = np.log(hs)
    travel = float(np.percentile(ln, 95) - np.percentile(ln, 5))
    net = float(np.median(ln[-_ENDS:]) - np.median(ln[:_ENDS]))
    return (0 if abs(net) < min_approach else (1 if net > 0 else -1)), net, travel


def assess_walk(walk: Walk, config: GaitConfig, cycles: int, valid_frames: int) -> WalkQuality:
    """The walk's quality outcome from its people counts, track, valid frames and gait cycles found."""
    present = walk.present
    n = len(present)
    multi = sum(1 for f in present if f.people >= 2)
    extra: dict[str, float] = {}
    if config.direction in ALONG_DIRECTIONS:
        # Towards / away from the camera: the approach replaces the crossing; a person seen from the side
        # (shoulders narrow against the trunk) walked across, which is the wrong direction here.
        direction, net, travel = along_direction(present, config.min_approach)
        frontal = frontal_ratio(present)
        wanted = {"towards": 1, "away": -1, "along": 0}[config.direction]
        if np.isfinite(frontal):
            extra["frontal_ratio"] = frontal
        standing = travel < config.min_approach / 2
        partial = direction == 0
        wrong = wanted not in (0, direction) or bool(np.isfinite(frontal) and frontal < config.min_frontal)
    else:
        xs = np.array([f.cx for f in present if f.cx is not None], np.float64)
        travel = float(np.percentile(xs, 95) - np.percentile(xs, 5)) if xs.size else 0.0
        net = float(np.median(xs[-_ENDS:]) - np.median(xs[:_ENDS])) if xs.size else 0.0
        direction = 0 if abs(net) < config.min_travel else (1 if net > 0 else -1)
        wanted = {"left_to_right": 1, "right_to_left": -1, "either": 0}[config.direction]
        standing = travel < config.min_travel
        partial = abs(net) < config.min_crossing
        wrong = wanted not in (0, direction)
    counts = {
        "frames_with_person": float(n),
        "multi_person_frames": float(multi),
        "travel": travel,
        "net_travel": net,
        "valid_frames": float(valid_frames),
        "gait_cycles": float(cycles),
        "duration_s": float(walk.last_seen - walk.first_seen),
        **extra,
    }
    outcome: GaitOutcome
    if n and multi / n > config.max_multi_fraction:
        outcome = "multiple_people"
    elif standing:
        outcome = "standing_still"
    elif partial:
        outcome = "partial_walk"
    elif wrong:
        outcome = "wrong_direction"
    elif valid_frames < config.min_valid_fraction * n:
        outcome = "poor_view"
    elif cycles < config.min_cycles:
        outcome = "too_few_cycles"
    else:
        outcome = "screened"
    return WalkQuality(outcome, direction, counts)
