"""A local camera through OpenCV: a device index (`0`) or a V4L2 device node (`/dev/video0`)."""

from __future__ import annotations

import sys
import time

import cv2

from edge.sources._capture import as_bgr, request_size
from edge.sources.base import Frame, FrameSource, SourceError


class OpenCVDeviceSource(FrameSource):
    """USB/V4L2 camera. Timestamps are `time.monotonic()` at the moment the frame was read."""

    finite = False

    def __init__(
        self, device: int | str, *, width: int | None = None, height: int | None = None, fps: float | None = None
    ) -> None:
        self.device = device
        self.width, self.height, self.fps = width, height, fps
        self._cap: cv2.VideoCapture | None = None

    def open(self) -> None:
        self.close()
        # V4L2 directly on Linux: the default backend order may try GStreamer or FFmpeg first and be slow.
        api = cv2.CAP_V4L2 if sys.platform.startswith("linux") else cv2.CAP_ANY
        cap = cv2.VideoCapture(self.device, api)
        if not cap.isOpened():
            cap.release()
            raise SourceError(f"camera {self.describe()}: cannot be opened (unplugged, busy or no permission)")
        request_size(cap, self.width, self.height, self.fps)
        self._cap = cap

    def read(self) -> tuple[Frame, float] | None:
        if self._cap is None:
            raise SourceError(f"camera {self.describe()}: read before open")
        ok, frame = self._cap.read()
        if not ok:
            raise SourceError(f"camera {self.describe()}: no frame (disconnected?)")
        return as_bgr(frame, f"camera {self.describe()}"), time.monotonic()

    def close(self) -> None:
        if self._cap is not None:
            self._cap.release()
            self._cap = None

    def describe(self) -> str:
        return f"device {self.device}" if isinstance(self.device, int) else str(self.device)
