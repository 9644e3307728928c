"""Draw perception results onto a copy of a frame (for a person to look at; never sent anywhere)."""

from __future__ import annotations

import cv2
import numpy as np
import numpy.typing as npt

from contract.landmarks import POSE_CONNECTIONS
from edge.perception.types import Person

_LEFT = (0, 160, 255)  # BGR: subject's left side in orange
_RIGHT = (255, 160, 0)  # subject's right side in blue
_CENTRE = (220, 220, 220)
_FACE = (80, 220, 80)


def _side_colour(a: int, b: int) -> tuple[int, int, int]:
    # Odd BlazePose indices ≥ 1 are the subject's left, even ones the right (0 is the nose).
    if a % 2 == 1 and b % 2 == 1:
        return _LEFT
    if a % 2 == 0 and b % 2 == 0 and a and b:
        return _RIGHT
    return _CENTRE


def draw_persons(
    image_bgr: npt.NDArray[np.uint8], persons: list[Person], min_visibility: float = 0.3
) -> npt.NDArray[np.uint8]:
    """Skeleton (POSE_CONNECTIONS), keypoints, box, face landmarks and head pose of each person."""
    canvas = image_bgr.copy()
    scale = max(canvas.shape[:2]) / 640.0
    thick = max(1, round(2 * scale))
    radius = max(2, round(3 * scale))
    for person in persons:
        pts = person.keypoints
        for a, b in POSE_CONNECTIONS:
            if pts[a, 2] < min_visibility or pts[b, 2] < min_visibility:
                continue
            pa = (round(float(pts[a, 0])), round(float(pts[a, 1])))
            pb = (round(float(pts[b, 0])), round(float(pts[b, 1])))
            cv2.line(canvas, pa, pb, _side_colour(a, b), thick, cv2.LINE_AA)
        for i, (x, y, v) in enumerate(pts):
            if v >= min_visibility:
                colour = _CENTRE if i == 0 else (_LEFT if i % 2 else _RIGHT)
                cv2.circle(canvas, (round(float(x)), round(float(y))), radius, colour, -1, cv2.LINE_AA)
        if person.face_landmarks is not None:
            for x, y, _ in person.face_landmarks:
                cv2.circle(canvas, (round(float(x)), round(float(y))), 1, _FACE, -1)
        x0, y0, x1, y1 = (round(v) for v in person.bbox)
        cv2.rectangle(canvas, (x0, y0), (x1, y1), _CENTRE, 1)
        label = f"{person.score:.2f}"
        if person.head_pose is not None:
            hp = person.head_pose
            label += f" yaw {hp.yaw:+.0f} pitch {hp.pitch:+.0f} roll {hp.roll:+.0f}"
        font = max(0.5, 0.45 * scale)
        cv2.putText(canvas, label, (x0 + 2, max(12, y0 - 4)), cv2.FONT_HERSHEY_SIMPLEX, font, _CENTRE, 1)
    return canvas
