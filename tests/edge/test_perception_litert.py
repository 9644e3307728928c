"""Our pipeline on the converted ONNX models (ONNX Runtime) against the same pipeline on the original
.tflite models (LiteRT, the runtime MediaPipe uses): the same people, keypoints and head pose."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import cv2
import numpy as np
import pytest
from matplotlib import cbook
from skimage import data

from edge.backends.base import BackendConfig
from edge.perception.pipeline import PerceptionConfig, PerceptionPipeline
from tests.support.litert_backend import LiteRtBackend, extract_tflite_models, litert_factory


@pytest.fixture(scope="module")
def tflite_dir(model_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    return extract_tflite_models(model_dir, tmp_path_factory.mktemp("tflite"))


def _config() -> PerceptionConfig:
    return PerceptionConfig(backend=BackendConfig(threads=1), segmentation=True, smoothing={"enabled": False})


@pytest.fixture(scope="module")
def pipelines(model_dir: Path, tflite_dir: Path) -> Iterator[tuple[PerceptionPipeline, PerceptionPipeline]]:
    yield (
        PerceptionPipeline(_config(), model_dir),
        PerceptionPipeline(_config(), model_dir, backend_factory=litert_factory(tflite_dir, threads=1)),
    )


def _photos() -> list[np.ndarray]:
    path = cbook.get_sample_data("grace_hopper.jpg", asfileobj=False)
    hopper = cv2.imdecode(np.fromfile(str(path), np.uint8), cv2.IMREAD_COLOR)
    return [cv2.cvtColor(data.astronaut(), cv2.COLOR_RGB2BGR), hopper]


@pytest.mark.parametrize("index", [0, 1], ids=["astronaut", "grace_hopper"])
def test_onnxruntime_matches_litert(pipelines: tuple[PerceptionPipeline, PerceptionPipeline], index: int) -> None:
    ours, reference = pipelines
    image = _photos()[index]
    a = ours.process(image, 0.0).persons
    b = reference.process(image, 0.0).persons
    assert len(a) == len(b) == 1
    pa, pb = a[0], b[0]
    # Image pixels. The models agree to ~1e-3 input pixels; the heatmap refinement re-centres its 7×7
    # window on the raw landmark, so a point near a heatmap cell border may jump by a fraction of a cell,
    # which in a large ROI (hips and legs far out of a portrait) is over a pixel. Points in view: tight.
    assert np.abs(pa.keypoints[:13, :2] - pb.keypoints[:13, :2]).max() < 0.3  # face and shoulders
    h, w = image.shape[:2]
    in_image = np.all((pb.keypoints[:, :2] >= 0) & (pb.keypoints[:, :2] < [w, h]), axis=1)
    assert np.abs(pa.keypoints[in_image, :2] - pb.keypoints[in_image, :2]).max() < 0.5
    assert np.abs(pa.keypoints[:, 2] - pb.keypoints[:, 2]).max() < 1e-2
    assert np.abs(pa.world - pb.world).max() < 5e-3  # metres
    assert pa.score == pytest.approx(pb.score, abs=1e-3)
    assert pa.face_landmarks is not None and pb.face_landmarks is not None
    assert np.abs(pa.face_landmarks[:, :2] - pb.face_landmarks[:, :2]).max() < 0.5
    assert pa.head_pose is not None and pb.head_pose is not None
    assert (pa.head_pose.yaw, pa.head_pose.pitch, pa.head_pose.roll) == pytest.approx(
        (pb.head_pose.yaw, pb.head_pose.pitch, pb.head_pose.roll), abs=0.5
    )
    assert pa.mask is not None and pb.mask is not None
    assert np.mean(np.abs(pa.mask - pb.mask)) < 1e-2


def test_litert_backend_names_a_missing_model(tmp_path: Path) -> None:
    with pytest.raises(Exception, match=r"nothing\.tflite"):
        LiteRtBackend(BackendConfig()).load(tmp_path / "nothing.tflite")
