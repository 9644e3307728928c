"""`edgescreen engine build --profile P` (what edgescreen-engine@.service runs): the paths that need no GPU.

TensorRT cannot run here; where a build must happen, the recording fake of tests/edge/test_tensorrt_build.py
stands in for the tensorrt module (the real builder code runs around it).
"""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from contract.hashing import sha256_file
from edge.backends import tensorrt_build
from edge.backends.engine_cache import EngineKey, lookup
from edgescreen.cli import main
from tests.edge.test_tensorrt_build import FakeTensorRT

REPO = Path(__file__).resolve().parents[2]


def _profile(tmp_path: Path, backend: str, face: bool = True) -> Path:
    path = tmp_path / "p.yaml"
    path.write_text(
        "device: {site: school-e, device_id: cam-1}\n"
        "role: headpose\ncamera: {source: /dev/video0}\n"
        f"perception:\n  face: {str(face).lower()}\n  backend:\n{backend}"
        "broker: {url: 'mqtt://127.0.0.1:1883'}\n"
    )
    return path


def test_onnxruntime_profile_needs_no_engine(capsys: pytest.CaptureFixture[str]) -> None:
    profile = REPO / "firmware_config/profiles/office-posture.yaml"
    assert main(["engine", "build", "--profile", str(profile)]) == 0
    assert "backend onnxruntime: no TensorRT engine is needed" in capsys.readouterr().out


def test_tensorrt_profile_builds_each_perception_model_at_its_precision(
    tmp_path: Path, model_dir: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("EDGESCREEN_MODEL_DIR", str(model_dir))
    fake = FakeTensorRT()
    monkeypatch.setitem(sys.modules, "tensorrt", fake.module("10.3.0"))
    monkeypatch.setattr(tensorrt_build, "detect_gpu_name", lambda: "Orin")
    cache = tmp_path / "engines"
    backend = f"    type: tensorrt\n    precision: fp16\n    engine_cache: {cache}\n"
    profile = _profile(tmp_path, backend, face=False)
    assert main(["engine", "build", "--profile", str(profile)]) == 0
    out = capsys.readouterr().out
    assert "[1/2] pose_detection (fp16)" in out and "[2/2] pose_landmark_full (fp16)" in out
    # The runtime's own lookup finds an engine for exactly the models this profile runs.
    for name, wanted in (("pose_detection", True), ("pose_landmark_full", True), ("face_landmark", False)):
        key = EngineKey(sha256_file(model_dir / f"{name}.onnx"), "10.3.0", "Orin", "fp16")
        assert lookup(cache, name, key).found is wanted, name
    # A second run reuses what the first built: the unit is cheap on every boot.
    assert main(["engine", "build", "--profile", str(profile)]) == 0
    assert capsys.readouterr().out.count(": reused (TensorRT 10.3.0, Orin, fp16)") == 2


def test_tensorrt_profile_without_tensorrt_names_every_model_and_fails(
    tmp_path: Path, model_dir: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("EDGESCREEN_MODEL_DIR", str(model_dir))
    monkeypatch.setitem(sys.modules, "tensorrt", None)
    profile = _profile(tmp_path, "    type: tensorrt\n    precision: int8\n")
    assert main(["engine", "build", "--profile", str(profile)]) == 1
    captured = capsys.readouterr()
    for name in ("pose_detection", "pose_landmark_full", "face_detection_short_range", "face_landmark"):
        assert f"{name} (int8)" in captured.out
        assert f"{model_dir / name}" in captured.err
    assert "TensorRT's Python package is not installed" in captured.err
    assert "error: 4 of 4 engines could not be built" in captured.err


def test_missing_model_store_and_broken_profile_are_named(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("EDGESCREEN_MODEL_DIR", str(tmp_path / "no-models"))
    profile = _profile(tmp_path, "    type: tensorrt\n")
    assert main(["engine", "build", "--profile", str(profile)]) == 1
    err = capsys.readouterr().err
    assert "pose_detection: " in err and "error: 4 of 4 engines could not be built" in err

    broken = tmp_path / "broken.yaml"
    broken.write_text(profile.read_text().replace("type: tensorrt", "type: tensorrt\n    precsion: fp16"))
    assert main(["engine", "build", "--profile", str(broken)]) == 2
    err = capsys.readouterr().err
    assert str(broken) in err and "precsion" in err


def test_model_and_profile_are_exclusive(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["engine", "build"]) == 2
    assert main(["engine", "build", str(tmp_path / "m.onnx"), "--profile", str(tmp_path / "p.yaml")]) == 2
    assert capsys.readouterr().err.count("give an ONNX model or --profile PROFILE") == 2
