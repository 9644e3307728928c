"""Per-frame truth of every metric the devices report, by its wire name, from an avatar's truth points.

Two definitions of each:
- `<wire name>`: as docs/metrics.md defines it from the 33 landmarks, computed by the device's own functions
  (`edge.roles.posture.metrics.compute_metrics`, `edge.roles.headpose.metrics.compute_headpose`,
  `edge.roles.gait.measures`) on the exact landmarks: pixels from the camera, world landmarks in the camera's
  axes with the origin between the hips, as BlazePose gives them. This is what a perfect pose model would make
  the device report, view rules and all (a side-view metric is None in a front view). The head-pose angles here
  are the keypoint path's (the device's fallback without a face).
- `<wire name>_clinical`: the clinical definition from anatomical points, independent of the camera:
  craniovertebral angle = the C7 -> tragus line above the horizontal in the trunk's sagittal plane (Yip et al.
  2008); neck flexion = the same line against the vertical (photogrammetric neck inclination); head forward
  distance = tragus ahead of C7 over the C7-to-hip-joint length; head tilt = the tragus line, shoulder
  asymmetry = the acromion line, against the horizontal; trunk flexion and lateral lean = the line from the
  hip-joint centres to the acromions' midpoint against the vertical; head yaw / pitch / roll = the head's
  orientation relative to the thorax's heading (pitch and roll against the vertical, as HeadPose); head shifts
  = the mid-tragus point relative to C7 along the trunk's left and forward axes (raw: C7 lies behind the
  tragus, so the neutral sagittal value is some 8-10 cm); gait shoulder height difference and pelvic obliquity
  = the acromion and hip-joint lines; `trunk_rotation_deg_clinical` (no device metric) = the acromion line
  turned about the vertical from the hip-joint line, + the front turning to the subject's left.
- `<yaw|pitch|roll>_deg_camera`: the head's orientation relative to the camera (what the face fit measures):
  0 when the head squarely faces a level camera.

Axes: the avatar world frame (mesh.py: x left, y up, z forward of a subject at heading 0). Trunk axes as the
device takes them: L = the horizontal part of left minus right shoulder (here acromion), U = up, F = L x U.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import TYPE_CHECKING

import numpy as np
import numpy.typing as npt

from contract.landmarks import NUM_LANDMARKS
from contract.landmarks import Landmark as Lm
from edge.perception.types import Person
from edge.roles.gait.measures import GAIT_MEASURES, Track, gait_cycles, gait_measures
from edge.roles.gait.walk import WalkFrame
from edge.roles.headpose.metrics import compute_headpose
from edge.roles.posture.config import POSTURE_METRICS
from edge.roles.posture.metrics import compute_metrics
from training.synth.avatar.mesh import BodyPoints

if TYPE_CHECKING:
    from training.synth.camera import Camera

F64 = npt.NDArray[np.float64]
UP = np.array([0.0, 1.0, 0.0])
HEADPOSE_METRICS: tuple[str, ...] = ("yaw_deg", "pitch_deg", "roll_deg", "lateral_shift_cm", "sagittal_shift_cm")
GAIT_FRAME_METRICS: tuple[str, ...] = ("shoulder_height_diff_deg", "pelvic_obliquity_deg")
CAMERA_ANGLES: tuple[str, ...] = ("yaw_deg_camera", "pitch_deg_camera", "roll_deg_camera")
OPENCV_TO_SUBJECT = np.diag([1.0, -1.0, -1.0])  # camera x right, y down, z forward -> facing subject's left/up/fwd


# --- landmarks as the device sees them ------------------------------------------------------------------------


def pixel_keypoints(points: BodyPoints, camera: Camera, visible: npt.ArrayLike | None = None) -> F64:
    """(33, 3) [x_px, y_px, visibility]: the landmarks projected by `camera`; visibility 1 where the point is in
    front of the camera and inside the image (or `visible`, e.g. from Frame.project, where given)."""
    uv, depth = camera.project(points.blazepose.astype(np.float64))
    if visible is None:
        inside = (
            (depth > 0) & (uv[:, 0] >= 0) & (uv[:, 0] < camera.width) & (uv[:, 1] >= 0) & (uv[:, 1] < camera.height)
        )
        vis = inside.astype(np.float64)
    else:
        vis = np.asarray(visible, np.float64).reshape(NUM_LANDMARKS)
    return np.column_stack([uv, vis])


def device_world(points: BodyPoints, camera: Camera) -> F64:
    """The landmarks as BlazePose world landmarks: metres, origin between the hips, camera axes (x right,
    y down, z away from the camera)."""
    w = points.blazepose.astype(np.float64)
    mid_hips = 0.5 * (w[Lm.LEFT_HIP] + w[Lm.RIGHT_HIP])
    return np.asarray((w - mid_hips) @ np.asarray(camera.rotation, np.float64).T)


def device_person(points: BodyPoints, camera: Camera, visible: npt.ArrayLike | None = None) -> Person:
    """A perception `Person` carrying the exact landmarks, as a perfect pose model would report them."""
    kp = pixel_keypoints(points, camera, visible)
    seen = kp[kp[:, 2] > 0, :2]
    box = (*seen.min(axis=0), *seen.max(axis=0)) if len(seen) else (0.0, 0.0, 0.0, 0.0)
    return Person(
        score=1.0,
        bbox=(float(box[0]), float(box[1]), float(box[2]), float(box[3])),
        keypoints=kp.astype(np.float32),
        world=device_world(points, camera).astype(np.float32),
    )


def landmark_metrics(
    points: BodyPoints, camera: Camera, visible: npt.ArrayLike | None = None
) -> dict[str, float | None]:
    """Posture, head-pose and per-frame gait metrics by the device's definitions on the exact landmarks."""
    person = device_person(points, camera, visible)
    out: dict[str, float | None] = dict(compute_metrics(person).values)
    out.update(compute_headpose(person).values)
    world = np.asarray(person.world, np.float64)
    for name, (left, right) in zip(
        GAIT_FRAME_METRICS,
        ((Lm.LEFT_SHOULDER, Lm.RIGHT_SHOULDER), (Lm.LEFT_HIP, Lm.RIGHT_HIP)),
        strict=True,
    ):
        v = world[left] - world[right]  # y down: elevation of the left point is -v_y
        out[name] = math.degrees(math.atan2(-v[1], math.hypot(v[0], v[2])))
    return out


# --- clinical definitions from anatomical points ----------------------------------------------------------------


def _trunk_axes(a: dict[str, np.ndarray]) -> tuple[F64, F64]:
    left = np.asarray(a["acromion_l"], np.float64) - np.asarray(a["acromion_r"], np.float64)
    left[1] = 0.0
    left /= np.linalg.norm(left)
    return left, np.cross(left, UP)


def _elevation(v: F64) -> float:
    """Angle of v above the horizontal, degrees."""
    return math.degrees(math.atan2(float(v[1]), math.hypot(float(v[0]), float(v[2]))))


def _turn(upper: F64, lower: F64) -> float:
    """How far the `upper` left-right line is turned about the vertical from the `lower` one (degrees, + the
    front turning to the subject's left)."""
    a = math.atan2(-float(upper[2]), float(upper[0]))
    b = math.atan2(-float(lower[2]), float(lower[0]))
    return math.degrees(math.remainder(a - b, 2 * math.pi))


def head_angles(relative: F64) -> tuple[float, float, float]:
    """(yaw, pitch, roll) in HeadPose conventions of a head orientation R (columns: the head's left, up, forward)
    relative to a reference, decomposed as R = rot_y(yaw) rot_x(-pitch) rot_lat(roll) (training.synth.body)."""
    r = np.asarray(relative, np.float64)
    # rot_y(a) rot_x(b) rot_z(c) with rot_x(b) = rot_x(-pitch) and rot_z(c) = rot_lat(roll) (c = -roll):
    pitch = math.degrees(math.asin(float(np.clip(r[1, 2], -1.0, 1.0))))  # r[1,2] = sin(-b) = sin(pitch)
    yaw = math.degrees(math.atan2(float(r[0, 2]), float(r[2, 2])))
    roll = math.degrees(math.atan2(float(r[1, 0]), float(r[1, 1])))  # r[1,0] = cos b sin c... c = -roll
    return yaw, pitch, -roll


def clinical_metrics(points: BodyPoints) -> dict[str, float | None]:
    """The clinical definitions (module docstring) from the anatomical points and segment frames."""
    a = {k: np.asarray(v, np.float64) for k, v in points.anatomical.items()}
    left, forward = _trunk_axes(a)
    tragus = 0.5 * (a["tragus_l"] + a["tragus_r"])
    head = tragus - a["c7"]
    hips = 0.5 * (a["hip_joint_l"] + a["hip_joint_r"])
    trunk = 0.5 * (a["acromion_l"] + a["acromion_r"]) - hips
    out: dict[str, float | None] = {
        "cva_deg": math.degrees(math.atan2(float(head @ UP), float(head @ forward))),
        "neck_flexion_deg": math.degrees(math.atan2(float(head @ forward), float(head @ UP))),
        "head_forward_ratio": float(head @ forward) / float(np.linalg.norm(a["c7"] - hips)),
        "head_tilt_deg": -_elevation(a["tragus_l"] - a["tragus_r"]),
        "shoulder_asymmetry_deg": -_elevation(a["acromion_l"] - a["acromion_r"]),
        "trunk_flexion_deg": math.degrees(math.atan2(float(trunk @ forward), float(trunk @ UP))),
        "trunk_lateral_lean_deg": math.degrees(math.atan2(float(trunk @ left), float(trunk @ UP))),
        "lateral_shift_cm": 100.0 * float(head @ left),
        "sagittal_shift_cm": 100.0 * float(head @ forward),
        "shoulder_height_diff_deg": _elevation(a["acromion_l"] - a["acromion_r"]),
        "pelvic_obliquity_deg": _elevation(a["hip_joint_l"] - a["hip_joint_r"]),
        "trunk_rotation_deg": _turn(a["acromion_l"] - a["acromion_r"], a["hip_joint_l"] - a["hip_joint_r"]),
    }
    if "head" in points.frames and "thorax" in points.frames:
        thorax = np.asarray(points.frames["thorax"], np.float64)
        heading = math.atan2(thorax[0, 2], thorax[2, 2])  # the thorax's forward axis about the vertical
        c, s = math.cos(heading), math.sin(heading)
        r_heading = np.array(((c, 0.0, s), (0.0, 1.0, 0.0), (-s, 0.0, c)))
        yaw, pitch, roll = head_angles(r_heading.T @ np.asarray(points.frames["head"], np.float64))
        out.update(yaw_deg=yaw, pitch_deg=pitch, roll_deg=roll)
    return out


def camera_head_angles(points: BodyPoints, camera: Camera) -> dict[str, float]:
    """The head's (yaw, pitch, roll) relative to the camera: 0 when it squarely faces a level camera."""
    facing = np.asarray(camera.rotation, np.float64).T @ OPENCV_TO_SUBJECT  # columns: left, up, forward
    yaw, pitch, roll = head_angles(facing.T @ np.asarray(points.frames["head"], np.float64))
    return dict(zip(CAMERA_ANGLES, (yaw, pitch, roll), strict=True))


def frame_truth(points: BodyPoints, camera: Camera, visible: npt.ArrayLike | None = None) -> dict[str, float | None]:
    """Every per-frame metric by wire name: the landmark definition, `_clinical` and `_camera` variants."""
    out = landmark_metrics(points, camera, visible)
    out.update({f"{k}_clinical": v for k, v in clinical_metrics(points).items()})
    if "head" in points.frames:
        out.update(camera_head_angles(points, camera))
    return {k: (None if v is None or not math.isfinite(v) else float(v)) for k, v in out.items()}


# --- gait (per walk) ----------------------------------------------------------------------------------------------


def gait_truth(
    frames: Sequence[tuple[float, BodyPoints]], camera: Camera, direction: int, *, along: bool = False
) -> dict[str, float | int | None]:
    """The gait booth's measures over one walk (frames: (time s, points)), by the device's cycle finder and
    measures on the exact landmarks; `direction` +1 when the walk goes towards image right (`along`: towards the
    camera, -1 away from it). Also `gait_cycles`."""
    walk = []
    for t, points in frames:
        kp = pixel_keypoints(points, camera)
        walk.append(
            WalkFrame(
                t=t, people=1, keypoints=kp.astype(np.float32), world=device_world(points, camera).astype(np.float32)
            )
        )
    track = Track.from_frames(walk, min_visibility=0.5)
    cycles, signal = gait_cycles(track, direction, along)
    measures = gait_measures(track, signal, cycles, along)
    out: dict[str, float | int | None] = {name: measures[name][0] for name in GAIT_MEASURES}
    out["gait_cycles"] = len(cycles)
    return out


def all_metric_names() -> tuple[str, ...]:
    """The wire names frame_truth reports (landmark definitions)."""
    return (*POSTURE_METRICS, *HEADPOSE_METRICS, *GAIT_FRAME_METRICS)
