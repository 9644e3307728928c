"""Short-range face detector (face_detection_short_range, 128×128, 896 SSD anchors).

It runs on a rotated crop around the head that the pose gives (so faces tilted far from upright are
turned upright first), or on the whole frame. Keypoints: 0 right eye, 1 left eye, 2 nose tip,
3 mouth centre, 4 right ear tragion, 5 left ear tragion (the subject's right/left).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from edge.backends.base import Backend
from edge.perception.anchors import FACE_SHORT_RANGE_ANCHORS, generate_anchors
from edge.perception.roi import (
    Matrix,
    RotatedRect,
    apply_affine,
    crop,
    letterbox_to_image,
    rect_from_box,
    rect_rotation_scale,
    tensor_to_image,
)
from edge.perception.ssd import SsdDecoding, decode, weighted_nms
from edge.perception.stage import ModelStage, bgr_to_tensor, pick

INPUT_SIZE = 128
NUM_ANCHORS = 896
# FaceDetectionFrontDetectionToRoi: eye line (keypoint 0 → 1) rotated to 0°, enlarged ×1.5.
ROI_SCALE = 1.5


@dataclass(frozen=True)
class FaceDetection:
    score: float
    center: npt.NDArray[np.float64]  # face box centre, image pixels
    keypoints: npt.NDArray[np.float64]  # (6, 2) image pixels
    roi: RotatedRect  # the face landmark model's ROI, image pixels


class FaceDetector(ModelStage):
    model_name = "face_detection_short_range"

    def __init__(self, backend: Backend, min_score: float = 0.5, iou_threshold: float = 0.3) -> None:
        super().__init__(backend)
        self.anchors = generate_anchors(FACE_SHORT_RANGE_ANCHORS)
        self.decoding = SsdDecoding(num_keypoints=6, scale=float(INPUT_SIZE), min_score=min_score)
        self.iou_threshold = iou_threshold

    def preprocess(
        self, image_bgr: npt.NDArray[np.uint8], region: RotatedRect | None = None
    ) -> tuple[npt.NDArray[np.float32], Matrix]:
        """Crop `region` (or letterbox the frame) to 128×128 with zero borders, RGB in [-1, 1]."""
        if region is None:
            h, w = image_bgr.shape[:2]
            to_image = letterbox_to_image(w, h, INPUT_SIZE, INPUT_SIZE)
        else:
            to_image = tensor_to_image(region.scaled(1.0), INPUT_SIZE, INPUT_SIZE)
        patch = crop(image_bgr, to_image, INPUT_SIZE, INPUT_SIZE, zero_border=True)
        tensor = bgr_to_tensor(patch, -1.0, 1.0)
        return tensor, to_image

    def postprocess(self, outputs: list[npt.NDArray[np.float32]], to_image: Matrix) -> list[FaceDetection]:
        boxes = pick(outputs, "box regressor", lambda s: s[-2:] == (NUM_ANCHORS, 16))
        scores = pick(outputs, "score", lambda s: s[-2:] == (NUM_ANCHORS, 1))
        s, b, k = decode(boxes, scores, self.anchors, self.decoding)
        rotation, scale = rect_rotation_scale(to_image)
        faces = []
        for det in weighted_nms(s, b * INPUT_SIZE, k * INPUT_SIZE, self.iou_threshold):
            # The face rect is built in the crop's frame (where the box is axis-aligned), then carried over.
            local = rect_from_box(det.box, det.keypoints[0], det.keypoints[1], 0.0)
            center = apply_affine(to_image, np.array([[local.cx, local.cy]]))[0]
            roi = RotatedRect(
                float(center[0]), float(center[1]), local.width * scale, local.height * scale, local.rotation + rotation
            ).scaled(ROI_SCALE)
            faces.append(FaceDetection(det.score, center, apply_affine(to_image, det.keypoints), roi))
        return faces

    def __call__(self, image_bgr: npt.NDArray[np.uint8], region: RotatedRect | None = None) -> list[FaceDetection]:
        tensor, to_image = self.preprocess(image_bgr, region)
        return self.postprocess(self.infer(tensor), to_image)
