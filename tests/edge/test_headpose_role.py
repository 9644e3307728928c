"""Head-pose station with real perception: the astronaut photo turned in the image plane changes the head roll
by the same angle; the shipped head-pose-station profile runs end to end to a real broker."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from edge.roles.base import EmitContext
from edge.roles.headpose.analyzer import HeadPoseAnalyzer
from edge.roles.headpose.config import HeadPoseConfig
from edge.roles.headpose.message import HeadPoseWindow
from edgescreen.clips import make_posture_clip
from tests.edge.test_delivery import Subscriber
from tests.support.broker import MosquittoBroker

ROOT = Path(__file__).resolve().parents[2]


def test_head_roll_follows_the_photo_rotation_with_real_perception(tmp_path: Path, model_dir: Path) -> None:
    from edge.grabber import FrameGrabber
    from edge.perception.pipeline import PerceptionConfig, PerceptionPipeline
    from edge.sources.factory import make_source

    schedule = ((0.0, 0.0), (1 / 3, 12.0), (2 / 3, -8.0))  # 2 s level, 2 s at +12°, 2 s at −8°
    clip = make_posture_clip(tmp_path / "roll.avi", seconds=6.0, fps=5.0, tilt_deg=schedule, sway_px=8.0)
    config = PerceptionConfig.model_validate(
        {"backend": {"type": "onnxruntime", "providers": ["cpu"], "threads": 1}, "face": True}
    )
    pipeline = PerceptionPipeline(config, model_dir)
    analyzer = HeadPoseAnalyzer(EmitContext(site="clinic", device_id="station-1"), HeadPoseConfig(window_s=1.0))
    messages = []
    with FrameGrabber(make_source(str(clip.path))) as grabber:
        while not grabber.finished:
            item = grabber.get(2.0)
            if item is not None:
                messages += analyzer.process(pipeline.process(item.frame, item.timestamp))
    messages += analyzer.flush()
    assert len(messages) == 6 and analyzer.absent_windows == 0
    rolls = []
    for message in messages:
        assert isinstance(message, HeadPoseWindow)
        stats = message.metrics["roll_deg"]
        assert stats.valid_frames >= 3 and stats.mean is not None
        rolls.append(stats.mean)
        assert message.metrics["yaw_deg"].valid_frames >= 3  # the face was found: the face-mesh angles
    # second window of each step (keypoint smoothing settles in the first): the change equals the turn
    level, turned, back = rolls[1], rolls[3], rolls[5]
    print(f"roll per window {[round(r, 1) for r in rolls]}: +12° → {turned - level:+.1f}, -8° → {back - level:+.1f}")
    assert turned - level == pytest.approx(12.0, abs=3.0), rolls
    assert back - level == pytest.approx(-8.0, abs=3.0), rolls


def run_station(
    profile: Path, clip: Path, broker: MosquittoBroker, model_dir: Path, tmp_path: Path
) -> tuple[list[HeadPoseWindow], str]:
    """`edgescreen edge run` of a head-pose profile on a video file to a real broker: (windows received, stderr)."""
    sub = Subscriber(broker)
    env = {**os.environ, "OMP_NUM_THREADS": "1", "EDGESCREEN_MODEL_DIR": str(model_dir), "TMPDIR": str(tmp_path)}
    cmd = [sys.executable, "-m", "edgescreen", "edge", "run", "--profile", str(profile), "--source", str(clip),
           "--broker", broker.url, "--outbox", str(tmp_path / "outbox.sqlite")]  # fmt: skip
    run = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=180, check=False)
    assert run.returncode == 0, run.stderr[-3000:]
    assert sub.wait_for(lambda: any(m.kind == "headpose" for m, _ in sub.messages), 10), run.stderr[-3000:]
    sub.close()
    with sub.lock:
        return [m for m, _ in sub.messages if isinstance(m, HeadPoseWindow)], run.stderr


def test_shipped_profile_runs_to_a_real_broker(tmp_path: Path, broker: MosquittoBroker, model_dir: Path) -> None:
    clip = make_posture_clip(tmp_path / "level.avi", seconds=2.0, fps=5.0, tilt_deg=0.0, sway_px=0.0)
    shipped = ROOT / "firmware_config" / "profiles" / "head-pose-station.yaml"
    # the shipped profile also runs the shift regressor of the installed headpose bundle; with the bundle installed
    # that is tests/training/test_device_models.py, here the landmark measures alone
    data = yaml.safe_load(shipped.read_text())
    data["headpose"] = {k: v for k, v in data["headpose"].items() if k not in ("shift_source", "shift_model")}
    profile = tmp_path / "station.yaml"
    profile.write_text(yaml.safe_dump(data))
    windows, _ = run_station(profile, clip.path, broker, model_dir, tmp_path)
    assert len(windows) == 1  # a 2 s clip is one (partial) session window, closed at the end of input
    window = windows[0]
    assert window.frames == 10 and window.metrics["roll_deg"].valid_frames >= 5
    assert set(window.severity) >= {"rotation", "laterocollis", "antero_retrocollis"}
    assert any(m.name.startswith("face") for m in window.models)
