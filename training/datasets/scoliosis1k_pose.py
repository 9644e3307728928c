"""Scoliosis1K-Pose keypoint sets (ViTPose, COCO-17; released with the "Pose as Clinical Prior" / DRF work).

Layout as the silhouettes: `ROOT/ID/Class/View/View.pkl` (Class: Positive / Neutral / Negative; View: 000_180),
each file a pickled numpy array [T, 17, 3] of image x, y (pixels) and score per COCO-17 keypoint, as OpenGait's
`datasets/pretreatment.py --pose` writes it (np.stack of the per-frame arrays, float64; a missing keypoint is
0, 0, 0). The partition JSON is the silhouettes' one. Pickles are read with the numpy-only unpickler of
`training.datasets.scoliosis1k`, so a crafted file cannot run code.
"""

from __future__ import annotations

import pickle
from pathlib import Path

import numpy as np
import numpy.typing as npt

from training.datasets.errors import DatasetError
from training.datasets.scoliosis1k import SequenceSet, load_array_pickle, walk_sequence_tree

F32 = npt.NDArray[np.float32]
COCO_POINTS = 17


def read_pose_pkl(path: str | Path) -> F32:
    """One sequence: float32 [T, 17, 3] with T >= 1 and finite values. Raises DatasetError naming the file."""
    p = Path(path)
    arr = load_array_pickle(p, "keypoint")
    if not isinstance(arr, np.ndarray):
        raise DatasetError(p, f"expected a numpy array, found {type(arr).__name__}")
    if arr.ndim != 3 or arr.shape[1:] != (COCO_POINTS, 3) or arr.shape[0] < 1:
        raise DatasetError(p, f"expected shape [T, {COCO_POINTS}, 3] (x, y, score), T >= 1, found {list(arr.shape)}")
    if arr.dtype.kind != "f":
        raise DatasetError(p, f"expected floating-point keypoints, found dtype {arr.dtype}")
    if not np.isfinite(arr).all():
        raise DatasetError(p, "keypoints hold NaN or infinite values")
    return np.ascontiguousarray(arr, np.float32)


def write_pose_pkl(path: str | Path, sequence: npt.NDArray[np.floating]) -> None:
    """Write one sequence as the released files are: a pickled float64 [T, 17, 3] array."""
    seq = np.asarray(sequence)
    if seq.ndim != 3 or seq.shape[1:] != (COCO_POINTS, 3) or len(seq) == 0:
        raise ValueError(f"keypoints must be [T>=1, 17, 3], got {list(seq.shape)}")
    p = Path(path)
    p.parent.mkdir(parents=True, exist_ok=True)
    p.write_bytes(pickle.dumps(np.ascontiguousarray(seq, np.float64)))


PoseSet = SequenceSet[F32]  # split_file is the partition JSON used, or None


def load_scoliosis1k_pose(root: str | Path, split_file: str | Path | None = None) -> PoseSet:
    """Every `ID/Class/View/View.pkl` under `root`, sorted; class folders are GAIT_LABELS names (any case)."""
    return walk_sequence_tree(root, split_file, "keypoint", read_pose_pkl)[0]
