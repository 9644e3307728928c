"""A network stream: RTSP or HTTP(S) (MJPEG, HLS, ...) through OpenCV's FFmpeg backend."""

from __future__ import annotations

import os
import threading
import time
from urllib.parse import urlsplit, urlunsplit

import cv2

from edge.sources._capture import as_bgr
from edge.sources.base import Frame, FrameSource, SourceError

# FFmpeg options for low latency: no input buffering, low-delay decoding, RTSP over TCP (no UDP loss
# artefacts) and a 5 s socket timeout so a vanished camera becomes an error rather than a hang.
LOW_LATENCY_OPTIONS = "rtsp_transport;tcp|fflags;nobuffer|flags;low_delay|max_delay;0|stimeout;5000000|timeout;5000000"
_ENV = "OPENCV_FFMPEG_CAPTURE_OPTIONS"
_env_lock = threading.Lock()  # the options are read from the environment at open time


def redact(url: str) -> str:
    """The URL without user name and password, for logs and status lines."""
    parts = urlsplit(url)
    if parts.username is None and parts.password is None:
        return url
    host = parts.hostname or ""
    if parts.port:
        host = f"{host}:{parts.port}"
    return urlunsplit((parts.scheme, f"***@{host}", parts.path, parts.query, parts.fragment))


class StreamSource(FrameSource):
    """RTSP/HTTP camera stream. Timestamps are `time.monotonic()` when the frame was read."""

    finite = False

    def __init__(self, url: str, *, low_latency: bool = True) -> None:
        self.url = url
        self.low_latency = low_latency
        self._cap: cv2.VideoCapture | None = None

    def open(self) -> None:
        self.close()
        with _env_lock:
            previous = os.environ.get(_ENV)
            if self.low_latency:
                os.environ[_ENV] = LOW_LATENCY_OPTIONS
            try:
                cap = cv2.VideoCapture(self.url, cv2.CAP_FFMPEG)
            finally:
                if previous is None:
                    os.environ.pop(_ENV, None)
                else:
                    os.environ[_ENV] = previous
        if not cap.isOpened():
            cap.release()
            raise SourceError(f"stream {self.describe()}: cannot be opened (unreachable, wrong path or credentials)")
        cap.set(cv2.CAP_PROP_BUFFERSIZE, 1.0)
        self._cap = cap

    def read(self) -> tuple[Frame, float] | None:
        if self._cap is None:
            raise SourceError(f"stream {self.describe()}: read before open")
        ok, frame = self._cap.read()
        if not ok:
            raise SourceError(f"stream {self.describe()}: no frame (connection lost?)")
        return as_bgr(frame, f"stream {self.describe()}"), time.monotonic()

    def close(self) -> None:
        if self._cap is not None:
            self._cap.release()
            self._cap = None

    def describe(self) -> str:
        return redact(self.url)
