"""Head yaw/pitch/roll from the 468 face landmarks by a rigid fit to a generic 3D face.

Method (docs/perception.md): the similarity transform (rotation, scale, translation; Umeyama's
least-squares solution) that best maps twelve stable points of MediaPipe's canonical face model onto the
face landmark model's 3D output. The landmark model's z shares the x scale, so no camera intrinsics are
needed (a weak-perspective fit, like MediaPipe's own face geometry pipeline).

Frames: the canonical model has x towards the subject's left, y up, z out of the face. The observed
points are put in the same right-handed camera frame: x image-right, y image-up, z towards the camera.
Angles follow `HeadPose`: yaw > 0 nose towards image right (subject turns to their left), pitch > 0 chin
up, roll > 0 the subject's left ear drops (clockwise in the image). R = R_y(yaw) · R_x(−pitch) · R_z(−roll).
"""

from __future__ import annotations

import math

import numpy as np
import numpy.typing as npt

from edge.perception.types import HeadPose

# Face-mesh index → canonical face model vertex (centimetres), from MediaPipe's canonical face model.
CANONICAL_POINTS: dict[int, tuple[float, float, float]] = {
    1: (0.0, -1.126865, 7.475604),  # nose tip
    10: (0.0, 8.261778, 4.481535),  # forehead top
    168: (0.0, 3.271027, 5.236015),  # nose bridge between the eyes
    152: (0.0, -9.403378, 4.264492),  # chin
    33: (-4.445859, 2.663991, 3.173422),  # right eye, outer corner
    133: (-1.856432, 2.585245, 3.757904),  # right eye, inner corner
    263: (4.445859, 2.663991, 3.173422),  # left eye, outer corner
    362: (1.856432, 2.585245, 3.757904),  # left eye, inner corner
    61: (-2.456206, -4.342621, 4.283884),  # mouth, right corner
    291: (2.456206, -4.342621, 4.283884),  # mouth, left corner
    127: (-7.743095, 2.364999, -2.005167),  # right side of the face, by the ear
    356: (7.743095, 2.364999, -2.005167),  # left side of the face, by the ear
}
FIT_INDICES = np.array(list(CANONICAL_POINTS), dtype=np.int64)
MODEL_POINTS = np.array(list(CANONICAL_POINTS.values()), dtype=np.float64)


def rigid_fit(source: npt.ArrayLike, target: npt.ArrayLike) -> tuple[npt.NDArray[np.float64], float]:
    """Rotation R (proper, det +1) and scale s minimising Σ |s·R·source_i + t − target_i|² (Umeyama 1991)."""
    src = np.asarray(source, dtype=np.float64)
    dst = np.asarray(target, dtype=np.float64)
    src_c = src - src.mean(axis=0)
    dst_c = dst - dst.mean(axis=0)
    cov = dst_c.T @ src_c / len(src)
    u, sigma, vt = np.linalg.svd(cov)
    d = np.eye(3)
    if np.linalg.det(u) * np.linalg.det(vt) < 0:
        d[2, 2] = -1.0
    rotation = u @ d @ vt
    var = float((src_c**2).sum() / len(src))
    scale = float(np.trace(np.diag(sigma) @ d) / var) if var > 0 else 1.0
    return rotation, scale


def angles_from_rotation(rotation: npt.NDArray[np.float64]) -> HeadPose:
    """Decompose R = R_y(yaw) · R_x(−pitch) · R_z(−roll) (camera frame x right, y up, z to the camera)."""
    forward = rotation[:, 2]
    yaw = math.atan2(forward[0], forward[2])
    pitch = math.asin(max(-1.0, min(1.0, forward[1])))
    roll = -math.atan2(rotation[1, 0], rotation[1, 1])
    return HeadPose(yaw=math.degrees(yaw), pitch=math.degrees(pitch), roll=math.degrees(roll))


def head_pose_from_landmarks(points: npt.ArrayLike) -> HeadPose:
    """Head pose from (468, 3) face landmarks in image pixels (y down, z smaller = nearer the camera)."""
    pts = np.asarray(points, dtype=np.float64)[FIT_INDICES]
    observed = np.stack([pts[:, 0], -pts[:, 1], -pts[:, 2]], axis=1)
    rotation, _ = rigid_fit(MODEL_POINTS, observed)
    return angles_from_rotation(rotation)


class HeadPoseEstimator:
    """The head-pose stage (numpy only): `preprocess → infer → postprocess` in one step."""

    def __call__(self, face_points: npt.ArrayLike) -> HeadPose:
        return head_pose_from_landmarks(face_points)
