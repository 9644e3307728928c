"""Built-in test clips made from a real photo (scikit-image's astronaut), no download needed.

`make_posture_clip` places the photo on a canvas and turns and shifts it over time, so the head tilt the
device measures changes by known amounts. Angles follow the head-tilt convention of docs/metrics.md:
positive = the subject's left ear drops (the photo turned clockwise on screen; the astronaut faces the
camera, so her left ear is on the image's right).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np
import numpy.typing as npt

BACKGROUND = (96, 96, 96)
# (start as a fraction of the clip, tilt in degrees): level, then tilted one way, then the other
DEFAULT_SCHEDULE: tuple[tuple[float, float], ...] = ((0.0, 0.0), (1 / 3, 12.0), (2 / 3, -8.0))

TiltSchedule = float | Sequence[tuple[float, float]] | Callable[[float], float]


@dataclass(frozen=True)
class ClipInfo:
    path: Path
    frames: int
    fps: float
    size: tuple[int, int]
    tilts_deg: tuple[float, ...]  # the tilt applied to each frame


def _fourcc(path: Path) -> int:
    codec = {".avi": "MJPG", ".mp4": "mp4v", ".m4v": "mp4v", ".mov": "mp4v", ".mkv": "MJPG"}.get(path.suffix.lower())
    if codec is None:
        raise ValueError(f"{path}: unsupported clip type {path.suffix!r}; use .mp4 (mp4v) or .avi (MJPG)")
    return int(cv2.VideoWriter.fourcc(*codec))


def _writer(path: Path, fps: float, size: tuple[int, int]) -> cv2.VideoWriter:
    path.parent.mkdir(parents=True, exist_ok=True)
    writer = cv2.VideoWriter(str(path), _fourcc(path), float(fps), size)
    if not writer.isOpened():
        raise RuntimeError(f"{path}: OpenCV cannot write this video type here")
    return writer


def tilt_at(schedule: TiltSchedule, t: float, seconds: float) -> float:
    """Tilt at time `t`: a constant, a callable of t, or steps [(start as a fraction of the clip, deg), ...]."""
    if isinstance(schedule, int | float):
        return float(schedule)
    if callable(schedule):
        return float(schedule(t))
    value = 0.0
    for start, deg in sorted(schedule):
        if t >= start * seconds - 1e-9:
            value = deg
    return value


def astronaut_bgr(height: int) -> npt.NDArray[np.uint8]:
    from skimage import data

    photo = cv2.cvtColor(data.astronaut(), cv2.COLOR_RGB2BGR)
    return np.asarray(cv2.resize(photo, (height, height), interpolation=cv2.INTER_AREA), dtype=np.uint8)


def posture_frame(
    photo: npt.NDArray[np.uint8], size: tuple[int, int], tilt_deg: float, shift: tuple[float, float] = (0.0, 0.0)
) -> npt.NDArray[np.uint8]:
    """One frame: the photo centred on a canvas, shifted by `shift` px, turned by `tilt_deg` about its centre."""
    width, height = size
    canvas = np.full((height, width, 3), BACKGROUND, np.uint8)
    ph, pw = photo.shape[:2]
    y0, x0 = (height - ph) // 2, (width - pw) // 2
    canvas[y0 : y0 + ph, x0 : x0 + pw] = photo
    # cv2 angles are counter-clockwise on screen; a positive tilt turns the picture clockwise.
    matrix = cv2.getRotationMatrix2D((width / 2, height / 2), -tilt_deg, 1.0)
    matrix[:, 2] += np.asarray(shift, dtype=np.float64)
    return np.asarray(cv2.warpAffine(canvas, matrix, size, borderValue=BACKGROUND), dtype=np.uint8)


def make_posture_clip(
    path: str | Path,
    *,
    seconds: float = 12.0,
    fps: float = 15.0,
    size: tuple[int, int] = (640, 480),
    tilt_deg: TiltSchedule = DEFAULT_SCHEDULE,
    sway_px: float = 12.0,
) -> ClipInfo:
    """Write a clip of the astronaut photo tilting over time (and swaying sideways by `sway_px`)."""
    path = Path(path)
    if seconds <= 0 or fps <= 0:
        raise ValueError(f"seconds and fps must be positive, got {seconds}, {fps}")
    frames = max(1, round(seconds * fps))
    photo = astronaut_bgr(int(min(size) * 0.92))
    writer = _writer(path, fps, size)
    tilts = []
    try:
        for i in range(frames):
            t = i / fps
            tilt = tilt_at(tilt_deg, t, seconds)
            shift = (sway_px * math.sin(2 * math.pi * t / max(seconds, 1e-6)), 0.0)
            writer.write(posture_frame(photo, size, tilt, shift))
            tilts.append(tilt)
    finally:
        writer.release()
    return ClipInfo(path, frames, float(fps), size, tuple(tilts))


def make_empty_clip(
    path: str | Path, *, seconds: float = 3.0, fps: float = 15.0, size: tuple[int, int] = (640, 480)
) -> ClipInfo:
    """A clip with nobody in view: a gently changing gradient (so the codec has something to encode)."""
    path = Path(path)
    frames = max(1, round(seconds * fps))
    width, height = size
    ramp = np.linspace(40, 200, width, dtype=np.float32)[None, :, None]
    writer = _writer(path, fps, size)
    try:
        for i in range(frames):
            level = ramp + 20.0 * math.sin(i / max(frames, 1) * math.pi)
            frame = np.broadcast_to(level, (height, width, 3)).clip(0, 255).astype(np.uint8)
            writer.write(np.ascontiguousarray(frame))
    finally:
        writer.release()
    return ClipInfo(path, frames, float(fps), size, (0.0,) * frames)


def make_truncated_copy(source: str | Path, target: str | Path, *, keep: float = 0.6) -> Path:
    """Copy the first `keep` fraction of a clip's bytes (a recording cut off mid-write)."""
    if not 0 < keep < 1:
        raise ValueError(f"keep must be between 0 and 1, got {keep}")
    data = Path(source).read_bytes()
    target = Path(target)
    target.write_bytes(data[: int(len(data) * keep)])
    return target


def make_corrupt_copy(source: str | Path, target: str | Path, *, at: float = 0.5, length: int = 4096) -> Path:
    """Copy a clip with `length` bytes at `at` (fraction of the file) overwritten by noise (a damaged sector)."""
    data = bytearray(Path(source).read_bytes())
    start = int(len(data) * at)
    noise = np.random.default_rng(0).integers(0, 256, size=min(length, len(data) - start), dtype=np.uint8)
    data[start : start + len(noise)] = noise.tobytes()
    target = Path(target)
    target.write_bytes(bytes(data))
    return target
