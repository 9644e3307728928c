"""Stage 1 of BlazePose: the pose detector (pose_detection, 224×224, 2254 SSD anchors).

Each detection carries a face box and four alignment keypoints: 0 hip centre, 1 full-body size/rotation
point, 2 shoulder centre, 3 upper-body size/rotation point.
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

from edge.backends.base import Backend
from edge.perception.anchors import POSE_DETECTION_ANCHORS, generate_anchors
from edge.perception.roi import Matrix, RotatedRect, crop, letterbox_to_image, rect_from_alignment_points
from edge.perception.ssd import Detection, SsdDecoding, decode, weighted_nms
from edge.perception.stage import ModelStage, bgr_to_tensor, pick

INPUT_SIZE = 224
PixelBox = tuple[int, int, int, int]  # x0, y0, x1, y1 in image pixels
NUM_ANCHORS = 2254
# pose_landmark_cpu → PoseDetectionToRoi: hip centre → full-body point, rotated to 90°, enlarged ×1.25.
ROI_TARGET_DEGREES = 90.0
ROI_SCALE = 1.25


def detection_to_roi(detection: Detection) -> RotatedRect:
    """The landmark model's ROI for a pose detection (in the detection's coordinate frame)."""
    rect = rect_from_alignment_points(detection.keypoints[0], detection.keypoints[1], ROI_TARGET_DEGREES)
    return rect.scaled(ROI_SCALE)


class PoseDetector(ModelStage):
    model_name = "pose_detection"

    def __init__(self, backend: Backend, min_score: float = 0.5, iou_threshold: float = 0.3) -> None:
        super().__init__(backend)
        self.anchors = generate_anchors(POSE_DETECTION_ANCHORS)
        self.decoding = SsdDecoding(num_keypoints=4, scale=float(INPUT_SIZE), min_score=min_score)
        self.iou_threshold = iou_threshold

    def preprocess(
        self, image_bgr: npt.NDArray[np.uint8], region: PixelBox | None = None
    ) -> tuple[npt.NDArray[np.float32], Matrix]:
        """Letterbox the image, or its `region` (x0, y0, x1, y1 pixels), to 224×224 with zero borders, RGB in
        [-1, 1]; also returns the tensor → image map."""
        h, w = image_bgr.shape[:2]
        x0, y0, x1, y1 = region if region is not None else (0, 0, w, h)
        if not (0 <= x0 < x1 <= w and 0 <= y0 < y1 <= h):
            raise ValueError(f"pose detector region {region} does not lie inside the {w}×{h} image")
        to_image = letterbox_to_image(x1 - x0, y1 - y0, INPUT_SIZE, INPUT_SIZE)
        to_image[:, 2] += (x0, y0)
        patch = crop(image_bgr, to_image, INPUT_SIZE, INPUT_SIZE, zero_border=True)
        tensor = bgr_to_tensor(patch, -1.0, 1.0)
        return tensor, to_image

    def postprocess(self, outputs: list[npt.NDArray[np.float32]], to_image: Matrix) -> list[Detection]:
        """Decode, suppress, and map into image pixels; best first."""
        boxes = pick(outputs, "box regressor", lambda s: s[-2:] == (NUM_ANCHORS, 12))
        scores = pick(outputs, "score", lambda s: s[-2:] == (NUM_ANCHORS, 1))
        s, b, k = decode(boxes, scores, self.anchors, self.decoding)
        detections = weighted_nms(s, b * INPUT_SIZE, k * INPUT_SIZE, self.iou_threshold)
        return [d.mapped(to_image) for d in detections]

    def __call__(self, image_bgr: npt.NDArray[np.uint8], region: PixelBox | None = None) -> list[Detection]:
        """Detections in image pixels, looked for in the whole image or only in `region` (magnified to fill the
        detector's input: a person too small to find in the whole frame may be found there)."""
        tensor, to_image = self.preprocess(image_bgr, region)
        return self.postprocess(self.infer(tensor), to_image)
