"""Pieces of the perception pipeline on their own: anchors, decoding, NMS, ROIs, smoothing, head pose, backend."""

from __future__ import annotations

import logging
import math
from pathlib import Path

import numpy as np
import pytest

from edge.backends.base import BackendConfig, BackendError, create_backend
from edge.backends.onnxruntime_backend import resolve_providers
from edge.perception.anchors import FACE_SHORT_RANGE_ANCHORS, POSE_DETECTION_ANCHORS, generate_anchors
from edge.perception.head_pose import FIT_INDICES, MODEL_POINTS, head_pose_from_landmarks
from edge.perception.pipeline import PerceptionConfig
from edge.perception.roi import (
    RotatedRect,
    apply_affine,
    image_to_tensor,
    rect_from_alignment_points,
    tensor_to_image,
)
from edge.perception.smoothing import OneEuroFilter
from edge.perception.ssd import SsdDecoding, decode, weighted_nms


def test_pose_and_face_anchor_grids() -> None:
    pose = generate_anchors(POSE_DETECTION_ANCHORS)
    face = generate_anchors(FACE_SHORT_RANGE_ANCHORS)
    assert pose.shape == (2254, 4) and face.shape == (896, 4)
    # Pose: 28×28 cells × 2 anchors, then 14×14 × 2, then 7×7 × 6 (three stride-32 layers merged).
    assert np.allclose(pose[0], [0.5 / 28, 0.5 / 28, 1, 1]) and np.allclose(pose[1], pose[0])
    assert np.allclose(pose[1568], [0.5 / 14, 0.5 / 14, 1, 1])
    assert np.allclose(pose[1568 + 392 : 1568 + 392 + 6, :2], 0.5 / 7)
    assert np.allclose(pose[-1, :2], 6.5 / 7)
    assert np.allclose(face[512:518, :2], 0.5 / 8) and np.allclose(face[-1, :2], 7.5 / 8)


def test_decode_places_boxes_and_keypoints_relative_to_their_anchor() -> None:
    anchors = np.array([[0.25, 0.5, 1, 1], [0.75, 0.5, 1, 1]], np.float32)
    raw = np.zeros((2, 8), np.float32)
    raw[1] = [22.4, -11.2, 44.8, 22.4, 0.0, -22.4, 11.2, 0.0]  # 224-pixel units
    scores = np.array([-5.0, 3.0], np.float32)
    s, boxes, kps = decode(raw, scores, anchors, SsdDecoding(num_keypoints=2, scale=224.0, min_score=0.5))
    assert s.shape == (1,) and s[0] == pytest.approx(1 / (1 + math.exp(-3)))
    assert np.allclose(boxes[0], [0.85 - 0.1, 0.45 - 0.05, 0.85 + 0.1, 0.45 + 0.05])
    assert np.allclose(kps[0], [[0.75, 0.4], [0.8, 0.5]])


def test_weighted_nms_averages_a_cluster_and_keeps_separate_boxes() -> None:
    boxes = np.array([[0, 0, 10, 10], [1, 0, 11, 10], [50, 50, 60, 60]], np.float32)
    kps = boxes[:, None, :2].copy()
    scores = np.array([0.9, 0.3, 0.6], np.float32)
    out = weighted_nms(scores, boxes, kps, iou_threshold=0.3)
    assert [round(d.score, 2) for d in out] == [0.9, 0.6]
    assert out[0].box[0] == pytest.approx(0.3 / 1.2)  # score-weighted mean of x0 = 0 and 1
    assert np.allclose(out[1].box, boxes[2])


def test_alignment_rect_is_upright_for_an_upright_person() -> None:
    rect = rect_from_alignment_points((100, 300), (100, 100), 90.0)
    assert rect.rotation == pytest.approx(0.0) and rect.width == pytest.approx(400.0)
    leaning = rect_from_alignment_points((100, 300), (300, 300), 90.0)  # body axis pointing to image right
    assert leaning.rotation == pytest.approx(math.pi / 2)
    assert rect.scaled(1.25).width == pytest.approx(500.0)


def test_tensor_image_maps_are_inverse_and_follow_the_rotation() -> None:
    rect = RotatedRect(200.0, 150.0, 100.0, 100.0, math.radians(30))
    to_image = tensor_to_image(rect, 256, 256)
    centre, right_edge = apply_affine(to_image, [[128, 128], [256, 128]])
    assert np.allclose(centre, [200, 150])
    # The tensor's +x axis points along (cos, sin) of the rotation in the image (clockwise, y down).
    assert np.allclose(right_edge - centre, 50 * np.array([math.cos(math.radians(30)), math.sin(math.radians(30))]))
    pts = np.random.default_rng(0).uniform(0, 256, (10, 2))
    back = apply_affine(image_to_tensor(rect, 256, 256), apply_affine(to_image, pts))
    assert np.allclose(back, pts)


def test_one_euro_filter_damps_jitter_and_follows_a_step() -> None:
    rng = np.random.default_rng(1)
    f = OneEuroFilter(min_cutoff=0.1, beta=40.0)
    noisy = 100 + rng.normal(0, 0.5, 60)  # half-pixel jitter on a 200-pixel person
    out = np.array([f.apply([v], i / 30, value_scale=1 / 200)[0] for i, v in enumerate(noisy)])
    assert out[20:].std() < 0.5 * noisy[20:].std()
    f.reset()
    step = [0.0] * 10 + [100.0] * 20
    out = np.array([f.apply([v], i / 30, value_scale=1 / 200)[0] for i, v in enumerate(step)])
    assert out[:10].max() == 0.0 and out[-1] > 95.0


def _rotation(axis: int, angle_degrees: float) -> np.ndarray:
    """Right-handed rotation about one axis of the camera frame (x right, y up, z towards the camera)."""
    c, s = math.cos(math.radians(angle_degrees)), math.sin(math.radians(angle_degrees))
    i, j = {0: (1, 2), 1: (2, 0), 2: (0, 1)}[axis]
    m = np.eye(3)
    m[i, i], m[i, j], m[j, i], m[j, j] = c, -s, s, c
    return m


def _face_points(yaw: float, pitch: float, roll: float) -> np.ndarray:
    """Canonical face points turned by R_y(yaw)·R_x(−pitch)·R_z(−roll), as image-pixel landmarks (y down,
    z smaller = nearer the camera)."""
    r = _rotation(1, yaw) @ _rotation(0, -pitch) @ _rotation(2, -roll)
    cam = MODEL_POINTS @ r.T * 20.0 + [320.0, -240.0, 0.0]
    points = np.zeros((468, 3))
    points[FIT_INDICES] = np.stack([cam[:, 0], -cam[:, 1], -cam[:, 2]], axis=1)
    return points


@pytest.mark.parametrize(("yaw", "pitch", "roll"), [(0, 0, 0), (30, 0, 0), (0, 20, 0), (0, 0, -25), (-35, 15, 10)])
def test_head_pose_recovers_known_angles(yaw: float, pitch: float, roll: float) -> None:
    pose = head_pose_from_landmarks(_face_points(yaw, pitch, roll))
    assert (pose.yaw, pose.pitch, pose.roll) == pytest.approx((yaw, pitch, roll), abs=1e-6)


def test_head_pose_signs_in_the_image() -> None:
    """Yaw > 0: nose towards image right; roll > 0: the subject's left ear (image right) drops."""
    turned = _face_points(30, 0, 0)
    assert turned[1, 0] > turned[168, 0]  # nose tip right of the nose bridge
    tilted = _face_points(0, 0, 20)
    assert tilted[263, 1] > tilted[33, 1]  # left eye corner (image right) lower than the right one
    chin_up = _face_points(0, 20, 0)
    assert chin_up[1, 1] < _face_points(0, 0, 0)[1, 1]  # nose tip moves up in the image


def test_config_refuses_unknown_keys_and_face_without_pose() -> None:
    with pytest.raises(ValueError, match="extra"):
        PerceptionConfig.model_validate({"pose": True, "fase": False})
    with pytest.raises(ValueError, match="need pose"):
        PerceptionConfig(pose=False, face=True)
    assert PerceptionConfig(pose=False, face=False).segmentation is False


def test_onnxruntime_backend_names_a_missing_or_corrupt_model(tmp_path: Path) -> None:
    missing = tmp_path / "absent.onnx"
    with pytest.raises(BackendError, match=r"absent\.onnx"):
        create_backend(BackendConfig(), missing)
    corrupt = tmp_path / "corrupt.onnx"
    corrupt.write_bytes(b"\x08\x07not a model")
    with pytest.raises(BackendError, match=r"corrupt\.onnx"):
        create_backend(BackendConfig(), corrupt)


def test_missing_providers_are_logged_and_cpu_is_kept(caplog: pytest.LogCaptureFixture) -> None:
    available = ["CPUExecutionProvider"]
    with caplog.at_level(logging.WARNING):
        chosen = resolve_providers(["tensorrt", "cuda", "cpu"], available)
    assert chosen == ["CPUExecutionProvider"]
    assert "TensorrtExecutionProvider" in caplog.text and "CUDAExecutionProvider" in caplog.text
    assert resolve_providers(["cuda", "cpu"], ["CUDAExecutionProvider", "CPUExecutionProvider"]) == [
        "CUDAExecutionProvider",
        "CPUExecutionProvider",
    ]


def test_onnxruntime_backend_runs_a_converted_model(model_dir: Path) -> None:
    backend = create_backend(BackendConfig(threads=1), model_dir / "face_detection_short_range.onnx")
    assert backend.inputs[0].shape == (1, 128, 128, 3)
    outputs = backend.infer({backend.inputs[0].name: np.zeros((1, 128, 128, 3), np.float32)})
    assert sorted(o.shape for o in outputs) == [(1, 896, 1), (1, 896, 16)]
    backend.warmup()


def test_unused_outputs_are_left_out_of_the_graph(model_dir: Path) -> None:
    from edge.backends.onnxruntime_backend import OnnxRuntimeBackend, keep_graph_outputs

    path = model_dir / "pose_landmark_full.onnx"
    full = OnnxRuntimeBackend(BackendConfig(threads=1))
    full.load(path)
    names = [o.name for o in full.outputs]
    assert len(names) == 5
    segmentation = next(o.name for o in full.outputs if o.shape[-1] == 1 and len(o.shape) == 4)
    keep = [n for n in names if n != segmentation]
    pruned = OnnxRuntimeBackend(BackendConfig(threads=1))
    pruned.load(path, outputs=keep)
    assert [o.name for o in pruned.outputs] == keep
    x = np.random.default_rng(0).random((1, 256, 256, 3), dtype=np.float32)
    a = dict(zip(names, full.infer({"input_1": x}), strict=True))
    b = dict(zip(keep, pruned.infer({"input_1": x}), strict=True))
    assert all(np.array_equal(a[n], b[n]) for n in keep)
    # The nodes that fed only the dropped output go too (ONNX Runtime would run them all the same),
    # and every node left feeds a kept output.
    import onnx

    whole = onnx.load(path).graph
    graph = onnx.load_from_string(keep_graph_outputs(path.read_bytes(), set(keep))).graph
    assert [o.name for o in graph.output] == keep
    assert 0 < len(graph.node) < len(whole.node) - 20
    read = {name for node in graph.node for name in node.input} | set(keep)
    assert all(out in read for node in graph.node for out in node.output)
    with pytest.raises(BackendError, match="no output"):
        OnnxRuntimeBackend(BackendConfig()).load(path, outputs=["nonexistent"])


def test_a_precision_the_cpu_cannot_give_is_reported(model_dir: Path, caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.WARNING):
        backend = create_backend(BackendConfig(threads=1, precision="fp16"), model_dir / "face_landmark.onnx")
    assert "precision fp16" in caplog.text and "fp32" in caplog.text
    assert backend.inputs[0].shape == (1, 192, 192, 3)


def test_pipeline_without_a_model_store_says_how_to_get_one(tmp_path: Path) -> None:
    from edge.perception.pipeline import PerceptionPipeline

    with pytest.raises(BackendError, match="models fetch"):
        PerceptionPipeline(PerceptionConfig(), tmp_path)
