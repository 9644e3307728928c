"""Keypoint sequences: `ROOT/labels.csv` with the header `subject_id,file,label[,fps]` and one file per sequence,
either CSV or JSON, in BlazePose-33 or COCO-17 order (COCO is mapped to BlazePose with `COCO17_TO_BLAZEPOSE`;
landmarks COCO lacks get visibility 0).

CSV: header `frame,<name>_x,<name>_y,<name>_v,...` with the 33 BlazePose landmark names or the 17 COCO names
(`contract.landmarks`), one row per frame; x, y in pixels, v (visibility/confidence) 0..1.
JSON: `{"order": "blazepose" | "coco17", "fps": 25.0, "keypoints": [[[x, y, v], ...], ...]}` (frames x points)."""

from __future__ import annotations

import csv
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from contract.landmarks import COCO17_TO_BLAZEPOSE, LANDMARK_NAMES, NUM_LANDMARKS
from training.datasets.errors import DatasetError
from training.datasets.image_folder import LABELS_CSV, parse_class, read_labels_csv

F32 = npt.NDArray[np.float32]
COCO17_NAMES: tuple[str, ...] = tuple(LANDMARK_NAMES[i] for i in COCO17_TO_BLAZEPOSE)
ORDERS = {"blazepose": LANDMARK_NAMES, "coco17": COCO17_NAMES}


@dataclass
class KeypointSet:
    sequences: list[F32]  # each (T, 33, 3): x, y pixels, visibility, BlazePose order
    labels: npt.NDArray[np.int64]
    subjects: list[str]
    fps: list[float | None]
    files: list[Path]
    proms: F32 | None = None  # (N, k) from the labels.csv columns named prom_*, when present
    prom_names: tuple[str, ...] = ()


def to_blazepose(points: F32, order: str, path: Path) -> F32:
    """(T, K, 3) in `order` -> (T, 33, 3) BlazePose order."""
    if order == "blazepose":
        if points.shape[1] != NUM_LANDMARKS:
            raise DatasetError(path, f"BlazePose order needs {NUM_LANDMARKS} points per frame, found {points.shape[1]}")
        return points
    if order == "coco17":
        if points.shape[1] != len(COCO17_TO_BLAZEPOSE):
            raise DatasetError(path, f"COCO-17 order needs 17 points per frame, found {points.shape[1]}")
        out = np.zeros((points.shape[0], NUM_LANDMARKS, 3), np.float32)
        out[:, list(COCO17_TO_BLAZEPOSE)] = points
        return out
    raise DatasetError(path, f"unknown keypoint order {order!r}; expected one of {list(ORDERS)}")


def _check_values(points: F32, path: Path) -> F32:
    if points.shape[0] < 1:
        raise DatasetError(path, "sequence has no frames")
    if not np.isfinite(points).all():
        raise DatasetError(path, "non-finite keypoint values")
    vis = points[..., 2]
    if (vis < 0).any() or (vis > 1).any():
        raise DatasetError(path, "visibility values must lie in 0..1")
    return points


def read_keypoint_csv(path: str | Path) -> F32:
    p = Path(path)
    try:
        text = p.read_text(encoding="utf-8-sig")
    except OSError as exc:
        raise DatasetError(p, f"cannot read keypoint file ({exc.strerror or exc})") from exc
    rows = list(csv.reader(text.splitlines()))
    if not rows:
        raise DatasetError(p, "empty keypoint file")
    header, body = rows[0], rows[1:]
    names = header[1:]
    if header[:1] != ["frame"] or len(names) % 3:
        raise DatasetError(p, "header must be 'frame' followed by <name>_x,<name>_y,<name>_v columns")
    points = [n[:-2] for n in names[0::3]]
    expected = [f"{n}_{axis}" for n in points for axis in ("x", "y", "v")]
    if names != expected:
        raise DatasetError(p, "columns must come as <name>_x,<name>_y,<name>_v for each landmark")
    order = next((key for key, order_names in ORDERS.items() if tuple(points) == order_names), None)
    if order is None:
        raise DatasetError(p, f"landmark columns match neither BlazePose-33 nor COCO-17 names: {points[:5]}...")
    try:
        values = np.asarray([[float(c) for c in row[1:]] for row in body], np.float32)
    except ValueError as exc:
        raise DatasetError(p, f"non-numeric keypoint value ({exc})") from exc
    if values.ndim != 2 or values.shape[1] != len(names):
        raise DatasetError(p, f"every row needs {len(names) + 1} cells")
    return _check_values(to_blazepose(values.reshape(len(body), len(points), 3), order, p), p)


def read_keypoint_json(path: str | Path) -> tuple[F32, float | None]:
    p = Path(path)
    try:
        raw: Any = json.loads(p.read_text(encoding="utf-8"))
    except OSError as exc:
        raise DatasetError(p, f"cannot read keypoint file ({exc.strerror or exc})") from exc
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise DatasetError(p, f"not valid JSON ({exc})") from exc
    if not isinstance(raw, dict) or "keypoints" not in raw:
        raise DatasetError(p, "expected an object with 'order' and 'keypoints'")
    order = raw.get("order", "blazepose")
    try:
        points = np.asarray(raw["keypoints"], np.float32)
    except (ValueError, TypeError) as exc:
        raise DatasetError(p, f"'keypoints' must be frames x points x [x, y, v] numbers ({exc})") from exc
    if points.ndim != 3 or points.shape[2] != 3:
        raise DatasetError(p, f"'keypoints' must have shape [T, K, 3], found {list(points.shape)}")
    fps = raw.get("fps")
    if fps is not None and not (isinstance(fps, int | float) and fps > 0):
        raise DatasetError(p, f"'fps' must be a positive number, found {fps!r}")
    return _check_values(to_blazepose(points, str(order), p), p), (float(fps) if fps is not None else None)


def read_keypoint_file(path: str | Path) -> tuple[F32, float | None]:
    p = Path(path)
    if not p.is_file():
        raise DatasetError(p, "keypoint file not found")
    if p.suffix.lower() == ".csv":
        return read_keypoint_csv(p), None
    if p.suffix.lower() == ".json":
        return read_keypoint_json(p)
    raise DatasetError(p, "keypoint files must end in .csv or .json")


def write_keypoint_csv(path: str | Path, sequence: F32) -> None:
    """(T, 33, 3) BlazePose keypoints as CSV ('%.9g' keeps float32 values exact)."""
    header = ["frame"] + [f"{n}_{axis}" for n in LANDMARK_NAMES for axis in ("x", "y", "v")]
    with Path(path).open("w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(header)
        for t, frame in enumerate(sequence.astype(np.float32)):
            writer.writerow([t, *(f"{float(v):.9g}" for v in frame.reshape(-1))])


def write_keypoint_json(path: str | Path, sequence: F32, fps: float | None = None, order: str = "blazepose") -> None:
    points = sequence.astype(np.float32)
    if order == "coco17":
        points = points[:, list(COCO17_TO_BLAZEPOSE)]
    doc: dict[str, Any] = {"order": order, "keypoints": [[[float(v) for v in pt] for pt in fr] for fr in points]}
    if fps is not None:
        doc["fps"] = fps
    Path(path).write_text(json.dumps(doc), encoding="utf-8")


def load_keypoint_folder(root: str | Path, label_map: dict[str, int]) -> KeypointSet:
    """Sequences listed in ROOT/labels.csv (`subject_id,file,label[,fps]`), in file order."""
    base = Path(root)
    if not base.is_dir():
        raise DatasetError(base, "keypoint folder is not a directory")
    csv_path = base / LABELS_CSV
    rows = read_labels_csv(csv_path, ("subject_id", "file", "label"))
    out = KeypointSet([], np.empty(0, np.int64), [], [], [])
    out.prom_names = tuple(k for k in rows[0] if k.startswith("prom_"))
    proms: list[list[float]] = []
    labels = []
    for line_no, row in enumerate(rows, start=2):
        seq, fps = read_keypoint_file(base / row["file"])
        if row.get("fps"):
            try:
                fps = float(row["fps"])
            except ValueError as exc:
                raise DatasetError(csv_path, f"line {line_no}: fps {row['fps']!r} is not a number") from exc
        labels.append(parse_class(row["label"], label_map, csv_path, line_no))
        if out.prom_names:
            try:
                proms.append([float(row[name]) for name in out.prom_names])
            except ValueError as exc:
                raise DatasetError(csv_path, f"line {line_no}: PROM value is not a number ({exc})") from exc
        out.sequences.append(seq)
        out.subjects.append(row["subject_id"])
        out.fps.append(fps)
        out.files.append(base / row["file"])
    out.labels = np.asarray(labels, np.int64)
    if out.prom_names:
        out.proms = np.asarray(proms, np.float32)
    return out


def write_keypoint_labels(
    root: str | Path,
    rows: list[tuple[str, str, str, float | None]],
    proms: F32 | None = None,
    prom_names: tuple[str, ...] = (),
) -> Path:
    """ROOT/labels.csv from (subject_id, file, label, fps) rows, with optional prom_* columns."""
    path = Path(root) / LABELS_CSV
    with path.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(["subject_id", "file", "label", "fps", *prom_names])
        for i, (subject, file, label, fps) in enumerate(rows):
            extra = [repr(float(v)) for v in proms[i]] if proms is not None else []
            writer.writerow([subject, file, label, "" if fps is None else repr(fps), *extra])
    return path


def posture_pose(sequence: F32) -> F32:
    """One (33, 3) pose from a short window: the per-landmark median (robust to estimator jitter)."""
    return np.median(sequence, axis=0).astype(np.float32)
