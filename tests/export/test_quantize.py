"""Static INT8 (QDQ) and FP16 on the real converted perception models, with real ONNX Runtime."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
import pytest
from onnx import TensorProto, helper

from edgescreen.cli import main
from export.calibration import CalibrationError, describe, parse_data, perception_inputs
from export.fp16 import convert_fp16
from export.quantize import QuantizationError, inspect_qdq, quantize_model


def _session(path: Path) -> ort.InferenceSession:
    options = ort.SessionOptions()
    options.intra_op_num_threads = 1
    return ort.InferenceSession(str(path), sess_options=options, providers=["CPUExecutionProvider"])


@pytest.fixture(scope="module")
def face_int8(model_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("int8") / "face_detection_short_range.int8.onnx"
    quantize_model(model_dir / "face_detection_short_range.onnx", out, "photos", method="minmax")
    return out


def test_quantized_detector_has_qdq_on_weights_and_activations(model_dir: Path, face_int8: Path) -> None:
    model = onnx.load(str(face_int8))
    summary = inspect_qdq(model)
    assert summary.weight_ops > 20
    assert summary.quantized_weights == summary.weight_ops
    assert summary.per_channel_weights >= summary.weight_ops - 1
    assert summary.activation_quantizers > 20
    meta = {p.key: p.value for p in model.metadata_props}
    assert meta["edgescreen.precision"] == "int8"
    assert meta["edgescreen.perception_model"] == "face_detection_short_range"
    # symmetric (TensorRT) activations: every activation zero point is 0
    inits = {i.name: i for i in model.graph.initializer}
    zero_points = [
        onnx.numpy_helper.to_array(inits[n.input[2]])
        for n in model.graph.node
        if n.op_type == "QuantizeLinear" and len(n.input) > 2 and n.input[2] in inits
    ]
    assert zero_points and all(int(np.max(np.abs(z))) == 0 for z in zero_points)
    # it runs, and the scores of the best anchors stay close to FP32 on a held-out photo crop
    x = perception_inputs(
        "face_detection_short_range",
        model_dir / "face_detection_short_range.onnx",
        parse_data("photos"),
        "evaluation",
        seed=3,
        count=1,
    )[0]
    ref = _session(model_dir / "face_detection_short_range.onnx").run(None, {_input(model_dir): x})
    got = _session(face_int8).run(None, {_input(model_dir): x})
    assert [r.shape for r in ref] == [g.shape for g in got]
    assert not np.allclose(ref[0], got[0])  # really a different (quantised) computation
    assert float(np.corrcoef(ref[0].ravel(), got[0].ravel())[0, 1]) > 0.95


def _input(model_dir: Path) -> str:
    return describe(model_dir / "face_detection_short_range.onnx").input_name


def test_fp32_model_counts_as_not_quantized(model_dir: Path) -> None:
    summary = inspect_qdq(onnx.load(str(model_dir / "face_detection_short_range.onnx")))
    assert summary.weight_ops > 20 and summary.quantized_weights == 0 and summary.activation_quantizers == 0


def test_int8_that_quantizes_nothing_is_an_error(tmp_path: Path, model_dir: Path) -> None:
    # a model with no weights: the quantiser has nothing to turn into INT8, which must not pass as INT8
    graph = helper.make_graph(
        [helper.make_node("Sigmoid", ["input"], ["y"])],
        "noweights",
        [helper.make_tensor_value_info("input", TensorProto.FLOAT, [1, 128, 128, 3])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 128, 128, 3])],
    )
    src = tmp_path / "face_detection_short_range.onnx"
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]), str(src))
    out = tmp_path / "out.onnx"
    with pytest.raises(QuantizationError, match="not an INT8 model"):
        quantize_model(src, out, "photos:4")
    assert not out.exists()


def test_calibration_and_evaluation_crops_come_from_the_pipeline(model_dir: Path) -> None:
    model = model_dir / "face_landmark.onnx"
    calib = perception_inputs("face_landmark", model, parse_data("photos"), "calibration", seed=1, count=None)
    evals = perception_inputs("face_landmark", model, parse_data("photos"), "evaluation", seed=1, count=None)
    assert len(calib) >= 8 and len(evals) >= 6
    for t in calib + evals:
        assert t.shape == (1, 192, 192, 3) and t.dtype == np.float32
        assert float(t.min()) >= 0.0 and float(t.max()) <= 1.0 and float(t.std()) > 0.05
    # held-out: no evaluation crop is a calibration crop
    assert not any(np.array_equal(c, e) for c in calib for e in evals)
    assert len(perception_inputs("face_landmark", model, parse_data("photos:5"), "calibration", seed=1, count=5)) == 5


def test_bad_data_spec_is_a_clear_error(tmp_path: Path, model_dir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(CalibrationError, match="neither synthetic"):
        parse_data("no/such/folder")
    empty = tmp_path / "empty"
    empty.mkdir()
    out = tmp_path / "q.onnx"
    model = str(model_dir / "face_detection_short_range.onnx")
    assert main(["export", "quantize", model, "--calibration", str(empty), "--out", str(out)]) == 1
    assert "no images" in capsys.readouterr().err and not out.exists()


def test_quantize_command_with_image_folder(
    tmp_path: Path, model_dir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    import cv2
    import skimage.data

    folder = tmp_path / "imgs"
    folder.mkdir()
    for name in ("astronaut", "coffee"):
        cv2.imwrite(str(folder / f"{name}.png"), getattr(skimage.data, name)()[:, :, ::-1])
    out = tmp_path / "fd.int8.onnx"
    argv = ["export", "quantize", str(model_dir / "face_detection_short_range.onnx"), "--calibration", str(folder)]
    assert main([*argv, "--method", "percentile", "--target", "cpu", "--out", str(out)]) == 0
    assert "INT8 QDQ" in capsys.readouterr().out
    summary = inspect_qdq(onnx.load(str(out)))
    assert summary.quantized_weights == summary.weight_ops and summary.activation_quantizers > 0
    with pytest.raises(QuantizationError, match="already int8"):
        quantize_model(out, tmp_path / "again.onnx", str(folder))


def test_fp16_keeps_fp32_io_and_tracks_fp32(tmp_path: Path, model_dir: Path) -> None:
    src = model_dir / "face_detection_short_range.onnx"
    out = tmp_path / "face_detection_short_range.fp16.onnx"
    count = convert_fp16(src, out)
    model = onnx.load(str(out))
    assert count > 20
    assert model.graph.input[0].type.tensor_type.elem_type == TensorProto.FLOAT
    assert all(o.type.tensor_type.elem_type == TensorProto.FLOAT for o in model.graph.output)
    meta = {p.key: p.value for p in model.metadata_props}
    assert meta["edgescreen.precision"] == "fp16"
    with pytest.raises(QuantizationError, match="not an FP32 model"):
        convert_fp16(out, tmp_path / "twice.onnx")
    x = np.random.default_rng(0).uniform(-1, 1, (1, 128, 128, 3)).astype(np.float32)
    name = describe(src).input_name
    ref = _session(src).run(None, {name: x})
    got = _session(out).run(None, {name: x})
    for r, g in zip(ref, got, strict=True):
        np.testing.assert_allclose(g, r, atol=0.05 * float(np.abs(r).max()) + 1e-3)
