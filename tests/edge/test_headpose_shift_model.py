"""The head-shift regressor at the head-pose station: a tiny `head-shift` checkpoint trained here on synthetic
renders and exported with `export_checkpoint` is loaded by the role; its crop reproduces the training renders'
framing, colour order and normalisation; the per-window values equal the exported model run on a crop computed
here independently; `shift_source` picks where the shifts come from; a wrong model file is refused at start.
"""

from __future__ import annotations

import hashlib
import json
import logging
import math
import os
import subprocess
import sys
from collections.abc import Iterator
from functools import cache
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import cv2
import numpy as np
import numpy.typing as npt
import onnx
import onnxruntime as ort
import pytest
import torch
import yaml
from pydantic import ValidationError

from contract.landmarks import NUM_LANDMARKS
from contract.landmarks import Landmark as Lm
from contract.wire import ModelRef, decode, encode
from edge.perception.types import FrameResult, Person
from edge.replay import write_replay
from edge.roles.base import EmitContext
from edge.roles.headpose.analyzer import HeadPoseAnalyzer
from edge.roles.headpose.config import HEADPOSE_METRICS, HeadPoseConfig
from edge.roles.headpose.message import HeadPoseWindow
from edge.roles.headpose.shift_model import CropBox, HeadShiftModel, ShiftModelError, crop_box, model_input
from edgescreen.clips import make_posture_clip
from export.onnx_export import export_checkpoint
from tests.edge.test_headpose_role import run_station
from tests.support.broker import MosquittoBroker
from training.models.inputs import prepare
from training.synth.body import J, Skeleton, sample_anthropometry
from training.synth.camera import Camera, make_camera
from training.synth.posture import Posture
from training.synth.render import render_person_image
from training.synth.tasks import _seated

torch.set_num_threads(1)
ROOT = Path(__file__).resolve().parents[2]
# the framing documented in docs/metrics.md ("Head-shift regressor"), written out here on purpose
SIDE_PER_SHOULDER, UP_PER_SHOULDER = 2.36, 0.256
HEAD_WIDTH_CM = 15.0
CTX = EmitContext(site="clinic", device_id="station-1")


def _train_and_export(task: str, n: int, out: Path) -> Path:
    from training.data import load_task_data
    from training.train import TrainConfig, run_training

    cfg = TrainConfig(
        task=task, data=f"synthetic:{n}", folds=2, epochs=1, width="small", batch_size=8, bootstrap_rounds=50,
        final_fit=False, progress=False, threads=1, cam_examples=0,
    )  # fmt: skip
    run_training(cfg, out, data=load_task_data(task, cfg.data, cfg.seed))
    return export_checkpoint(out / "model.pt", out / f"{task}.onnx", samples=4).path


@pytest.fixture(scope="module")
def shift_onnx(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A head-shift regressor trained for one epoch on 24 synthetic renders (64 x 64, quarter width)."""
    return _train_and_export("head-shift", 24, tmp_path_factory.mktemp("head-shift"))


def _metadata(path: Path) -> dict[str, str]:
    return {p.key: p.value for p in onnx.load(str(path)).metadata_props}


def _config(path: Path, source: str = "both", **model: Any) -> HeadPoseConfig:
    return HeadPoseConfig.model_validate(
        {"window_s": 1.0, "shift_source": source, "shift_model": {"path": str(path), **model}}
    )


# --- a synthetic seated subject seen by a station camera ------------------------------------------------------


def _subject(lateral: float) -> tuple[Skeleton, npt.NDArray[np.float64]]:
    anthro = sample_anthropometry(np.random.default_rng(3))
    skel = _seated(anthro, Posture(head_lateral_shift=lateral, head_roll=4.0, head_yaw=-6.0))
    return skel, skel["c7"] + np.array([0.0, 0.06 * anthro.scale, 0.0])  # the training camera's aim point


def _grey(h: int, w: int) -> npt.NDArray[np.uint8]:
    return np.full((h, w, 3), 128, np.uint8)


def _shoulder_px(skel: Skeleton, cam: Camera) -> float:
    uv, _ = cam.project(skel.joints)
    return float(np.linalg.norm(uv[Lm.LEFT_SHOULDER] - uv[Lm.RIGHT_SHOULDER]))


@cache
def _station_frame(lateral: float) -> tuple[npt.NDArray[np.uint8], Person]:
    """A 640 x 480 BGR frame of the subject 1.05 m from a level camera, and its person (exact keypoints)."""
    skel, aim = _subject(lateral)
    eye = aim + np.array([0.0, 0.0, 1.05])
    cam = make_camera(640, 480, eye=eye, target=aim, hfov_deg=60.0)
    rgb = render_person_image(skel, cam, np.random.default_rng(7), background=_grey(480, 640))
    uv, _ = cam.project(skel.joints[:NUM_LANDMARKS])
    kp = np.concatenate([uv, np.ones((NUM_LANDMARKS, 1))], axis=1).astype(np.float32)
    world = cam.to_camera(skel.joints[:NUM_LANDMARKS]) - cam.to_camera(skel.joints[J["pelvis"]])
    person = Person(score=0.9, bbox=(100, 0, 540, 480), keypoints=kp, world=world.astype(np.float32))
    return np.asarray(cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR), np.uint8), person


def _training_render(lateral: float) -> npt.NDArray[np.uint8]:
    """The generator's 128 x 128 RGB training render of the same subject from the same eye, with the field of
    view that makes its framing the median one (CROP_SIDE shoulder widths)."""
    skel, aim = _subject(lateral)
    eye = aim + np.array([0.0, 0.0, 1.05])
    ratio = 128 / _shoulder_px(skel, make_camera(128, 128, eye=eye, target=aim, hfov_deg=42.0))
    hfov = 2 * math.degrees(math.atan(math.tan(math.radians(21.0)) * SIDE_PER_SHOULDER / ratio))
    cam = make_camera(128, 128, eye=eye, target=aim, hfov_deg=hfov)
    return render_person_image(skel, cam, np.random.default_rng(7), background=_grey(128, 128))


def _as_training_input(rgb: npt.NDArray[np.uint8], size: int) -> npt.NDArray[np.float32]:
    data = SimpleNamespace(task="head-shift", inputs=rgb[None], targets=np.zeros((1, 2), np.float32),
                           subjects=["S0"], label_map=None)  # fmt: skip
    prepared = prepare(data, width="small" if size == 64 else "full")
    assert isinstance(prepared.x, torch.Tensor)
    return np.asarray(prepared.x.numpy(), np.float32)


def test_the_crop_reproduces_the_training_render(shift_onnx: Path) -> None:
    frame, person = _station_frame(0.03)
    meta = _metadata(shift_onnx)
    size = json.loads(meta["input_spec"])["shape"][2]
    norm = json.loads(meta["normalisation"])
    mean, std = np.asarray(norm["mean"], np.float32), np.asarray(norm["std"], np.float32)
    box = crop_box(person.keypoints, 0.5)
    assert box is not None
    device = model_input(frame, box, size, mean, std)
    training = _as_training_input(_training_render(0.03), size)
    assert device.shape == training.shape == (1, 3, size, size) and device.dtype == np.float32

    def diff(x: npt.NDArray[np.float32]) -> float:
        return float(np.abs(x - training).mean())

    # the same picture up to render resolution and sensor noise; any framing, colour or scale slip is far worse
    print(f"mean |device - training| {diff(device):.3f} (normalised units)")
    assert diff(device) < 0.1
    rgb_frame = np.asarray(cv2.cvtColor(frame, cv2.COLOR_BGR2RGB), np.uint8)
    assert diff(model_input(rgb_frame, box, size, mean, std)) > 2.5 * diff(device)  # colour order
    nudged = CropBox(box.x0 + box.side // 20, box.y0, box.side)
    assert diff(model_input(frame, nudged, size, mean, std)) > 2 * diff(device)  # 5 % off centre
    wider = CropBox(box.x0 - box.side // 8, box.y0 - box.side // 8, box.side + box.side // 4)
    assert diff(model_input(frame, wider, size, mean, std)) > 2 * diff(device)  # 25 % too wide
    ears = (person.keypoints[Lm.LEFT_EAR, :2] + person.keypoints[Lm.RIGHT_EAR, :2]) / 2
    on_head = CropBox(round(ears[0] - box.side / 2), round(ears[1] - box.side / 2), box.side)
    assert diff(model_input(frame, on_head, size, mean, std)) > 2 * diff(device)  # the head must not place it
    unnormalised = model_input(frame, box, size, np.zeros(3, np.float32), np.ones(3, np.float32))
    assert diff(unnormalised) > 5 * diff(device)


def test_crop_needs_both_shoulders_facing_the_camera() -> None:
    _, person = _station_frame(0.0)
    kp = person.keypoints.copy()
    box = crop_box(kp, 0.5)
    assert box is not None and box.side == round(SIDE_PER_SHOULDER * _shoulders(kp))
    hidden = kp.copy()
    hidden[Lm.LEFT_SHOULDER, 2] = 0.2
    assert crop_box(hidden, 0.5) is None
    back = kp.copy()
    back[[Lm.LEFT_SHOULDER, Lm.RIGHT_SHOULDER]] = kp[[Lm.RIGHT_SHOULDER, Lm.LEFT_SHOULDER]]
    assert crop_box(back, 0.5) is None  # seen from behind: not the training view
    tiny = kp.copy()
    tiny[Lm.LEFT_SHOULDER, :2] = tiny[Lm.RIGHT_SHOULDER, :2] + [5.0, 0.0]
    assert crop_box(tiny, 0.5) is None


def _shoulders(kp: npt.NDArray[np.float32]) -> float:
    return float(np.linalg.norm(kp[Lm.LEFT_SHOULDER, :2] - kp[Lm.RIGHT_SHOULDER, :2]))


# --- the role against the exported model run here on an independently computed crop -----------------------------


class Reference:
    """The exported model on the crop made from the documented framing, without the role's code."""

    def __init__(self, path: Path) -> None:
        meta = _metadata(path)
        assert meta["task"] == "head-shift"
        spec = json.loads(meta["input_spec"])
        self.name, self.size = spec["name"], int(spec["shape"][2])
        norm = json.loads(meta["normalisation"])
        self.mean = np.asarray(norm["mean"], np.float32)
        self.std = np.asarray(norm["std"], np.float32)
        options = ort.SessionOptions()
        options.intra_op_num_threads = 1  # as the role runs it: the same sums in the same order
        self.session = ort.InferenceSession(str(path), sess_options=options, providers=["CPUExecutionProvider"])

    def crop(self, frame_bgr: npt.NDArray[np.uint8], kp: npt.NDArray[np.float32]) -> npt.NDArray[np.float32]:
        ls, rs = kp[Lm.LEFT_SHOULDER, :2].astype(np.float64), kp[Lm.RIGHT_SHOULDER, :2].astype(np.float64)
        width = float(np.hypot(*(ls - rs)))
        side = round(SIDE_PER_SHOULDER * width)
        x0 = round((ls[0] + rs[0]) / 2 - side / 2)
        y0 = round((ls[1] + rs[1]) / 2 - UP_PER_SHOULDER * width - side / 2)
        pad = side  # edge pixels repeated beyond the frame
        padded = np.pad(frame_bgr, ((pad, pad), (pad, pad), (0, 0)), mode="edge")
        square = padded[y0 + pad : y0 + pad + side, x0 + pad : x0 + pad + side]
        rgb = square[..., ::-1].astype(np.float32) / 255.0
        small = cv2.resize(rgb, (self.size, self.size), interpolation=cv2.INTER_AREA)
        return np.ascontiguousarray(((small - self.mean) / self.std).transpose(2, 0, 1)[None], np.float32)

    def shift_cm(self, frame_bgr: npt.NDArray[np.uint8], kp: npt.NDArray[np.float32]) -> npt.NDArray[np.float64]:
        out = self.session.run(None, {self.name: self.crop(frame_bgr, kp)})[0]
        return np.asarray(out, np.float64).reshape(2) * HEAD_WIDTH_CM


TOLERANCE_CM = 1e-6


def _check_window(window: HeadPoseWindow, names: tuple[str, str], values: list[npt.NDArray[np.float64]]) -> None:
    got = np.array(values)
    for k, name in enumerate(names):
        stats = window.metrics[name]
        assert stats.valid_frames == len(values)
        assert stats.mean == pytest.approx(got[:, k].mean(), abs=TOLERANCE_CM)
        assert stats.minimum == pytest.approx(got[:, k].min(), abs=TOLERANCE_CM)
        assert stats.maximum == pytest.approx(got[:, k].max(), abs=TOLERANCE_CM)


def test_role_windows_equal_the_exported_model_on_real_frames(
    tmp_path: Path, shift_onnx: Path, model_dir: Path
) -> None:
    """Real camera path: the astronaut photo swaying in a clip, real pose perception on ONNX Runtime, the frame
    handed to the role with its perception result."""
    from edge.grabber import FrameGrabber
    from edge.perception.pipeline import PerceptionConfig, PerceptionPipeline
    from edge.sources.factory import make_source
    from edgescreen.clips import make_posture_clip

    clip = make_posture_clip(tmp_path / "sway.avi", seconds=2.0, fps=5.0, tilt_deg=6.0, sway_px=40.0)
    config = PerceptionConfig.model_validate({"backend": {"type": "onnxruntime", "providers": ["cpu"], "threads": 1}})
    pipeline = PerceptionPipeline(config, model_dir)
    analyzer = HeadPoseAnalyzer(CTX, _config(shift_onnx, "both", head_width_cm=HEAD_WIDTH_CM))
    reference = Reference(shift_onnx)
    messages = []
    expected: dict[int, list[npt.NDArray[np.float64]]] = {}
    t0 = None
    with FrameGrabber(make_source(str(clip.path))) as grabber:
        while not grabber.finished:
            item = grabber.get(2.0)
            if item is None:
                continue
            result = pipeline.process(item.frame, item.timestamp)
            t0 = result.timestamp if t0 is None else t0
            messages += analyzer.process(result, image=item.frame)
            if result.persons:
                assert len(result.persons) == 1
                slot = int((result.timestamp - t0) // 1.0)
                expected.setdefault(slot, []).append(reference.shift_cm(item.frame, result.persons[0].keypoints))
    messages += analyzer.flush()
    assert len(messages) == 2 and sorted(expected) == [0, 1]
    # the check has teeth: the crop a few pixels off changes the model's output far beyond the tolerance
    frame, person = _station_frame(0.02)
    nudged = person.keypoints.copy()
    nudged[:, 0] += 5.0
    slip = reference.shift_cm(frame, nudged) - reference.shift_cm(frame, person.keypoints)
    assert np.abs(slip).max() > 10 * TOLERANCE_CM, slip
    digest = hashlib.sha256(shift_onnx.read_bytes()).hexdigest()
    lateral = []
    for index, message in enumerate(messages):
        assert isinstance(message, HeadPoseWindow)
        lateral.append(round(message.metrics["lateral_shift_model_cm"].mean or 0.0, 4))
        window = decode(encode(message))  # the wire schema takes the added metrics
        assert isinstance(window, HeadPoseWindow)
        _check_window(window, ("lateral_shift_model_cm", "sagittal_shift_model_cm"), expected[index])
        assert ModelRef(name=shift_onnx.stem, sha256=digest) in window.models
        # the keypoint shifts stay where they were
        assert window.metrics["lateral_shift_cm"].valid_frames >= 3
    print("model lateral shift per window (cm):", lateral)


# --- shift_source --------------------------------------------------------------------------------------------


def _session(lateral_per_frame: list[float], dt: float = 0.1) -> Iterator[tuple[FrameResult, npt.NDArray[np.uint8]]]:
    for i, lateral in enumerate(lateral_per_frame):
        frame, person = _station_frame(lateral)
        yield FrameResult(timestamp=i * dt, width=640, height=480, persons=[person]), frame


LATERALS = [0.0, 0.02, 0.04, -0.02, 0.03, 0.0, -0.04, 0.01, 0.02, -0.01]


def _run(config: HeadPoseConfig, *, with_image: bool = True) -> HeadPoseWindow:
    analyzer = HeadPoseAnalyzer(CTX, config)
    messages = []
    for result, image in _session(LATERALS):
        messages += analyzer.process(result, image=image if with_image else None)
    messages += analyzer.flush()
    assert len(messages) == 1 and isinstance(messages[0], HeadPoseWindow)
    return messages[0]


def test_shift_source_picks_the_shift_metrics(shift_onnx: Path) -> None:
    keypoints = _run(HeadPoseConfig(window_s=1.0))
    model = _run(_config(shift_onnx, "model"))
    both = _run(_config(shift_onnx, "both"))
    reference = Reference(shift_onnx)
    values = [reference.shift_cm(image, result.persons[0].keypoints) for result, image in _session(LATERALS)]
    ref = ModelRef(name=shift_onnx.stem, sha256=hashlib.sha256(shift_onnx.read_bytes()).hexdigest())

    assert not HeadPoseAnalyzer(CTX, HeadPoseConfig()).reads_image
    assert HeadPoseAnalyzer(CTX, _config(shift_onnx, "model")).reads_image
    assert set(keypoints.metrics) == set(HEADPOSE_METRICS) and keypoints.models == []
    assert keypoints.metrics["lateral_shift_cm"].valid_frames == len(LATERALS)
    # model: the shift metrics are the regressor's; the angles are untouched
    assert set(model.metrics) == set(HEADPOSE_METRICS) and model.models == [ref]
    _check_window(model, ("lateral_shift_cm", "sagittal_shift_cm"), values)
    assert model.metrics["lateral_shift_cm"] != keypoints.metrics["lateral_shift_cm"]
    for name in ("yaw_deg", "pitch_deg", "roll_deg"):
        assert model.metrics[name] == keypoints.metrics[name]
    # both: the keypoint shifts as before, the regressor's beside them
    assert set(both.metrics) == {*HEADPOSE_METRICS, "lateral_shift_model_cm", "sagittal_shift_model_cm"}
    assert both.models == [ref]
    for name in HEADPOSE_METRICS:
        assert both.metrics[name] == keypoints.metrics[name]
    _check_window(both, ("lateral_shift_model_cm", "sagittal_shift_model_cm"), values)
    assert both.severity == keypoints.severity  # severity follows the keypoint shifts when both are sent
    decode(encode(both))


def test_every_n_frames_runs_the_model_less_often_and_keeps_the_time(shift_onnx: Path) -> None:
    config = HeadPoseConfig.model_validate({
        "window_s": 1.0, "above": {"lateral_shift_cm": 0.0}, "shift_source": "both",
        "shift_model": {"path": str(shift_onnx), "every_n_frames": 3},
    })  # fmt: skip
    window = _run(config)
    stats = window.metrics["lateral_shift_model_cm"]
    assert stats.valid_frames == 4  # frames 0, 3, 6, 9
    # threshold 0: every value is above it, and the values together stand for every frame interval
    assert stats.time_above_s == pytest.approx(window.presence_s) == pytest.approx(0.9)


def test_frames_without_their_image_give_no_model_shift(shift_onnx: Path, caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.WARNING, logger="edge.roles.headpose"):
        window = _run(_config(shift_onnx, "both"), with_image=False)
    assert window.metrics["lateral_shift_model_cm"].valid_frames == 0
    assert window.metrics["lateral_shift_cm"].valid_frames == len(LATERALS)
    assert sum("without their image" in r.getMessage() for r in caplog.records) == 1  # said once, not per frame


def test_shift_source_and_shift_model_must_agree(shift_onnx: Path) -> None:
    with pytest.raises(ValidationError, match="needs shift_model"):
        HeadPoseConfig(shift_source="model")
    with pytest.raises(ValidationError, match="shift_source is 'keypoints'"):
        HeadPoseConfig.model_validate({"shift_model": {"path": str(shift_onnx)}})
    with pytest.raises(ValidationError, match="every_n_frames"):
        _config(shift_onnx, every_n_frames=0)


# --- a wrong model is refused at start -------------------------------------------------------------------------


@pytest.fixture(scope="module")
def keypoint_onnx(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A real exported model of another task (posture keypoints)."""
    return _train_and_export("posture-keypoints", 40, tmp_path_factory.mktemp("posture-keypoints"))


def _without(path: Path, key: str, out: Path, replace: dict[str, str] | None = None) -> Path:
    model = onnx.load(str(path))
    props = {p.key: p.value for p in model.metadata_props if p.key != key}
    props.update(replace or {})
    del model.metadata_props[:]
    for k, v in props.items():
        model.metadata_props.add(key=k, value=v)
    onnx.save(model, str(out))
    return out


def test_bad_model_files_are_refused_naming_the_file(tmp_path: Path, shift_onnx: Path, keypoint_onnx: Path) -> None:
    garbage = tmp_path / "garbage.onnx"
    garbage.write_bytes(b"\x08\x07not an onnx model")
    one_channel = json.dumps({"name": "image", "shape": [-1, 1, 64, 64], "dtype": "float32", "layout": "NCHW"})
    cases = {
        tmp_path / "missing.onnx": "file not found",
        garbage: "not a loadable ONNX model",
        keypoint_onnx: "a 'posture-keypoints' model, not a 'head-shift' regressor",
        _without(shift_onnx, "task", tmp_path / "no-task.onnx"): "without edgescreen task metadata",
        _without(shift_onnx, "normalisation", tmp_path / "no-norm.onnx"): "metadata lacks 'normalisation'",
        _without(shift_onnx, "", tmp_path / "gray.onnx", {"input_spec": one_channel}): "not an NCHW RGB square",
    }
    for path, problem in cases.items():
        with pytest.raises(ShiftModelError, match=problem) as info:
            HeadPoseAnalyzer(CTX, _config(path, "model"))
        assert str(path) in str(info.value)
    assert HeadShiftModel(_config(shift_onnx).shift_model).size == 64  # type: ignore[arg-type]


def test_edge_run_stops_at_start_on_a_wrong_task_model(tmp_path: Path, keypoint_onnx: Path) -> None:
    """Through `edgescreen edge run`: a relative shift_model path resolves from the profile's folder, and the
    wrong model stops the start with the file and the problem named."""
    (tmp_path / "models").mkdir()
    model = tmp_path / "models" / "head-shift.onnx"
    model.write_bytes(keypoint_onnx.read_bytes())
    profile = yaml.safe_load((ROOT / "firmware_config" / "profiles" / "head-pose-station.yaml").read_text())
    profile["perception"] = {"backend": {"type": "onnxruntime", "providers": ["cpu"]}}
    profile["headpose"] = {"shift_source": "model", "shift_model": {"path": "models/head-shift.onnx"}}
    path = tmp_path / "station.yaml"
    path.write_text(yaml.safe_dump(profile))
    replay = tmp_path / "session.npz"
    write_replay(replay, [result for result, _ in _session(LATERALS[:3])])
    env = {**os.environ, "OMP_NUM_THREADS": "1", "TMPDIR": str(tmp_path)}
    cmd = [sys.executable, "-m", "edgescreen", "edge", "run", "--profile", str(path), "--replay", str(replay),
           "--broker", "mqtt://127.0.0.1:9", "--outbox", str(tmp_path / "outbox.sqlite")]  # fmt: skip
    run = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=120, check=False)
    assert run.returncode == 1, run.stderr[-2000:]
    assert f"shift model {model}: a 'posture-keypoints' model, not a 'head-shift' regressor" in run.stderr


def test_camera_path_hands_frames_to_the_regressor(
    tmp_path: Path, shift_onnx: Path, model_dir: Path, broker: MosquittoBroker
) -> None:
    """`edgescreen edge run` on a real video: the runtime passes each frame to the role for the crop (and only
    to a role that reads pixels), so the window carries the model's shifts next to the keypoint ones."""
    clip = make_posture_clip(tmp_path / "station.avi", seconds=2.0, fps=5.0, tilt_deg=0.0, sway_px=6.0)
    profile = yaml.safe_load((ROOT / "firmware_config" / "profiles" / "head-pose-station.yaml").read_text())
    profile["perception"] = {"backend": {"type": "onnxruntime", "providers": ["cpu"], "threads": 1}}
    profile["headpose"] = {"shift_source": "both", "shift_model": {"path": str(shift_onnx)}}
    path = tmp_path / "station.yaml"
    path.write_text(yaml.safe_dump(profile))
    windows, stderr = run_station(path, clip.path, broker, model_dir, tmp_path)
    assert len(windows) == 1
    window = windows[0]
    assert "without their image" not in stderr
    for name in ("lateral_shift_model_cm", "sagittal_shift_model_cm"):
        assert window.metrics[name].valid_frames >= 5, (name, window.metrics[name])
    assert window.metrics["lateral_shift_cm"].valid_frames >= 5  # the keypoint measure is kept beside it
    digest = hashlib.sha256(shift_onnx.read_bytes()).hexdigest()
    assert any(m.sha256 == digest for m in window.models)
