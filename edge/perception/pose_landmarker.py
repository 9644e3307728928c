"""Stage 2 of BlazePose: the landmark model (pose_landmark_full, 256×256) on a rotated ROI.

Outputs: 39 landmarks × (x, y, z, visibility logit, presence logit) in input pixels (33 body + 6
auxiliary, of which 33 = hip centre and 34 = full-body size/rotation point drive tracking), pose flag,
segmentation logits, 64×64×39 heatmap (refines x, y), 39 × 3 world landmarks in metres.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import cv2
import numpy as np
import numpy.typing as npt

from edge.backends.base import Backend
from edge.perception.pose_detector import ROI_SCALE, ROI_TARGET_DEGREES
from edge.perception.roi import (
    Matrix,
    RotatedRect,
    apply_affine,
    crop,
    invert_affine,
    rect_from_alignment_points,
    tensor_to_image,
)
from edge.perception.ssd import sigmoid
from edge.perception.stage import ModelStage, bgr_to_tensor, pick

INPUT_SIZE = 256
NUM_ALL = 39  # 33 body landmarks + 6 auxiliary
NUM_BODY = 33
HEATMAP_KERNEL = 7
HEATMAP_MIN_CONFIDENCE = 0.5


@dataclass
class PoseLandmarks:
    """Landmark-model output for one ROI, in image coordinates."""

    score: float  # pose presence flag, 0..1
    landmarks: npt.NDArray[np.float32]  # (39, 5): x, y, z (pixels), visibility, presence (0..1)
    world: npt.NDArray[np.float32]  # (33, 3) metres, rotated into the image's orientation
    roi: RotatedRect
    mask: npt.NDArray[np.float32] | None = None  # (H, W) person probability in image coordinates

    def next_roi(self) -> RotatedRect:
        """PoseLandmarksToRoi: the ROI for the next frame from the auxiliary landmarks 33 and 34."""
        return roi_from_auxiliary(self.landmarks)


def roi_from_auxiliary(landmarks: npt.NDArray) -> RotatedRect:
    rect = rect_from_alignment_points(landmarks[33, :2], landmarks[34, :2], ROI_TARGET_DEGREES)
    return rect.scaled(ROI_SCALE)


def refine_from_heatmap(xy: npt.NDArray[np.float32], heatmap: npt.NDArray[np.float32]) -> npt.NDArray[np.float32]:
    """RefineLandmarksFromHeatmapCalculator: replace x, y (normalised to the crop) by the sigmoid-weighted
    mean position in a 7×7 heatmap window around the point (cells outside the heatmap count as zero),
    where the window's peak confidence reaches 0.5. All landmarks at once."""
    hm = heatmap.reshape(heatmap.shape[-3], heatmap.shape[-2], heatmap.shape[-1])
    hm_h, hm_w, channels = hm.shape
    n = min(channels, xy.shape[0])
    out = xy.copy()
    # C++ int conversion truncates towards zero, so points just left of/above the crop still refine.
    col = np.trunc(xy[:n, 0] * hm_w).astype(np.int64)
    row = np.trunc(xy[:n, 1] * hm_h).astype(np.int64)
    inside = (col >= 0) & (col < hm_w) & (row >= 0) & (row < hm_h)
    offsets = np.arange(HEATMAP_KERNEL) - (HEATMAP_KERNEL - 1) // 2
    rows = row[:, None] + offsets  # (n, k)
    cols = col[:, None] + offsets
    in_window = ((rows >= 0) & (rows < hm_h))[:, :, None] & ((cols >= 0) & (cols < hm_w))[:, None, :]
    values = hm[
        np.clip(rows, 0, hm_h - 1)[:, :, None], np.clip(cols, 0, hm_w - 1)[:, None, :], np.arange(n)[:, None, None]
    ]
    conf = np.where(in_window, sigmoid(values), 0.0)
    total = conf.sum(axis=(1, 2))
    refine = inside & (total > 0) & (conf.max(axis=(1, 2)) >= HEATMAP_MIN_CONFIDENCE)
    safe = np.where(total > 0, total, 1.0)
    out[:n, 0] = np.where(refine, (conf * cols[:, None, :]).sum(axis=(1, 2)) / hm_w / safe, xy[:n, 0])
    out[:n, 1] = np.where(refine, (conf * rows[:, :, None]).sum(axis=(1, 2)) / hm_h / safe, xy[:n, 1])
    return out


class PoseLandmarker(ModelStage):
    model_name = "pose_landmark_full"

    def __init__(self, backend: Backend, min_presence: float = 0.5) -> None:
        super().__init__(backend)
        self.min_presence = min_presence

    def preprocess(self, image_bgr: npt.NDArray[np.uint8], roi: RotatedRect) -> tuple[npt.NDArray[np.float32], Matrix]:
        """Rotated crop of the ROI to 256×256 (edge pixels replicated), RGB in [0, 1]."""
        to_image = tensor_to_image(roi, INPUT_SIZE, INPUT_SIZE)
        patch = crop(image_bgr, to_image, INPUT_SIZE, INPUT_SIZE, zero_border=False)
        tensor = bgr_to_tensor(patch, 0.0, 1.0)
        return tensor, to_image

    def postprocess(
        self,
        outputs: list[npt.NDArray[np.float32]],
        roi: RotatedRect,
        image_size: tuple[int, int] | None = None,
    ) -> PoseLandmarks | None:
        """Landmarks in image pixels, or None when the pose flag says no person is in the ROI.

        `image_size` (width, height) asks for the segmentation mask warped back onto the image.
        """
        flag = float(pick(outputs, "pose flag", lambda s: math.prod(s) == 1).reshape(()))
        if flag < self.min_presence:
            return None
        raw = pick(outputs, "landmarks", lambda s: math.prod(s) == NUM_ALL * 5).reshape(NUM_ALL, 5)
        heatmap = pick(outputs, "heatmap", lambda s: len(s) == 4 and s[-1] == NUM_ALL)
        world_raw = pick(outputs, "world landmarks", lambda s: math.prod(s) == NUM_ALL * 3).reshape(NUM_ALL, 3)

        xy = refine_from_heatmap((raw[:, :2] / INPUT_SIZE).astype(np.float32), heatmap)
        to_image = tensor_to_image(roi, INPUT_SIZE, INPUT_SIZE)
        landmarks = np.empty((NUM_ALL, 5), dtype=np.float32)
        landmarks[:, :2] = apply_affine(to_image, xy * INPUT_SIZE)
        landmarks[:, 2] = raw[:, 2] * (roi.width / INPUT_SIZE)
        landmarks[:, 3] = sigmoid(raw[:, 3])
        landmarks[:, 4] = sigmoid(raw[:, 4])

        # WorldLandmarkProjectionCalculator: rotate x, y by the ROI rotation so the world frame is upright
        # relative to the image, not to the crop.
        cos, sin = math.cos(roi.rotation), math.sin(roi.rotation)
        world = world_raw[:NUM_BODY].copy()
        world[:, 0] = cos * world_raw[:NUM_BODY, 0] - sin * world_raw[:NUM_BODY, 1]
        world[:, 1] = sin * world_raw[:NUM_BODY, 0] + cos * world_raw[:NUM_BODY, 1]

        mask = None
        if image_size is not None:
            seg = pick(outputs, "segmentation", lambda s: len(s) == 4 and s[-1] == 1)
            seg2d = seg.reshape(seg.shape[-3], seg.shape[-2])
            mask = self._mask_to_image(seg2d, roi, image_size)
        return PoseLandmarks(flag, landmarks, world.astype(np.float32), roi, mask)

    @staticmethod
    def _mask_to_image(logits: npt.NDArray[np.float32], roi: RotatedRect, image_size: tuple[int, int]) -> npt.NDArray:
        """Sigmoid, then warp the ROI mask back onto the image (zero outside the ROI)."""
        mh, mw = logits.shape
        to_image = tensor_to_image(roi, mw, mh)
        prob = sigmoid(logits)
        width, height = image_size
        return cv2.warpAffine(
            prob, invert_affine(to_image), (width, height), flags=cv2.INTER_LINEAR | cv2.WARP_INVERSE_MAP,
            borderMode=cv2.BORDER_CONSTANT, borderValue=0.0,
        ).astype(np.float32)  # fmt: skip

    def __call__(
        self, image_bgr: npt.NDArray[np.uint8], roi: RotatedRect, with_mask: bool = False
    ) -> PoseLandmarks | None:
        tensor, _ = self.preprocess(image_bgr, roi)
        size = (image_bgr.shape[1], image_bgr.shape[0]) if with_mask else None
        return self.postprocess(self.infer(tensor), roi, size)
