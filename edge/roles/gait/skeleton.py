"""The skeleton gait model's input: a walk's keypoints in the COCO-17 layout, [1, T, 17, 3] (x, y pixels, score).

Shared by the booth and by training (avatar walks through the device's perception, Scoliosis1K-Pose files), so
both build the input the same way: BlazePose's 33 landmarks mapped by `contract.landmarks.blazepose_to_coco17`,
a keypoint below `min_visibility` (or a frame without the person) scored 0 with x = y = 0 (as missing points are
stored in Scoliosis1K-Pose), and T frames sampled evenly over the walk. The model normalises inside itself.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import numpy.typing as npt

from contract.landmarks import NUM_LANDMARKS, blazepose_to_coco17

F32 = npt.NDArray[np.float32]
COCO_POINTS = 17


def coco_sequence(keypoints: Sequence[npt.NDArray[np.floating] | None], min_visibility: float = 0.5) -> F32:
    """Per-frame BlazePose keypoints ((33, 3) or None) → [T, 17, 3] COCO-17 with missing points zeroed."""
    out = np.zeros((len(keypoints), COCO_POINTS, 3), np.float32)
    for i, kp in enumerate(keypoints):
        if kp is None:
            continue
        arr = np.asarray(kp, np.float32)
        if arr.shape != (NUM_LANDMARKS, 3):
            raise ValueError(f"frame {i}: expected BlazePose keypoints (33, 3), got {arr.shape}")
        coco = blazepose_to_coco17(arr)
        ok = np.isfinite(coco).all(axis=1) & (coco[:, 2] >= min_visibility)
        out[i, ok] = coco[ok]
    return out


def resample(sequence: F32, frames: int) -> F32:
    """[T, 17, 3] → [1, frames, 17, 3], frames sampled evenly (repeated when the walk is shorter)."""
    seq = np.asarray(sequence, np.float32)
    if seq.ndim != 3 or seq.shape[1:] != (COCO_POINTS, 3) or len(seq) == 0:
        raise ValueError(f"expected a keypoint sequence [T>=1, 17, 3], got {list(seq.shape)}")
    index = np.linspace(0, len(seq) - 1, frames).round().astype(int)
    return np.ascontiguousarray(seq[index][None])
