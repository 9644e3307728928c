"""Checkpoint → ONNX: metadata, dynamic batch, and the PyTorch parity gate, on real training models."""

from __future__ import annotations

import importlib
import importlib.util
import json
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
import pytest
import torch

from contract.labels import GAIT_LABELS, XRAY_LABELS
from export.onnx_export import ExportError, export_module
from training.models.resnet import resnet34

torch.set_num_threads(1)


def _meta(task: str, labels: dict[str, int], shape: list[int | None]) -> dict[str, object]:
    return {
        "format": 1,
        "task": task,
        "arch": "resnet34",
        "model_kwargs": {"num_classes": len(labels), "width": 0.125},
        "label_map": labels,
        "input_spec": {"name": "image", "shape": shape, "dtype": "float32", "layout": "NCHW"},
        "normalisation": {"mean": [0.485, 0.456, 0.406], "std": [0.229, 0.224, 0.225]},
        "data_sha256": "ab" * 32,
        "git_commit": "0123abc",
    }


def test_export_writes_metadata_and_matches_pytorch(tmp_path: Path) -> None:
    torch.manual_seed(0)
    model = resnet34(num_classes=3, width=0.125)
    held_out = np.random.default_rng(5).standard_normal((9, 3, 64, 64)).astype(np.float32)
    out = tmp_path / "xray.onnx"
    result = export_module(
        model, _meta("xray", XRAY_LABELS, [None, 3, 64, 64]), out, held_out, checkpoint_sha256="cd" * 32
    )
    assert result.max_abs_diff <= 1e-4 and result.samples == 9
    proto = onnx.load(str(out))
    assert proto.opset_import[0].version == 17
    meta = {p.key: p.value for p in proto.metadata_props}
    assert json.loads(meta["label_map"]) == XRAY_LABELS
    assert json.loads(meta["input_spec"])["layout"] == "NCHW"
    assert json.loads(meta["normalisation"])["std"][0] == 0.229
    assert meta["source_checkpoint_sha256"] == "cd" * 32 and meta["git_commit"] == "0123abc" and meta["task"] == "xray"
    # dynamic batch: any batch size runs and gives PyTorch's answer
    session = ort.InferenceSession(str(out), providers=["CPUExecutionProvider"])
    assert session.get_inputs()[0].name == "image"
    x = held_out[:5]
    with torch.no_grad():
        ref = model.eval()(torch.from_numpy(x)).numpy()
    np.testing.assert_allclose(session.run(None, {"image": x})[0], ref, atol=1e-4)


def test_export_fails_when_parity_is_not_met(tmp_path: Path) -> None:
    model = resnet34(num_classes=3, width=0.125)
    held_out = np.random.default_rng(1).standard_normal((4, 3, 32, 32)).astype(np.float32)
    out = tmp_path / "m.onnx"
    with pytest.raises(ExportError, match="above the FP32 tolerance"):
        export_module(model, _meta("xray", XRAY_LABELS, [None, 3, 32, 32]), out, held_out, tolerance=0.0)
    assert not out.exists() and not list(tmp_path.glob("edgescreen-onnx-*"))


def test_export_refuses_inputs_that_do_not_fit_the_spec(tmp_path: Path) -> None:
    model = resnet34(num_classes=3, width=0.125)
    held_out = np.zeros((4, 3, 32, 32), np.float32)
    with pytest.raises(ExportError, match="input spec says"):
        export_module(model, _meta("xray", XRAY_LABELS, [None, 3, 64, 64]), tmp_path / "m.onnx", held_out)


@pytest.mark.skipif(importlib.util.find_spec("training.models.sconet") is None, reason="ScoNet not in this tree")
def test_sconet_mt_exports_with_dynamic_batch(tmp_path: Path) -> None:
    from training.models.sconet import sconet_mt

    torch.manual_seed(0)
    model = sconet_mt(width=0.125)
    sils = (np.random.default_rng(2).random((3, 8, 64, 44)) > 0.5).astype(np.float32)
    meta = _meta("gait", GAIT_LABELS, [-1, -1, 64, 44]) | {"arch": "sconet_mt"}
    result = export_module(model, meta, tmp_path / "gait.onnx", sils)
    assert result.max_abs_diff <= 1e-4
    # walks of another length run too (the frame axis is dynamic, as the input spec says)
    walk = (np.random.default_rng(4).random((2, 13, 64, 44)) > 0.5).astype(np.float32)
    session = ort.InferenceSession(str(result.path), providers=["CPUExecutionProvider"])
    with torch.no_grad():
        ref = model.eval()(torch.from_numpy(walk)).numpy()
    np.testing.assert_allclose(session.run(None, {"image": walk})[0], ref, atol=1e-4)


def test_export_command_names_a_missing_checkpoint(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from edgescreen.cli import main

    assert main(["export", "onnx", str(tmp_path / "none.pt"), "--out", str(tmp_path / "m.onnx")]) == 1
    assert "none.pt does not exist" in capsys.readouterr().err


@pytest.mark.parametrize(
    ("module", "factory", "kwargs", "shape"),
    [
        ("training.models.efficientnet", "efficientnet_b5", {"num_classes": 2, "width": 0.25}, (3, 64, 64)),
        ("training.models.keypoint_mlp", "keypoint_mlp", {"num_classes": 2}, (33, 3)),
        ("training.models.head_shift", "head_shift_cnn", {"outputs": 2, "width": 0.25}, (3, 64, 64)),
    ],
)
def test_every_training_architecture_exports(
    tmp_path: Path, module: str, factory: str, kwargs: dict[str, object], shape: tuple[int, ...]
) -> None:
    if importlib.util.find_spec(module) is None:
        pytest.skip(f"{module} not in this tree")
    torch.manual_seed(0)
    model = getattr(importlib.import_module(module), factory)(**kwargs)
    x = np.random.default_rng(3).standard_normal((5, *shape)).astype(np.float32)
    meta = {"task": "x", "arch": factory, "input_spec": {"name": "input", "shape": [None, *shape]}}
    result = export_module(model, meta, tmp_path / f"{factory}.onnx", x)
    assert result.max_abs_diff <= 1e-4
    session = ort.InferenceSession(str(result.path), providers=["CPUExecutionProvider"])
    assert session.run(None, {"input": x[:3]})[0].shape[0] == 3


def _checkpoint(tmp_path: Path) -> Path:
    from training.checkpoint import save_checkpoint
    from training.models.registry import build_model

    torch.manual_seed(0)
    kwargs = {"num_classes": 3, "width": 0.125}
    model = build_model("sconet_mt", **kwargs)
    spec = {"name": "silhouettes", "shape": [-1, -1, 64, 44], "dtype": "float32", "layout": "NTHW"}
    return save_checkpoint(
        tmp_path / "gait.pt",
        model=model,
        task="gait",
        arch="sconet_mt",
        model_kwargs=kwargs,
        label_map=GAIT_LABELS,
        input_spec=spec,
        normalisation=None,
        data_sha256="ef" * 32,
        metrics={},
    )


def test_export_command_refuses_a_corrupt_checkpoint(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from edgescreen.cli import main

    pytest.importorskip("training.checkpoint", reason="training checkpoints not in this tree")
    bad = tmp_path / "bad.pt"
    bad.write_bytes(b"not a checkpoint")
    assert main(["export", "onnx", str(bad), "--out", str(tmp_path / "m.onnx")]) == 1
    assert "cannot load checkpoint" in capsys.readouterr().err and not (tmp_path / "m.onnx").exists()


def test_export_command_from_a_real_checkpoint(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from edgescreen.cli import main

    pytest.importorskip("training.checkpoint", reason="training checkpoints not in this tree")
    pytest.importorskip("training.data", reason="training data loaders not in this tree")
    from contract.hashing import sha256_file

    ckpt = _checkpoint(tmp_path)
    out = tmp_path / "gait.onnx"
    assert main(["export", "onnx", str(ckpt), "--out", str(out), "--samples", "4"]) == 0
    assert "max abs difference vs PyTorch" in capsys.readouterr().out
    meta = {p.key: p.value for p in onnx.load(str(out)).metadata_props}
    assert meta["source_checkpoint_sha256"] == sha256_file(ckpt)
    assert meta["task"] == "gait" and json.loads(meta["label_map"]) == GAIT_LABELS
    assert json.loads(meta["input_spec"])["layout"] == "NTHW"
