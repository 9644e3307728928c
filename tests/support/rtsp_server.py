"""A real RTSP server (GStreamer's gst-rtsp-server) started by a test, serving a real video as MJPEG over RTP.

Two halves in one file. Run as a script with the system python3 (which has PyGObject and the
GstRtspServer typelib from Debian: gir1.2-gst-rtsp-server-1.0, gstreamer1.0-rtsp, gstreamer1.0-plugins-good)
it serves one MJPEG AVI clip on rtsp://127.0.0.1:PORT/cam. Imported by a test (from the project's venv)
it makes the clip from a real recording and starts, stops and restarts that server process on a fixed port.
"""

from __future__ import annotations

import signal
import subprocess
import sys
import time
from pathlib import Path

SYSTEM_PYTHON = "/usr/bin/python3"
RECORDING = Path("/usr/share/doc/opencv-doc/examples/data/vtest.avi")  # people walking (Debian opencv-doc)
MOUNT = "/cam"
_READY = "rtsp-server ready"


def server_unavailable() -> str | None:
    """Why the server cannot run here (a reason for pytest.skip), or None when it can."""
    if not Path(SYSTEM_PYTHON).exists():
        return f"{SYSTEM_PYTHON} not found (the RTSP test server runs on the system python with PyGObject)"
    probe = (
        "import gi; gi.require_version('Gst', '1.0'); gi.require_version('GstRtspServer', '1.0');"
        "from gi.repository import Gst; Gst.init(None);"
        "names = ('filesrc', 'avidemux', 'jpegdec', 'jpegenc', 'rtpjpegpay');"
        "missing = [e for e in names if Gst.ElementFactory.find(e) is None];"
        "print(' '.join(missing))"
    )
    done = subprocess.run([SYSTEM_PYTHON, "-c", probe], capture_output=True, text=True, timeout=60, check=False)
    if done.returncode != 0:
        tail = (done.stderr.strip().splitlines() or ["?"])[-1]
        return f"GStreamer RTSP server not usable ({tail}); run scripts/system-deps.sh"
    if done.stdout.strip():
        return f"GStreamer elements missing: {done.stdout.strip()}; run scripts/system-deps.sh"
    if not RECORDING.is_file():
        return f"{RECORDING} missing (Debian package opencv-doc; run scripts/system-deps.sh)"
    return None


def make_clip(path: Path, *, width: int = 384, height: int = 288, max_frames: int | None = None) -> int:
    """Re-encode the recording as an MJPEG AVI (what rtpjpegpay streams) at its own 10 fps; returns frames."""
    import cv2

    src = cv2.VideoCapture(str(RECORDING), cv2.CAP_FFMPEG)
    fps = src.get(cv2.CAP_PROP_FPS) or 10.0
    out = cv2.VideoWriter(str(path), cv2.VideoWriter.fourcc(*"MJPG"), fps, (width, height))
    frames = 0
    try:
        while max_frames is None or frames < max_frames:
            ok, frame = src.read()
            if not ok:
                break
            out.write(cv2.resize(frame, (width, height), interpolation=cv2.INTER_AREA))
            frames += 1
    finally:
        src.release()
        out.release()
    if frames == 0:
        raise RuntimeError(f"{RECORDING}: no frame decoded")
    return frames


class RtspServer:
    """The server process on a fixed loopback port: `start`, `stop` (SIGKILL, like a camera losing power),
    `start` again on the same port."""

    def __init__(self, clip: Path, port: int, log_path: Path) -> None:
        self.clip, self.port, self.log_path = clip, port, log_path
        self.proc: subprocess.Popen[str] | None = None

    @property
    def url(self) -> str:
        return f"rtsp://127.0.0.1:{self.port}{MOUNT}"

    def start(self, timeout: float = 30.0) -> None:
        assert self.proc is None, "already running"
        log = self.log_path.open("a")
        self.proc = subprocess.Popen(
            [SYSTEM_PYTHON, __file__, str(self.port), str(self.clip)],
            stdout=subprocess.PIPE,
            stderr=log,
            text=True,
        )
        log.close()
        assert self.proc.stdout is not None
        deadline = time.monotonic() + timeout
        line = self.proc.stdout.readline()  # the server prints one line once it listens
        if _READY not in line or time.monotonic() > deadline:
            self.stop()
            raise RuntimeError(f"RTSP server did not start: {line!r}; see {self.log_path}")

    def stop(self) -> None:
        if self.proc is None:
            return
        self.proc.kill()
        self.proc.wait(10)
        if self.proc.stdout is not None:
            self.proc.stdout.close()
        self.proc = None


def _serve(port: int, clip: str) -> None:
    import gi

    gi.require_version("Gst", "1.0")
    gi.require_version("GstRtspServer", "1.0")
    from gi.repository import GLib, Gst, GstRtspServer

    Gst.init(None)
    server = GstRtspServer.RTSPServer()
    server.set_address("127.0.0.1")
    server.set_service(str(port))
    factory = GstRtspServer.RTSPMediaFactory()
    # One pipeline shared by every client; the clip plays at its own rate (the server paces on timestamps).
    factory.set_launch(
        f'( filesrc location="{clip}" ! avidemux ! jpegdec ! jpegenc quality=85 ! rtpjpegpay name=pay0 pt=26 )'
    )
    factory.set_shared(True)
    server.get_mount_points().add_factory(MOUNT, factory)
    if server.attach(None) == 0:
        raise SystemExit(f"cannot listen on 127.0.0.1:{port}")
    loop = GLib.MainLoop()
    GLib.unix_signal_add(GLib.PRIORITY_DEFAULT, signal.SIGTERM, loop.quit)
    print(_READY, flush=True)
    loop.run()


if __name__ == "__main__":
    _serve(int(sys.argv[1]), sys.argv[2])
