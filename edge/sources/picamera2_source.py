"""Raspberry Pi camera through picamera2. picamera2 is imported here only, when the source opens."""

from __future__ import annotations

import time
from typing import Any

import numpy as np

from edge.sources._capture import as_bgr
from edge.sources.base import Frame, FrameSource, SourceError


class Picamera2Source(FrameSource):
    """libcamera camera `camera_num`. Timestamps are `time.monotonic()` at capture."""

    finite = False

    def __init__(
        self, camera_num: int = 0, *, width: int | None = None, height: int | None = None, fps: float | None = None
    ) -> None:
        self.camera_num = camera_num
        self.size = (width or 640, height or 480)
        self.fps = fps
        self._camera: Any = None

    def open(self) -> None:
        self.close()
        try:
            from picamera2 import Picamera2  # optional SDK: only on Raspberry Pi OS
        except ImportError as exc:
            raise SourceError(
                f"picamera2:{self.camera_num}: the picamera2 package is not installed "
                "(on Raspberry Pi OS: sudo apt install python3-picamera2)"
            ) from exc
        try:
            camera = Picamera2(self.camera_num)
            controls = {"FrameRate": float(self.fps)} if self.fps else {}
            # libcamera's "RGB888" is stored B, G, R in memory: what OpenCV calls BGR.
            config = camera.create_video_configuration(
                main={"size": self.size, "format": "RGB888"}, buffer_count=2, controls=controls
            )
            camera.configure(config)
            camera.start()
        except Exception as exc:  # picamera2 raises plain RuntimeError/IndexError for missing cameras
            raise SourceError(f"picamera2:{self.camera_num}: cannot be started ({exc})") from exc
        self._camera = camera

    def read(self) -> tuple[Frame, float] | None:
        if self._camera is None:
            raise SourceError(f"picamera2:{self.camera_num}: read before open")
        try:
            frame = self._camera.capture_array("main")
        except Exception as exc:  # any capture failure means the camera is lost: the grabber reopens it
            raise SourceError(f"picamera2:{self.camera_num}: capture failed ({exc})") from exc
        return as_bgr(np.ascontiguousarray(frame), f"picamera2:{self.camera_num}"), time.monotonic()

    def close(self) -> None:
        if self._camera is not None:
            camera, self._camera = self._camera, None
            try:
                camera.stop()
                camera.close()
            except Exception:  # closing a camera that already vanished may fail; nothing left to release
                pass

    def describe(self) -> str:
        return f"picamera2:{self.camera_num}"
