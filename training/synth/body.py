"""A parametric 3D body: the 33 BlazePose keypoints plus a spine chain, posed from posture and limb angles.

Body frame (before the whole-body heading is applied): metres, X towards the subject's left, Y up, Z forward
(anterior); right-handed. Angles are degrees. Sign conventions (shared with `posture.py` and the labels):
- sagittal angles > 0 bend forward (flexion); lateral angles > 0 tilt towards the subject's left;
- axial rotations > 0 turn the front towards the subject's left (as `HeadPose.yaw`);
- head roll > 0 drops the left ear, head pitch > 0 lifts the chin (as `edge.perception.types.HeadPose`).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Literal

import numpy as np
import numpy.typing as npt

from contract.landmarks import LANDMARK_NAMES, Landmark
from training.synth.posture import Posture

Array = npt.NDArray[np.float64]
Sex = Literal["female", "male"]
AgeGroup = Literal["adult", "adolescent"]

SPINE_JOINTS: tuple[str, ...] = ("pelvis", "lumbar", "thoracic", "c7", "head", "left_scapula", "right_scapula")
JOINT_NAMES: tuple[str, ...] = (*LANDMARK_NAMES, *SPINE_JOINTS)
NUM_JOINTS = len(JOINT_NAMES)
J: dict[str, int] = {name: i for i, name in enumerate(JOINT_NAMES)}
L = Landmark


def rot_x(deg: float) -> Array:
    """Rotation about X; positive tilts +Y towards +Z (forward flexion of an upward segment)."""
    a = math.radians(deg)
    c, s = math.cos(a), math.sin(a)
    return np.array(((1.0, 0.0, 0.0), (0.0, c, -s), (0.0, s, c)))


def rot_y(deg: float) -> Array:
    """Rotation about Y; positive turns +Z (the front) towards +X (the subject's left)."""
    a = math.radians(deg)
    c, s = math.cos(a), math.sin(a)
    return np.array(((c, 0.0, s), (0.0, 1.0, 0.0), (-s, 0.0, c)))


def rot_lat(deg: float) -> Array:
    """Lateral tilt about Z; positive tilts +Y towards +X (the subject's left)."""
    a = math.radians(-deg)
    c, s = math.cos(a), math.sin(a)
    return np.array(((c, -s, 0.0), (s, c, 0.0), (0.0, 0.0, 1.0)))


UP = np.array([0.0, 1.0, 0.0])
DOWN = -UP
FORWARD = np.array([0.0, 0.0, 1.0])


@dataclass(frozen=True)
class Anthropometry:
    """Body dimensions in metres (segment lengths between joint centres)."""

    height: float
    sex: Sex
    shoulder_width: float  # between the shoulder joint centres
    hip_width: float  # between the hip joint centres
    lumbar: float  # pelvis (mid-hip) -> L3
    thoracic: float  # L3 -> T7
    upper_thoracic: float  # T7 -> C7
    neck: float  # C7 -> head centre (between the ears)
    head_width: float  # ear to ear
    upper_arm: float
    forearm: float
    hand: float
    thigh: float
    shank: float
    ankle_height: float
    foot: float
    girth: float  # volume scale (1 = average build)

    @property
    def scale(self) -> float:
        return self.height / 1.70


def sample_anthropometry(rng: np.random.Generator, sex: Sex | None = None, age: AgeGroup = "adult") -> Anthropometry:
    """Random body dimensions from segment-to-height ratios (Drillis-Contini style) with sex-typical proportions."""
    chosen: Sex = sex if sex is not None else ("female" if rng.random() < 0.5 else "male")
    if age == "adolescent":
        height = float(np.clip(rng.normal(1.62 if chosen == "male" else 1.57, 0.08), 1.35, 1.90))
    else:
        height = float(np.clip(rng.normal(1.76 if chosen == "male" else 1.63, 0.07), 1.45, 2.05))

    def ratio(mean: float, sd: float = 0.03) -> float:
        return float(height * mean * np.clip(rng.normal(1.0, sd), 0.9, 1.1))

    male = chosen == "male"
    return Anthropometry(
        height=height,
        sex=chosen,
        shoulder_width=ratio(0.215 if male else 0.200, 0.04),
        hip_width=ratio(0.102 if male else 0.112, 0.04),
        lumbar=ratio(0.095),
        thoracic=ratio(0.105),
        upper_thoracic=ratio(0.090),
        neck=ratio(0.115),
        head_width=ratio(0.088 if male else 0.090, 0.03),
        upper_arm=ratio(0.186),
        forearm=ratio(0.146),
        hand=ratio(0.108 * 0.75),
        thigh=ratio(0.245),
        shank=ratio(0.246),
        ankle_height=ratio(0.039),
        foot=ratio(0.152),
        girth=float(np.clip(rng.normal(1.05 if male else 0.95, 0.08), 0.75, 1.35)),
    )


@dataclass
class LimbPose:
    """Limb and whole-body motion angles (degrees) for one instant; gait and flexion sequences vary these."""

    hip_flexion: tuple[float, float] = (0.0, 0.0)  # (left, right), > 0 thigh forward
    hip_abduction: tuple[float, float] = (2.0, 2.0)
    knee_flexion: tuple[float, float] = (0.0, 0.0)
    ankle_dorsiflexion: tuple[float, float] = (0.0, 0.0)
    shoulder_flexion: tuple[float, float] = (0.0, 0.0)  # > 0 arm forward
    shoulder_abduction: tuple[float, float] = (8.0, 8.0)
    elbow_flexion: tuple[float, float] = (10.0, 10.0)
    pelvic_rotation: float = 0.0  # axial, > 0 the pelvis turns to the subject's left
    pelvic_obliquity: float = 0.0  # > 0 the left hip is higher
    trunk_counter_rotation: float = 0.0  # axial rotation of the thorax relative to the pelvis
    pelvic_tilt: float = 0.0  # extra forward tilt of the pelvis (hip-driven trunk flexion), e.g. during flexion
    lumbar_flexion: float = 0.0  # extra bend at the lumbar spine
    thoracic_flexion: float = 0.0  # extra bend at the thoracic spine
    seated: bool = False


@dataclass
class Skeleton:
    """Posed joint positions: (NUM_JOINTS, 3) metres, in world coordinates (X, Y up, Z)."""

    joints: Array
    anthro: Anthropometry
    radii: dict[str, float] = field(default_factory=dict)

    def __getitem__(self, name: str) -> Array:
        return self.joints[J[name]]


def head_orientation(posture: Posture) -> tuple[float, float, float]:
    """The head's (yaw, pitch, roll) relative to the trunk in HeadPose conventions: neck flexion tips the chin
    down (negative pitch) on top of the posture's own head pitch."""
    return posture.head_yaw, posture.head_pitch - 0.7 * posture.neck_flexion, posture.head_roll


def pose_body(
    anthro: Anthropometry,
    posture: Posture,
    limbs: LimbPose | None = None,
    *,
    root: npt.ArrayLike = (0.0, 0.0, 0.0),
    heading: float = 0.0,
    on_ground: bool = True,
) -> Skeleton:
    """Pose the body. `root` is the mid-hip position on the floor plane (x, z; y is set so the lowest foot
    point touches y=0 when `on_ground`, else `root[1]` is the hip height); `heading` rotates the body about
    the vertical (0: facing +Z; 90: facing +X)."""
    lp = limbs if limbs is not None else LimbPose()
    a = anthro
    p = posture
    out = np.zeros((NUM_JOINTS, 3))

    # Pelvis: gait rotation and obliquity; scoliosis tilts the pelvis opposite to the shoulders.
    obliquity = lp.pelvic_obliquity + p.pelvic_obliquity - 0.05 * p.scoliosis_cobb
    r_pelvis_legs = rot_y(lp.pelvic_rotation) @ rot_lat(-obliquity)  # left hip up when obliquity > 0
    half_hip = a.hip_width / 2
    left_hip = r_pelvis_legs @ np.array([half_hip, 0.0, 0.0])
    out[L.LEFT_HIP] = left_hip
    out[L.RIGHT_HIP] = -left_hip
    out[J["pelvis"]] = 0.0

    # Spine: cumulative sagittal bends (lordosis, kyphosis as chord angles of the 3-segment chain), absolute
    # lateral angles (a right-convex thoracic curve for a positive Cobb angle) and axial rotation.
    lordosis = 0.5 * p.lumbar_lordosis
    kyphosis = 0.5 * p.thoracic_kyphosis
    pelvis_tilt = 0.6 * p.trunk_flexion + lp.pelvic_tilt
    s1 = pelvis_tilt + 0.5 * lordosis + 0.3 * p.trunk_flexion + 0.5 * lp.lumbar_flexion
    s2 = s1 - lordosis + 0.5 * lp.lumbar_flexion + 0.1 * p.trunk_flexion
    s3 = s2 + kyphosis + lp.thoracic_flexion
    curve = 0.6 * p.scoliosis_cobb
    lat = (p.lateral_lean - curve / 2, p.lateral_lean, p.lateral_lean + curve / 2)
    rotation = p.scoliosis_rotation
    axial = (
        lp.pelvic_rotation,
        lp.pelvic_rotation + 0.5 * rotation + 0.5 * lp.trunk_counter_rotation,
        lp.pelvic_rotation + rotation + lp.trunk_counter_rotation,
    )
    lengths = (a.lumbar, a.thoracic, a.upper_thoracic)
    frames = [rot_y(axial[i]) @ rot_lat(lat[i]) @ rot_x(s) for i, s in enumerate((s1, s2, s3))]
    point = out[J["pelvis"]].copy()
    for name, frame, length in zip(("lumbar", "thoracic", "c7"), frames, lengths, strict=True):
        point = point + frame @ (UP * length)
        out[J[name]] = point
    c7 = out[J["c7"]]

    # Shoulder girdle: follows the thorax's axial rotation and sagittal tilt, with its own small roll.
    girdle_roll = p.lateral_lean + 0.08 * p.scoliosis_cobb
    r_girdle = rot_y(axial[2]) @ rot_lat(girdle_roll) @ rot_x(s3)
    half_sw = a.shoulder_width / 2
    for side, sign, elev in ((L.LEFT_SHOULDER, 1.0, 0.5), (L.RIGHT_SHOULDER, -1.0, -0.5)):
        offset = np.array([sign * half_sw, -0.02 * a.height, -0.01 * a.height])
        out[side] = c7 + r_girdle @ offset + UP * elev * p.shoulder_elevation_asymmetry
    thoracic = out[J["thoracic"]]
    for name, sign in (("left_scapula", 1.0), ("right_scapula", -1.0)):
        out[J[name]] = thoracic + frames[2] @ np.array([sign * 0.06 * a.height, 0.02 * a.height, -0.06 * a.girth])

    # Neck and head: head shift is a translation relative to the trunk; flexion tips the head forward.
    r_trunk = rot_y(axial[2])
    neck_angle = s3 - kyphosis * 0.6 + p.neck_flexion
    neck_dir = r_trunk @ rot_lat(p.lateral_lean * 0.5) @ rot_x(neck_angle) @ UP
    shift = r_trunk @ np.array([p.head_lateral_shift, 0.0, p.head_sagittal_shift])
    head = c7 + neck_dir * a.neck + shift
    out[J["head"]] = head
    yaw, pitch, roll = head_orientation(p)
    r_head = r_trunk @ rot_y(yaw) @ rot_x(-pitch) @ rot_lat(roll)
    out[_FACE_INDEX] = head + (a.head_width / 0.15) * _FACE_OFFSETS @ r_head.T

    # Arms, in the girdle frame.
    for side_i, (shoulder, elbow, wrist, pinky, index, thumb, sign) in enumerate(
        (
            (L.LEFT_SHOULDER, L.LEFT_ELBOW, L.LEFT_WRIST, L.LEFT_PINKY, L.LEFT_INDEX, L.LEFT_THUMB, 1.0),
            (L.RIGHT_SHOULDER, L.RIGHT_ELBOW, L.RIGHT_WRIST, L.RIGHT_PINKY, L.RIGHT_INDEX, L.RIGHT_THUMB, -1.0),
        )
    ):
        r_frame = r_trunk @ rot_x(-lp.shoulder_flexion[side_i]) @ rot_lat(sign * lp.shoulder_abduction[side_i])
        out[elbow] = out[shoulder] + r_frame @ (DOWN * a.upper_arm)
        r_fore = r_frame @ rot_x(-lp.elbow_flexion[side_i])
        out[wrist] = out[elbow] + r_fore @ (DOWN * a.forearm)
        out[index] = out[wrist] + r_fore @ np.array([sign * 0.01, -a.hand, 0.015])
        out[pinky] = out[wrist] + r_fore @ np.array([sign * 0.035, -0.85 * a.hand, 0.0])
        out[thumb] = out[wrist] + r_fore @ np.array([-sign * 0.015, -0.55 * a.hand, 0.035])

    # Legs, in the pelvis frame (rotation and obliquity only).
    r_legs = rot_y(lp.pelvic_rotation)
    for side_i, (hip, knee, ankle, heel, toe, sign) in enumerate(
        (
            (L.LEFT_HIP, L.LEFT_KNEE, L.LEFT_ANKLE, L.LEFT_HEEL, L.LEFT_FOOT_INDEX, 1.0),
            (L.RIGHT_HIP, L.RIGHT_KNEE, L.RIGHT_ANKLE, L.RIGHT_HEEL, L.RIGHT_FOOT_INDEX, -1.0),
        )
    ):
        hip_flex = lp.hip_flexion[side_i]
        r_thigh = r_legs @ rot_x(-hip_flex) @ rot_lat(sign * lp.hip_abduction[side_i])
        out[knee] = out[hip] + r_thigh @ (DOWN * a.thigh)
        shank_angle = hip_flex - lp.knee_flexion[side_i]
        r_shank = r_legs @ rot_x(-shank_angle) @ rot_lat(sign * lp.hip_abduction[side_i])
        out[ankle] = out[knee] + r_shank @ (DOWN * a.shank)
        r_foot = r_legs @ rot_x(-(shank_angle + lp.ankle_dorsiflexion[side_i])) @ rot_y(sign * 8.0)
        out[heel] = out[ankle] + r_foot @ np.array([0.0, -a.ankle_height, -0.22 * a.foot])
        out[toe] = out[ankle] + r_foot @ np.array([0.0, -a.ankle_height, 0.75 * a.foot])

    # Whole-body heading and placement.
    r_world = rot_y(heading)
    out = out @ r_world.T
    root_arr = np.asarray(root, dtype=np.float64)
    if on_ground and not lp.seated:
        feet = out[[L.LEFT_HEEL, L.RIGHT_HEEL, L.LEFT_FOOT_INDEX, L.RIGHT_FOOT_INDEX], 1]
        lift = -float(feet.min())
    else:
        lift = float(root_arr[1])
    out += np.array([root_arr[0], lift, root_arr[2]])
    return Skeleton(joints=out, anthro=a, radii=body_radii(a))


# Face landmarks relative to the head centre for a 15 cm wide head (head frame), left side mirrored to the right.
_FACE_LEFT = {
    L.NOSE: (0.0, -0.005, 0.105),
    L.LEFT_EYE_INNER: (0.016, 0.028, 0.088),
    L.LEFT_EYE: (0.032, 0.030, 0.085),
    L.LEFT_EYE_OUTER: (0.046, 0.029, 0.076),
    L.LEFT_EAR: (0.075, 0.0, 0.0),
    L.MOUTH_LEFT: (0.024, -0.045, 0.085),
}


def _mirror(landmark: Landmark) -> int:
    name = landmark.name
    other = name.replace("LEFT", "RIGHT") if "LEFT" in name else name.replace("RIGHT", "LEFT")
    return int(Landmark[other])


def body_radii(a: Anthropometry) -> dict[str, float]:
    """Capsule radii (metres) of the body parts, scaled by height and build."""
    s, g = a.scale, a.girth
    return {
        "head": 0.7 * a.head_width,
        "neck": 0.055 * s * g,
        "torso": 0.13 * s * g,
        "pelvis": 0.14 * s * g,
        "upper_arm": 0.045 * s * g,
        "forearm": 0.037 * s * g,
        "hand": 0.03 * s,
        "thigh": 0.075 * s * g,
        "shank": 0.052 * s * g,
        "foot": 0.04 * s,
    }


# Body parts for rendering: (part, joint a, joint b, radius key). Torso parts are drawn as a filled quad as well.
CAPSULES: tuple[tuple[str, str, str, str], ...] = (
    ("torso_low", "pelvis", "lumbar", "pelvis"),
    ("torso_mid", "lumbar", "thoracic", "torso"),
    ("torso_high", "thoracic", "c7", "torso"),
    ("neck", "c7", "head", "neck"),
    ("left_upper_arm", "left_shoulder", "left_elbow", "upper_arm"),
    ("left_forearm", "left_elbow", "left_wrist", "forearm"),
    ("left_hand", "left_wrist", "left_index", "hand"),
    ("right_upper_arm", "right_shoulder", "right_elbow", "upper_arm"),
    ("right_forearm", "right_elbow", "right_wrist", "forearm"),
    ("right_hand", "right_wrist", "right_index", "hand"),
    ("left_thigh", "left_hip", "left_knee", "thigh"),
    ("left_shank", "left_knee", "left_ankle", "shank"),
    ("left_foot", "left_heel", "left_foot_index", "foot"),
    ("right_thigh", "right_hip", "right_knee", "thigh"),
    ("right_shank", "right_knee", "right_ankle", "shank"),
    ("right_foot", "right_heel", "right_foot_index", "foot"),
)


_FACE_INDEX = [int(k) for k in _FACE_LEFT] + [_mirror(k) for k in _FACE_LEFT]
_FACE_OFFSETS = np.array([v for v in _FACE_LEFT.values()] + [(-x, y, z) for x, y, z in _FACE_LEFT.values()])
