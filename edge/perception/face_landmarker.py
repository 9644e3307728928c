"""Face landmark model (face_landmark, 192×192): 468 points (x, y, z) on a rotated face ROI, plus a face flag."""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from edge.backends.base import Backend
from edge.perception.roi import Matrix, RotatedRect, apply_affine, crop, rect_from_box, tensor_to_image
from edge.perception.ssd import sigmoid
from edge.perception.stage import ModelStage, bgr_to_tensor, pick

INPUT_SIZE = 192
NUM_FACE_LANDMARKS = 468
# FaceLandmarkLandmarksToRoi: bounding box of the landmarks, eye corners 33 → 263 rotated to 0°, ×1.5.
RIGHT_EYE_OUTER, LEFT_EYE_OUTER = 33, 263
ROI_SCALE = 1.5


@dataclass
class FaceLandmarks:
    score: float  # face presence, 0..1
    points: npt.NDArray[np.float32]  # (468, 3) image pixels; z relative, same scale as x, smaller = nearer
    roi: RotatedRect

    def next_roi(self) -> RotatedRect:
        box = np.concatenate([self.points[:, :2].min(axis=0), self.points[:, :2].max(axis=0)])
        rect = rect_from_box(box, self.points[RIGHT_EYE_OUTER], self.points[LEFT_EYE_OUTER], 0.0)
        return rect.scaled(ROI_SCALE)


class FaceLandmarker(ModelStage):
    model_name = "face_landmark"

    def __init__(self, backend: Backend, min_presence: float = 0.5) -> None:
        super().__init__(backend)
        self.min_presence = min_presence

    def preprocess(self, image_bgr: npt.NDArray[np.uint8], roi: RotatedRect) -> tuple[npt.NDArray[np.float32], Matrix]:
        """Rotated crop to 192×192 (edge pixels replicated), RGB in [0, 1]."""
        to_image = tensor_to_image(roi, INPUT_SIZE, INPUT_SIZE)
        patch = crop(image_bgr, to_image, INPUT_SIZE, INPUT_SIZE, zero_border=False)
        return bgr_to_tensor(patch, 0.0, 1.0), to_image

    def postprocess(self, outputs: list[npt.NDArray[np.float32]], roi: RotatedRect) -> FaceLandmarks | None:
        flag = float(sigmoid(pick(outputs, "face flag", lambda s: math.prod(s) == 1).reshape(())))
        if flag < self.min_presence:
            return None
        raw = pick(outputs, "landmarks", lambda s: math.prod(s) == NUM_FACE_LANDMARKS * 3)
        raw = raw.reshape(NUM_FACE_LANDMARKS, 3)
        to_image = tensor_to_image(roi, INPUT_SIZE, INPUT_SIZE)
        points = np.empty((NUM_FACE_LANDMARKS, 3), dtype=np.float32)
        points[:, :2] = apply_affine(to_image, raw[:, :2])
        points[:, 2] = raw[:, 2] * (roi.width / INPUT_SIZE)
        return FaceLandmarks(flag, points, roi)

    def __call__(self, image_bgr: npt.NDArray[np.uint8], roi: RotatedRect) -> FaceLandmarks | None:
        tensor, _ = self.preprocess(image_bgr, roi)
        return self.postprocess(self.infer(tensor), roi)
