"""Per-frame posture metrics from one person's pose (formulas and sign conventions: docs/metrics.md).

Image metrics use keypoints in pixels (y down); sagittal angles use the world landmarks (metres, y down),
so they do not depend on where the camera stands around the subject. A metric is None (invalid) when a
keypoint it needs is below the visibility threshold, or when the view does not suit it (craniovertebral
angle and head forward distance need a side view; head tilt and shoulder asymmetry a front or back view).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Literal

import numpy as np
import numpy.typing as npt

from contract.landmarks import Landmark as Lm
from edge.perception.types import Person
from edge.roles.posture.config import POSTURE_METRICS

View = Literal["front", "side", "oblique", "unknown"]
Vec = npt.NDArray[np.float64]
UP = np.array([0.0, -1.0, 0.0])  # world y points down
# Front-view shoulder width over torso length in the image, for the view estimate without world landmarks.
FRONT_SHOULDER_TO_TORSO = 0.8


@dataclass(frozen=True)
class LinearCorrection:
    """clinical ≈ intercept + slope × measured: maps a landmark-based value onto its clinical definition."""

    version: str
    slope: float
    intercept: float

    def __call__(self, measured: float) -> float:
        return self.intercept + self.slope * measured


# The side-view metrics take C7 at BlazePose's shoulder point and the tragus at its ear point. On avatars the
# shoulder point lies well forward of and below C7, so the ear-over-shoulder angle reads about 25-30° above the
# photogrammetric CVA (C7 -> tragus) and the head forward distance about 0.1 torso lengths short. These maps,
# fitted on exact avatar landmarks and checked on held-out subjects (docs/metrics.md, "Corrections"), turn the
# landmark values into estimates of the clinical ones, so that the clinical CVA cut-offs apply.
CVA_CORRECTION = LinearCorrection(version="avatar-1", slope=0.896, intercept=-23.91)
HEAD_FORWARD_CORRECTION = LinearCorrection(version="avatar-1", slope=0.402, intercept=0.186)


@dataclass(frozen=True)
class FrameMetrics:
    """One frame's metrics; a value of None means "not measured in this frame" (its quality flag)."""

    values: dict[str, float | None]
    view: View
    body_yaw_deg: float | None  # 0 = shoulders square to the camera, 90 = side-on
    facing: int  # side view: +1 the subject faces image right, -1 image left, 0 unknown

    def valid(self, name: str) -> bool:
        return self.values.get(name) is not None

    def vector(self, names: list[str] | tuple[str, ...]) -> npt.NDArray[np.float32]:
        """The named metrics as a row (NaN where invalid), e.g. as a posture model input."""
        return np.array([np.nan if self.values.get(n) is None else self.values[n] for n in names], np.float32)


class _Pose:
    def __init__(self, person: Person, min_visibility: float) -> None:
        self.kp = np.asarray(person.keypoints, np.float64)
        world = np.asarray(person.world, np.float64) if person.world is not None else None
        self.world = world if world is not None and world.shape[0] >= 33 and np.isfinite(world).all() else None
        self.min_visibility = min_visibility

    def visible(self, *idx: int) -> bool:
        return all(self.kp[i, 2] >= self.min_visibility and np.isfinite(self.kp[i, :2]).all() for i in idx)

    def xy(self, i: int) -> Vec:
        return self.kp[i, :2]

    def mid(self, a: int, b: int) -> Vec:
        return 0.5 * (self.kp[a, :2] + self.kp[b, :2])

    def either(self, a: int, b: int) -> Vec | None:
        """Midpoint of a pair when both are visible, else the visible one (in a side view one hides)."""
        va, vb = self.visible(a), self.visible(b)
        if va and vb:
            return self.mid(a, b)
        if va or vb:
            return self.xy(a if va else b)
        return None

    def best(self, a: int, b: int) -> Vec | None:
        """The more visible of a pair (the near ear in a side view), if it is visible enough."""
        i = a if self.kp[a, 2] >= self.kp[b, 2] else b
        return self.xy(i) if self.visible(i) else None


def _deg(rad: float) -> float:
    return math.degrees(rad)


def _line_roll(p_left: Vec, p_right: Vec) -> float:
    """Angle of the left–right line against the image horizontal; > 0 when the subject's left point is lower."""
    return _deg(math.atan2(p_left[1] - p_right[1], abs(p_left[0] - p_right[0]) + 1e-9))


def _unit(v: Vec) -> Vec | None:
    n = float(np.linalg.norm(v))
    return None if n < 1e-9 else v / n


def body_view(pose: _Pose, front_max_deg: float, side_min_deg: float) -> tuple[View, float | None]:
    """Body yaw from the shoulder line: in the world landmarks (depth vs width), else from its image width."""
    yaw: float | None = None
    if pose.world is not None:
        d = pose.world[Lm.LEFT_SHOULDER] - pose.world[Lm.RIGHT_SHOULDER]
        yaw = _deg(math.atan2(abs(d[2]), abs(d[0]) + 1e-9))
    elif pose.visible(Lm.LEFT_SHOULDER, Lm.RIGHT_SHOULDER, Lm.LEFT_HIP, Lm.RIGHT_HIP):
        shoulders, hips = pose.mid(Lm.LEFT_SHOULDER, Lm.RIGHT_SHOULDER), pose.mid(Lm.LEFT_HIP, Lm.RIGHT_HIP)
        torso = float(np.linalg.norm(shoulders - hips))
        width = abs(float(pose.xy(Lm.LEFT_SHOULDER)[0] - pose.xy(Lm.RIGHT_SHOULDER)[0]))
        if torso > 1e-6:
            yaw = _deg(math.acos(min(1.0, width / (FRONT_SHOULDER_TO_TORSO * torso))))
    if yaw is None:
        return "unknown", None
    if yaw <= front_max_deg:
        return "front", yaw
    if yaw >= side_min_deg:
        return "side", yaw
    return "oblique", yaw


def compute_metrics(
    person: Person,
    *,
    min_visibility: float = 0.5,
    front_view_max_deg: float = 30.0,
    side_view_min_deg: float = 60.0,
    corrected: bool = True,
) -> FrameMetrics:
    """All posture metrics of one person in one frame (`corrected=False`: the CVA and head forward distance as
    the landmarks give them, before CVA_CORRECTION / HEAD_FORWARD_CORRECTION)."""
    pose = _Pose(person, min_visibility)
    view, yaw = body_view(pose, front_view_max_deg, side_view_min_deg)
    values: dict[str, float | None] = dict.fromkeys(POSTURE_METRICS)
    facing = 0

    # Side view: craniovertebral angle and head forward distance, C7 approximated by the shoulder point.
    ear = pose.best(Lm.LEFT_EAR, Lm.RIGHT_EAR)
    c7 = pose.either(Lm.LEFT_SHOULDER, Lm.RIGHT_SHOULDER)
    if view == "side" and ear is not None and c7 is not None and pose.visible(Lm.NOSE):
        facing = 1 if pose.xy(Lm.NOSE)[0] >= ear[0] else -1
        forward = (ear[0] - c7[0]) * facing
        up = c7[1] - ear[1]
        cva = _deg(math.atan2(up, forward))
        values["cva_deg"] = CVA_CORRECTION(cva) if corrected else cva
        hip = pose.either(Lm.LEFT_HIP, Lm.RIGHT_HIP)
        if hip is not None:
            torso = float(np.linalg.norm(c7 - hip))
            if torso > 1e-6:
                ratio = forward / torso
                values["head_forward_ratio"] = HEAD_FORWARD_CORRECTION(ratio) if corrected else ratio

    # Front (or back) view: head roll from the ear line (eye line when an ear is hidden) and shoulder line.
    if view == "front":
        if pose.visible(Lm.LEFT_EAR, Lm.RIGHT_EAR):
            values["head_tilt_deg"] = _line_roll(pose.xy(Lm.LEFT_EAR), pose.xy(Lm.RIGHT_EAR))
        elif pose.visible(Lm.LEFT_EYE_OUTER, Lm.RIGHT_EYE_OUTER):
            values["head_tilt_deg"] = _line_roll(pose.xy(Lm.LEFT_EYE_OUTER), pose.xy(Lm.RIGHT_EYE_OUTER))
        if pose.visible(Lm.LEFT_SHOULDER, Lm.RIGHT_SHOULDER):
            values["shoulder_asymmetry_deg"] = _line_roll(pose.xy(Lm.LEFT_SHOULDER), pose.xy(Lm.RIGHT_SHOULDER))

    # Any view, world landmarks: angles in the body's sagittal and frontal planes against the vertical.
    if pose.world is not None and (pose.visible(Lm.LEFT_SHOULDER) or pose.visible(Lm.RIGHT_SHOULDER)):
        w = pose.world
        left = w[Lm.LEFT_SHOULDER] - w[Lm.RIGHT_SHOULDER]
        left_h = _unit(left - np.dot(left, UP) * UP)  # subject's left, horizontal
        if left_h is not None:
            forward_h = np.cross(left_h, UP)  # subject's forward, horizontal (left × up)
            shoulders = 0.5 * (w[Lm.LEFT_SHOULDER] + w[Lm.RIGHT_SHOULDER])
            if pose.visible(Lm.LEFT_EAR) or pose.visible(Lm.RIGHT_EAR):
                neck = 0.5 * (w[Lm.LEFT_EAR] + w[Lm.RIGHT_EAR]) - shoulders
                values["neck_flexion_deg"] = _deg(math.atan2(float(neck @ forward_h), float(neck @ UP)))
            if pose.visible(Lm.LEFT_HIP) or pose.visible(Lm.RIGHT_HIP):
                trunk = shoulders - 0.5 * (w[Lm.LEFT_HIP] + w[Lm.RIGHT_HIP])
                values["trunk_flexion_deg"] = _deg(math.atan2(float(trunk @ forward_h), float(trunk @ UP)))
                values["trunk_lateral_lean_deg"] = _deg(math.atan2(float(trunk @ left_h), float(trunk @ UP)))
    return FrameMetrics(values, view, yaw, facing)
