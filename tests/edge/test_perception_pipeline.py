"""The full perception pipeline on real photos, on the converted ONNX models under ONNX Runtime."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import cv2
import numpy as np
import numpy.typing as npt
import pytest
from matplotlib import cbook
from skimage import data

from contract.landmarks import Landmark as L  # noqa: N817
from edge.backends.base import BackendConfig
from edge.perception.pipeline import PerceptionConfig, PerceptionPipeline
from edge.perception.types import Person

Image = npt.NDArray[np.uint8]
# Smallest even square that holds the 512×512 photo turned by any angle, centred exactly.
CANVAS = 726


def astronaut() -> Image:
    return np.ascontiguousarray(cv2.cvtColor(data.astronaut(), cv2.COLOR_RGB2BGR))


def grace_hopper() -> Image:
    path = cbook.get_sample_data("grace_hopper.jpg", asfileobj=False)
    raw = np.fromfile(str(path), dtype=np.uint8)
    return np.asarray(cv2.imdecode(raw, cv2.IMREAD_COLOR), dtype=np.uint8)


def on_canvas(image: Image, degrees: float, size: int = CANVAS) -> tuple[Image, npt.NDArray[np.float64]]:
    """The photo centred on a black square canvas, turned by `degrees` (counter-clockwise); and the
    2×3 map from canvas-before-turning to canvas-after-turning pixels."""
    h, w = image.shape[:2]
    canvas = np.zeros((size, size, 3), np.uint8)
    oy, ox = (size - h) // 2, (size - w) // 2
    canvas[oy : oy + h, ox : ox + w] = image
    turn = cv2.getRotationMatrix2D((size / 2, size / 2), degrees, 1.0)
    return np.asarray(cv2.warpAffine(canvas, turn, (size, size)), dtype=np.uint8), np.asarray(turn, np.float64)


def only_person(pipeline: PerceptionPipeline, image: Image) -> Person:
    pipeline.reset()
    result = pipeline.process(image, 0.0)
    assert len(result.persons) == 1, f"expected one person, found {len(result.persons)}"
    return result.persons[0]


@pytest.fixture(scope="module")
def pipeline(model_dir: Path) -> Iterator[PerceptionPipeline]:
    config = PerceptionConfig(backend=BackendConfig(threads=1), smoothing={"enabled": False}, segmentation=True)
    yield PerceptionPipeline(config, model_dir)


def assert_plausible_head_and_shoulders(k: npt.NDArray[np.float32]) -> None:
    """Keypoints where a person would put them, for an upright person facing the camera."""
    nose, l_eye, r_eye = k[L.NOSE, :2], k[L.LEFT_EYE, :2], k[L.RIGHT_EYE, :2]
    l_ear, r_ear = k[L.LEFT_EAR, :2], k[L.RIGHT_EAR, :2]
    l_sh, r_sh = k[L.LEFT_SHOULDER, :2], k[L.RIGHT_SHOULDER, :2]
    # The subject's left is on the image's right when they face the camera.
    assert l_eye[0] > nose[0] > r_eye[0]
    assert l_ear[0] > l_eye[0] and r_ear[0] < r_eye[0]
    assert l_sh[0] > nose[0] > r_sh[0]
    # Image y grows downwards: eyes above the nose, mouth below it, shoulders below the ears.
    assert l_eye[1] < nose[1] and r_eye[1] < nose[1]
    assert k[L.MOUTH_LEFT, 1] > nose[1] and k[L.MOUTH_RIGHT, 1] > nose[1]
    assert l_sh[1] > l_ear[1] and r_sh[1] > r_ear[1]
    eye_gap = float(np.linalg.norm(l_eye - r_eye))
    shoulder_width = float(np.linalg.norm(l_sh - r_sh))
    ear_gap = float(np.linalg.norm(l_ear - r_ear))
    assert 2.0 < shoulder_width / eye_gap < 8.0
    assert ear_gap > eye_gap
    assert np.all(k[: L.RIGHT_SHOULDER + 1, 2] > 0.9), "head and shoulders are in plain view"


def test_astronaut_head_and_shoulders(pipeline: PerceptionPipeline) -> None:
    person = only_person(pipeline, astronaut())
    k = person.keypoints
    assert k.shape == (33, 3) and person.world.shape == (33, 3)
    assert_plausible_head_and_shoulders(k)
    # Her face is around (225, 125) in the 512×512 photo (eyes ~ 35 px apart).
    assert 190 < k[L.NOSE, 0] < 260 and 90 < k[L.NOSE, 1] < 160
    assert 25 < np.linalg.norm(k[L.LEFT_EYE, :2] - k[L.RIGHT_EYE, :2]) < 70
    # World landmarks: metres around the hip centre, shoulders 0.25–0.5 m apart, head above them (y down).
    shoulders_m = float(np.linalg.norm(person.world[L.LEFT_SHOULDER] - person.world[L.RIGHT_SHOULDER]))
    assert 0.25 < shoulders_m < 0.5
    assert person.world[L.NOSE, 1] < person.world[L.LEFT_SHOULDER, 1]
    x0, y0, x1, _ = person.bbox
    assert 0 <= x0 < k[L.RIGHT_SHOULDER, 0] and k[L.LEFT_SHOULDER, 0] < x1 <= 512 and y0 < k[L.LEFT_EYE, 1]
    assert person.head_pose is not None and person.face_landmarks is not None
    assert person.face_landmarks.shape == (468, 3)
    assert abs(person.head_pose.yaw) < 20 and abs(person.head_pose.roll) < 15


def test_segmentation_mask_is_in_image_coordinates(pipeline: PerceptionPipeline) -> None:
    image = astronaut()
    person = only_person(pipeline, image)
    mask = person.mask
    assert mask is not None and mask.shape == image.shape[:2]
    assert float(mask.min()) >= 0.0 and float(mask.max()) <= 1.0
    k = person.keypoints
    chest = ((k[L.LEFT_SHOULDER, :2] + k[L.RIGHT_SHOULDER, :2]) / 2 + [0, 60]).astype(int)
    assert mask[chest[1], chest[0]] > 0.8
    assert mask[int(k[L.NOSE, 1]), int(k[L.NOSE, 0])] > 0.8
    assert mask[30, 480] < 0.2, "sky in the top right corner is background"


def test_grace_hopper(pipeline: PerceptionPipeline) -> None:
    image = grace_hopper()
    person = only_person(pipeline, image)
    assert_plausible_head_and_shoulders(person.keypoints)
    nose = person.keypoints[L.NOSE]
    # Her face is in the upper middle of the 512×600 portrait.
    assert 180 < nose[0] < 340 and 150 < nose[1] < 320
    assert person.head_pose is not None and abs(person.head_pose.roll) < 15


@pytest.fixture(scope="module")
def upright_on_canvas(pipeline: PerceptionPipeline) -> Person:
    image, _ = on_canvas(astronaut(), 0.0)
    return only_person(pipeline, image)


@pytest.mark.parametrize("degrees", [30, -30, 45, -45, 60, -60])
def test_turned_photo_keypoints_follow_the_turn(
    pipeline: PerceptionPipeline, upright_on_canvas: Person, degrees: int
) -> None:
    """Keypoints 0–12 on the turned canvas are those of the upright canvas sent through the same turn.

    The reference is the photo on the same canvas unturned: black below the chest changes where the model
    puts the shoulders compared with the bare photo (whose crop edge is replicated), turning or not.
    """
    image, turn = on_canvas(astronaut(), degrees)
    person = only_person(pipeline, image)
    ref = upright_on_canvas.keypoints[:13, :2].astype(np.float64)
    expected = ref @ turn[:, :2].T + turn[:, 2]
    error = np.linalg.norm(person.keypoints[:13, :2] - expected, axis=1)
    shoulder_width = float(np.linalg.norm(ref[L.LEFT_SHOULDER] - ref[L.RIGHT_SHOULDER]))
    assert error.mean() <= 0.03 * shoulder_width, f"mean error {100 * error.mean() / shoulder_width:.1f}%"
    assert error.max() <= 0.12 * shoulder_width, f"max error {100 * error.max() / shoulder_width:.1f}%"
    # Turning the image counter-clockwise lifts the subject's left ear: roll falls by the angle.
    assert person.head_pose is not None and upright_on_canvas.head_pose is not None
    assert person.head_pose.roll == pytest.approx(upright_on_canvas.head_pose.roll - degrees, abs=4.0)


def test_mirrored_photo_mirrors_yaw_and_roll(pipeline: PerceptionPipeline) -> None:
    image = astronaut()
    a = only_person(pipeline, image).head_pose
    b = only_person(pipeline, image[:, ::-1]).head_pose  # a mirrored view, not a copy
    assert a is not None and b is not None
    assert b.yaw == pytest.approx(-a.yaw, abs=3.0)
    assert b.roll == pytest.approx(-a.roll, abs=3.0)
    assert b.pitch == pytest.approx(a.pitch, abs=3.0)


def test_blank_image_has_no_person(pipeline: PerceptionPipeline) -> None:
    pipeline.reset()
    for blank in (np.zeros((480, 640, 3), np.uint8), np.full((480, 640, 3), 200, np.uint8)):
        result = pipeline.process(blank, 0.0)
        assert result.persons == []
        assert (result.width, result.height) == (640, 480)
        assert result.stage_ms["pose_detection"] > 0


def test_tracking_skips_the_detector_until_the_person_leaves(model_dir: Path) -> None:
    config = PerceptionConfig(backend=BackendConfig(threads=1), face=False)
    pipe = PerceptionPipeline(config, model_dir)
    assert pipe.pose_detector is not None and pipe.pose_landmarker is not None
    image = astronaut()
    calls = []
    for i in range(4):
        result = pipe.process(image, i / 30)
        assert len(result.persons) == 1
        calls.append(pipe.pose_detector.calls)
    assert calls == [1, 1, 1, 1], "only the first frame runs the detector"
    assert pipe.pose_landmarker.calls == 4
    # The person leaves: the tracked ROI finds nobody, the detector runs again on that frame and the next.
    empty = np.zeros_like(image)
    assert pipe.process(empty, 5 / 30).persons == []
    assert pipe.pose_detector.calls == 2
    assert pipe.process(empty, 6 / 30).persons == []
    assert pipe.pose_detector.calls == 3
    # Back again: detected once, then tracked.
    assert len(pipe.process(image, 7 / 30).persons) == 1
    assert len(pipe.process(image, 8 / 30).persons) == 1
    assert pipe.pose_detector.calls == 4
    pipe.reset()
    pipe.process(image, 9 / 30)
    assert pipe.pose_detector.calls == 5, "reset() forgets the track"


def test_smoothing_steadies_a_jittering_person(model_dir: Path) -> None:
    """Shift the photo by ±8 px every frame: smoothed keypoints move much less than raw ones."""
    image = astronaut()
    jitter = [0, 8, -8, 8, -8, 8, -8, 8, -8, 8]
    noses = {}
    for enabled in (False, True):
        pipe = PerceptionPipeline(
            PerceptionConfig(backend=BackendConfig(threads=1), face=False, smoothing={"enabled": enabled}), model_dir
        )
        track = []
        for i, dx in enumerate(jitter):
            shifted = np.asarray(
                cv2.warpAffine(image, np.array([[1, 0, dx], [0, 1, 0]], np.float32), (512, 512)), np.uint8
            )
            (person,) = pipe.process(shifted, i / 30).persons
            track.append(person.keypoints[L.NOSE, 0])
        noses[enabled] = np.abs(np.diff(track[2:]))
    assert noses[False].mean() > 8.0
    assert noses[True].mean() < 0.5 * noses[False].mean()


def test_two_people_side_by_side_are_both_reported(model_dir: Path) -> None:
    config = PerceptionConfig(backend=BackendConfig(threads=1), max_persons=2, smoothing={"enabled": False})
    pipe = PerceptionPipeline(config, model_dir)
    photo = astronaut()
    gap = np.zeros((512, 200, 3), np.uint8)
    pair = np.ascontiguousarray(np.concatenate([photo, gap, photo[:, ::-1]], axis=1))
    for i in range(3):
        result = pipe.process(pair, i / 30)
        assert len(result.persons) == 2
        noses = sorted(float(p.keypoints[L.NOSE, 0]) for p in result.persons)
        assert noses[0] < 512 and noses[1] > 712
        assert all(p.head_pose is not None for p in result.persons)


def test_models_are_named_with_the_store_hashes(pipeline: PerceptionPipeline, model_dir: Path) -> None:
    from edge.model_store import ModelStore

    store = ModelStore(model_dir)
    refs = pipeline.models
    assert [r.name for r in refs] == [
        "pose_detection",
        "pose_landmark_full",
        "face_detection_short_range",
        "face_landmark",
    ]
    assert all(r.sha256 == store.entry(r.name).sha256 for r in refs)


def test_bad_frames_are_refused_with_the_reason(pipeline: PerceptionPipeline) -> None:
    with pytest.raises(ValueError, match="uint8"):
        pipeline.process(np.zeros((10, 10, 3), np.float32), 0.0)
    with pytest.raises(ValueError, match="shape"):
        pipeline.process(np.zeros((10, 10, 5), np.uint8), 0.0)
    with pytest.raises(ValueError, match="non-empty"):
        pipeline.process(np.zeros((0, 10, 3), np.uint8), 0.0)


def test_face_is_tracked_from_its_landmarks(model_dir: Path) -> None:
    pipe = PerceptionPipeline(PerceptionConfig(backend=BackendConfig(threads=1)), model_dir)
    assert pipe.face_detector is not None and pipe.face_landmarker is not None
    image = astronaut()
    rolls = []
    for i in range(3):
        (person,) = pipe.process(image, i / 30).persons
        assert person.head_pose is not None
        rolls.append(person.head_pose.roll)
    assert pipe.face_detector.calls == 1 and pipe.face_landmarker.calls == 3
    assert max(rolls) - min(rolls) < 2.0


def test_a_person_too_small_for_the_whole_frame_is_found_in_a_detection_region(model_dir: Path) -> None:
    """The astronaut shrunk to 110 px in a 640×480 frame (a student at the far end of a corridor): the detector
    misses her in the whole frame, finds her in a region magnified to its input, and her keypoints come back in
    the frame's pixels."""
    size, (cx, cy) = 110, (420, 200)
    frame = np.full((480, 640, 3), 110, np.uint8)
    x0, y0 = cx - size // 2, cy - size // 2
    frame[y0 : y0 + size, x0 : x0 + size] = cv2.resize(astronaut(), (size, size), interpolation=cv2.INTER_AREA)
    reference = only_person(PerceptionPipeline(PerceptionConfig(face=False), model_dir), astronaut())
    expected_nose = np.array([x0, y0]) + reference.keypoints[L.NOSE, :2] * size / 512

    def persons(regions: list[tuple[float, float, float, float]]) -> list[Person]:
        config = PerceptionConfig(backend=BackendConfig(threads=1), face=False, detection_regions=regions)
        return PerceptionPipeline(config, model_dir).process(frame, 0.0).persons

    assert persons([]) == []
    assert persons([(0.0, 0.5, 0.3, 1.0)]) == [], "a region where nobody stands finds nobody"
    (found,) = persons([(0.5, 0.2, 0.8, 0.65)])
    assert np.linalg.norm(found.keypoints[L.NOSE, :2] - expected_nose) < 6.0


def test_a_detection_region_outside_the_frame_is_refused() -> None:
    with pytest.raises(ValueError, match=r"detection region \[0\.5, 0\.2, 1\.2, 0\.6\]"):
        PerceptionConfig(detection_regions=[(0.5, 0.2, 1.2, 0.6)])
