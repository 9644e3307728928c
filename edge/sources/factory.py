"""Pick a camera source from its URI. Each source module is imported only when its kind is asked for.

| URI                                   | source                      |
| ------------------------------------- | --------------------------- |
| `0`, `1`, ... or `/dev/videoN`        | OpenCV / V4L2 camera        |
| `gst:PIPELINE` or any string with `!` | GStreamer pipeline          |
| `rtsp://`, `rtsps://`, `http(s)://`   | network stream              |
| `picamera2` or `picamera2:N`          | Raspberry Pi camera         |
| an existing folder                    | folder of images            |
| an existing file (or `file://PATH`)   | video file                  |
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

from edge.sources.base import FrameSource, SourceError

# Options a caller may pass; each kind takes the ones that apply to it and ignores the rest.
KNOWN_OPTIONS = frozenset({"width", "height", "fps", "realtime", "low_latency"})
STREAM_SCHEMES = ("rtsp://", "rtsps://", "http://", "https://")
_DEVICE_NODE = re.compile(r"^/dev/video\d+$")
_PICAMERA = re.compile(r"^picamera2(?::(\d+))?$")
_SCHEME = re.compile(r"^([a-zA-Z][a-zA-Z0-9+.-]*)://")


def source_kind(uri: str) -> str:
    """`device`, `gstreamer`, `stream`, `picamera2`, `folder`, `file`; raises SourceError for anything else."""
    text = uri.strip()
    if not text:
        raise SourceError("camera source is empty")
    if text.isdigit() or _DEVICE_NODE.match(text):
        return "device"
    if text.startswith("gst:") or "!" in text:
        return "gstreamer"
    if text.lower().startswith(STREAM_SCHEMES):
        return "stream"
    if _PICAMERA.match(text):
        return "picamera2"
    path = _local_path(text)
    if path is None:
        scheme = _SCHEME.match(text)
        raise SourceError(
            f"camera source {uri!r}: unknown scheme {scheme.group(1)!r}" if scheme else f"camera source {uri!r}"
        )
    if path.is_dir():
        return "folder"
    if path.is_file():
        return "file"
    raise SourceError(
        f"camera source {uri!r}: no such file or folder (expected a device index, /dev/videoN, gst:PIPELINE, "
        "rtsp://, http(s)://, picamera2[:N], a video file or a folder of images)"
    )


def _local_path(text: str) -> Path | None:
    if text.startswith("file://"):
        return Path(text[len("file://") :])
    if _SCHEME.match(text):
        return None
    return Path(text).expanduser()


def make_source(uri: str, **options: Any) -> FrameSource:
    """Build the source for `uri` without opening it (the grabber opens and reopens it)."""
    unknown = set(options) - KNOWN_OPTIONS
    if unknown:
        raise TypeError(f"unknown source option(s) {sorted(unknown)}; known: {sorted(KNOWN_OPTIONS)}")
    text = uri.strip()
    kind = source_kind(text)
    size = {k: options.get(k) for k in ("width", "height", "fps")}
    if kind == "device":
        from edge.sources.opencv_device import OpenCVDeviceSource

        return OpenCVDeviceSource(int(text) if text.isdigit() else text, **size)
    if kind == "gstreamer":
        from edge.sources.gstreamer import GStreamerSource

        return GStreamerSource(text.removeprefix("gst:").strip())
    if kind == "stream":
        from edge.sources.stream import StreamSource

        return StreamSource(text, low_latency=bool(options.get("low_latency", True)))
    if kind == "picamera2":
        from edge.sources.picamera2_source import Picamera2Source

        match = _PICAMERA.match(text)
        assert match is not None
        return Picamera2Source(int(match.group(1) or 0), **size)
    path = _local_path(text)
    assert path is not None
    realtime = bool(options.get("realtime", False))
    if kind == "folder":
        from edge.sources.image_folder import ImageFolderSource

        return ImageFolderSource(path, fps=float(options.get("fps") or 10.0), realtime=realtime)
    from edge.sources.video_file import VideoFileSource

    return VideoFileSource(path, realtime=realtime)


def open_source(uri: str, **options: Any) -> FrameSource:
    """Build and open the source for `uri`; raises SourceError naming the source and the cause."""
    source = make_source(uri, **options)
    source.open()
    return source
