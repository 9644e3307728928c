"""What perception hands to the role analyzers. Lives in memory only: never serialised off the device."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import numpy.typing as npt

FloatArray = npt.NDArray[np.float32]


@dataclass(frozen=True)
class HeadPose:
    """Head orientation in degrees (conventions in docs/metrics.md).

    yaw > 0: the subject turns to their left (nose towards image right); pitch > 0: chin up;
    roll > 0: the head tilts so that the subject's left ear drops (clockwise in the image).
    """

    yaw: float
    pitch: float
    roll: float


@dataclass
class Person:
    """One detected person in one frame."""

    score: float
    bbox: tuple[float, float, float, float]  # x0, y0, x1, y1 in image pixels
    keypoints: FloatArray  # (33, 3): x, y in image pixels, visibility 0..1
    world: FloatArray  # (33, 3): metres, origin between the hips, x right, y down, z towards camera-far
    mask: FloatArray | None = None  # (H, W) person probability 0..1 in image coordinates
    face_landmarks: FloatArray | None = None  # (468, 3) image pixels (z relative)
    head_pose: HeadPose | None = None


@dataclass
class FrameResult:
    """Perception output for one frame."""

    timestamp: float  # seconds (monotonic on a live source, media time on a file)
    width: int
    height: int
    persons: list[Person] = field(default_factory=list)
    stage_ms: dict[str, float] = field(default_factory=dict)
