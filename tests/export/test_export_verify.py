"""Parity reports and the budget gate, on real converted models and on classifier metrics."""

from __future__ import annotations

import itertools
import json
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from edgescreen.cli import main
from export.quantize import quantize_model
from export.verify import Budget, VerifyError, macro_auc, roc_auc, verify_models, write_report


@pytest.fixture(scope="module")
def face_landmark_int8(model_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("verify") / "face_landmark.int8.onnx"
    quantize_model(model_dir / "face_landmark.onnx", out, "photos", method="minmax")
    return out


def test_landmark_parity_report_in_pixels_and_fraction(
    model_dir: Path, face_landmark_int8: Path, tmp_path: Path
) -> None:
    report = verify_models(model_dir / "face_landmark.onnx", face_landmark_int8, "photos", Budget(torso=0.05))
    assert report.kind == "face_landmarks" and report.samples >= 6
    px, frac = report.metrics["keypoint_error_px_mean"], report.metrics["keypoint_error_face_fraction"]
    assert 0.0 < px < 20.0  # quantised: not identical, but the same face
    assert frac == pytest.approx(report.checks[0]["candidate"])
    assert report.passed == (frac <= 0.05)
    json_path, md_path = write_report(report, tmp_path / "face.parity")
    saved = json.loads(json_path.read_text())
    assert saved["candidate"]["precision"] == "int8" and saved["reference"]["precision"] == "fp32"
    assert "| keypoint_error_face_fraction |" in md_path.read_text()


def test_gate_fails_the_command_when_budget_is_exceeded(
    model_dir: Path, face_landmark_int8: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    ref = str(model_dir / "face_landmark.onnx")
    stem = tmp_path / "r"
    args = ["export", "verify", ref, str(face_landmark_int8), "--data", "photos:6", "--report", str(stem)]
    assert main([*args, "--budget-torso", "0.5"]) == 0
    assert main([*args, "--budget-torso", "0.00001"]) == 1
    captured = capsys.readouterr()
    assert "parity budget exceeded" in captured.err and "of face width" in captured.out + captured.err
    assert json.loads(stem.with_suffix(".json").read_text())["passed"] is False
    # without --report the report lands beside the candidate, named after it
    assert main(["export", "verify", ref, str(face_landmark_int8), "--data", "photos:4", "--budget-torso", "0.5"]) == 0
    default = face_landmark_int8.parent / "face_landmark.int8.parity.json"
    assert json.loads(default.read_text())["candidate"]["path"] == str(face_landmark_int8)


def test_the_same_model_is_at_parity(model_dir: Path) -> None:
    model = model_dir / "pose_landmark_full.onnx"
    report = verify_models(model, model, "photos:4")
    assert report.passed and report.metrics["keypoint_error_px_max"] == 0.0
    assert report.metrics["torso_px_mean"] > 10.0


def test_models_with_different_inputs_are_refused(model_dir: Path) -> None:
    with pytest.raises(VerifyError, match="not the same model"):
        verify_models(model_dir / "face_landmark.onnx", model_dir / "pose_landmark_full.onnx", "photos")


def _pairwise_auc(labels: np.ndarray, scores: np.ndarray) -> float:
    pos, neg = scores[labels], scores[~labels]
    wins = sum(1.0 if p > n else 0.5 if p == n else 0.0 for p, n in itertools.product(pos, neg))
    return wins / (len(pos) * len(neg))


@settings(max_examples=60, deadline=None)
@given(st.lists(st.tuples(st.booleans(), st.integers(0, 5)), min_size=2, max_size=30))
def test_roc_auc_equals_pairwise_definition(pairs: list[tuple[bool, int]]) -> None:
    labels = np.array([p[0] for p in pairs])
    scores = np.array([float(p[1]) for p in pairs])
    if labels.all() or not labels.any():
        assert np.isnan(roc_auc(labels, scores))
    else:
        assert roc_auc(labels, scores) == pytest.approx(_pairwise_auc(labels, scores))


def test_macro_auc_three_classes() -> None:
    targets = np.array([0, 0, 1, 1, 2, 2])
    perfect = np.eye(3)[targets] * 0.8 + 0.0666
    assert macro_auc(targets, perfect) == pytest.approx(1.0)
    assert macro_auc(targets, perfect[:, [1, 2, 0]]) < 0.5


def test_trained_classifier_chain(tmp_path: Path) -> None:
    """Checkpoint → ONNX → INT8 → parity for a model made by the training code on its own task data."""
    load_task_data = pytest.importorskip(
        "training.data", reason="training data loaders not in this tree"
    ).load_task_data
    import torch

    from export.onnx_export import export_checkpoint
    from training.checkpoint import save_checkpoint
    from training.models.inputs import prepare
    from training.models.registry import build_model

    torch.manual_seed(0)
    prepared = prepare(load_task_data("posture-keypoints", "synthetic:40", 3))
    model = build_model("keypoint_mlp", **prepared.model_kwargs)
    ckpt = save_checkpoint(
        tmp_path / "kp.pt",
        model=model,
        task="posture-keypoints",
        arch="keypoint_mlp",
        model_kwargs=prepared.model_kwargs,
        label_map={"control": 0, "ch": 1},
        input_spec=prepared.input_spec,
        normalisation=prepared.normalisation,
        data_sha256=prepared.data_sha256,
        metrics={},
    )
    fp32 = export_checkpoint(ckpt, tmp_path / "kp.onnx", samples=8).path
    same = verify_models(fp32, fp32, "synthetic:40")
    assert same.kind == "classifier" and same.passed
    assert same.metrics["auc_fp32"] == same.metrics["auc_candidate"] and same.metrics["prediction_agreement"] == 1.0
    int8 = tmp_path / "kp.int8.onnx"
    quantize_model(fp32, int8, "synthetic:40")
    report = verify_models(fp32, int8, "synthetic:40", seed=11)
    assert report.kind == "classifier" and report.samples >= 20
    assert 0.0 <= report.metrics["auc_candidate"] <= 1.0
    assert report.passed == all(c["ok"] for c in report.checks)


def test_fp16_candidate_is_at_parity(model_dir: Path, tmp_path: Path) -> None:
    from export.fp16 import convert_fp16

    fp16 = tmp_path / "face_landmark.fp16.onnx"
    convert_fp16(model_dir / "face_landmark.onnx", fp16)
    report = verify_models(model_dir / "face_landmark.onnx", fp16, "photos:6")
    assert report.candidate["precision"] == "fp16" and report.passed
    assert report.metrics["keypoint_error_px_mean"] < 0.5
