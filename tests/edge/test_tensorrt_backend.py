"""Backend choice and the fallback rule (everywhere), and the TensorRT backend itself (GPU only)."""

from __future__ import annotations

import importlib.util
import sys
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

from contract import wire
from edge.backends.base import BackendConfig, BackendError, BackendUnavailable
from edge.backends.selection import choose_backend, load_model

HAVE_TRT = importlib.util.find_spec("tensorrt") is not None and importlib.util.find_spec("pycuda") is not None
gpu = pytest.mark.skipif(not HAVE_TRT, reason="needs an NVIDIA GPU with TensorRT and pycuda (see docs/jetson.md)")


def _model(path: Path) -> Path:
    w = numpy_helper.from_array(np.arange(12, dtype=np.float32).reshape(4, 3) / 10, "w")
    graph = helper.make_graph(
        [helper.make_node("MatMul", ["x", "w"], ["y"])],
        "mm",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", 4])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["N", 3])],
        [w],
    )
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]), str(path))
    return path


@pytest.fixture
def no_tensorrt(monkeypatch: pytest.MonkeyPatch) -> None:
    """Make `import tensorrt` fail even on a host that has it."""
    from edge.backends import base

    monkeypatch.setitem(sys.modules, "tensorrt", None)
    monkeypatch.delitem(sys.modules, "edge.backends.tensorrt_backend", raising=False)
    monkeypatch.delitem(base._REGISTRY, "tensorrt", raising=False)


def test_onnxruntime_is_chosen_as_configured(tmp_path: Path) -> None:
    choice = choose_backend(BackendConfig(type="onnxruntime", threads=1))
    assert (choice.type, choice.fallback) == ("onnxruntime", False)
    backend = load_model(choice, _model(tmp_path / "m.onnx"))
    out = backend.infer({"x": np.ones((2, 4), np.float32)})[0]
    np.testing.assert_allclose(out, np.ones((2, 4)) @ (np.arange(12).reshape(4, 3) / 10), rtol=1e-6)


@pytest.mark.usefixtures("no_tensorrt")
def test_missing_tensorrt_without_fallback_is_a_clear_error() -> None:
    with pytest.raises(BackendUnavailable, match=r"asks for the TensorRT backend(.|\n)*allow_fallback: true"):
        choose_backend(BackendConfig(type="tensorrt"))


@pytest.mark.usefixtures("no_tensorrt")
def test_missing_tensorrt_with_fallback_runs_onnxruntime_and_reports_it(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    choice = choose_backend(BackendConfig(type="tensorrt", allow_fallback=True, precision="fp16", threads=1))
    assert choice.fallback and choice.type == "onnxruntime" and choice.requested == "tensorrt"
    assert "backend fallback" in caplog.text
    backend = load_model(choice, _model(tmp_path / "m.onnx"))
    assert backend.infer({"x": np.zeros((1, 4), np.float32)})[0].shape == (1, 3)
    now = datetime.now(UTC)
    beat = wire.Heartbeat(
        device_id="d1",
        site="s1",
        seq=1,
        at=now,
        uptime_s=1.0,
        fps={},
        frames_dropped=0,
        frames_corrupt=0,
        absent_windows=0,
        outbox_depth=0,
        outbox_dropped=0,
        camera_state="open",
        **choice.heartbeat_fields(),  # type: ignore[arg-type]
    )
    decoded = wire.decode(wire.encode(beat))
    assert isinstance(decoded, wire.Heartbeat)
    assert decoded.backend_fallback is True and decoded.backend == "onnxruntime"


def test_fallback_never_hides_a_broken_model(tmp_path: Path) -> None:
    choice = choose_backend(BackendConfig(type="onnxruntime", allow_fallback=True))
    bad = tmp_path / "bad.onnx"
    bad.write_bytes(b"not a model")
    with pytest.raises(BackendError, match=r"bad\.onnx"):
        load_model(choice, bad)


@pytest.mark.gpu
@gpu
def test_tensorrt_backend_matches_onnxruntime(tmp_path: Path, model_dir: Path) -> None:
    from edge.backends.tensorrt_build import build_engine

    model = model_dir / "pose_landmark_full.onnx"
    cache = tmp_path / "engines"
    built = build_engine(model, "fp32", cache)
    trt_choice = choose_backend(BackendConfig(type="tensorrt", precision="fp32", engine_cache=cache))
    trt_backend = load_model(trt_choice, model)
    ort_backend = load_model(choose_backend(BackendConfig(type="onnxruntime")), model)
    spec = ort_backend.inputs[0]
    shape = tuple(d if isinstance(d, int) and d > 0 else 1 for d in spec.shape)
    x = np.random.default_rng(0).random(shape, dtype=np.float32)
    for ours, ref in zip(trt_backend.infer({spec.name: x}), ort_backend.infer({spec.name: x}), strict=True):
        np.testing.assert_allclose(ours, ref, atol=2e-3, rtol=1e-2)
    assert build_engine(model, "fp32", cache).reused and built.path.exists()


@pytest.mark.gpu
@gpu
def test_tensorrt_backend_without_engine_names_the_build_command(tmp_path: Path, model_dir: Path) -> None:
    choice = choose_backend(BackendConfig(type="tensorrt", precision="fp16", engine_cache=tmp_path))
    with pytest.raises(BackendError, match="edgescreen engine build"):
        load_model(choice, model_dir / "pose_detection.onnx")
