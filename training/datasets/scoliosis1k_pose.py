"""Scoliosis1K-Pose keypoint sets (ViTPose, COCO-17; released with the "Pose as Clinical Prior" / DRF work).

Layout as the silhouettes: `ROOT/ID/Class/View/View.pkl` (Class: Positive / Neutral / Negative; View: 000_180),
each file a pickled numpy array [T, 17, 3] of image x, y (pixels) and score per COCO-17 keypoint, as OpenGait's
`datasets/pretreatment.py --pose` writes it (np.stack of the per-frame arrays, float64; a missing keypoint is
0, 0, 0). The partition JSON is the silhouettes' one. Pickles are read with the numpy-only unpickler of
`training.datasets.scoliosis1k`, so a crafted file cannot run code.
"""

from __future__ import annotations

import io
import pickle
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import numpy.typing as npt

from contract.labels import GAIT_LABELS
from training.datasets.errors import DatasetError
from training.datasets.scoliosis1k import SPLIT_KEYS, _ArrayUnpickler, find_split_file, read_split

F32 = npt.NDArray[np.float32]
COCO_POINTS = 17


def read_pose_pkl(path: str | Path) -> F32:
    """One sequence: float32 [T, 17, 3] with T >= 1 and finite values. Raises DatasetError naming the file."""
    p = Path(path)
    try:
        data = p.read_bytes()
    except OSError as exc:
        raise DatasetError(p, f"cannot read keypoint file ({exc.strerror or exc})") from exc
    try:
        arr = _ArrayUnpickler(io.BytesIO(data)).load()
    except (pickle.UnpicklingError, EOFError, ValueError, TypeError, AttributeError, IndexError) as exc:
        raise DatasetError(p, f"not a pickled numpy array ({exc})") from exc
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


@dataclass
class PoseSet:
    sequences: list[F32]
    labels: npt.NDArray[np.int64]
    subjects: list[str]
    views: list[str]
    split: list[str]  # "TRAIN_SET", "TEST_SET" or ""
    files: list[Path] = field(default_factory=list)


def load_scoliosis1k_pose(root: str | Path, split_file: str | Path | None = None) -> PoseSet:
    """Every `ID/Class/View/View.pkl` under `root`, sorted; class folders are GAIT_LABELS names (any case)."""
    base = Path(root)
    if not base.is_dir():
        raise DatasetError(base, "keypoint root is not a directory")
    split_path = Path(split_file) if split_file is not None else find_split_file(base)
    split = read_split(split_path) if split_path is not None else {key: [] for key in SPLIT_KEYS}
    membership = {sid: key for key in SPLIT_KEYS for sid in split[key]}
    out = PoseSet([], np.empty(0, np.int64), [], [], [])
    labels: list[int] = []
    for id_dir in sorted(d for d in base.iterdir() if d.is_dir()):
        class_dirs = sorted(d for d in id_dir.iterdir() if d.is_dir())
        if not class_dirs:
            raise DatasetError(id_dir, "subject folder holds no class folder (expected ID/Class/View/View.pkl)")
        for class_dir in class_dirs:
            name = class_dir.name.lower()
            if name not in GAIT_LABELS:
                raise DatasetError(
                    class_dir, f"unknown class folder {class_dir.name!r}; expected one of {list(GAIT_LABELS)}"
                )
            for view_dir in sorted(d for d in class_dir.iterdir() if d.is_dir()):
                pkl = view_dir / f"{view_dir.name}.pkl"
                if not pkl.is_file():
                    raise DatasetError(pkl, "missing keypoint file for this view")
                out.sequences.append(read_pose_pkl(pkl))
                labels.append(GAIT_LABELS[name])
                out.subjects.append(id_dir.name)
                out.views.append(view_dir.name)
                out.split.append(membership.get(id_dir.name, ""))
                out.files.append(pkl)
    if not out.sequences:
        raise DatasetError(base, "no keypoint sequences found (expected ID/Class/View/View.pkl)")
    out.labels = np.asarray(labels, np.int64)
    return out
