"""The skeleton gait model's inputs: the BlazePose → COCO-17 mapping, Scoliosis1K-Pose files in their released
format, the device's input builder, and the model's ONNX export with static shapes."""

from __future__ import annotations

import json
import pickle
from pathlib import Path

import numpy as np
import pytest

from contract.landmarks import COCO17_NAMES, NUM_LANDMARKS, Landmark, blazepose_to_coco17
from edge.roles.gait.skeleton import coco_sequence, resample
from training.datasets.errors import DatasetError
from training.datasets.scoliosis1k_pose import load_scoliosis1k_pose, read_pose_pkl


def test_every_coco_point_is_the_blazepose_point_of_the_same_name() -> None:
    kp = np.stack([np.arange(NUM_LANDMARKS) * 10.0, np.arange(NUM_LANDMARKS) + 0.5, np.linspace(0, 1, 33)], axis=1)
    coco = blazepose_to_coco17(kp)
    assert coco.shape == (17, 3)
    for i, name in enumerate(COCO17_NAMES):
        j = Landmark[name.upper()]
        np.testing.assert_array_equal(coco[i], kp[j])
    # batches and torch tensors go through the same mapping
    torch = pytest.importorskip("torch")
    batch = torch.from_numpy(np.stack([kp, kp + 1]))
    assert torch.equal(blazepose_to_coco17(batch)[1], torch.from_numpy(coco + 1))
    with pytest.raises(ValueError, match=r"BlazePose keypoints \[\.\.\., 33, C\]"):
        blazepose_to_coco17(np.zeros((17, 3)))


def _opengait_pose_pkl(path: Path, frames: list[np.ndarray]) -> None:
    """A file as OpenGait's `datasets/pretreatment.py --pose` writes it: pickle.dump(np.stack(per-frame arrays))."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("wb") as f:
        pickle.dump(np.stack(frames), f)


def _vitpose_frames(rng: np.random.Generator, n: int) -> list[np.ndarray]:
    out = []
    for _ in range(n):
        flat = np.column_stack([rng.uniform(100, 500, 17), rng.uniform(50, 450, 17), rng.uniform(0.3, 1.0, 17)])
        out.append(np.array(flat.reshape(-1).tolist()).reshape(-1, 3))  # float64, as from the JSON lists
    return out


def test_scoliosis1k_pose_tree_loads_with_labels_subjects_views_and_split(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    expected = {}
    for sid, cls, n in (("00000", "Positive", 40), ("00001", "Negative", 33), ("00002", "Neutral", 12)):
        frames = _vitpose_frames(rng, n)
        frames[3][:] = 0.0  # a frame where ViTPose found nobody: zeros, as stored
        _opengait_pose_pkl(tmp_path / sid / cls / "000_180" / "000_180.pkl", frames)
        expected[sid] = np.stack(frames)
    (tmp_path / "Scoliosis1K_112.json").write_text(json.dumps({"TRAIN_SET": ["00000", "00002"], "TEST_SET": ["00001"]}))
    data = load_scoliosis1k_pose(tmp_path)
    assert data.subjects == ["00000", "00001", "00002"]
    assert data.labels.tolist() == [2, 0, 1]
    assert data.views == ["000_180"] * 3 and data.split == ["TRAIN_SET", "TEST_SET", "TRAIN_SET"]
    for seq, sid in zip(data.sequences, data.subjects, strict=True):
        assert seq.dtype == np.float32 and seq.shape == expected[sid].shape
        np.testing.assert_allclose(seq, expected[sid], rtol=1e-6)
    # the device's input builder takes the loaded sequence as it takes mapped BlazePose keypoints
    x = resample(data.sequences[0], 32)
    assert x.shape == (1, 32, 17, 3) and np.array_equal(x[0, 0], data.sequences[0][0])


@pytest.mark.parametrize(
    ("payload", "problem"),
    [
        (np.zeros((10, 33, 3)), r"expected shape \[T, 17, 3\]"),
        (np.zeros((10, 17, 3), np.uint8), "floating-point"),
        (np.full((4, 17, 3), np.nan), "NaN"),
        ({"keypoints": [1, 2]}, "not a pickled numpy array|expected a numpy array"),
    ],
)
def test_bad_pose_files_name_the_file_and_the_problem(tmp_path: Path, payload: object, problem: str) -> None:
    path = tmp_path / "7" / "Positive" / "000_180" / "000_180.pkl"
    path.parent.mkdir(parents=True)
    path.write_bytes(pickle.dumps(payload))
    with pytest.raises(DatasetError, match=problem) as caught:
        read_pose_pkl(path)
    assert str(path) in str(caught.value) and "\n" not in str(caught.value)


def test_device_input_maps_blazepose_and_zeros_what_it_did_not_see() -> None:
    rng = np.random.default_rng(1)
    frames: list[np.ndarray | None] = []
    for _ in range(5):
        kp = np.column_stack([rng.uniform(0, 640, 33), rng.uniform(0, 480, 33), rng.uniform(0.6, 1.0, 33)])
        frames.append(kp.astype(np.float32))
    frames[1] = None  # nobody that frame
    assert frames[2] is not None
    frames[2][Landmark.LEFT_ANKLE, 2] = 0.1  # too faint
    seq = coco_sequence(frames, min_visibility=0.5)
    assert seq.shape == (5, 17, 3)
    assert not seq[1].any()
    assert not seq[2, COCO17_NAMES.index("left_ankle")].any()
    np.testing.assert_array_equal(seq[0], blazepose_to_coco17(frames[0]))


def test_skeleton_model_exports_to_onnx_with_static_shapes_and_matches_torch(tmp_path: Path) -> None:
    torch = pytest.importorskip("torch")
    ort = pytest.importorskip("onnxruntime")
    from training.models.registry import build_model
    from training.models.skeleton_gait import SEQUENCE_FRAMES

    torch.manual_seed(0)
    model = build_model("skeleton_gait", num_classes=3).eval()
    n_params = sum(p.numel() for p in model.parameters())
    assert 3_000 <= n_params <= 100_000
    x = np.random.default_rng(2).uniform(0, 400, (1, SEQUENCE_FRAMES, 17, 3)).astype(np.float32)
    x[..., 2] = np.random.default_rng(3).uniform(0, 1, x.shape[:-1])
    out = tmp_path / "skeleton.onnx"
    torch.onnx.export(model, (torch.from_numpy(x),), str(out), input_names=["keypoints"], output_names=["logits"],
                      opset_version=17, dynamo=False)  # fmt: skip
    session = ort.InferenceSession(str(out), providers=["CPUExecutionProvider"])
    assert session.get_inputs()[0].shape == [1, SEQUENCE_FRAMES, 17, 3]
    with torch.no_grad():
        ref = model(torch.from_numpy(x)).numpy()
    np.testing.assert_allclose(session.run(None, {"keypoints": x})[0], ref, atol=1e-4)
