"""A pinhole camera with radial lens distortion, placed in the body's world frame (X, Y up, Z; metres)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import numpy as np
import numpy.typing as npt

Array = npt.NDArray[np.float64]
View = Literal["side", "front", "oblique"]


@dataclass(frozen=True)
class Camera:
    """Intrinsics (pixels), extrinsics (world -> camera rotation and camera centre) and radial distortion.

    Camera axes follow OpenCV: x right, y down, z forward (the optical axis)."""

    width: int
    height: int
    fx: float
    fy: float
    cx: float
    cy: float
    rotation: Array  # (3, 3) world -> camera
    centre: Array  # (3,) camera position in world metres
    k1: float = 0.0
    k2: float = 0.0

    def to_camera(self, points: npt.ArrayLike) -> Array:
        """World points (..., 3) -> camera coordinates (..., 3)."""
        p = np.asarray(points, dtype=np.float64)
        return (p - self.centre) @ self.rotation.T

    def project(self, points: npt.ArrayLike) -> tuple[Array, Array]:
        """World points (..., 3) -> (pixels (..., 2), depth (...,)). Points behind the camera get depth <= 0."""
        c = self.to_camera(points)
        z = c[..., 2]
        safe = np.where(np.abs(z) < 1e-6, 1e-6, z)
        xn, yn = c[..., 0] / safe, c[..., 1] / safe
        r2 = xn * xn + yn * yn
        d = 1.0 + self.k1 * r2 + self.k2 * r2 * r2
        uv = np.stack([self.fx * xn * d + self.cx, self.fy * yn * d + self.cy], axis=-1)
        return uv, z

    def focal_for_depth(self, depth: npt.ArrayLike) -> Array:
        """Pixels per metre at `depth` (no distortion), for sizing projected volumes."""
        return self.fx / np.maximum(np.asarray(depth, dtype=np.float64), 1e-3)


def look_at(eye: npt.ArrayLike, target: npt.ArrayLike, up: npt.ArrayLike = (0.0, 1.0, 0.0)) -> Array:
    """World -> camera rotation for a camera at `eye` looking at `target` with world `up` pointing image-up."""
    e = np.asarray(eye, dtype=np.float64)
    forward = np.asarray(target, dtype=np.float64) - e
    forward /= np.linalg.norm(forward)
    right = np.cross(forward, np.asarray(up, dtype=np.float64))
    norm = np.linalg.norm(right)
    if norm < 1e-9:
        raise ValueError("camera up vector is parallel to the viewing direction")
    right /= norm
    down = np.cross(forward, right)
    return np.stack([right, down, forward])


def make_camera(
    width: int,
    height: int,
    *,
    eye: npt.ArrayLike,
    target: npt.ArrayLike,
    hfov_deg: float = 60.0,
    k1: float = 0.0,
    k2: float = 0.0,
) -> Camera:
    """A camera at `eye` looking at `target` with horizontal field of view `hfov_deg` (square pixels)."""
    fx = (width / 2) / np.tan(np.deg2rad(hfov_deg) / 2)
    return Camera(
        width=width,
        height=height,
        fx=float(fx),
        fy=float(fx),
        cx=width / 2,
        cy=height / 2,
        rotation=look_at(eye, target),
        centre=np.asarray(eye, dtype=np.float64),
        k1=k1,
        k2=k2,
    )


VIEW_AZIMUTH: dict[View, float] = {"front": 0.0, "oblique": 45.0, "side": 90.0}


def view_camera(
    rng: np.random.Generator,
    width: int,
    height: int,
    *,
    view: View,
    target: npt.ArrayLike,
    subject_heading: float = 0.0,
    distance: tuple[float, float] = (2.0, 3.5),
    camera_height: tuple[float, float] = (0.9, 1.5),
    hfov: tuple[float, float] = (45.0, 65.0),
    distortion: float = 0.05,
) -> Camera:
    """A randomised camera at a named view of a subject facing `subject_heading` (degrees about Y); the
    side and oblique views are taken from either side at random."""
    azimuth = VIEW_AZIMUTH[view] * (1.0 if rng.random() < 0.5 else -1.0) + float(rng.normal(0, 4))
    angle = np.deg2rad(subject_heading + azimuth)
    d = float(rng.uniform(*distance))
    tgt = np.asarray(target, dtype=np.float64)
    eye = np.array([tgt[0] + d * np.sin(angle), float(rng.uniform(*camera_height)), tgt[2] + d * np.cos(angle)])
    return make_camera(
        width,
        height,
        eye=eye,
        target=tgt,
        hfov_deg=float(rng.uniform(*hfov)),
        k1=float(rng.uniform(-distortion, distortion)),
        k2=float(rng.uniform(-distortion, distortion) * 0.2),
    )
