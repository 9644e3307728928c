"""Head-pose metrics on synthetic bodies with known head yaw, pitch, roll and shift; severity items; windows."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest

from contract.landmarks import NUM_LANDMARKS
from edge.perception.types import FrameResult, HeadPose, Person
from edge.roles.base import EmitContext
from edge.roles.headpose.analyzer import HeadPoseAnalyzer
from edge.roles.headpose.config import HeadPoseConfig, SeverityBands
from edge.roles.headpose.message import HeadPoseWindow
from edge.roles.headpose.metrics import compute_headpose, severity_items
from edge.roles.registry import create_analyzer
from training.synth.body import J, pose_body, sample_anthropometry
from training.synth.camera import view_camera
from training.synth.posture import Posture
from training.synth.render import estimator_keypoints
from training.synth.tasks import SEAT_HEIGHT, SEATED


def _person(posture: Posture, seed: int = 0, noise: float = 0.0) -> Person:
    rng = np.random.default_rng(seed)
    anthro = sample_anthropometry(rng)
    skel = pose_body(anthro, posture, SEATED, root=(0.0, SEAT_HEIGHT, 0.0), on_ground=False)
    target = skel["c7"] + np.array([0.0, 0.06, 0.0])
    level = (float(target[1]), float(target[1]))
    cam = view_camera(rng, 640, 640, view="front", target=target, distance=(1.0, 1.0), camera_height=level,
                      hfov=(42.0, 42.0), distortion=0.0)  # fmt: skip
    kp = estimator_keypoints(skel.joints, cam, rng, noise=noise, dropout=0.0).reshape(NUM_LANDMARKS, 3)
    world = cam.to_camera(skel.joints[:NUM_LANDMARKS]) - cam.to_camera(skel.joints[J["pelvis"]])
    return Person(score=0.9, bbox=(0, 0, 640, 640), keypoints=kp.astype(np.float32), world=world.astype(np.float32))


NEUTRAL = Posture()


@pytest.mark.parametrize(
    ("change", "metric", "expected", "tolerance"),
    [
        ({"head_roll": 20.0}, "roll_deg", 20.0, 3.0),
        ({"head_roll": -12.0}, "roll_deg", -12.0, 3.0),
        ({"head_yaw": 30.0}, "yaw_deg", 30.0, 5.0),
        ({"head_yaw": -20.0}, "yaw_deg", -20.0, 5.0),
        ({"head_pitch": 20.0}, "pitch_deg", 20.0, 5.0),
        ({"head_pitch": -15.0}, "pitch_deg", -15.0, 5.0),
        ({"head_lateral_shift": 0.04}, "lateral_shift_cm", 4.0, 1.0),
        ({"head_lateral_shift": -0.03}, "lateral_shift_cm", -3.0, 1.0),
        ({"head_sagittal_shift": 0.05}, "sagittal_shift_cm", 5.0, 1.5),
    ],
)
def test_keypoint_metrics_follow_the_known_head_pose(
    change: dict[str, float], metric: str, expected: float, tolerance: float
) -> None:
    base = compute_headpose(_person(NEUTRAL)).values[metric]
    moved = compute_headpose(_person(replace(NEUTRAL, **change))).values[metric]
    assert base is not None and moved is not None
    # the change from the same subject's neutral posture: the sign convention and the scale
    assert moved - base == pytest.approx(expected, abs=tolerance), (base, moved)


def test_face_angles_are_used_when_perception_found_a_face() -> None:
    person = _person(replace(NEUTRAL, head_roll=20.0))
    person.head_pose = HeadPose(yaw=-7.0, pitch=3.0, roll=11.0)
    frame = compute_headpose(person)
    assert frame.source == "face"
    assert (frame.values["yaw_deg"], frame.values["pitch_deg"], frame.values["roll_deg"]) == (-7.0, 3.0, 11.0)
    assert frame.values["lateral_shift_cm"] is not None  # shifts still come from the body keypoints


def test_hidden_ears_leave_the_shift_unmeasured() -> None:
    person = _person(NEUTRAL)
    person.keypoints[[7, 8], 2] = 0.1
    frame = compute_headpose(person)
    assert frame.values["lateral_shift_cm"] is None and frame.values["yaw_deg"] is None
    assert frame.values["roll_deg"] is not None  # the eye line still gives the tilt


@pytest.mark.parametrize(
    ("typical", "expected"),
    [
        ({"yaw_deg": 2.0}, {"rotation": 0}),
        ({"yaw_deg": -10.0}, {"rotation": 1}),
        ({"yaw_deg": 30.0}, {"rotation": 2}),
        ({"yaw_deg": 50.0}, {"rotation": 3}),
        ({"yaw_deg": 80.0}, {"rotation": 4}),
        ({"roll_deg": 10.0}, {"laterocollis": 1}),
        ({"roll_deg": -20.0}, {"laterocollis": 2}),
        ({"roll_deg": 40.0}, {"laterocollis": 3}),
        ({"pitch_deg": -25.0}, {"antero_retrocollis": 2}),
        ({"lateral_shift_cm": 1.0, "sagittal_shift_cm": -3.0}, {"lateral_shift": 0, "sagittal_shift": 1}),
    ],
)
def test_severity_items_follow_the_twstrs_bands(typical: dict[str, float | None], expected: dict[str, int]) -> None:
    assert severity_items(typical, SeverityBands()) == expected


def test_severity_bands_must_increase() -> None:
    with pytest.raises(ValueError, match="strictly increasing"):
        SeverityBands(rotation=[5.0, 4.0])


def _frame(t: float, roll: float | None) -> FrameResult:
    persons = []
    if roll is not None:
        p = _person(NEUTRAL)
        p.head_pose = HeadPose(yaw=0.0, pitch=0.0, roll=roll)
        persons.append(p)
    return FrameResult(timestamp=t, width=640, height=640, persons=persons)


def test_windows_report_range_and_time_above_threshold() -> None:
    ctx = EmitContext(site="clinic", device_id="station-1")
    config = HeadPoseConfig.model_validate({"window_s": 2.0, "above": {"roll_deg": 10.0}})
    analyzer = create_analyzer("headpose", ctx, config)
    assert isinstance(analyzer, HeadPoseAnalyzer)
    # 10 fps: window 1 has 1 s level then 1 s tilted by 25°; window 2 nobody; window 3 level
    rolls: list[float | None] = [0.0] * 10 + [25.0] * 10 + [None] * 20 + [2.0] * 10
    messages = []
    for i, roll in enumerate(rolls):
        messages += analyzer.process(_frame(i / 10, roll))
    messages += analyzer.flush()
    assert [m.seq for m in messages] == [0, 1]
    first, last = messages
    assert isinstance(first, HeadPoseWindow) and isinstance(last, HeadPoseWindow)
    stats = first.metrics["roll_deg"]
    assert stats.valid_frames == 20 and stats.minimum == 0.0 and stats.maximum == 25.0 and stats.range == 25.0
    assert stats.mean == pytest.approx(12.5)
    assert stats.time_above_s == pytest.approx(1.0, abs=1e-6)
    assert first.severity["laterocollis"] == 1  # the median magnitude (12.5°) is a mild laterocollis
    assert analyzer.absent_windows == 1
    assert last.metrics["roll_deg"].time_above_s == 0.0 and last.severity["laterocollis"] == 0
    assert first.presence_s == pytest.approx(1.9, abs=0.11)


def test_a_window_takes_its_angles_from_the_face_whenever_the_face_was_found() -> None:
    """Keypoint angles stand in only for a window without a face: mixed in, they would pull the face's angles
    towards zero (they read a fraction of the true turn)."""
    ctx = EmitContext(site="clinic", device_id="station-1")
    analyzer = create_analyzer("headpose", ctx, HeadPoseConfig.model_validate({"window_s": 2.0}))
    turned = replace(NEUTRAL, head_yaw=30.0)
    keypoint_yaw = compute_headpose(_person(turned)).values["yaw_deg"]
    assert keypoint_yaw is not None
    messages = []
    for i in range(40):  # window 1: the face in every other frame; window 2: never
        person = _person(turned)
        if i < 20 and i % 2 == 0:
            person.head_pose = HeadPose(yaw=30.0, pitch=0.0, roll=0.0)
        messages += analyzer.process(FrameResult(timestamp=i / 10, width=640, height=640, persons=[person]))
    messages += analyzer.flush()
    first, second = messages
    assert isinstance(first, HeadPoseWindow) and isinstance(second, HeadPoseWindow)
    face_only = first.metrics["yaw_deg"]
    assert face_only.valid_frames == 10 and face_only.mean == pytest.approx(30.0)
    assert first.metrics["lateral_shift_cm"].valid_frames == 20  # shifts come from every frame's keypoints
    stand_in = second.metrics["yaw_deg"]
    assert stand_in.valid_frames == 20 and stand_in.mean == pytest.approx(keypoint_yaw, abs=1e-6)
