"""A GStreamer pipeline ending in `appsink` (Jetson CSI cameras via `nvarguscamerasrc`).

Needs an OpenCV built with GStreamer (JetPack's OpenCV is); the pip wheels are not, and opening then fails
with an error that says so.
"""

from __future__ import annotations

import time
from fractions import Fraction

import cv2

from edge.sources._capture import as_bgr
from edge.sources.base import Frame, FrameSource, SourceError

# nvvidconv flip-method values
FLIP_METHODS = {
    0: "none",
    1: "counter-clockwise 90°",
    2: "rotate 180°",
    3: "clockwise 90°",
    4: "horizontal flip",
    5: "upper-right diagonal flip",
    6: "vertical flip",
    7: "upper-left diagonal flip",
}


def csi_pipeline(
    *,
    sensor_id: int = 0,
    width: int = 640,
    height: int = 480,
    fps: float = 30.0,
    flip: int = 0,
    capture_width: int | None = None,
    capture_height: int | None = None,
) -> str:
    """The pipeline for a Jetson CSI camera: capture in NVMM memory, scale/flip on the VIC, BGR to appsink.

    `capture_width/height` pick the sensor mode (default: the output size); the VIC scales to width×height.
    The appsink keeps one buffer and drops the rest, so a slow consumer never queues stale frames.
    """
    if flip not in FLIP_METHODS:
        raise ValueError(f"flip must be one of {sorted(FLIP_METHODS)} (nvvidconv flip-method), got {flip}")
    if width <= 0 or height <= 0 or fps <= 0 or sensor_id < 0:
        raise ValueError(f"invalid CSI settings: sensor_id={sensor_id} {width}x{height} @ {fps} fps")
    rate = Fraction(fps).limit_denominator(1001)
    cw, ch = capture_width or width, capture_height or height
    return (
        f"nvarguscamerasrc sensor-id={sensor_id} ! "
        f"video/x-raw(memory:NVMM), width=(int){cw}, height=(int){ch}, framerate=(fraction){rate.numerator}/"
        f"{rate.denominator}, format=(string)NV12 ! "
        f"nvvidconv flip-method={flip} ! "
        f"video/x-raw, width=(int){width}, height=(int){height}, format=(string)BGRx ! "
        "videoconvert ! video/x-raw, format=(string)BGR ! "
        "appsink drop=true max-buffers=1 sync=false"
    )


def gstreamer_available() -> bool:
    """True when this OpenCV was built with GStreamer support."""
    for line in cv2.getBuildInformation().splitlines():
        if line.strip().startswith("GStreamer:"):
            return "YES" in line
    return False


class GStreamerSource(FrameSource):
    """Frames from a GStreamer pipeline string that ends in `appsink`. Timestamps: `time.monotonic()`."""

    finite = False

    def __init__(self, pipeline: str) -> None:
        if "appsink" not in pipeline:
            raise SourceError(f"GStreamer pipeline must end in appsink: {pipeline!r}")
        self.pipeline = pipeline
        self._cap: cv2.VideoCapture | None = None

    def open(self) -> None:
        self.close()
        if not gstreamer_available():
            raise SourceError(
                f"GStreamer pipeline {self.describe()!r}: this OpenCV is built without GStreamer "
                "(use the distribution's/JetPack's python3-opencv instead of the pip wheel)"
            )
        cap = cv2.VideoCapture(self.pipeline, cv2.CAP_GSTREAMER)
        if not cap.isOpened():
            cap.release()
            raise SourceError(f"GStreamer pipeline {self.describe()!r}: cannot be started (camera missing or busy?)")
        self._cap = cap

    def read(self) -> tuple[Frame, float] | None:
        if self._cap is None:
            raise SourceError(f"GStreamer pipeline {self.describe()!r}: read before open")
        ok, frame = self._cap.read()
        if not ok:
            raise SourceError(f"GStreamer pipeline {self.describe()!r}: no frame (pipeline stopped)")
        return as_bgr(frame, "GStreamer pipeline"), time.monotonic()

    def close(self) -> None:
        if self._cap is not None:
            self._cap.release()
            self._cap = None

    def describe(self) -> str:
        head = self.pipeline.split("!", 1)[0].strip()
        return f"gst:{head} ! …" if "!" in self.pipeline else f"gst:{head}"
