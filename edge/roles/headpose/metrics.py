"""Per-frame head-pose metrics and the TWSTRS-2-like severity items (docs/metrics.md, "Head pose").

Angles follow `HeadPose` (yaw > 0 the subject turns to their left, pitch > 0 chin up, roll > 0 the left ear
drops). They come from the face landmarks' rigid fit when perception found a face, otherwise from the pose
keypoints: roll from the ear line in the image (eye line when an ear is hidden), yaw from the ear-to-ear vector
of the world landmarks against the shoulder line, pitch from the nose's elevation over the ears in the world
landmarks. Shifts are the ear midpoint's offset from the shoulder midpoint along the trunk's left (lateral) and
forward (sagittal) axes, in centimetres, from the world landmarks (metres, y down).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Literal

import numpy as np
import numpy.typing as npt

from contract.landmarks import Landmark as Lm
from edge.perception.types import Person
from edge.roles.headpose.config import SeverityBands

Vec = npt.NDArray[np.float64]
UP = np.array([0.0, -1.0, 0.0])
NEUTRAL_NOSE_ELEVATION_DEG = -2.0  # nose elevation over the ear line of a level head (pitch 0), synthetic head
AngleSource = Literal["face", "keypoints", "none"]


@dataclass(frozen=True)
class HeadPoseFrame:
    values: dict[str, float | None]
    source: AngleSource


def _unit(v: Vec) -> Vec | None:
    n = float(np.linalg.norm(v))
    return v / n if n > 1e-9 and math.isfinite(n) else None


class _Points:
    def __init__(self, person: Person, min_visibility: float) -> None:
        self.kp = np.asarray(person.keypoints, np.float64)
        world = np.asarray(person.world, np.float64) if person.world is not None else None
        self.world = world if world is not None and world.shape == (33, 3) and np.isfinite(world).all() else None
        self.min_visibility = min_visibility

    def visible(self, *idx: int) -> bool:
        return bool((self.kp[list(idx), 2] >= self.min_visibility).all())


def _image_roll(p: _Points) -> float | None:
    for left, right in ((Lm.LEFT_EAR, Lm.RIGHT_EAR), (Lm.LEFT_EYE, Lm.RIGHT_EYE)):
        if p.visible(left, right):
            d = p.kp[left, :2] - p.kp[right, :2]
            if d[0] <= 0:
                return None  # the subject's left is not on the image right: not facing the camera
            return math.degrees(math.atan2(d[1], d[0]))  # y down: the left ear lower gives a positive roll
    return None


def _trunk_axes(world: Vec) -> tuple[Vec, Vec] | None:
    """The trunk's left and forward horizontal unit vectors from the shoulders."""
    lh = world[Lm.LEFT_SHOULDER] - world[Lm.RIGHT_SHOULDER]
    lh = lh - (lh @ UP) * UP
    left = _unit(lh)
    if left is None:
        return None
    forward = np.cross(left, UP)
    return left, forward


def compute_headpose(person: Person, min_visibility: float = 0.5, neutral_sagittal_cm: float = 0.0) -> HeadPoseFrame:
    p = _Points(person, min_visibility)
    values: dict[str, float | None] = dict.fromkeys(
        ("yaw_deg", "pitch_deg", "roll_deg", "lateral_shift_cm", "sagittal_shift_cm")
    )
    source: AngleSource = "none"
    if person.head_pose is not None:
        hp = person.head_pose
        values.update(yaw_deg=hp.yaw, pitch_deg=hp.pitch, roll_deg=hp.roll)
        source = "face"
    else:
        values["roll_deg"] = _image_roll(p)
        if values["roll_deg"] is not None:
            source = "keypoints"
    w = p.world
    if w is not None and p.visible(Lm.LEFT_SHOULDER, Lm.RIGHT_SHOULDER, Lm.LEFT_EAR, Lm.RIGHT_EAR):
        axes = _trunk_axes(w)
        if axes is not None:
            left, forward = axes
            ears = w[Lm.LEFT_EAR] - w[Lm.RIGHT_EAR]
            if source != "face":
                # the ear vector turned from the shoulder line about the vertical (subject's left turn positive)
                values["yaw_deg"] = math.degrees(math.atan2(-(ears @ forward), ears @ left))
                if p.visible(Lm.NOSE):
                    nose = w[Lm.NOSE] - (w[Lm.LEFT_EAR] + w[Lm.RIGHT_EAR]) / 2
                    along = float(np.linalg.norm(nose - (nose @ UP) * UP))
                    values["pitch_deg"] = math.degrees(math.atan2(nose @ UP, along)) - NEUTRAL_NOSE_ELEVATION_DEG
            head = (w[Lm.LEFT_EAR] + w[Lm.RIGHT_EAR]) / 2 - (w[Lm.LEFT_SHOULDER] + w[Lm.RIGHT_SHOULDER]) / 2
            values["lateral_shift_cm"] = 100.0 * float(head @ left)
            values["sagittal_shift_cm"] = 100.0 * float(head @ forward) - neutral_sagittal_cm
    for name, value in values.items():
        if value is not None and not math.isfinite(value):
            values[name] = None
    return HeadPoseFrame(values, source)


def _score(value: float, bounds: list[float]) -> int:
    return int(np.searchsorted(np.asarray(bounds), value, side="right"))


def severity_items(typical: dict[str, float | None], bands: SeverityBands) -> dict[str, int]:
    """TWSTRS-2-like item scores from each metric's typical magnitude in a window (its median |value|)."""
    items: dict[str, int] = {}
    sources = {
        "rotation": ("yaw_deg", bands.rotation),
        "laterocollis": ("roll_deg", bands.laterocollis),
        "antero_retrocollis": ("pitch_deg", bands.antero_retrocollis),
    }
    for item, (metric, bounds) in sources.items():
        value = typical.get(metric)
        if value is not None:
            items[item] = _score(abs(value), bounds)
    for item, metric in (("lateral_shift", "lateral_shift_cm"), ("sagittal_shift", "sagittal_shift_cm")):
        value = typical.get(metric)
        if value is not None:
            items[item] = int(abs(value) >= bands.shift_cm)
    return items
