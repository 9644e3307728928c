"""Rotated regions of interest and the affine maps between image pixels and model input tensors.

A `RotatedRect` is in image pixels; `rotation` is in radians, positive = clockwise in the image (y down),
as in MediaPipe's NormalizedRect. The crop maps the rect's corners onto the tensor's corners, so that
tensor point (u, v) ∈ [0, W] × [0, H] is image point center + R(rotation) · ((u/W − ½)·width, (v/H − ½)·height).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import cv2
import numpy as np
import numpy.typing as npt

Matrix = npt.NDArray[np.float64]  # 2×3 affine
ANTIALIAS_MAX_STEP = 2.0  # image pixels per tensor pixel that bilinear sampling may skip over


@dataclass(frozen=True)
class RotatedRect:
    cx: float
    cy: float
    width: float
    height: float
    rotation: float = 0.0

    def scaled(self, scale_x: float, scale_y: float | None = None, square_long: bool = True) -> RotatedRect:
        """RectTransformationCalculator: make it square on its long side (optional), then scale it."""
        w, h = self.width, self.height
        if square_long:
            w = h = max(w, h)
        return RotatedRect(self.cx, self.cy, w * scale_x, h * (scale_x if scale_y is None else scale_y), self.rotation)

    def corners(self) -> npt.NDArray[np.float64]:
        """The four corners (top-left, top-right, bottom-right, bottom-left in the rect's own frame)."""
        unit = np.array([[0.0, 0.0], [1.0, 0.0], [1.0, 1.0], [0.0, 1.0]])
        return apply_affine(tensor_to_image(self, 1, 1), unit)


def normalize_radians(angle: float) -> float:
    return angle - 2 * math.pi * math.floor((angle + math.pi) / (2 * math.pi))


def rotation_from_points(start: npt.ArrayLike, end: npt.ArrayLike, target_degrees: float) -> float:
    """DetectionsToRectsCalculator::ComputeRotation: the rotation that brings start→end to the target angle."""
    x0, y0 = (float(v) for v in np.asarray(start)[:2])
    x1, y1 = (float(v) for v in np.asarray(end)[:2])
    return normalize_radians(math.radians(target_degrees) - math.atan2(-(y1 - y0), x1 - x0))


def rect_from_alignment_points(center: npt.ArrayLike, scale_point: npt.ArrayLike, target_degrees: float) -> RotatedRect:
    """AlignmentPointsRectsCalculator: a square centred on `center` whose half side is |scale_point − center|."""
    c = np.asarray(center, dtype=np.float64)[:2]
    s = np.asarray(scale_point, dtype=np.float64)[:2]
    size = 2.0 * float(np.linalg.norm(s - c))
    return RotatedRect(float(c[0]), float(c[1]), size, size, rotation_from_points(c, s, target_degrees))


def rect_from_box(box: npt.ArrayLike, start: npt.ArrayLike, end: npt.ArrayLike, target_degrees: float) -> RotatedRect:
    """DetectionsToRectsCalculator: the box's centre and size, rotated by the keypoint pair."""
    x0, y0, x1, y1 = (float(v) for v in np.asarray(box)[:4])
    return RotatedRect((x0 + x1) / 2, (y0 + y1) / 2, x1 - x0, y1 - y0, rotation_from_points(start, end, target_degrees))


def tensor_to_image(rect: RotatedRect, out_w: int, out_h: int) -> Matrix:
    """Affine map from tensor pixels (u, v) to image pixels for a crop of `rect` into out_w × out_h."""
    cos, sin = math.cos(rect.rotation), math.sin(rect.rotation)
    sx, sy = rect.width / out_w, rect.height / out_h
    a = np.array([[cos * sx, -sin * sy], [sin * sx, cos * sy]])
    offset = np.array([rect.cx, rect.cy]) - a @ np.array([out_w / 2, out_h / 2])
    return np.hstack([a, offset[:, None]])


def invert_affine(matrix: Matrix) -> Matrix:
    return np.asarray(cv2.invertAffineTransform(np.asarray(matrix, dtype=np.float64)), dtype=np.float64)


def image_to_tensor(rect: RotatedRect, out_w: int, out_h: int) -> Matrix:
    return invert_affine(tensor_to_image(rect, out_w, out_h))


def letterbox_to_image(img_w: int, img_h: int, out_w: int, out_h: int) -> Matrix:
    """Tensor → image map of a keep-aspect-ratio fit with the padding split evenly (ImageToTensor FIT)."""
    scale = max(img_w / out_w, img_h / out_h)
    return np.array([[scale, 0.0, (img_w - out_w * scale) / 2], [0.0, scale, (img_h - out_h * scale) / 2]])


def apply_affine(matrix: Matrix, points: npt.ArrayLike) -> npt.NDArray[np.float64]:
    """Send (N, 2) points (extra columns ignored) through a 2×3 affine map."""
    pts = np.asarray(points, dtype=np.float64)[..., :2]
    return pts @ matrix[:, :2].T + matrix[:, 2]


def crop(image: npt.NDArray[np.uint8], to_image: Matrix, out_w: int, out_h: int, zero_border: bool) -> npt.NDArray:
    """Sample the tensor-sized crop whose tensor → image map is `to_image` (bilinear).

    When the crop shrinks the image more than twofold, the image is first reduced by an integer factor
    with area averaging, so that the bilinear sampling does not alias (which would make the result
    depend on the sampling grid's phase, i.e. on where and how the person stands in the frame).
    """
    factor = int(math.hypot(to_image[0, 0], to_image[1, 0]) / ANTIALIAS_MAX_STEP)
    h, w = image.shape[:2]
    if factor >= 2 and min(h, w) // factor >= 8:
        sx, sy = (w // factor) / w, (h // factor) / h
        # image pixel x (centre at x) → small pixel (x + 0.5)·sx − 0.5
        to_small = np.array([[sx, 0.0, 0.5 * sx - 0.5], [0.0, sy, 0.5 * sy - 0.5]])
        image = np.asarray(cv2.resize(image, (w // factor, h // factor), interpolation=cv2.INTER_AREA))
        to_image = to_small[:, :2] @ to_image + np.hstack([np.zeros((2, 2)), to_small[:, 2:]])
    return cv2.warpAffine(
        image,
        to_image,
        (out_w, out_h),
        flags=cv2.INTER_LINEAR | cv2.WARP_INVERSE_MAP,
        borderMode=cv2.BORDER_CONSTANT if zero_border else cv2.BORDER_REPLICATE,
        borderValue=(0, 0, 0),
    )


def rect_rotation_scale(to_image: Matrix) -> tuple[float, float]:
    """Rotation (radians, clockwise in the image) and scale of a similarity tensor → image map."""
    return math.atan2(to_image[1, 0], to_image[0, 0]), math.hypot(to_image[0, 0], to_image[1, 0])
