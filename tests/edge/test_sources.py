"""Camera sources on real files: video clips, image folders, damaged input, URI errors, CSI pipelines."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest

from edge.sources.base import CorruptFrame, FrameSource, SourceError
from edge.sources.factory import make_source, open_source, source_kind
from edge.sources.gstreamer import GStreamerSource, csi_pipeline
from edge.sources.image_folder import ImageFolderSource
from edge.sources.video_file import VideoFileSource
from edgescreen.clips import make_posture_clip, make_truncated_copy

FPS = 10.0


@pytest.fixture(scope="module")
def clip(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("clips") / "clip.avi"
    make_posture_clip(path, seconds=2.0, fps=FPS, size=(320, 240))
    return path


def _drain(source: FrameSource) -> tuple[list[float], int]:
    stamps: list[float] = []
    corrupt = 0
    while True:
        try:
            item = source.read()
        except CorruptFrame:
            corrupt += 1
            continue
        if item is None:
            return stamps, corrupt
        frame, ts = item
        assert frame.dtype == np.uint8 and frame.ndim == 3 and frame.shape[2] == 3
        stamps.append(ts)


def test_video_file_gives_every_frame_with_media_time(clip: Path) -> None:
    source = open_source(str(clip))
    assert isinstance(source, VideoFileSource) and source.finite
    stamps, corrupt = _drain(source)
    source.close()
    assert len(stamps) == 20 and corrupt == 0
    assert stamps == pytest.approx([i / FPS for i in range(20)], abs=1e-3)


def test_video_file_realtime_pacing_follows_the_file_rate(clip: Path) -> None:
    import time

    source = VideoFileSource(clip, realtime=True)
    source.open()
    t0 = time.monotonic()
    for _ in range(6):
        assert source.read() is not None
    assert time.monotonic() - t0 >= 5 / FPS - 0.02  # frame 5 is due 0.5 s after the start
    source.close()


def test_truncated_video_ends_cleanly_after_its_decodable_frames(clip: Path, tmp_path: Path) -> None:
    cut = make_truncated_copy(clip, tmp_path / "cut.avi", keep=0.5)
    source = open_source(str(cut))
    stamps, _ = _drain(source)
    assert 3 <= len(stamps) < 20
    assert stamps == sorted(stamps)
    assert source.read() is None  # stays ended


def test_image_folder_reads_in_name_order_and_counts_a_corrupt_image(tmp_path: Path) -> None:
    for i in (1, 2, 10):  # natural order: 1, 2, 10 (not 1, 10, 2)
        image = np.full((48, 64, 3), i * 20, np.uint8)
        cv2.imwrite(str(tmp_path / f"frame{i}.png"), image)
    (tmp_path / "frame3.jpg").write_bytes(b"\xff\xd8 this is not a jpeg")
    (tmp_path / "notes.txt").write_text("ignored")
    source = make_source(str(tmp_path), fps=5.0)
    assert isinstance(source, ImageFolderSource)
    source.open()
    seen, errors = [], []
    while True:
        try:
            item = source.read()
        except CorruptFrame as exc:
            errors.append(str(exc))
            continue
        if item is None:
            break
        seen.append((int(item[0][0, 0, 0]), item[1]))
    assert seen == [(20, 0.0), (40, 0.2), (200, 0.6)]  # frame3.jpg keeps its slot in time
    assert len(errors) == 1 and "frame3.jpg" in errors[0]


def test_empty_folder_and_missing_paths_name_the_source(tmp_path: Path) -> None:
    with pytest.raises(SourceError, match="no images"):
        open_source(str(tmp_path))
    missing = tmp_path / "nope.mp4"
    with pytest.raises(SourceError, match=r"nope\.mp4.*no such file or folder"):
        make_source(str(missing))
    with pytest.raises(SourceError, match=r"'ftp://cam/x'.*unknown scheme 'ftp'"):
        make_source("ftp://cam/x")
    not_video = tmp_path / "not-a-video.mp4"
    not_video.write_bytes(b"\x00" * 1000)
    with pytest.raises(SourceError, match=r"not-a-video\.mp4: cannot be decoded"):
        open_source(str(not_video))
    with pytest.raises(TypeError, match="unknown source option"):
        make_source("0", exposure=3)


@pytest.mark.parametrize(
    ("uri", "kind"),
    [
        ("0", "device"),
        ("/dev/video3", "device"),
        ("gst:videotestsrc ! appsink", "gstreamer"),
        ("v4l2src device=/dev/video0 ! videoconvert ! appsink", "gstreamer"),
        ("rtsp://user:pw@10.0.0.5/stream1", "stream"),
        ("https://cam.example/mjpeg", "stream"),
        ("picamera2", "picamera2"),
        ("picamera2:1", "picamera2"),
    ],
)
def test_uri_forms_pick_the_right_source(uri: str, kind: str) -> None:
    assert source_kind(uri) == kind


def test_stream_description_hides_credentials() -> None:
    source = make_source("rtsp://admin:secret@10.0.0.5:554/stream1")
    assert "secret" not in source.describe() and "10.0.0.5:554/stream1" in source.describe()


def test_factory_imports_picamera2_only_when_asked() -> None:
    code = (
        "import sys\n"
        "from edge.sources.factory import make_source\n"
        "make_source('0'); make_source('rtsp://h/s'); make_source('gst:a ! appsink')\n"
        "assert 'edge.sources.picamera2_source' not in sys.modules and 'picamera2' not in sys.modules\n"
        "s = make_source('picamera2:1')\n"
        "assert 'edge.sources.picamera2_source' in sys.modules and s.describe() == 'picamera2:1'\n"
        "try:\n    s.open()\nexcept Exception as e:\n    print(type(e).__name__, e)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=60)
    # picamera2 is not installed here: opening says so, as a SourceError the grabber understands
    assert "SourceError picamera2:1: the picamera2 package is not installed" in out.stdout


def test_csi_pipeline_string() -> None:
    text = csi_pipeline(sensor_id=1, width=1280, height=720, fps=29.97, flip=2, capture_width=1920, capture_height=1080)
    assert text == (
        "nvarguscamerasrc sensor-id=1 ! "
        "video/x-raw(memory:NVMM), width=(int)1920, height=(int)1080, framerate=(fraction)2997/100, "
        "format=(string)NV12 ! nvvidconv flip-method=2 ! "
        "video/x-raw, width=(int)1280, height=(int)720, format=(string)BGRx ! "
        "videoconvert ! video/x-raw, format=(string)BGR ! appsink drop=true max-buffers=1 sync=false"
    )
    assert "framerate=(fraction)30/1" in csi_pipeline(fps=30)
    assert source_kind(csi_pipeline()) == "gstreamer"
    with pytest.raises(ValueError, match="flip must be one of"):
        csi_pipeline(flip=9)


def test_gstreamer_pipeline_without_appsink_or_gstreamer_is_a_clear_error() -> None:
    with pytest.raises(SourceError, match="must end in appsink"):
        GStreamerSource("videotestsrc ! autovideosink")
    source = make_source("gst:videotestsrc num-buffers=3 ! videoconvert ! appsink")
    try:
        source.open()
    except SourceError as exc:  # the pip OpenCV has no GStreamer: the error must say so
        assert "without GStreamer" in str(exc) or "cannot be started" in str(exc)
    else:  # an OpenCV with GStreamer: the test pipeline gives frames
        item = source.read()
        assert item is not None and item[0].ndim == 3
        source.close()
