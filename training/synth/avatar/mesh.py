"""Types shared by the avatar body builder and the avatar renderer.

World frame (both sides): metres, right-handed, y up, floor at y = 0. A subject at yaw 0 faces +z, towards a
camera placed on +z looking back at it; the subject's own left is +x. Angles are degrees at every public API.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import IntEnum

import numpy as np

from contract.landmarks import NUM_LANDMARKS


class Region(IntEnum):
    """Per-vertex material region, so the renderer can colour skin, hair and each garment apart."""

    SKIN = 0
    HAIR = 1
    TOP = 2
    BOTTOM = 3
    SHOES = 4
    EYES = 5
    LIPS = 6


@dataclass(frozen=True)
class AvatarMesh:
    """One posed body as a triangle mesh in the world frame."""

    vertices: np.ndarray  # (V, 3) float32, world frame, metres
    faces: np.ndarray  # (F, 3) int32, indices into vertices
    regions: np.ndarray  # (V,) uint8, Region values
    uv: np.ndarray | None = None  # (V, 2) float32 texture coordinates for garment patterns, or None
    # (2, 3) float32: each eyeball's front in uv (centre u, v, radius), so the EYES region is drawn as a white with
    # an iris and pupil instead of one flat colour; None: EYES is flat
    iris_uv: np.ndarray | None = None

    def __post_init__(self) -> None:
        v, f, r = self.vertices, self.faces, self.regions
        if v.ndim != 2 or v.shape[1] != 3:
            raise ValueError(f"AvatarMesh.vertices: expected shape (V, 3), got {v.shape}")
        if f.ndim != 2 or f.shape[1] != 3:
            raise ValueError(f"AvatarMesh.faces: expected shape (F, 3), got {f.shape}")
        if r.shape != (v.shape[0],):
            raise ValueError(f"AvatarMesh.regions: expected shape ({v.shape[0]},), got {r.shape}")
        if self.uv is not None and self.uv.shape != (v.shape[0], 2):
            raise ValueError(f"AvatarMesh.uv: expected shape ({v.shape[0]}, 2), got {self.uv.shape}")
        if self.iris_uv is not None and (self.uv is None or self.iris_uv.shape != (2, 3)):
            raise ValueError(f"AvatarMesh.iris_uv: expected shape (2, 3) beside uv, got {np.shape(self.iris_uv)}")
        if f.size and (int(f.min()) < 0 or int(f.max()) >= v.shape[0]):
            raise ValueError(f"AvatarMesh.faces: indices must lie in [0, {v.shape[0]}), got {f.min()}..{f.max()}")

    @property
    def n_vertices(self) -> int:
        return int(self.vertices.shape[0])

    def bounds(self) -> tuple[np.ndarray, np.ndarray]:
        """Axis-aligned (min, max) corners in metres."""
        return self.vertices.min(axis=0), self.vertices.max(axis=0)


# Anatomical point names in BodyPoints.anatomical. Each is a (3,) float32 position in world metres.
ANATOMICAL_POINTS: tuple[str, ...] = (
    "tragus_l",
    "tragus_r",
    "c7",  # spinous process of the 7th cervical vertebra (skin surface, back of the neck)
    "acromion_l",
    "acromion_r",
    "asis_l",  # anterior superior iliac spine
    "asis_r",
    "psis_l",  # posterior superior iliac spine
    "psis_r",
    "t8",  # mid-thoracic spinous process (skin surface)
    "l5",  # low lumbar spinous process (skin surface)
    "sternum_notch",
    "head_center",  # centre of the skull (between the tragi)
    "nasion",
    "chin",
    "hip_joint_l",  # joint centres, inside the body
    "hip_joint_r",
    "shoulder_joint_l",
    "shoulder_joint_r",
)


@dataclass(frozen=True)
class SeatedPlacement:
    """Where the render side must put the chair seat and the desk for a seated pose (world metres).

    The seat's top surface is at seat_height_m and its front edge at seat_front_z_m (the subject faces +z, so the
    seat extends towards -z from there). The desk top is at desk_height_m with its near edge at desk_near_z_m and
    extends towards +z. x is centred on the subject at centre_x_m. For a subject turned by a heading, these are in
    the subject's own frame (rotate them with the body about the vertical through (centre_x_m, centre_z_m)).
    """

    seat_height_m: float
    seat_front_z_m: float
    desk_height_m: float
    desk_near_z_m: float
    centre_x_m: float = 0.0
    seat_depth_m: float = 0.42
    seat_width_m: float = 0.46
    desk_depth_m: float = 0.70
    desk_width_m: float = 1.20
    heading_deg: float = 0.0  # the subject's heading: 0 faces +z
    centre_z_m: float = 0.0  # the pivot of the heading (the subject's mid-hip z before turning)


@dataclass(frozen=True)
class BodyPoints:
    """Truth points of one posed body, in the same world frame as its AvatarMesh."""

    blazepose: np.ndarray  # (33, 3) float32 world metres, BlazePose landmark order (contract/landmarks.py)
    anatomical: dict[str, np.ndarray] = field(default_factory=dict)  # names from ANATOMICAL_POINTS, each (3,)
    # Segment orientations, world frame: "head", "thorax", "pelvis" -> (3, 3) whose columns are the segment's
    # left, up and forward axes (identity = upright and facing +z, as in the neutral stance).
    frames: dict[str, np.ndarray] = field(default_factory=dict)
    seat: SeatedPlacement | None = None  # where the chair and desk go, for a seated pose

    def __post_init__(self) -> None:
        if self.blazepose.shape != (NUM_LANDMARKS, 3):
            raise ValueError(f"BodyPoints.blazepose: expected shape ({NUM_LANDMARKS}, 3), got {self.blazepose.shape}")
        for name, p in self.anatomical.items():
            if np.shape(p) != (3,):
                raise ValueError(f"BodyPoints.anatomical[{name!r}]: expected shape (3,), got {np.shape(p)}")
        for name, r in self.frames.items():
            if np.shape(r) != (3, 3):
                raise ValueError(f"BodyPoints.frames[{name!r}]: expected shape (3, 3), got {np.shape(r)}")

    def all_points(self) -> tuple[list[str], np.ndarray]:
        """Names and an (N, 3) array of every point, BlazePose first: one call for projecting them all."""
        from contract.landmarks import LANDMARK_NAMES

        names = list(LANDMARK_NAMES) + list(self.anatomical)
        pts = np.concatenate([self.blazepose, np.asarray(list(self.anatomical.values()), np.float32).reshape(-1, 3)])
        return names, pts.astype(np.float32)
