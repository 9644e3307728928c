"""Small keypoint walk sets for the skeleton gait tests, built in milliseconds instead of rendered.

Rendering and perceiving an avatar walk takes about 30 s on the 2-core test machine, so CI cannot afford a
perceived set. These walks are a stick figure in BlazePose's 33-point layout (only the 17 points COCO-17 keeps are
filled) crossing the image as a booth's side-wall camera sees it: legs and arms swing at a walking cadence, and a
signed Cobb angle drawn per class (the generator's bands, labels.sample_cobb) tilts the shoulders, pelvis and trunk
by an amount that grows with it, under a per-subject nuisance asymmetry of the same order as a mild curve. Each
frame gets pixel noise (sd 1.5 px), dropped points (visibility below 0.5) and the class is read from the angle
with the generator's measurement error (labels.scoliosis_label), so labels are noisy near the band edges.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from contract.labels import GAIT_LABELS
from contract.landmarks import COCO17_TO_BLAZEPOSE, NUM_LANDMARKS
from training.synth.labels import sample_cobb, scoliosis_label

# COCO-17 points of an upright body, (forward, up) in statures from the mid-hip, and which side (+1 left).
_BODY = (
    (0.06, 0.42, 0), (0.05, 0.44, 1), (0.05, 0.44, -1), (0.0, 0.43, 1), (0.0, 0.43, -1),
    (0.0, 0.30, 1), (0.0, 0.30, -1), (0.0, 0.12, 1), (0.0, 0.12, -1), (0.0, -0.02, 1), (0.0, -0.02, -1),
    (0.0, 0.0, 1), (0.0, 0.0, -1), (0.0, -0.26, 1), (0.0, -0.26, -1), (0.0, -0.50, 1), (0.0, -0.50, -1),
)  # fmt: skip
_ARM, _LEG = {7: 0.5, 9: 1.0, 8: 0.5, 10: 1.0}, {13: 0.5, 15: 1.0, 14: 0.5, 16: 1.0}


def walk_keypoints(rng: np.random.Generator, cobb: float, frames: int = 60) -> np.ndarray:
    """One walk across the image: [frames, 33, 3] BlazePose keypoints (x, y pixels, visibility)."""
    stature = rng.uniform(150, 220)  # pixels
    heading = rng.choice([-1.0, 1.0])
    speed = rng.uniform(5, 8)  # pixels per frame
    cadence = rng.uniform(0.055, 0.075)  # cycles per frame
    phase0 = rng.uniform(0, 2 * math.pi)
    severity = abs(cobb) / 45.0 * math.copysign(1.0, cobb)
    nuisance = rng.normal(0.0, 0.08)
    tilt = 0.035 * (severity + nuisance)  # shoulder drop, statures
    pelvis = 0.015 * (severity + rng.normal(0.0, 0.08))
    lean = 0.04 * (severity + rng.normal(0.0, 0.08))  # trunk shift sideways shows as the shoulders' forward shift
    out = np.zeros((frames, NUM_LANDMARKS, 3), np.float32)
    x0 = 320 - heading * speed * frames / 2
    for t in range(frames):
        phase = phase0 + 2 * math.pi * cadence * t
        hip = np.array([x0 + heading * speed * t, 330.0 + 3.0 * math.cos(2 * phase)])
        for j, (fwd, up, side) in enumerate(_BODY):
            f, u = fwd, up
            if j in _ARM:
                f += -side * 0.08 * _ARM[j] * math.sin(phase)
            if j in _LEG:
                f += side * 0.12 * _LEG[j] * math.sin(phase)
                u += 0.03 * _LEG[j] * max(0.0, side * math.cos(phase))
            if 0 < up < 0.5 and j <= 10:  # the trunk above the hips: shoulder tilt and lean
                u += side * tilt * up / 0.3
                f += lean * up / 0.3 * heading
            if j in (11, 12):
                u += side * pelvis
            xy = hip + stature * np.array([heading * f, -u]) + rng.normal(0.0, 1.5, 2)
            seen = 0.9 if rng.random() > 0.03 else 0.2
            out[t, COCO17_TO_BLAZEPOSE[j]] = (xy[0], xy[1], seen)
    return out


def walk_set(n: int, seed: int, frames: int = 60) -> tuple[list[np.ndarray], np.ndarray, list[dict[str, Any]]]:
    """`n` walks, classes in turn: (BlazePose keypoints per walk, observed labels, per-walk info)."""
    rng = np.random.default_rng(seed)
    walks, labels, infos = [], [], []
    for i in range(n):
        cobb = sample_cobb(rng, i % 3)
        label = scoliosis_label(cobb, rng)
        walks.append(walk_keypoints(rng, cobb, frames))
        labels.append(label.observed)
        name = next(k for k, v in GAIT_LABELS.items() if v == label.observed)
        infos.append({"label": name, "sex": "female" if i % 2 else "male", "age_years": float(rng.uniform(10, 16.9)),
                      "geometry": "across", "cobb_deg": cobb})  # fmt: skip
    return walks, np.asarray(labels, np.int64), infos
