"""Scoliosis1K / OpenGait silhouette sets: `ROOT/ID/Class/View/View.pkl`, each a pickled uint8 array
[T, 64, 64], plus the dataset's partition JSON `{"TRAIN_SET": [IDs], "TEST_SET": [IDs]}`.

Pickles are read with an unpickler that only rebuilds numpy arrays, so a crafted file cannot run code."""

from __future__ import annotations

import io
import json
import logging
import pickle
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Generic, TypeVar

import numpy as np
import numpy.typing as npt

from contract.labels import GAIT_LABELS
from training.datasets.errors import DatasetError

U8 = npt.NDArray[np.uint8]
SeqT = TypeVar("SeqT")
log = logging.getLogger(__name__)

SIL_SIZE = 64
CUT_WIDTH = 44  # OpenGait's BaseSilCuttingTransform: drop 10 columns each side of a 64-wide silhouette
SPLIT_KEYS = ("TRAIN_SET", "TEST_SET")

# What a pickled ndarray may reference; numpy 2 moved `core` to `_core` (both spellings appear in the wild).
_ALLOWED_GLOBALS = {
    ("numpy.core.multiarray", "_reconstruct"),
    ("numpy._core.multiarray", "_reconstruct"),
    ("numpy", "ndarray"),
    ("numpy", "dtype"),
    ("numpy.core.multiarray", "scalar"),
    ("numpy._core.multiarray", "scalar"),
}


class _ArrayUnpickler(pickle.Unpickler):
    def find_class(self, module: str, name: str) -> Any:
        if (module, name) in _ALLOWED_GLOBALS:
            return super().find_class(module, name)
        raise pickle.UnpicklingError(f"refusing to load {module}.{name}: only numpy arrays are allowed")


def load_array_pickle(p: Path, what: str) -> Any:
    """The object pickled in `p`, rebuilt by the numpy-only unpickler; `what` names the file kind in errors."""
    try:
        data = p.read_bytes()
    except OSError as exc:
        raise DatasetError(p, f"cannot read {what} file ({exc.strerror or exc})") from exc
    try:
        return _ArrayUnpickler(io.BytesIO(data)).load()
    except (pickle.UnpicklingError, EOFError, ValueError, TypeError, AttributeError, IndexError) as exc:
        raise DatasetError(p, f"not a pickled numpy array ({exc})") from exc


def read_silhouette_pkl(path: str | Path) -> U8:
    """One sequence: uint8 [T, 64, 64] with T >= 1. Raises DatasetError naming the file otherwise."""
    p = Path(path)
    arr = load_array_pickle(p, "silhouette")
    if isinstance(arr, list | tuple) and len(arr) == 1:  # some OpenGait exports wrap the array in a list
        arr = arr[0]
    if not isinstance(arr, np.ndarray):
        raise DatasetError(p, f"expected a numpy array, found {type(arr).__name__}")
    if arr.ndim != 3 or arr.shape[1:] != (SIL_SIZE, SIL_SIZE) or arr.shape[0] < 1:
        raise DatasetError(p, f"expected shape [T, {SIL_SIZE}, {SIL_SIZE}] with T >= 1, found {list(arr.shape)}")
    if arr.dtype != np.uint8:
        raise DatasetError(p, f"expected dtype uint8, found {arr.dtype}")
    return np.ascontiguousarray(arr)


def write_silhouette_pkl(path: str | Path, sequence: U8) -> None:
    """Write one sequence the way OpenGait's pretreatment does (pickle of the ndarray)."""
    if sequence.dtype != np.uint8 or sequence.ndim != 3 or sequence.shape[1:] != (SIL_SIZE, SIL_SIZE):
        raise ValueError(f"silhouettes must be uint8 [T, 64, 64], got {sequence.dtype} {list(sequence.shape)}")
    p = Path(path)
    p.parent.mkdir(parents=True, exist_ok=True)
    p.write_bytes(pickle.dumps(np.ascontiguousarray(sequence), protocol=4))


def cut_silhouettes(sequence: U8) -> U8:
    """The 64 x 44 crop the gait model sees (done at load time, as in OpenGait)."""
    margin = (SIL_SIZE - CUT_WIDTH) // 2
    return np.ascontiguousarray(sequence[:, :, margin : margin + CUT_WIDTH])


@dataclass
class SequenceSet(Generic[SeqT]):
    """One Scoliosis1K-layout tree: a sequence per `ID/Class/View/View.pkl`, with its label, subject and view."""

    sequences: list[SeqT]
    labels: npt.NDArray[np.int64]
    subjects: list[str]
    views: list[str]
    split: list[str]  # "TRAIN_SET", "TEST_SET" or "" when the partition file does not list the ID
    files: list[Path] = field(default_factory=list)
    split_file: Path | None = None


SilhouetteSet = SequenceSet[U8]


def read_split(path: str | Path) -> dict[str, list[str]]:
    """The partition JSON: both keys present, each a list of ID strings, no ID in both."""
    p = Path(path)
    try:
        raw = json.loads(p.read_text(encoding="utf-8"))
    except OSError as exc:
        raise DatasetError(p, f"cannot read partition file ({exc.strerror or exc})") from exc
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise DatasetError(p, f"partition file is not valid JSON ({exc})") from exc
    if not isinstance(raw, dict) or any(key not in raw for key in SPLIT_KEYS):
        raise DatasetError(p, f"partition file must be an object with keys {list(SPLIT_KEYS)}")
    out: dict[str, list[str]] = {}
    for key in SPLIT_KEYS:
        ids = raw[key]
        if not isinstance(ids, list) or not all(isinstance(x, str | int) for x in ids):
            raise DatasetError(p, f"{key} must be a list of subject IDs")
        out[key] = [str(x) for x in ids]
    both = set(out["TRAIN_SET"]) & set(out["TEST_SET"])
    if both:
        raise DatasetError(p, f"IDs in both TRAIN_SET and TEST_SET: {sorted(both)[:5]}")
    return out


def write_split(path: str | Path, train: list[str], test: list[str]) -> None:
    Path(path).write_text(json.dumps({"TRAIN_SET": train, "TEST_SET": test}, indent=1), encoding="utf-8")


def find_split_file(root: Path) -> Path | None:
    """The partition JSON in `root` (the only *.json with TRAIN_SET/TEST_SET there), or None."""
    candidates = sorted(root.glob("*.json"))
    if len(candidates) > 1:
        raise DatasetError(
            root, f"several JSON files, cannot tell which is the partition: {[c.name for c in candidates]}"
        )
    return candidates[0] if candidates else None


def walk_sequence_tree(
    root: str | Path, split_file: str | Path | None, what: str, read: Callable[[Path], SeqT]
) -> tuple[SequenceSet[SeqT], dict[str, str]]:
    """Every `ID/Class/View/View.pkl` under `root` in sorted order, each read with `read`. Class folders are the
    GAIT_LABELS names (case-insensitive). The partition JSON is `split_file` or the one JSON file in `root`.
    `what` names the file kind in errors. Returns the set and the partition's subject-to-split map."""
    base = Path(root)
    if not base.is_dir():
        raise DatasetError(base, f"{what} root is not a directory")
    split_path = Path(split_file) if split_file is not None else find_split_file(base)
    split = read_split(split_path) if split_path is not None else {key: [] for key in SPLIT_KEYS}
    membership = {sid: key for key in SPLIT_KEYS for sid in split[key]}
    out: SequenceSet[SeqT] = SequenceSet([], np.empty(0, np.int64), [], [], [], [], split_path)
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
                    raise DatasetError(pkl, f"missing {what} file for this view")
                out.sequences.append(read(pkl))
                labels.append(GAIT_LABELS[name])
                out.subjects.append(id_dir.name)
                out.views.append(view_dir.name)
                out.split.append(membership.get(id_dir.name, ""))
                out.files.append(pkl)
    if not out.sequences:
        raise DatasetError(base, f"no {what} sequences found (expected ID/Class/View/View.pkl)")
    out.labels = np.asarray(labels, np.int64)
    return out, membership


def load_scoliosis1k(root: str | Path, split_file: str | Path | None = None) -> SilhouetteSet:
    """Every silhouette sequence of the tree at `root` (see walk_sequence_tree)."""
    out, membership = walk_sequence_tree(root, split_file, "silhouette", read_silhouette_pkl)
    if out.split_file is not None:
        unknown = sorted(set(membership) - set(out.subjects))
        if unknown:  # a subset of the dataset is normal; say so once
            log.warning(
                "%s: %d partition IDs have no data under %s (e.g. %s)",
                out.split_file,
                len(unknown),
                Path(root),
                unknown[0],
            )
    return out
