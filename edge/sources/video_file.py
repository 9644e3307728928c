"""A video file. Timestamps are media time (seconds from the start of the file), so replays are deterministic."""

from __future__ import annotations

import time
from pathlib import Path

import cv2

from edge.sources._capture import as_bgr
from edge.sources.base import Frame, FrameSource, SourceError

DEFAULT_FPS = 30.0  # when the container does not say


class VideoFileSource(FrameSource):
    """Reads a file to its end. A truncated file ends at the last decodable frame.

    With `realtime=True` frames are released at the file's own rate (like a live camera); otherwise as fast
    as they are asked for.
    """

    finite = True

    def __init__(self, path: str | Path, *, realtime: bool = False) -> None:
        self.path = Path(path)
        self.realtime = realtime
        self._cap: cv2.VideoCapture | None = None
        self._index = 0
        self._fps = DEFAULT_FPS
        self._last_ts = -1.0
        self._wall_start = 0.0

    def open(self) -> None:
        self.close()
        if not self.path.is_file():
            raise SourceError(f"video file {self.path}: no such file")
        cap = cv2.VideoCapture(str(self.path), cv2.CAP_FFMPEG)
        if not cap.isOpened():
            cap.release()
            raise SourceError(f"video file {self.path}: cannot be decoded (not a video, or damaged header)")
        fps = cap.get(cv2.CAP_PROP_FPS)
        self._fps = fps if 0 < fps < 1000 else DEFAULT_FPS
        self._cap, self._index, self._last_ts = cap, 0, -1.0
        self._wall_start = time.monotonic()

    @property
    def fps(self) -> float:
        return self._fps

    def read(self) -> tuple[Frame, float] | None:
        if self._cap is None:
            raise SourceError(f"video file {self.path}: read before open")
        ok, frame = self._cap.read()
        if not ok:
            return None  # end of file, or the first undecodable byte of a truncated one
        timestamp = self._media_time()
        self._index += 1
        if self.realtime:
            delay = self._wall_start + timestamp - time.monotonic()
            if delay > 0:
                time.sleep(delay)
        return as_bgr(frame, f"video file {self.path} frame {self._index - 1}"), timestamp

    def _media_time(self) -> float:
        # The container's timestamp of the decoded frame; frame index / fps where the container has none
        # (or it does not increase, as with some raw streams).
        assert self._cap is not None
        ts = self._cap.get(cv2.CAP_PROP_POS_MSEC) / 1000.0
        if not ts > self._last_ts:
            ts = self._index / self._fps
            if not ts > self._last_ts:
                ts = self._last_ts + 1.0 / self._fps
        self._last_ts = ts
        return ts

    def close(self) -> None:
        if self._cap is not None:
            self._cap.release()
            self._cap = None

    def describe(self) -> str:
        return f"video file {self.path}"
