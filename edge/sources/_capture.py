"""Shared helpers for the OpenCV `VideoCapture` based sources."""

from __future__ import annotations

import cv2
import numpy as np

from edge.sources.base import CorruptFrame, Frame


def as_bgr(frame: object, where: str) -> Frame:
    """Check a decoded frame is a non-empty uint8 image and give it 3 BGR channels."""
    if not isinstance(frame, np.ndarray) or frame.size == 0 or frame.dtype != np.uint8:
        raise CorruptFrame(f"{where}: not a decodable image")
    if frame.ndim == 2:
        return np.asarray(cv2.cvtColor(frame, cv2.COLOR_GRAY2BGR), dtype=np.uint8)
    if frame.ndim == 3 and frame.shape[2] == 4:
        return np.asarray(cv2.cvtColor(frame, cv2.COLOR_BGRA2BGR), dtype=np.uint8)
    if frame.ndim != 3 or frame.shape[2] != 3:
        raise CorruptFrame(f"{where}: unexpected frame shape {frame.shape}")
    return frame


def request_size(cap: cv2.VideoCapture, width: int | None, height: int | None, fps: float | None) -> None:
    """Ask the camera for a size and rate; cameras may pick the nearest mode they support."""
    if width:
        cap.set(cv2.CAP_PROP_FRAME_WIDTH, float(width))
    if height:
        cap.set(cv2.CAP_PROP_FRAME_HEIGHT, float(height))
    if fps:
        cap.set(cv2.CAP_PROP_FPS, float(fps))
    # Keep the driver queue short: a stale queued frame is latency, the grabber already keeps the newest.
    cap.set(cv2.CAP_PROP_BUFFERSIZE, 1.0)
