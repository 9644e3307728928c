"""Posture metrics on synthetic bodies with known geometry: values, signs, views and validity flags."""

from __future__ import annotations

import math

import numpy as np
import pytest

from contract.landmarks import Landmark as Lm
from edge.perception.types import Person
from edge.roles.common import main_person
from edge.roles.posture.metrics import CVA_CORRECTION, HEAD_FORWARD_CORRECTION, compute_metrics

HEAD = (Lm.NOSE, Lm.LEFT_EYE_INNER, Lm.LEFT_EYE, Lm.LEFT_EYE_OUTER, Lm.RIGHT_EYE_INNER, Lm.RIGHT_EYE,
        Lm.RIGHT_EYE_OUTER, Lm.LEFT_EAR, Lm.RIGHT_EAR, Lm.MOUTH_LEFT, Lm.MOUTH_RIGHT)  # fmt: skip
LOWER = (Lm.LEFT_HIP, Lm.RIGHT_HIP, Lm.LEFT_KNEE, Lm.RIGHT_KNEE, Lm.LEFT_ANKLE, Lm.RIGHT_ANKLE,
         Lm.LEFT_HEEL, Lm.RIGHT_HEEL, Lm.LEFT_FOOT_INDEX, Lm.RIGHT_FOOT_INDEX)  # fmt: skip
NECK_TO_EAR = 0.2
TORSO = 0.5
SCALE, CX, CY = 400.0, 320.0, 400.0


def _body() -> np.ndarray:
    """Upright body in its own frame (metres): x = subject's left, y down, z = behind the subject (facing -z)."""
    p = np.zeros((33, 3))
    for left, right, (x, y, z) in [
        (Lm.LEFT_HIP, Lm.RIGHT_HIP, (0.10, 0.0, 0.0)),
        (Lm.LEFT_KNEE, Lm.RIGHT_KNEE, (0.10, 0.0, -0.45)),  # seated: thighs forward
        (Lm.LEFT_ANKLE, Lm.RIGHT_ANKLE, (0.10, 0.45, -0.45)),
        (Lm.LEFT_HEEL, Lm.RIGHT_HEEL, (0.10, 0.48, -0.42)),
        (Lm.LEFT_FOOT_INDEX, Lm.RIGHT_FOOT_INDEX, (0.10, 0.48, -0.55)),
        (Lm.LEFT_SHOULDER, Lm.RIGHT_SHOULDER, (0.18, -TORSO, 0.0)),
        (Lm.LEFT_ELBOW, Lm.RIGHT_ELBOW, (0.20, -0.25, -0.05)),
        (Lm.LEFT_WRIST, Lm.RIGHT_WRIST, (0.15, -0.15, -0.30)),
        (Lm.LEFT_PINKY, Lm.RIGHT_PINKY, (0.15, -0.14, -0.33)),
        (Lm.LEFT_INDEX, Lm.RIGHT_INDEX, (0.14, -0.14, -0.34)),
        (Lm.LEFT_THUMB, Lm.RIGHT_THUMB, (0.13, -0.15, -0.32)),
        (Lm.LEFT_EAR, Lm.RIGHT_EAR, (0.08, -TORSO - NECK_TO_EAR, 0.0)),
        (Lm.LEFT_EYE_OUTER, Lm.RIGHT_EYE_OUTER, (0.05, -0.72, -0.08)),
        (Lm.LEFT_EYE, Lm.RIGHT_EYE, (0.035, -0.72, -0.09)),
        (Lm.LEFT_EYE_INNER, Lm.RIGHT_EYE_INNER, (0.02, -0.72, -0.09)),
        (Lm.MOUTH_LEFT, Lm.MOUTH_RIGHT, (0.03, -0.63, -0.09)),
    ]:
        p[left] = (x, y, z)
        p[right] = (-x, y, z)
    p[Lm.NOSE] = (0.0, -0.68, -0.11)
    return p


def _rot_xy(deg: float) -> np.ndarray:  # roll in the frontal plane; +: the subject's left side goes down
    a = math.radians(deg)
    return np.array([[math.cos(a), -math.sin(a), 0], [math.sin(a), math.cos(a), 0], [0, 0, 1]])


def _rot_yz(deg: float) -> np.ndarray:  # flexion in the sagittal plane; +: the top goes forward (-z)
    a = math.radians(deg)
    return np.array([[1, 0, 0], [0, math.cos(a), -math.sin(a)], [0, math.sin(a), math.cos(a)]])


def _rot_y(deg: float) -> np.ndarray:  # body yaw about the vertical
    a = math.radians(deg)
    return np.array([[math.cos(a), 0, math.sin(a)], [0, 1, 0], [-math.sin(a), 0, math.cos(a)]])


def synthetic_person(
    *,
    head_tilt: float = 0.0,
    neck_flexion: float = 0.0,
    trunk_flexion: float = 0.0,
    trunk_lean: float = 0.0,
    shoulder_drop: float = 0.0,
    yaw: float = 0.0,
    hidden: tuple[int, ...] = (),
) -> Person:
    """A person with the given posture (degrees; shoulder_drop in metres, left shoulder lower when > 0),
    seen by an orthographic camera: image = centre + SCALE·(x, y) after the body yaw."""
    p = _body()
    neck_base = 0.5 * (p[Lm.LEFT_SHOULDER] + p[Lm.RIGHT_SHOULDER])
    head = list(HEAD)
    p[head] = (p[head] - neck_base) @ (_rot_yz(neck_flexion) @ _rot_xy(head_tilt)).T + neck_base
    p[Lm.LEFT_SHOULDER, 1] += shoulder_drop
    upper = [i for i in range(33) if i not in LOWER]
    p[upper] = p[upper] @ (_rot_xy(trunk_lean) @ _rot_yz(trunk_flexion)).T
    world = (p @ _rot_y(yaw).T).astype(np.float32)
    keypoints = np.ones((33, 3), np.float32)
    keypoints[:, 0] = CX + SCALE * world[:, 0]
    keypoints[:, 1] = CY + SCALE * world[:, 1]
    keypoints[list(hidden), 2] = 0.1
    x0, y0 = keypoints[:, :2].min(axis=0)
    x1, y1 = keypoints[:, :2].max(axis=0)
    return Person(score=0.9, bbox=(float(x0), float(y0), float(x1), float(y1)), keypoints=keypoints, world=world)


@pytest.mark.parametrize("tilt", [-12.0, -5.0, 0.0, 7.0, 15.0])
def test_head_tilt_in_front_view_has_the_right_value_and_sign(tilt: float) -> None:
    m = compute_metrics(synthetic_person(head_tilt=tilt))
    assert m.view == "front" and m.body_yaw_deg == pytest.approx(0.0, abs=1e-3)
    assert m.values["head_tilt_deg"] == pytest.approx(tilt, abs=1e-3)  # > 0: the subject's left ear drops
    assert m.values["cva_deg"] is None and m.values["head_forward_ratio"] is None  # side-view metrics
    assert m.values["shoulder_asymmetry_deg"] == pytest.approx(0.0, abs=1e-3)


def test_head_tilt_uses_the_eye_line_when_an_ear_is_hidden_and_is_invalid_without_either() -> None:
    m = compute_metrics(synthetic_person(head_tilt=9.0, hidden=(Lm.LEFT_EAR,)))
    assert m.values["head_tilt_deg"] == pytest.approx(9.0, abs=1e-3)
    m = compute_metrics(synthetic_person(head_tilt=9.0, hidden=(Lm.LEFT_EAR, Lm.RIGHT_EYE_OUTER)))
    assert m.values["head_tilt_deg"] is None and not m.valid("head_tilt_deg")
    assert m.valid("shoulder_asymmetry_deg")


def test_visibility_threshold_is_configurable() -> None:
    person = synthetic_person(head_tilt=9.0, hidden=(Lm.LEFT_EAR, Lm.RIGHT_EYE_OUTER))  # visibility 0.1
    assert compute_metrics(person, min_visibility=0.05).values["head_tilt_deg"] == pytest.approx(9.0, abs=1e-3)


def test_shoulder_asymmetry_sign() -> None:
    drop = 0.03  # left shoulder 3 cm lower, shoulders 36 cm apart
    m = compute_metrics(synthetic_person(shoulder_drop=drop))
    assert m.values["shoulder_asymmetry_deg"] == pytest.approx(math.degrees(math.atan2(drop, 0.36)), abs=1e-3)
    m = compute_metrics(synthetic_person(shoulder_drop=-drop))
    assert m.values["shoulder_asymmetry_deg"] == pytest.approx(-math.degrees(math.atan2(drop, 0.36)), abs=1e-3)


@pytest.mark.parametrize("yaw", [90.0, -90.0])  # facing image right, then image left
@pytest.mark.parametrize("flexion", [0.0, 25.0, 40.0])
def test_side_view_cva_and_head_forward(yaw: float, flexion: float) -> None:
    m = compute_metrics(synthetic_person(neck_flexion=flexion, yaw=yaw), corrected=False)
    assert m.view == "side" and m.facing in (1, -1)
    # ear over the shoulder (C7 proxy) turned forward by `flexion`: CVA = 90° − flexion
    assert m.values["cva_deg"] == pytest.approx(90.0 - flexion, abs=1e-3)
    expected_forward = NECK_TO_EAR * math.sin(math.radians(flexion)) / TORSO
    assert m.values["head_forward_ratio"] == pytest.approx(expected_forward, abs=1e-4)
    # the device reports them mapped onto the clinical definitions (C7 -> tragus)
    c = compute_metrics(synthetic_person(neck_flexion=flexion, yaw=yaw))
    assert c.values["cva_deg"] == pytest.approx(CVA_CORRECTION(90.0 - flexion), abs=1e-3)
    assert c.values["head_forward_ratio"] == pytest.approx(HEAD_FORWARD_CORRECTION(expected_forward), abs=1e-4)
    assert c.values["neck_flexion_deg"] == m.values["neck_flexion_deg"]  # neck flexion keeps its definition
    assert m.values["head_tilt_deg"] is None and m.values["shoulder_asymmetry_deg"] is None  # front-view metrics
    assert m.values["neck_flexion_deg"] == pytest.approx(flexion, abs=1e-3)


def test_forward_head_lowers_cva_below_the_threshold() -> None:
    upright = compute_metrics(synthetic_person(neck_flexion=-15.0, yaw=90.0)).values["cva_deg"]
    forward = compute_metrics(synthetic_person(neck_flexion=20.0, yaw=90.0)).values["cva_deg"]
    assert upright is not None and forward is not None and upright > 50.0 > forward


@pytest.mark.parametrize("yaw", [0.0, 45.0, 90.0])
def test_sagittal_angles_from_world_landmarks_in_any_view(yaw: float) -> None:
    m = compute_metrics(synthetic_person(neck_flexion=30.0, trunk_flexion=15.0, yaw=yaw))
    # the neck is measured against the vertical: trunk 15° + neck 30° relative to it
    assert m.values["neck_flexion_deg"] == pytest.approx(45.0, abs=1e-3)
    assert m.values["trunk_flexion_deg"] == pytest.approx(15.0, abs=1e-3)
    assert m.values["trunk_lateral_lean_deg"] == pytest.approx(0.0, abs=1e-3)
    back = compute_metrics(synthetic_person(neck_flexion=-10.0, yaw=yaw)).values["neck_flexion_deg"]
    assert back == pytest.approx(-10.0, abs=1e-3)  # extension is negative


def test_trunk_lateral_lean_sign_and_its_effect_on_head_tilt() -> None:
    m = compute_metrics(synthetic_person(trunk_lean=8.0))
    assert m.values["trunk_lateral_lean_deg"] == pytest.approx(8.0, abs=1e-3)  # > 0: towards the subject's left
    assert m.values["head_tilt_deg"] == pytest.approx(8.0, abs=1e-3)  # the head goes with the trunk
    m = compute_metrics(synthetic_person(trunk_lean=-6.0))
    assert m.values["trunk_lateral_lean_deg"] == pytest.approx(-6.0, abs=1e-3)


def test_hidden_hips_invalidate_only_the_metrics_that_need_them() -> None:
    m = compute_metrics(synthetic_person(neck_flexion=20.0, yaw=90.0, hidden=(Lm.LEFT_HIP, Lm.RIGHT_HIP)))
    assert m.values["trunk_flexion_deg"] is None and m.values["trunk_lateral_lean_deg"] is None
    assert m.values["head_forward_ratio"] is None  # normalised by the torso length
    assert m.values["cva_deg"] == pytest.approx(CVA_CORRECTION(70.0), abs=1e-3) and m.valid("neck_flexion_deg")


def test_oblique_view_measures_neither_side_nor_front_metrics() -> None:
    m = compute_metrics(synthetic_person(head_tilt=10.0, yaw=45.0))
    assert m.view == "oblique"
    assert all(m.values[k] is None for k in ("cva_deg", "head_forward_ratio", "head_tilt_deg"))
    wide = compute_metrics(synthetic_person(head_tilt=10.0, yaw=45.0), front_view_max_deg=50, side_view_min_deg=60)
    assert wide.view == "front" and wide.valid("head_tilt_deg")


def test_view_without_world_landmarks_comes_from_the_image() -> None:
    person = synthetic_person(head_tilt=6.0)
    person.world = np.full((33, 3), np.nan, np.float32)
    m = compute_metrics(person)
    assert m.view == "front" and m.values["head_tilt_deg"] == pytest.approx(6.0, abs=1e-3)
    assert m.values["neck_flexion_deg"] is None and m.values["trunk_flexion_deg"] is None


def test_main_person_is_the_largest_and_vector_marks_invalid_as_nan() -> None:
    near, far = synthetic_person(), synthetic_person()
    far.bbox = (0.0, 0.0, 10.0, 10.0)
    assert main_person([far, near]) is near and main_person([]) is None
    m = compute_metrics(near)
    row = m.vector(["head_tilt_deg", "cva_deg"])
    assert row[0] == pytest.approx(0.0, abs=1e-3) and math.isnan(row[1])
