"""Label rules: the ground truth of each synthetic task as a function of the generator's parameters, plus the
label noise that gives each task a realistic Bayes error. docs/synthetic.md states the same rules.

Every rule returns both the clean label (from the true parameters) and the observed label (what a clinician or
an annotator would have recorded); the observed label is what the data sets carry."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from contract.labels import FLEXION_LABELS, GAIT_LABELS, POSTURE_LABELS, XRAY_LABELS
from training.synth.body import Anthropometry
from training.synth.posture import Posture

# Cervicogenic-headache risk (study 000): forward head posture and neck flexion drive it.
CH_PROTRACTION_WEIGHT = 1.0 / 0.02  # per metre of head protraction (2 cm = 1 unit)
CH_FLEXION_WEIGHT = 1.0 / 15.0  # per degree of neck flexion
CH_THRESHOLD = 3.3  # about 40 % of office workers above it
CH_FLIP_RATE = 0.10

# Scoliosis1K bands on the Cobb angle (degrees): < 10 negative, 10-20 neutral, >= 20 positive. The recorded
# angle carries the inter-observer measurement error of a radiograph reading.
SCOLIOSIS_NEUTRAL_COBB = 10.0
SCOLIOSIS_POSITIVE_COBB = 20.0
COBB_MEASUREMENT_SD = 3.0

# BACK-to-MOVE: the class is the sampled movement pattern; raters disagree on a fraction of cases.
FLEXION_FLIP_RATE = 0.06

# Head shift: the target is the true shift in head widths plus a rater's reading error.
HEAD_SHIFT_SD = 0.03

# Cervical curvature on X-ray (C2-C7 angle, degrees): >= 10 normal lordosis, -5..10 straightened, < -5 reversed.
XRAY_NORMAL_MIN = 10.0
XRAY_REVERSED_MAX = -5.0
XRAY_MEASUREMENT_SD = 3.0


@dataclass(frozen=True)
class Label:
    clean: int
    observed: int


def ch_score(posture: Posture) -> float:
    """Forward-head score: protraction plus neck flexion, each in units that make them comparable."""
    return CH_PROTRACTION_WEIGHT * posture.head_sagittal_shift + CH_FLEXION_WEIGHT * posture.neck_flexion


def ch_label(posture: Posture, rng: np.random.Generator, flip_rate: float = CH_FLIP_RATE) -> Label:
    """CH risk (POSTURE_LABELS): 'ch' when the forward-head score exceeds CH_THRESHOLD; the observed label is
    flipped with probability `flip_rate` (headache has causes a photo cannot show)."""
    clean = POSTURE_LABELS["ch"] if ch_score(posture) > CH_THRESHOLD else POSTURE_LABELS["control"]
    return Label(clean, _flip_binary(clean, rng, flip_rate))


def scoliosis_class(cobb: float) -> int:
    """GAIT_LABELS class of an (absolute) Cobb angle."""
    magnitude = abs(cobb)
    if magnitude >= SCOLIOSIS_POSITIVE_COBB:
        return GAIT_LABELS["positive"]
    if magnitude >= SCOLIOSIS_NEUTRAL_COBB:
        return GAIT_LABELS["neutral"]
    return GAIT_LABELS["negative"]


def scoliosis_label(cobb: float, rng: np.random.Generator, sd: float = COBB_MEASUREMENT_SD) -> Label:
    """Clean class from the true Cobb angle; observed class from the angle as measured (Gaussian error `sd`)."""
    return Label(scoliosis_class(cobb), scoliosis_class(cobb + float(rng.normal(0, sd))))


def sample_cobb(rng: np.random.Generator, target: int | None = None) -> float:
    """A signed Cobb angle; with `target` drawn inside that class's band (2/3 of curves right-convex)."""
    if target is None:
        target = int(rng.integers(3))
    lo, hi = {
        GAIT_LABELS["negative"]: (0.0, SCOLIOSIS_NEUTRAL_COBB),
        GAIT_LABELS["neutral"]: (SCOLIOSIS_NEUTRAL_COBB, SCOLIOSIS_POSITIVE_COBB),
        GAIT_LABELS["positive"]: (SCOLIOSIS_POSITIVE_COBB, 45.0),
    }[target]
    sign = 1.0 if rng.random() < 2 / 3 else -1.0
    return sign * float(rng.uniform(lo, hi))


def flexion_label(pattern: str, rng: np.random.Generator, flip_rate: float = FLEXION_FLIP_RATE) -> Label:
    """MCI/MI (FLEXION_LABELS) of the sampled movement pattern, flipped with probability `flip_rate`."""
    clean = FLEXION_LABELS[pattern]
    return Label(clean, _flip_binary(clean, rng, flip_rate))


def head_shift_target(posture: Posture, anthro: Anthropometry, rng: np.random.Generator) -> tuple[float, float]:
    """(lateral, sagittal) head shift in head widths (contract.labels.HEAD_SHIFT_TARGETS order), with reading
    error of sd HEAD_SHIFT_SD."""
    lateral = posture.head_lateral_shift / anthro.head_width + float(rng.normal(0, HEAD_SHIFT_SD))
    sagittal = posture.head_sagittal_shift / anthro.head_width + float(rng.normal(0, HEAD_SHIFT_SD))
    return lateral, sagittal


def xray_class(curvature: float) -> int:
    if curvature >= XRAY_NORMAL_MIN:
        return XRAY_LABELS["normal"]
    if curvature >= XRAY_REVERSED_MAX:
        return XRAY_LABELS["straightened"]
    return XRAY_LABELS["reversed"]


def xray_label(curvature: float, rng: np.random.Generator, sd: float = XRAY_MEASUREMENT_SD) -> Label:
    """Clean class from the true C2-C7 angle; observed from the angle as measured (Gaussian error `sd`)."""
    return Label(xray_class(curvature), xray_class(curvature + float(rng.normal(0, sd))))


def _flip_binary(clean: int, rng: np.random.Generator, rate: float) -> int:
    return 1 - clean if rng.random() < rate else clean
