"""Image folders with a labels CSV: `ROOT/labels.csv` with the header `subject_id,image,<label columns>`;
`image` is a path relative to ROOT. Classification sets have one `label` column (class name or index);
the head-shift set has `lateral_shift,sagittal_shift`. X-ray folders are the same format, read as grayscale."""

from __future__ import annotations

import csv
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np
import numpy.typing as npt

from training.datasets.errors import DatasetError

LABELS_CSV = "labels.csv"
U8 = npt.NDArray[np.uint8]


@dataclass
class ImageSet:
    images: U8  # (N, H, W, C) uint8, RGB (C=3) or grayscale (C=1)
    targets: npt.NDArray[np.int64] | npt.NDArray[np.float32]
    subjects: list[str]
    files: list[Path]


def read_labels_csv(path: Path, required: tuple[str, ...]) -> list[dict[str, str]]:
    """Rows of a labels CSV, checking the header holds `required` and no row has an empty required cell."""
    try:
        text = path.read_text(encoding="utf-8-sig")
    except FileNotFoundError as exc:
        raise DatasetError(path, "labels file not found") from exc
    except (OSError, UnicodeDecodeError) as exc:
        raise DatasetError(path, f"cannot read labels file ({exc})") from exc
    reader = csv.DictReader(text.splitlines())
    header = reader.fieldnames or []
    missing = [c for c in required if c not in header]
    if missing:
        raise DatasetError(path, f"missing column(s) {missing}; header is {header}")
    rows = []
    for line_no, row in enumerate(reader, start=2):
        empty = [c for c in required if not (row.get(c) or "").strip()]
        if empty:
            raise DatasetError(path, f"line {line_no}: empty {empty}")
        rows.append({k: (v or "").strip() for k, v in row.items() if k is not None})
    if not rows:
        raise DatasetError(path, "labels file has no rows")
    return rows


def parse_class(value: str, label_map: dict[str, int], path: Path, line_no: int) -> int:
    """A class cell: a class name (case-insensitive) or its integer index."""
    lowered = value.lower()
    if lowered in label_map:
        return label_map[lowered]
    if value.lstrip("-").isdigit() and int(value) in label_map.values():
        return int(value)
    raise DatasetError(path, f"line {line_no}: unknown label {value!r}; expected one of {list(label_map)}")


def read_image(path: Path, *, grayscale: bool, size: int | None) -> U8:
    """One image as (H, W, 3) RGB or (H, W, 1) grayscale uint8, resized to size x size when given."""
    if not path.is_file():
        raise DatasetError(path, "image file not found")
    data = np.fromfile(path, dtype=np.uint8)
    img = cv2.imdecode(data, cv2.IMREAD_GRAYSCALE if grayscale else cv2.IMREAD_COLOR) if data.size else None
    if img is None:
        raise DatasetError(path, "not a readable image (corrupt or unsupported format)")
    if size is not None and img.shape[:2] != (size, size):
        img = cv2.resize(img, (size, size), interpolation=cv2.INTER_AREA)
    if grayscale:
        return np.ascontiguousarray(img[..., None])
    return np.ascontiguousarray(cv2.cvtColor(img, cv2.COLOR_BGR2RGB))


def load_image_folder(
    root: str | Path,
    *,
    label_columns: tuple[str, ...] = ("label",),
    label_map: dict[str, int] | None = None,
    grayscale: bool = False,
    size: int | None = 128,
) -> ImageSet:
    """Images and targets listed in ROOT/labels.csv, in file order. With `label_map` the single label column is a
    class; otherwise the label columns are float regression targets."""
    base = Path(root)
    csv_path = base / LABELS_CSV
    if not base.is_dir():
        raise DatasetError(base, "image folder is not a directory")
    rows = read_labels_csv(csv_path, ("subject_id", "image", *label_columns))
    images, subjects, files = [], [], []
    classes: list[int] = []
    values: list[list[float]] = []
    for line_no, row in enumerate(rows, start=2):
        image_path = base / row["image"]
        if label_map is not None:
            classes.append(parse_class(row[label_columns[0]], label_map, csv_path, line_no))
        else:
            try:
                values.append([float(row[c]) for c in label_columns])
            except ValueError as exc:
                raise DatasetError(csv_path, f"line {line_no}: non-numeric target ({exc})") from exc
        images.append(read_image(image_path, grayscale=grayscale, size=size))
        subjects.append(row["subject_id"])
        files.append(image_path)
    shapes = {im.shape for im in images}
    if len(shapes) > 1:
        raise DatasetError(base, f"images differ in size {sorted(shapes)}; pass a size to resize them")
    targets: npt.NDArray[np.int64] | npt.NDArray[np.float32]
    targets = np.asarray(classes, np.int64) if label_map is not None else np.asarray(values, np.float32)
    return ImageSet(np.stack(images), targets, subjects, files)


def write_image_folder(
    root: str | Path,
    images: U8,
    subjects: list[str],
    targets: npt.NDArray[np.int64] | npt.NDArray[np.float32],
    *,
    label_columns: tuple[str, ...] = ("label",),
    class_names: list[str] | None = None,
) -> Path:
    """Write PNGs under ROOT/images/ and ROOT/labels.csv in the format `load_image_folder` reads."""
    base = Path(root)
    (base / "images").mkdir(parents=True, exist_ok=True)
    csv_path = base / LABELS_CSV
    with csv_path.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(["subject_id", "image", *label_columns])
        for i, image in enumerate(images):
            name = f"images/{i:06d}.png"
            out = image[..., 0] if image.shape[-1] == 1 else cv2.cvtColor(image, cv2.COLOR_RGB2BGR)
            if not cv2.imwrite(str(base / name), out):
                raise OSError(f"cannot write {base / name}")
            if class_names is not None:
                cells = [class_names[int(targets[i])]]
            else:
                cells = [repr(float(v)) for v in np.atleast_1d(targets[i])]
            writer.writerow([subjects[i], name, *cells])
    return csv_path
