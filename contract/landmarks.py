"""The 33 BlazePose landmarks: the one keypoint order shared by training, export and the device."""

from __future__ import annotations

from enum import IntEnum
from typing import Any


class Landmark(IntEnum):
    NOSE = 0
    LEFT_EYE_INNER = 1
    LEFT_EYE = 2
    LEFT_EYE_OUTER = 3
    RIGHT_EYE_INNER = 4
    RIGHT_EYE = 5
    RIGHT_EYE_OUTER = 6
    LEFT_EAR = 7
    RIGHT_EAR = 8
    MOUTH_LEFT = 9
    MOUTH_RIGHT = 10
    LEFT_SHOULDER = 11
    RIGHT_SHOULDER = 12
    LEFT_ELBOW = 13
    RIGHT_ELBOW = 14
    LEFT_WRIST = 15
    RIGHT_WRIST = 16
    LEFT_PINKY = 17
    RIGHT_PINKY = 18
    LEFT_INDEX = 19
    RIGHT_INDEX = 20
    LEFT_THUMB = 21
    RIGHT_THUMB = 22
    LEFT_HIP = 23
    RIGHT_HIP = 24
    LEFT_KNEE = 25
    RIGHT_KNEE = 26
    LEFT_ANKLE = 27
    RIGHT_ANKLE = 28
    LEFT_HEEL = 29
    RIGHT_HEEL = 30
    LEFT_FOOT_INDEX = 31
    RIGHT_FOOT_INDEX = 32


NUM_LANDMARKS = len(Landmark)
LANDMARK_NAMES: tuple[str, ...] = tuple(m.name.lower() for m in Landmark)

# Skeleton edges for drawing.
POSE_CONNECTIONS: tuple[tuple[int, int], ...] = (
    (0, 1), (1, 2), (2, 3), (3, 7), (0, 4), (4, 5), (5, 6), (6, 8), (9, 10),
    (11, 12), (11, 13), (13, 15), (15, 17), (15, 19), (15, 21), (17, 19),
    (12, 14), (14, 16), (16, 18), (16, 20), (16, 22), (18, 20),
    (11, 23), (12, 24), (23, 24), (23, 25), (24, 26), (25, 27), (26, 28),
    (27, 29), (28, 30), (29, 31), (30, 32), (27, 31), (28, 32),
)  # fmt: skip

# COCO-17 order expressed as BlazePose indices, for loaders of COCO keypoint files.
COCO17_TO_BLAZEPOSE: tuple[int, ...] = (0, 2, 5, 7, 8, 11, 12, 13, 14, 15, 16, 23, 24, 25, 26, 27, 28)

# COCO-17 (the layout of ViTPose / Scoliosis1K-Pose keypoints and of the skeleton gait model) names, in order.
COCO17_NAMES: tuple[str, ...] = (
    "nose", "left_eye", "right_eye", "left_ear", "right_ear", "left_shoulder", "right_shoulder", "left_elbow",
    "right_elbow", "left_wrist", "right_wrist", "left_hip", "right_hip", "left_knee", "right_knee", "left_ankle",
    "right_ankle",
)  # fmt: skip
COCO17_LEFT_RIGHT: tuple[tuple[int, int], ...] = ((1, 2), (3, 4), (5, 6), (7, 8), (9, 10), (11, 12), (13, 14), (15, 16))


def blazepose_to_coco17(keypoints: Any) -> Any:
    """BlazePose keypoints [..., 33, C] → COCO-17 [..., 17, C] (numpy or torch; the same point, same channels).

    The one mapping between the two layouts: the device feeds its BlazePose landmarks through it to the skeleton
    gait model, and training maps avatar truth or perception output through it, so both meet the layout of the
    released Scoliosis1K-Pose keypoints. BlazePose's eye centre stands for the COCO eye.
    """
    shape = getattr(keypoints, "shape", None)
    if shape is None or len(shape) < 2 or shape[-2] != NUM_LANDMARKS:
        raise ValueError(f"expected BlazePose keypoints [..., {NUM_LANDMARKS}, C], got shape {shape}")
    return keypoints[..., list(COCO17_TO_BLAZEPOSE), :]
