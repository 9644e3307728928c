"""Static posture parameters and their sampling distributions (conventions in `body.py` and docs/synthetic.md)."""

from __future__ import annotations

from dataclasses import asdict, dataclass, replace
from typing import Literal

import numpy as np

PostureContext = Literal["office", "standing", "cervical"]


@dataclass(frozen=True)
class Posture:
    """Static posture. Angles in degrees, shifts in metres."""

    neck_flexion: float = 0.0  # > 0 the neck bends forward (chin towards chest)
    head_yaw: float = 0.0  # > 0 the head turns to the subject's left
    head_pitch: float = 0.0  # > 0 chin up (extension), on top of neck flexion
    head_roll: float = 0.0  # > 0 the left ear drops
    head_lateral_shift: float = 0.0  # > 0 the head translates towards the subject's left over the trunk
    head_sagittal_shift: float = 0.0  # > 0 protraction (forward head), < 0 retraction
    shoulder_elevation_asymmetry: float = 0.0  # left minus right shoulder height
    thoracic_kyphosis: float = 40.0
    lumbar_lordosis: float = 40.0
    trunk_flexion: float = 0.0  # > 0 the trunk leans forward
    lateral_lean: float = 0.0  # > 0 the trunk leans to the subject's left
    pelvic_obliquity: float = 0.0  # > 0 left hip higher (on top of the scoliosis-driven part)
    scoliosis_cobb: float = 0.0  # signed Cobb angle; > 0 a right-convex thoracic curve
    scoliosis_rotation: float = 0.0  # axial rotation of the thorax at the apex (rib hump)

    def as_dict(self) -> dict[str, float]:
        return asdict(self)


def scoliosis(cobb: float, rng: np.random.Generator | None = None) -> dict[str, float]:
    """Curve parameters for a signed Cobb angle: the vertebrae rotate towards the convex side (rotation about
    -0.3 x Cobb, so a right-convex curve turns the thorax right and the right ribs/scapula back)."""
    jitter = float(rng.normal(1.0, 0.15)) if rng is not None else 1.0
    return {"scoliosis_cobb": cobb, "scoliosis_rotation": -0.3 * cobb * jitter}


def sample_posture(rng: np.random.Generator, context: PostureContext = "office") -> Posture:
    """A random posture. `office`: a seated worker (forward head and neck flexion common);
    `standing`: upright stance; `cervical`: a seated subject facing a camera with head pose and shift spread
    over a cervical-dystonia-like range."""
    base = Posture(
        thoracic_kyphosis=float(np.clip(rng.normal(40, 9), 15, 75)),
        lumbar_lordosis=float(np.clip(rng.normal(40, 9), 10, 70)),
        shoulder_elevation_asymmetry=float(rng.normal(0, 0.006)),
        lateral_lean=float(rng.normal(0, 1.5)),
        head_roll=float(rng.normal(0, 2.0)),
        head_yaw=float(rng.normal(0, 4.0)),
    )
    if context == "office":
        forward = float(rng.gamma(2.0, 1.5) * 0.012)  # protraction, metres; right-skewed
        return replace(
            base,
            neck_flexion=float(np.clip(rng.normal(12, 10) + 250 * forward, -10, 55)),
            head_sagittal_shift=forward,
            head_pitch=float(rng.normal(5, 5) + 120 * forward),  # forward head: compensatory upper-neck extension
            trunk_flexion=float(np.clip(rng.normal(8, 8), -15, 35)),
            thoracic_kyphosis=float(np.clip(base.thoracic_kyphosis + 300 * forward, 15, 80)),
        )
    if context == "cervical":
        return replace(
            base,
            head_yaw=float(rng.uniform(-45, 45)),
            head_pitch=float(rng.uniform(-25, 25)),
            head_roll=float(rng.uniform(-25, 25)),
            head_lateral_shift=float(rng.uniform(-0.045, 0.045)),
            head_sagittal_shift=float(rng.uniform(-0.03, 0.06)),
            neck_flexion=float(rng.normal(0, 5)),
        )
    return replace(base, head_sagittal_shift=float(rng.normal(0.01, 0.012)), trunk_flexion=float(rng.normal(2, 3)))
