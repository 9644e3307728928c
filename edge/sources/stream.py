"""A network stream: RTSP or HTTP(S) (MJPEG, HLS, ...) through OpenCV's FFmpeg backend.

Opening and reading are bounded by OpenCV's own timeouts (`CAP_PROP_OPEN_TIMEOUT_MSEC`,
`CAP_PROP_READ_TIMEOUT_MSEC`), whatever the FFmpeg options say, so a camera that dies or freezes mid-stream
becomes a `SourceError` within seconds and the grabber reconnects it with backoff; it never hangs the loop.
"""

from __future__ import annotations

import os
import threading
import time
from urllib.parse import urlsplit, urlunsplit

import cv2

from edge.sources._capture import as_bgr
from edge.sources.base import Frame, FrameSource, SourceError

# FFmpeg options for low latency: no input buffering, low-delay decoding, RTSP over TCP (no UDP loss
# artefacts) and a 5 s socket timeout (`timeout`; FFmpeg before 5.0 called it `stimeout` for RTSP).
LOW_LATENCY_OPTIONS = "rtsp_transport;tcp|fflags;nobuffer|flags;low_delay|max_delay;0|stimeout;5000000|timeout;5000000"
OPEN_TIMEOUT_S = 10.0  # connect, RTSP handshake and probing the first frames (about 2 s on a healthy camera)
READ_TIMEOUT_S = 5.0  # longest wait for the next frame before the stream counts as lost
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

    def __init__(
        self,
        url: str,
        *,
        low_latency: bool = True,
        open_timeout_s: float = OPEN_TIMEOUT_S,
        read_timeout_s: float = READ_TIMEOUT_S,
    ) -> None:
        if not (open_timeout_s > 0 and read_timeout_s > 0):
            raise ValueError(f"stream timeouts must be positive, got open {open_timeout_s}, read {read_timeout_s}")
        self.url = url
        self.low_latency = low_latency
        self.open_timeout_s, self.read_timeout_s = open_timeout_s, read_timeout_s
        self._cap: cv2.VideoCapture | None = None

    def open(self) -> None:
        self.close()
        with _env_lock:
            previous = os.environ.get(_ENV)
            if self.low_latency:
                os.environ[_ENV] = LOW_LATENCY_OPTIONS
            try:
                cap = cv2.VideoCapture(self.url, cv2.CAP_FFMPEG, self._timeouts())
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

    def _timeouts(self) -> list[int]:
        return [
            cv2.CAP_PROP_OPEN_TIMEOUT_MSEC, round(self.open_timeout_s * 1000),
            cv2.CAP_PROP_READ_TIMEOUT_MSEC, round(self.read_timeout_s * 1000),
        ]  # fmt: skip

    def read(self) -> tuple[Frame, float] | None:
        if self._cap is None:
            raise SourceError(f"stream {self.describe()}: read before open")
        ok, frame = self._cap.read()
        if not ok:
            raise SourceError(
                f"stream {self.describe()}: no frame (connection closed, or none within {self.read_timeout_s:g} s)"
            )
        return as_bgr(frame, f"stream {self.describe()}"), time.monotonic()

    def close(self) -> None:
        if self._cap is not None:
            self._cap.release()
            self._cap = None

    def describe(self) -> str:
        return redact(self.url)
