"""A folder of images, read in natural name order (frame2 before frame10)."""

from __future__ import annotations

import re
import time
from pathlib import Path

import cv2
import numpy as np

from edge.sources._capture import as_bgr
from edge.sources.base import CorruptFrame, Frame, FrameSource, SourceError

IMAGE_SUFFIXES = frozenset({".jpg", ".jpeg", ".png", ".bmp", ".tif", ".tiff", ".webp", ".ppm", ".pgm", ".pnm"})


def natural_key(name: str) -> list[object]:
    return [(0, int(part), "") if part.isdigit() else (1, 0, part.lower()) for part in re.split(r"(\d+)", name)]


class ImageFolderSource(FrameSource):
    """Each image is one frame; timestamp = position / fps (the folder has no clock of its own).

    An unreadable image raises CorruptFrame naming the file; the next read moves on to the next image.
    """

    finite = True

    def __init__(self, folder: str | Path, *, fps: float = 10.0, realtime: bool = False) -> None:
        if fps <= 0:
            raise ValueError(f"image folder {folder}: fps must be positive, got {fps}")
        self.folder = Path(folder)
        self.fps = fps
        self.realtime = realtime
        self._files: list[Path] = []
        self._index = 0
        self._wall_start = 0.0

    def open(self) -> None:
        if not self.folder.is_dir():
            raise SourceError(f"image folder {self.folder}: no such folder")
        files = [p for p in self.folder.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES and p.is_file()]
        if not files:
            raise SourceError(f"image folder {self.folder}: no images (looked for {', '.join(sorted(IMAGE_SUFFIXES))})")
        self._files = sorted(files, key=lambda p: natural_key(p.name))
        self._index = 0
        self._wall_start = time.monotonic()

    def __len__(self) -> int:
        return len(self._files)

    def read(self) -> tuple[Frame, float] | None:
        if self._index >= len(self._files):
            return None
        path = self._files[self._index]
        timestamp = self._index / self.fps
        self._index += 1
        if self.realtime:
            delay = self._wall_start + timestamp - time.monotonic()
            if delay > 0:
                time.sleep(delay)
        try:
            data = np.fromfile(path, dtype=np.uint8)
        except OSError as exc:
            raise CorruptFrame(f"image {path}: cannot be read ({exc})") from exc
        image = cv2.imdecode(data, cv2.IMREAD_COLOR) if data.size else None
        if image is None:
            raise CorruptFrame(f"image {path}: not a decodable image")
        return as_bgr(image, f"image {path}"), timestamp

    def close(self) -> None:
        self._files = []

    def describe(self) -> str:
        return f"image folder {self.folder}"
