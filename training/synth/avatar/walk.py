"""Movements over time for avatar bodies: the walk cycle and the forward-flexion trial.

Both reuse the capsule generator's motion models (training/synth/gait.py), so an avatar walks and bends with the
same parameters, asymmetries and label rules:
- `WalkCycle`: `GaitParams` (cadence, stride length, hip / knee / arm amplitudes, pelvic rotation and obliquity,
  trunk sway, and the left/right asymmetries that scoliosis and unrelated pain cause, `sample_gait`), its limb
  angles at each phase from `limb_pose_at` (phase 0 = left heel strike, one cycle = two steps = 120 / cadence
  seconds), the mid-hip moving at the mean walking speed along the heading.
- `FlexionTrial`: one standing forward-flexion trial (`FlexionParams`, `flexion_states`).

anny ships a walk cycle (MPFB2's `crappy_experimental_female.json`), but it drives feet and hands through IK
targets that anny does not solve, and it has none of these parameters, so it is not used.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field, replace

import numpy as np
import numpy.typing as npt

from training.synth.avatar.phenotype import Phenotype
from training.synth.avatar.pose import PoseParams
from training.synth.body import LimbPose, sample_anthropometry
from training.synth.gait import FlexionParams, GaitParams, flexion_states, limb_pose_at, sample_gait
from training.synth.posture import Posture

F64 = npt.NDArray[np.float64]
STANDING_WALK = LimbPose()  # for someone who stands in the booth instead of walking


@dataclass(frozen=True)
class WalkCycle:
    """Walking from `start` (floor x, z of the mid-hip) towards `heading_deg` (0 = +z, 90 = +x)."""

    gait: GaitParams
    start: tuple[float, float] = (0.0, 0.0)
    heading_deg: float = 90.0
    phase0: float = 0.0  # gait phase at t = 0, in cycles (0 = left heel strike)
    speed_scale: float = 1.0  # 0 walks on the spot

    def phase(self, t: float) -> float:
        return self.phase0 + t / self.gait.cycle_s

    def heel_strikes(self, t0: float, t1: float, side: str = "left") -> F64:
        """Times in [t0, t1] of the heel strikes of one side (the right one lags by half a cycle plus the
        step-time asymmetry, as limb_pose_at)."""
        offset = 0.0 if side == "left" else 0.5 + self.gait.step_time_asymmetry
        k0 = math.ceil(self.phase(t0) - offset)
        k1 = math.floor(self.phase(t1) - offset)
        return np.array([(k + offset - self.phase0) * self.gait.cycle_s for k in range(k0, k1 + 1)])

    def pose_at(self, pose: PoseParams, t: float) -> PoseParams:
        g = self.gait
        phase = self.phase(t)
        limbs = limb_pose_at(g, phase)
        sway = g.trunk_sway * math.sin(2 * math.pi * (phase - 0.15))
        posture = replace(pose.posture, lateral_lean=pose.posture.lateral_lean + sway)
        a = math.radians(self.heading_deg)
        travelled = g.speed * self.speed_scale * t
        position = (self.start[0] + travelled * math.sin(a), self.start[1] + travelled * math.cos(a))
        return replace(pose, posture=posture, limbs=limbs, heading_deg=self.heading_deg, position=position, motion=None)


def sample_walk(
    rng: np.random.Generator,
    phenotype: Phenotype,
    stature_m: float,
    posture: Posture,
    *,
    pain: float = 0.0,
    start: tuple[float, float] = (0.0, 0.0),
    heading_deg: float = 90.0,
) -> WalkCycle:
    """A walk for this body: `sample_gait` (stride from stature; scoliosis in `posture.scoliosis_cobb` and `pain`
    in 0..1 make it asymmetric), starting at a random phase."""
    base = sample_anthropometry(np.random.default_rng(0), sex=phenotype.sex)
    anthro = replace(base, height=stature_m)  # sample_gait reads the stature only
    gait = sample_gait(rng, anthro, posture, pain)
    return WalkCycle(gait=gait, start=start, heading_deg=heading_deg, phase0=float(rng.random()))


@dataclass(frozen=True)
class FlexionTrial:
    """One forward-flexion trial, sampled at `fps` (the tremor is a per-frame random walk)."""

    params: FlexionParams
    seed: int = 0
    fps: float = 15.0
    _states: tuple[tuple[Posture, LimbPose], ...] = field(default=(), repr=False, compare=False)

    @property
    def states(self) -> tuple[tuple[Posture, LimbPose], ...]:
        return self._states

    @classmethod
    def make(cls, posture: Posture, params: FlexionParams, seed: int = 0, fps: float = 15.0) -> FlexionTrial:
        _, states = flexion_states(posture, params, np.random.default_rng(seed), fps=fps)
        return cls(params=params, seed=seed, fps=fps, _states=tuple(states))

    @property
    def duration_s(self) -> float:
        return len(self._states) / self.fps

    def pose_at(self, pose: PoseParams, t: float) -> PoseParams:
        if not self._states:
            raise ValueError("FlexionTrial: build it with FlexionTrial.make(posture, params, seed)")
        i = int(np.clip(round(t * self.fps), 0, len(self._states) - 1))
        posture, limbs = self._states[i]
        return replace(pose, posture=posture, limbs=limbs, motion=None)
