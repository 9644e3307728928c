"""End to end: a video file → `edgescreen edge run` (a child process) → a real broker → a subscriber.

The clips are a real photo (skimage's astronaut, `edgescreen.clips`) turned by a known angle. Turning the
whole picture turns the head by the same angle, so the head tilt the device reports for a clip turned by
TILT must exceed the one for a level clip by TILT (within 3°), whatever the photo's own head tilt is.
The runs must write no image or array file anywhere, and the outbox must hold only JSON score payloads.
"""

from __future__ import annotations

import importlib.util
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pytest
import yaml

from contract.wire import Status, decode
from edge.outbox import Outbox
from edge.roles.posture.message import PostureWindow
from edgescreen.clips import make_posture_clip
from tests.edge.test_delivery import Subscriber
from tests.support.broker import MosquittoBroker, free_port

ROOT = Path(__file__).resolve().parents[2]
SITE, DEVICE = "e2e-site", "e2e-desk"
TILT_DEG = 12.0
FPS = 10
SECONDS = 3.0
WINDOW_S = 1.0
TILT_METRIC = "head_tilt_deg"
IMAGE_OR_ARRAY = {".png", ".jpg", ".jpeg", ".bmp", ".ppm", ".pgm", ".tif", ".tiff", ".webp", ".npy", ".npz",
                  ".mp4", ".avi", ".mkv", ".mjpeg", ".raw", ".pkl", ".pickle", ".pt", ".h5"}  # fmt: skip


def _profile(tmp: Path, name: str, url: str, outbox_dir: Path) -> Path:
    data = {
        "device": {"site": SITE, "device_id": DEVICE},
        "role": "posture",
        "camera": {"source": "unused", "width": 640, "height": 480},
        "perception": {"backend": {"type": "onnxruntime", "providers": ["cpu"], "threads": 1}},
        "broker": {"url": url, "keepalive_s": 5, "reconnect_min_s": 1, "reconnect_max_s": 2},
        "outbox": {"path": str(outbox_dir / f"{name}-outbox.sqlite"), "drain_on_stop_s": 5},
        "delivery": {"confirm": "puback"},  # no collector here to send receipts
        "heartbeat_s": 1,
        "posture": {"window_s": WINDOW_S},
    }
    path = tmp / f"{name}.yaml"
    path.write_text(yaml.safe_dump(data))
    return path


def _snapshot(recursive: list[Path], shallow: list[Path]) -> set[Path]:
    """Files under `recursive` folders and directly in `shallow` ones (the shared /tmp: other jobs write there)."""
    found: set[Path] = set()
    for folder in recursive:
        for root, _dirs, files in os.walk(folder):
            found.update(Path(root) / f for f in files)
    for folder in shallow:
        found.update(p for p in folder.iterdir() if p.is_file())
    return found


def _edge_run(
    profile: Path, clip: Path, workdir: Path, tmpdir: Path, model_dir: Path
) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "TMPDIR": str(tmpdir), "OMP_NUM_THREADS": "1", "EDGESCREEN_MODEL_DIR": str(model_dir)}
    return subprocess.run(
        [sys.executable, "-m", "edgescreen", "edge", "run", "--profile", str(profile), "--source", str(clip)],
        cwd=workdir, env=env, capture_output=True, text=True, timeout=180, check=False,
    )  # fmt: skip


def _tilts(windows: list[PostureWindow]) -> list[float]:
    return [w.metrics[TILT_METRIC].p50 for w in windows if w.metrics[TILT_METRIC].p50 is not None]  # type: ignore[misc]


def test_video_to_broker_window_messages_match_the_input(
    tmp_path: Path, broker: MosquittoBroker, model_dir: Path
) -> None:
    inputs, work, tmpdir = tmp_path / "inputs", tmp_path / "work", tmp_path / "tmpdir"
    for folder in (inputs, work, tmpdir):
        folder.mkdir()
    level, turned = inputs / "level.avi", inputs / "turned.avi"
    make_posture_clip(level, seconds=SECONDS, fps=FPS, tilt_deg=0.0, sway_px=0.0)
    make_posture_clip(turned, seconds=SECONDS, fps=FPS, tilt_deg=TILT_DEG, sway_px=0.0)
    sub = Subscriber(broker)
    watched = ([work, tmpdir, model_dir], [ROOT, Path.home(), Path(tempfile.gettempdir())])
    before = _snapshot(*watched)

    # 1. the turned clip with the broker up: windows arrive at the subscriber
    run = _edge_run(_profile(inputs, "turned", broker.url, work), turned, work, tmpdir, model_dir)
    assert run.returncode == 0, run.stderr[-3000:]
    assert sub.wait_for(lambda: len(sub.scores()) >= 2, 10), run.stderr[-3000:]
    sub.close()
    received = sub.scores()
    with sub.lock:
        kinds = {m.kind for m, _ in sub.messages}
    assert {"status", "posture"} <= kinds

    # 2. the level clip with no broker listening: windows wait in the outbox, as JSON score payloads only
    dead = f"mqtt://127.0.0.1:{free_port()}"
    profile = _profile(inputs, "level", dead, work)
    run = _edge_run(profile, level, work, tmpdir, model_dir)
    assert run.returncode == 0, run.stderr[-3000:]
    with Outbox(work / "level-outbox.sqlite") as box:
        queued = box.pending()
    assert len(queued) >= 2
    stored: list[PostureWindow] = []
    for row in queued:
        message = decode(row.payload, row.topic)  # valid JSON of the wire schema, matching its topic
        assert isinstance(message, PostureWindow)
        stored.append(message)

    # every window: the schema's numbers only, one person, most frames measured
    for window in [*received, *stored]:
        assert (window.site, window.device_id) == (SITE, DEVICE)
        assert window.frames > 0 and window.presence_s > 0
        assert window.metrics[TILT_METRIC].valid_frames >= window.frames // 2

    turned_tilt = float(np.median(_tilts(received)))
    level_tilt = float(np.median(_tilts(stored)))
    print(f"head tilt p50 median: level {level_tilt:.1f} deg, turned by {TILT_DEG:g}: {turned_tilt:.1f} deg")
    # The clip turns the picture so that the subject's left ear drops by TILT: head tilt grows by TILT.
    assert abs((turned_tilt - level_tilt) - TILT_DEG) <= 3.0, (turned_tilt, level_tilt)

    # nothing image- or array-like was written anywhere the runs could write
    new = _snapshot(*watched) - before
    assert not {p for p in new if p.suffix.lower() in IMAGE_OR_ARRAY}, sorted(new)
    allowed = {work / f"{n}-outbox.sqlite{s}" for n in ("turned", "level") for s in ("", "-wal", "-shm")}
    # ONNX Runtime leaves its telemetry session id (a timestamp and a UUID, one short text line) in $TMPDIR.
    session_id = tmpdir / ".ses"
    if session_id in new:
        assert session_id.stat().st_size < 100 and session_id.read_text().isascii()
        allowed.add(session_id)
    assert {p for p in new if p.is_relative_to(work) or p.is_relative_to(tmpdir)} <= allowed


def test_edge_check_reports_each_check_and_fails_on_any(
    tmp_path: Path, broker: MosquittoBroker, model_dir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from edgescreen.cli import main

    clip = tmp_path / "clip.avi"
    make_posture_clip(clip, seconds=0.5, fps=10)
    profile = ROOT / "firmware_config" / "profiles" / "office-posture.yaml"
    base = ["edge", "check", "--profile", str(profile), "--model-dir", str(model_dir), "--timeout", "5"]

    assert main([*base, "--source", str(clip), "--broker", broker.url]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert [line.split()[:2] for line in lines] == [["profile", "ok"], ["camera", "ok"], ["models", "ok"],
                                                    ["broker", "ok"]]  # fmt: skip
    assert "640x480" in lines[1] and "pose_landmark_full" in lines[2]

    missing = tmp_path / "missing.avi"
    assert main([*base, "--source", str(missing), "--broker", f"mqtt://127.0.0.1:{free_port()}"]) == 1
    lines = capsys.readouterr().out.splitlines()
    status = {line.split()[0]: line.split()[1] for line in lines}
    assert status == {"profile": "ok", "camera": "FAIL", "models": "ok", "broker": "FAIL"}
    assert str(missing) in lines[1]

    bad = tmp_path / "bad.yaml"
    bad.write_text(profile.read_text().replace("heartbeat_s:", "heartbeat_sec:"))
    assert main(["edge", "check", "--profile", str(bad)]) == 1
    out = capsys.readouterr().out
    assert out.startswith("profile  FAIL") and "did you mean 'heartbeat_s'?" in out and str(bad) in out


def test_sigterm_flushes_the_open_window_and_tells_systemd(
    tmp_path: Path, broker: MosquittoBroker, model_dir: Path
) -> None:
    """`edge run` under systemd: READY after the models are warm, watchdog pings, and on SIGTERM STOPPING, the
    open window closed into the outbox and sent, `offline` published, exit 0."""
    clip = tmp_path / "long.avi"
    make_posture_clip(clip, seconds=10, fps=10, tilt_deg=0.0)
    profile = _profile(tmp_path, "sigterm", broker.url, tmp_path)
    data = yaml.safe_load(profile.read_text())
    data["posture"]["window_s"] = 60.0  # the run ends long before a window closes by itself
    data["camera"]["realtime"] = True
    profile.write_text(yaml.safe_dump(data))
    notify = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    notify.bind(str(tmp_path / "notify"))
    notify.settimeout(60)
    sub = Subscriber(broker)
    env = {**os.environ, "EDGESCREEN_MODEL_DIR": str(model_dir), "NOTIFY_SOCKET": str(tmp_path / "notify"),
           "WATCHDOG_USEC": "2000000", "OMP_NUM_THREADS": "1"}  # fmt: skip
    proc = subprocess.Popen(
        [sys.executable, "-m", "edgescreen", "edge", "run", "--profile", str(profile), "--source", str(clip)],
        env=env, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    notes: list[str] = []
    try:
        notes.append(notify.recv(4096).decode())
        while not any("WATCHDOG=1" in n for n in notes):
            notes.append(notify.recv(4096).decode())
        time.sleep(1.5)  # some frames into the window
        proc.send_signal(signal.SIGTERM)
        _, stderr = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    notify.settimeout(0.5)
    try:
        while True:
            notes.append(notify.recv(4096).decode())
    except TimeoutError:
        pass
    notify.close()
    assert proc.returncode == 0, stderr[-3000:]
    assert notes[0].startswith("STATUS=loading models")
    assert notes[1].startswith("READY=1")
    assert any(n.startswith("STOPPING=1") for n in notes)
    assert "stopped (signal SIGTERM)" in stderr
    assert sub.wait_for(lambda: len(sub.scores()) == 1, 10)
    window = sub.scores()[0]
    assert 5 <= window.frames < 200  # the partial window, flushed rather than lost
    with sub.lock:
        states = [m.state for m, _ in sub.messages if isinstance(m, Status)]
    sub.close()
    assert states[0] == "online" and states[-1] == "offline"
    with Outbox(tmp_path / "sigterm-outbox.sqlite") as box:
        assert box.depth() == 0


def test_missing_tensorrt_falls_back_only_when_the_profile_allows_it(model_dir: Path) -> None:
    from edge.assembly import build_pipeline
    from edge.backends.base import BackendUnavailable
    from edge.config import load_profile, validate_profile

    if importlib.util.find_spec("tensorrt") and importlib.util.find_spec("pycuda"):
        pytest.skip("TensorRT is installed here: there is nothing to fall back from")
    profile = load_profile(ROOT / "firmware_config" / "profiles" / "head-pose-station.yaml")
    assert profile.perception.backend.type == "tensorrt" and profile.perception.backend.allow_fallback
    pipeline, fell_back = build_pipeline(profile, model_dir, needs_face=True, needs_segmentation=False)
    assert fell_back and pipeline.config.backend.type == "onnxruntime"  # reported in every heartbeat
    assert [m.name for m in pipeline.models] == [
        "pose_detection", "pose_landmark_full", "face_detection_short_range", "face_landmark"
    ]  # fmt: skip

    data = profile.model_dump(mode="json", exclude_none=True)
    data["perception"]["backend"]["allow_fallback"] = False
    strict = validate_profile(data, source="strict")
    with pytest.raises(BackendUnavailable, match="asks for the TensorRT backend"):
        build_pipeline(strict, model_dir, needs_face=True, needs_segmentation=False)


def test_demo_prints_the_window_messages_it_receives(model_dir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import io

    from edgescreen.demo import run_demo

    monkeypatch.setenv("EDGESCREEN_MODEL_DIR", str(model_dir))
    out = io.StringIO()
    assert run_demo(None, out, seconds=3.0, window_s=1.5) == 0
    text = out.getvalue()
    assert "status online (role posture)" in text and "status offline (role posture)" in text
    assert text.count("/posture\n") == 2  # two 1.5-second windows from a 3-second clip
    assert "head_tilt_deg mean=" in text
    assert "received: " in text and "2 posture" in text


def test_demo_without_mosquitto_says_how_to_get_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    import io

    from edgescreen import demo

    monkeypatch.setattr(demo, "find_mosquitto", lambda: None)  # stands for a host without Mosquitto
    with pytest.raises(demo.DemoError, match="sudo apt-get install mosquitto") as err:
        demo.run_demo(None, io.StringIO(), seconds=1.0)
    assert err.value.exit_code == 1


def test_a_camera_that_fails_for_good_ends_the_run_with_an_error(tmp_path: Path, model_dir: Path) -> None:
    clip = tmp_path / "damaged.avi"
    clip.write_bytes(np.random.default_rng(1).integers(0, 256, 5000, dtype=np.uint8).tobytes())
    profile = tmp_path / "p.yaml"
    profile.write_text(
        yaml.safe_dump(
            {
                "device": {"site": SITE, "device_id": DEVICE},
                "role": "posture",
                "camera": {"source": str(clip), "reopen_backoff_s": 0.1, "reopen_backoff_max_s": 0.2},
                "broker": {"url": f"mqtt://127.0.0.1:{free_port()}"},
                "outbox": {"path": str(tmp_path / "outbox.sqlite"), "drain_on_stop_s": 0},
            }
        )
    )
    run = _edge_run(profile, clip, tmp_path, tmp_path, model_dir)
    assert run.returncode == 1, run.stderr[-2000:]
    assert "stopped (camera failed)" in run.stderr and "cannot be decoded" in run.stderr
