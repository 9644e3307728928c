"""Replay files: recorded or synthetic perception results, fed in at the perception boundary
(`edgescreen edge run --replay FILE`). numpy only.

A replay is an `.npz` (no pickled objects) with these arrays; P is the number of person records over all frames:
- `format` = "edgescreen-replay", `version` = 1, `width`, `height` (image size in pixels)
- `timestamps` (F,) float64 seconds
- `person_frame` (P,) int32 frame index of each person; records are in frame order
- `person_score` (P,) float32, `person_bbox` (P, 4) float32 x0, y0, x1, y1 pixels
- `keypoints` (P, 33, 3) float32 x, y pixels and visibility; `world` (P, 33, 3) float32 metres
- `head_pose` (P, 3) float32 yaw, pitch, roll degrees (NaN when absent)
- `mask_box` (P, 4) int32 x0, y0, w, h of the mask crop (w = h = 0 when the person has no mask)
- `mask_bits` (B,) uint8: each crop's mask thresholded at 0.5, `np.packbits` row-major, concatenated;
  `mask_offset` (P + 1,) int64 byte offsets into `mask_bits`.
Masks come back as float32 0/1 arrays of the full image size, as perception hands them over."""

from __future__ import annotations

import io
import zipfile
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from contract.errors import EdgeScreenError
from contract.landmarks import NUM_LANDMARKS
from edge.perception.types import FrameResult, HeadPose, Person

FORMAT = "edgescreen-replay"
VERSION = 1
_FIELDS = {
    "timestamps": (np.float64, (-1,)),
    "person_frame": (np.int32, (-1,)),
    "person_score": (np.float32, (-1,)),
    "person_bbox": (np.float32, (-1, 4)),
    "keypoints": (np.float32, (-1, NUM_LANDMARKS, 3)),
    "world": (np.float32, (-1, NUM_LANDMARKS, 3)),
    "head_pose": (np.float32, (-1, 3)),
    "mask_box": (np.int32, (-1, 4)),
    "mask_bits": (np.uint8, (-1,)),
    "mask_offset": (np.int64, (-1,)),
}


class ReplayError(EdgeScreenError, ValueError):
    """A replay file is missing, malformed or inconsistent; the message names the file and the problem."""

    def __init__(self, path: str | Path, problem: str) -> None:
        self.path = Path(path)
        super().__init__(f"{self.path}: {problem}")


def _pack_mask(mask: npt.NDArray[np.floating] | None, width: int, height: int) -> tuple[list[int], bytes]:
    if mask is None:
        return [0, 0, 0, 0], b""
    if mask.shape != (height, width):
        raise ValueError(f"mask shape {mask.shape} does not match the frame size ({height}, {width})")
    binary = mask >= 0.5
    rows = np.flatnonzero(binary.any(axis=1))
    if rows.size == 0:
        return [0, 0, 0, 0], b""
    cols = np.flatnonzero(binary.any(axis=0))
    y0, y1, x0, x1 = int(rows[0]), int(rows[-1]) + 1, int(cols[0]), int(cols[-1]) + 1
    return [x0, y0, x1 - x0, y1 - y0], np.packbits(binary[y0:y1, x0:x1]).tobytes()


def write_replay(path: str | Path, frames: Iterable[FrameResult]) -> int:
    """Write `frames` (all of one image size) to `path`; returns the number of frames. Masks are stored as
    bit-packed crops of their bounding box; face landmarks and stage timings are not stored."""
    timestamps: list[float] = []
    person_frame: list[int] = []
    scores: list[float] = []
    bboxes: list[tuple[float, float, float, float]] = []
    keypoints: list[npt.NDArray[np.float32]] = []
    world: list[npt.NDArray[np.float32]] = []
    head: list[tuple[float, float, float]] = []
    boxes: list[list[int]] = []
    chunks: list[bytes] = []
    size: tuple[int, int] | None = None
    for index, frame in enumerate(frames):
        if size is None:
            size = (frame.width, frame.height)
        elif (frame.width, frame.height) != size:
            raise ValueError(f"frame {index} is {frame.width}x{frame.height}, earlier frames {size[0]}x{size[1]}")
        timestamps.append(float(frame.timestamp))
        for person in frame.persons:
            if person.keypoints.shape != (NUM_LANDMARKS, 3) or person.world.shape != (NUM_LANDMARKS, 3):
                raise ValueError(f"frame {index}: keypoints and world landmarks must be ({NUM_LANDMARKS}, 3)")
            person_frame.append(index)
            scores.append(float(person.score))
            bboxes.append(person.bbox)
            keypoints.append(person.keypoints.astype(np.float32))
            world.append(person.world.astype(np.float32))
            hp = person.head_pose
            head.append((hp.yaw, hp.pitch, hp.roll) if hp is not None else (np.nan, np.nan, np.nan))
            box, bits = _pack_mask(person.mask, frame.width, frame.height)
            boxes.append(box)
            chunks.append(bits)
    width, height = size if size is not None else (0, 0)
    offsets = np.zeros(len(chunks) + 1, np.int64)
    offsets[1:] = np.cumsum([len(c) for c in chunks])
    n = len(person_frame)
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    _write_npz(
        target,
        dict(
            format=np.array(FORMAT),
            version=np.array(VERSION),
            width=np.array(width),
            height=np.array(height),
            timestamps=np.asarray(timestamps, np.float64),
            person_frame=np.asarray(person_frame, np.int32),
            person_score=np.asarray(scores, np.float32),
            person_bbox=np.asarray(bboxes, np.float32).reshape(n, 4),
            keypoints=np.asarray(keypoints, np.float32).reshape(n, NUM_LANDMARKS, 3),
            world=np.asarray(world, np.float32).reshape(n, NUM_LANDMARKS, 3),
            head_pose=np.asarray(head, np.float32).reshape(n, 3),
            mask_box=np.asarray(boxes, np.int32).reshape(n, 4),
            mask_bits=np.frombuffer(b"".join(chunks), np.uint8),
            mask_offset=offsets,
        ),
    )
    return len(timestamps)


def _write_npz(path: Path, arrays: dict[str, npt.NDArray[Any]]) -> None:
    """Like np.savez_compressed, but with fixed zip timestamps so the same frames give the same bytes."""
    with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_DEFLATED) as archive:
        for name, array in arrays.items():
            info = zipfile.ZipInfo(f"{name}.npy", date_time=(1980, 1, 1, 0, 0, 0))
            info.compress_type = zipfile.ZIP_DEFLATED
            buffer = io.BytesIO()
            np.lib.format.write_array(buffer, np.asanyarray(array), allow_pickle=False)
            archive.writestr(info, buffer.getvalue())


def _load(path: Path) -> dict[str, npt.NDArray[np.generic]]:
    if not path.is_file():
        raise ReplayError(path, "replay file not found")
    try:
        with np.load(path, allow_pickle=False) as npz:
            arrays = {name: npz[name] for name in npz.files}
    except (OSError, ValueError, zipfile.BadZipFile, EOFError) as exc:
        raise ReplayError(path, f"not a readable .npz replay ({exc})") from exc
    if str(arrays.get("format", "")) != FORMAT:
        raise ReplayError(path, f"not an {FORMAT} file (missing or wrong 'format')")
    version = int(arrays["version"]) if "version" in arrays else -1
    if version != VERSION:
        raise ReplayError(path, f"unsupported replay version {version} (this reader knows {VERSION})")
    for name, (dtype, shape) in {**_FIELDS, "width": (np.int64, ()), "height": (np.int64, ())}.items():
        if name not in arrays:
            raise ReplayError(path, f"missing array {name!r}")
        arr = arrays[name]
        if len(shape) != arr.ndim or any(want not in (-1, got) for want, got in zip(shape, arr.shape, strict=True)):
            raise ReplayError(path, f"array {name!r} has shape {list(arr.shape)}, expected {list(shape)}")
        if name not in ("width", "height") and arr.dtype != dtype:
            raise ReplayError(path, f"array {name!r} has dtype {arr.dtype}, expected {np.dtype(dtype)}")
    n = len(arrays["person_frame"])
    for name in ("person_score", "person_bbox", "keypoints", "world", "head_pose", "mask_box"):
        if len(arrays[name]) != n:
            raise ReplayError(path, f"array {name!r} has {len(arrays[name])} records, person_frame has {n}")
    frames = arrays["person_frame"]
    if n and (frames.min() < 0 or frames.max() >= len(arrays["timestamps"]) or (np.diff(frames) < 0).any()):
        raise ReplayError(path, "person_frame must index frames in non-decreasing order")
    offsets = arrays["mask_offset"]
    if (
        len(offsets) != n + 1
        or offsets[0] != 0
        or offsets[-1] != len(arrays["mask_bits"])
        or (np.diff(offsets) < 0).any()
    ):
        raise ReplayError(path, "mask_offset does not match mask_bits")
    return arrays


def read_replay(path: str | Path) -> Iterator[FrameResult]:
    """The frames of a replay, in order. The whole file is validated before the first frame is yielded."""
    p = Path(path)
    arrays = _load(p)
    width, height = int(arrays["width"]), int(arrays["height"])
    person_frame = arrays["person_frame"]
    starts = np.searchsorted(person_frame, np.arange(len(arrays["timestamps"]) + 1))
    for index, timestamp in enumerate(arrays["timestamps"]):
        persons = []
        for r in range(int(starts[index]), int(starts[index + 1])):
            x0, y0, w, h = (int(v) for v in arrays["mask_box"][r])
            mask = None
            if w > 0 and h > 0:
                bits = arrays["mask_bits"][int(arrays["mask_offset"][r]) : int(arrays["mask_offset"][r + 1])]
                if bits.size != (w * h + 7) // 8 or x0 < 0 or y0 < 0 or x0 + w > width or y0 + h > height:
                    raise ReplayError(p, f"frame {index}: mask record {r} does not fit the image")
                mask = np.zeros((height, width), np.float32)
                mask[y0 : y0 + h, x0 : x0 + w] = np.unpackbits(np.asarray(bits, np.uint8), count=w * h).reshape(h, w)
            hp = arrays["head_pose"][r]
            bbox = arrays["person_bbox"][r]
            persons.append(
                Person(
                    score=float(arrays["person_score"][r]),
                    bbox=(float(bbox[0]), float(bbox[1]), float(bbox[2]), float(bbox[3])),
                    keypoints=np.array(arrays["keypoints"][r], np.float32),
                    world=np.array(arrays["world"][r], np.float32),
                    mask=mask,
                    head_pose=None if np.isnan(hp).any() else HeadPose(float(hp[0]), float(hp[1]), float(hp[2])),
                )
            )
        yield FrameResult(timestamp=float(timestamp), width=width, height=height, persons=persons)
