"""Where each role's camera sits, as a pose (position, yaw, tilt, roll, field of view) that becomes the project's
pinhole `Camera` (training/synth/camera.py: OpenCV axes, fx, fy, cx, cy).

Angles are degrees. Yaw turns the camera about the vertical (y) axis: yaw 0 looks along -z, back at a subject at
the origin who faces +z; yaw 90 looks along -x. Tilt is the downward pitch (positive looks down). Roll turns the
camera about its optical axis (positive lowers the image's right side).

Roles (docs/synthetic.md):
  desk-monitor  a webcam on top of the worker's monitor, about arm's length in front of the face;
  booth-end     the gait booth's camera at the end of the corridor, facing students who walk towards and away
                from it (as Scoliosis1K was filmed);
  booth-side    the booth's camera on a side wall, looking across the walking line;
  head-station  the head-pose station's camera, close in front of the head.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass
from typing import Any, Literal, get_args

import numpy as np
import numpy.typing as npt

from training.synth.camera import Camera

CameraRole = Literal["desk-monitor", "booth-end", "booth-side", "head-station"]
CAMERA_ROLES: tuple[CameraRole, ...] = get_args(CameraRole)
Range = tuple[float, float]


@dataclass(frozen=True)
class CameraPose:
    """A camera's placement in the world frame and its horizontal field of view (square pixels, centred
    principal point)."""

    position: tuple[float, float, float]
    yaw_deg: float = 0.0
    tilt_deg: float = 0.0
    roll_deg: float = 0.0
    hfov_deg: float = 60.0

    def __post_init__(self) -> None:
        if len(self.position) != 3 or not all(math.isfinite(float(c)) for c in self.position):
            raise ValueError(f"CameraPose.position: expected three finite metres, got {self.position!r}")
        if not (-89.0 <= self.tilt_deg <= 89.0):
            raise ValueError(f"CameraPose.tilt_deg: expected -89..89 degrees, got {self.tilt_deg}")
        if not (10.0 <= self.hfov_deg <= 150.0):
            raise ValueError(f"CameraPose.hfov_deg: expected 10..150 degrees, got {self.hfov_deg}")
        for name in ("yaw_deg", "roll_deg"):
            if not math.isfinite(getattr(self, name)):
                raise ValueError(f"CameraPose.{name}: expected a finite angle, got {getattr(self, name)}")

    @property
    def height_m(self) -> float:
        return float(self.position[1])

    def rotation(self) -> np.ndarray:
        """World -> camera rotation (rows: camera x right, y down, z forward in world coordinates)."""
        yaw, tilt, roll = (math.radians(a) for a in (self.yaw_deg, self.tilt_deg, self.roll_deg))
        forward = np.array([-math.sin(yaw) * math.cos(tilt), -math.sin(tilt), -math.cos(yaw) * math.cos(tilt)])
        right = np.array([math.cos(yaw), 0.0, -math.sin(yaw)])  # horizontal, so an unrolled camera is level
        down = np.cross(forward, right)
        cr, sr = math.cos(roll), math.sin(roll)
        return np.stack([cr * right + sr * down, -sr * right + cr * down, forward])

    def camera(self, width: int = 640, height: int = 480) -> Camera:
        """The pinhole camera for an image of `width` x `height` pixels."""
        if width < 8 or height < 8:
            raise ValueError(f"CameraPose.camera: image size must be at least 8x8 pixels, got {width}x{height}")
        fx = (width / 2) / math.tan(math.radians(self.hfov_deg) / 2)
        return Camera(
            width=int(width),
            height=int(height),
            fx=fx,
            fy=fx,
            cx=(width - 1) / 2,
            cy=(height - 1) / 2,
            rotation=self.rotation(),
            centre=np.asarray(self.position, dtype=np.float64),
        )


def aim(position: npt.ArrayLike, target: npt.ArrayLike, *, hfov_deg: float = 60.0, roll_deg: float = 0.0) -> CameraPose:
    """A camera at `position` whose optical axis passes through `target`."""
    p = np.asarray(position, dtype=np.float64)
    d = np.asarray(target, dtype=np.float64) - p
    horizontal = math.hypot(d[0], d[2])
    if horizontal < 1e-6:
        raise ValueError("aim: the target is straight above or below the camera; give it a horizontal offset")
    yaw = math.degrees(math.atan2(-d[0], -d[2]))
    tilt = math.degrees(math.atan2(-d[1], horizontal))
    return CameraPose(position=(float(p[0]), float(p[1]), float(p[2])), yaw_deg=yaw, tilt_deg=tilt,
                      roll_deg=roll_deg, hfov_deg=hfov_deg)  # fmt: skip


@dataclass(frozen=True)
class RolePlacement:
    """Ranges a role's camera is drawn from, relative to the point it watches (`target`).

    The camera stands `distance_m` from the target in the horizontal direction `azimuth_deg` (0 = in front of a
    subject facing +z, 90 = on the subject's left, +x; `both_sides` mirrors it at random), at an absolute height
    `height_m` or, when that is None, at the target's height plus `height_offset_m`. It aims at the target
    give or take `aim_jitter_deg`, with a little roll."""

    distance_m: Range
    hfov_deg: Range
    height_m: Range | None = None
    height_offset_m: Range = (0.0, 0.0)
    azimuth_deg: float = 0.0
    azimuth_jitter_deg: float = 3.0
    both_sides: bool = False
    aim_jitter_deg: float = 2.0
    roll_sd_deg: float = 1.0


# Targets by role: the desk monitor and head station aim at the face; the booth cameras at mid-body height on
# the walking line. Webcams have 60-78 degree horizontal fields; a booth camera a little narrower.
ROLE_PLACEMENTS: dict[CameraRole, RolePlacement] = {
    "desk-monitor": RolePlacement(distance_m=(0.6, 1.1), hfov_deg=(58.0, 78.0), height_offset_m=(-0.05, 0.15)),
    "booth-end": RolePlacement(distance_m=(3.0, 6.0), hfov_deg=(50.0, 70.0), height_m=(1.2, 1.7),
                               aim_jitter_deg=1.5, roll_sd_deg=0.7),
    "booth-side": RolePlacement(distance_m=(1.5, 2.3), hfov_deg=(60.0, 78.0), height_m=(0.9, 1.4), azimuth_deg=90.0,
                                both_sides=True, aim_jitter_deg=1.5, roll_sd_deg=0.7),
    "head-station": RolePlacement(distance_m=(0.45, 0.90), hfov_deg=(45.0, 65.0), height_offset_m=(-0.08, 0.08)),
}  # fmt: skip


def role_camera(
    role: str, rng: np.random.Generator, target: npt.ArrayLike, *, facing_deg: float = 0.0, **overrides: Any
) -> CameraPose:
    """A random camera for `role` watching `target` (world metres) of a subject facing `facing_deg` (yaw about y,
    0 = +z). `overrides` replace any of the role's ranges, e.g. distance_m=(2.0, 2.0)."""
    if role not in ROLE_PLACEMENTS:
        raise ValueError(f"camera role: expected one of {', '.join(CAMERA_ROLES)}, got {role!r}")
    spec = ROLE_PLACEMENTS[role]
    fields = spec.__dataclass_fields__
    for key in overrides:
        if key not in fields:
            raise ValueError(f"role_camera {role}: unknown range {key!r}; expected one of {', '.join(fields)}")
    spec = dataclasses.replace(spec, **overrides)
    tgt = np.asarray(target, dtype=np.float64)
    if tgt.shape != (3,) or not np.all(np.isfinite(tgt)):
        raise ValueError(f"role_camera {role}: target must be three finite metres, got {target!r}")
    side = -1.0 if spec.both_sides and rng.random() < 0.5 else 1.0
    azimuth = math.radians(facing_deg + side * spec.azimuth_deg + rng.normal(0.0, spec.azimuth_jitter_deg))
    distance = float(rng.uniform(*spec.distance_m))
    if spec.height_m is not None:
        y = float(rng.uniform(*spec.height_m))
    else:
        y = float(tgt[1] + rng.uniform(*spec.height_offset_m))
    position = (tgt[0] + distance * math.sin(azimuth), y, tgt[2] + distance * math.cos(azimuth))
    pose = aim(
        position, tgt, hfov_deg=float(rng.uniform(*spec.hfov_deg)), roll_deg=float(rng.normal(0.0, spec.roll_sd_deg))
    )
    return CameraPose(
        position=pose.position,
        yaw_deg=pose.yaw_deg + float(rng.normal(0.0, spec.aim_jitter_deg)),
        tilt_deg=pose.tilt_deg + float(rng.normal(0.0, spec.aim_jitter_deg)),
        roll_deg=pose.roll_deg,
        hfov_deg=pose.hfov_deg,
    )
