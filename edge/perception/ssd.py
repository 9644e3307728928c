"""SSD box/keypoint decoding and weighted non-maximum suppression (MediaPipe's detector post-processing)."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

FloatArray = npt.NDArray[np.float32]


@dataclass(frozen=True)
class Detection:
    """One detection: score, box (x0, y0, x1, y1) and keypoints (K, 2), all in one coordinate frame."""

    score: float
    box: FloatArray
    keypoints: FloatArray

    def mapped(self, matrix: npt.NDArray[np.float64]) -> Detection:
        """The same detection with box corners and keypoints sent through a 2×3 similarity transform.

        The box stays axis-aligned in the source frame only; callers that need its rotation use the keypoints.
        """
        from edge.perception.roi import apply_affine

        corners = apply_affine(matrix, self.box.reshape(2, 2))
        box = np.concatenate([corners.min(axis=0), corners.max(axis=0)]).astype(np.float32)
        return Detection(self.score, box, apply_affine(matrix, self.keypoints).astype(np.float32))


@dataclass(frozen=True)
class SsdDecoding:
    """TensorsToDetectionsCalculator options for one model (boxes in x, y, w, h order)."""

    num_keypoints: int
    scale: float  # x_scale = y_scale = w_scale = h_scale = the model's input size
    min_score: float
    score_clip: float = 100.0


def sigmoid(x: npt.ArrayLike) -> FloatArray:
    z = np.clip(np.asarray(x, dtype=np.float32), -80.0, 80.0)  # exp() stays finite
    return (1.0 / (1.0 + np.exp(-z))).astype(np.float32)


def decode(
    raw_boxes: FloatArray, raw_scores: FloatArray, anchors: FloatArray, opts: SsdDecoding
) -> tuple[FloatArray, FloatArray, FloatArray]:
    """Decode raw regressors against anchors.

    Returns scores (M,), boxes (M, 4) as x0, y0, x1, y1 and keypoints (M, K, 2), normalised to the model
    input, for the M anchors whose sigmoid score reaches `opts.min_score`.
    """
    raw_boxes = raw_boxes.reshape(anchors.shape[0], -1)
    logits = np.clip(raw_scores.reshape(-1), -opts.score_clip, opts.score_clip)
    scores = sigmoid(logits)
    keep = np.nonzero(scores >= opts.min_score)[0]
    raw = raw_boxes[keep]
    anc = anchors[keep]
    ax, ay, aw, ah = anc[:, 0:1], anc[:, 1:2], anc[:, 2:3], anc[:, 3:4]
    cx = raw[:, 0:1] / opts.scale * aw + ax
    cy = raw[:, 1:2] / opts.scale * ah + ay
    w = raw[:, 2:3] / opts.scale * aw
    h = raw[:, 3:4] / opts.scale * ah
    boxes = np.concatenate([cx - w / 2, cy - h / 2, cx + w / 2, cy + h / 2], axis=1)
    k = opts.num_keypoints
    kp = raw[:, 4 : 4 + 2 * k].reshape(-1, k, 2)
    kx = kp[:, :, 0] / opts.scale * aw + ax
    ky = kp[:, :, 1] / opts.scale * ah + ay
    keypoints = np.stack([kx, ky], axis=2)
    return scores[keep], boxes.astype(np.float32), keypoints.astype(np.float32)


def _iou(box: FloatArray, boxes: FloatArray) -> FloatArray:
    x0 = np.maximum(box[0], boxes[:, 0])
    y0 = np.maximum(box[1], boxes[:, 1])
    x1 = np.minimum(box[2], boxes[:, 2])
    y1 = np.minimum(box[3], boxes[:, 3])
    inter = np.clip(x1 - x0, 0, None) * np.clip(y1 - y0, 0, None)
    area = (box[2] - box[0]) * (box[3] - box[1])
    areas = (boxes[:, 2] - boxes[:, 0]) * (boxes[:, 3] - boxes[:, 1])
    union = area + areas - inter
    return np.where(union > 0, inter / np.maximum(union, 1e-12), 0.0).astype(np.float32)


def weighted_nms(
    scores: FloatArray, boxes: FloatArray, keypoints: FloatArray, iou_threshold: float, max_detections: int = -1
) -> list[Detection]:
    """MediaPipe's WEIGHTED non-max suppression: each cluster (IoU > threshold with its best member) is
    replaced by the score-weighted mean of its boxes and keypoints, keeping the best member's score."""
    order = np.argsort(-scores, kind="stable")
    remaining = order
    out: list[Detection] = []
    while remaining.size and (max_detections < 0 or len(out) < max_detections):
        best = remaining[0]
        overlap = _iou(boxes[best], boxes[remaining])
        cluster = remaining[overlap > iou_threshold]
        if cluster.size == 0:  # degenerate box: keep it alone
            cluster = remaining[:1]
        weights = scores[cluster][:, None]
        total = float(weights.sum())
        box = (boxes[cluster] * weights).sum(axis=0) / total
        kps = (keypoints[cluster] * weights[:, :, None]).sum(axis=0) / total
        out.append(Detection(float(scores[best]), box.astype(np.float32), kps.astype(np.float32)))
        remaining = remaining[~np.isin(remaining, cluster)]
    return out
