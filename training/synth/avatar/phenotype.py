"""Who the avatar is: sex, age in years and build, sampled for the population each role screens.

anny describes a body with phenotype parameters in 0..1 (`gender` 0 = male, 1 = female; `age` on its own scale;
`height`, `weight`, `muscle`, `proportions`). The age scale and the per-age, per-sex height, weight and muscle
distributions come from the calibration that ships with anny (`anny/data/shape_calibration/{boys,girls}.pth`,
fitted by its authors to the WHO height-for-age data), read here and sampled with numpy so that a seed alone fixes
the body.

Populations: `school` = ages 10–16 (the gait booth screens adolescents, the age range of adolescent idiopathic
scoliosis screening); `adult` = 18–70 (office workers and clinic patients). Both sexes, 50/50 unless asked.
"""

from __future__ import annotations

import functools
from dataclasses import asdict, dataclass
from typing import Literal

import numpy as np
import numpy.typing as npt

Sex = Literal["female", "male"]
Population = Literal["school", "adult"]
AGE_RANGES: dict[Population, tuple[float, float]] = {"school": (10.0, 16.0), "adult": (18.0, 70.0)}
BUILD_LIMITS = (0.05, 0.95)  # keep weight and muscle off anny's extreme targets, which look caricatured


@dataclass(frozen=True)
class Phenotype:
    """One body. `height`, `weight`, `muscle`, `proportions` are anny's 0..1 parameters at this age and sex (the
    middle of anny's range is 0.5, not the population's average: see sample_phenotype); the stature in metres
    follows from them and the age (builder.stature_m)."""

    sex: Sex
    age_years: float
    height: float = 0.5
    weight: float = 0.5
    muscle: float = 0.5
    proportions: float = 0.5

    def __post_init__(self) -> None:
        if self.sex not in ("female", "male"):
            raise ValueError(f"Phenotype.sex: expected 'female' or 'male', got {self.sex!r}")
        if not 1.0 <= self.age_years <= 100.0:
            raise ValueError(f"Phenotype.age_years: expected 1..100, got {self.age_years}")
        for name in ("height", "weight", "muscle", "proportions"):
            value = getattr(self, name)
            if not 0.0 <= value <= 1.0:
                raise ValueError(f"Phenotype.{name}: expected 0..1, got {value}")

    def anny_kwargs(self) -> dict[str, float]:
        """anny's phenotype parameters for this body."""
        return {
            "gender": 0.0 if self.sex == "male" else 1.0,
            "age": anny_age(self.age_years),
            "height": self.height,
            "weight": self.weight,
            "muscle": self.muscle,
            "proportions": self.proportions,
        }

    def as_dict(self) -> dict[str, float | str]:
        return asdict(self)


@dataclass(frozen=True)
class _Calibration:
    """anny's age scale and the Beta(alpha, beta) anchors of height, weight and muscle per sex."""

    years: npt.NDArray[np.float64]
    anny: npt.NDArray[np.float64]
    beta: dict[tuple[Sex, str], tuple[npt.NDArray[np.float64], npt.NDArray[np.float64], npt.NDArray[np.float64]]]


@functools.cache
def _calibration() -> _Calibration:
    import torch
    from anny.paths import get_anny_root_dir

    root = get_anny_root_dir() / "data" / "shape_calibration"
    states = {
        sex: torch.load(root / f"{name}.pth", weights_only=True, map_location="cpu")
        for sex, name in (("male", "boys"), ("female", "girls"))
    }
    mapping = states["male"]["morphological_age_mapping"]  # the same for both sexes
    beta = {}
    for sex, state in states.items():
        for what in ("height", "weight", "muscle"):
            d = state[f"conditional_{what}_distribution"]
            beta[(sex, what)] = tuple(d[k].double().numpy() for k in ("age_anchors", "alpha_anchors", "beta_anchors"))
    return _Calibration(
        years=mapping["morphological_age_anchors"].double().numpy(),
        anny=mapping["anny_age_anchors"].double().numpy(),
        beta=beta,  # type: ignore[arg-type]
    )


def anny_age(years: float) -> float:
    """anny's age parameter for an age in years (its calibrated, piecewise-linear morphological age scale)."""
    cal = _calibration()
    return float(np.interp(years, cal.years, cal.anny))


def sample_phenotype(rng: np.random.Generator, population: Population = "adult", sex: Sex | None = None) -> Phenotype:
    """A random body of the population, with height, weight and muscle drawn from anny's per-age, per-sex
    calibration (Beta distributions; weight and muscle kept within BUILD_LIMITS)."""
    if population not in AGE_RANGES:
        raise ValueError(f"sample_phenotype: population must be one of {sorted(AGE_RANGES)}, got {population!r}")
    chosen: Sex = sex if sex is not None else ("female" if rng.random() < 0.5 else "male")
    lo, hi = AGE_RANGES[population]
    years = float(rng.uniform(lo, hi))
    age = anny_age(years)
    cal = _calibration()
    drawn = {}
    for what in ("height", "weight", "muscle"):
        anchors, alpha, beta = cal.beta[(chosen, what)]
        a = float(np.interp(age, anchors, alpha))
        b = float(np.interp(age, anchors, beta))
        drawn[what] = float(rng.beta(max(a, 0.05), max(b, 0.05)))
    low, high = BUILD_LIMITS
    return Phenotype(
        sex=chosen,
        age_years=years,
        height=float(np.clip(drawn["height"], 0.02, 0.98)),
        weight=float(np.clip(drawn["weight"], low, high)),
        muscle=float(np.clip(drawn["muscle"], low, high)),
        proportions=float(rng.uniform(0.2, 0.8)),
    )
