"""Motion: a parametric gait cycle (with the asymmetries scoliosis and pain cause) and forward-flexion movement
sequences with motor-control-impairment (MCI) and movement-impairment (MI) patterns (BACK-to-MOVE)."""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Literal

import numpy as np
import numpy.typing as npt

from training.synth.body import Anthropometry, LimbPose, pose_body
from training.synth.posture import Posture

F64 = npt.NDArray[np.float64]
FlexionPattern = Literal["mci", "mi"]


def _bump(phase: F64 | float, centre: float, width: float) -> F64:
    """A periodic Gaussian bump on the unit cycle."""
    d = (np.asarray(phase) - centre + 0.5) % 1.0 - 0.5
    return np.asarray(np.exp(-0.5 * (d / width) ** 2))


@dataclass(frozen=True)
class GaitParams:
    """One subject's walking pattern. Angles in degrees; asymmetries are left-minus-right fractions."""

    cadence: float  # steps per minute
    stride_length: float  # metres per full cycle (two steps)
    hip_amplitude: float  # half the sagittal hip range
    knee_swing_peak: float
    arm_swing: float  # half the sagittal shoulder range
    pelvic_rotation: float  # amplitude
    pelvic_obliquity: float  # amplitude
    trunk_sway: float  # amplitude of lateral trunk sway over a cycle
    arm_swing_asymmetry: float = 0.0  # left arm range = (1 + a) x arm_swing, right = (1 - a) x
    step_length_asymmetry: float = 0.0  # left hip range = (1 + a) x, right = (1 - a) x
    step_time_asymmetry: float = 0.0  # the right leg's phase lag is 0.5 + a cycles (antalgic gait shortens stance)

    @property
    def speed(self) -> float:
        return self.stride_length * self.cadence / 120.0

    @property
    def cycle_s(self) -> float:
        return 120.0 / self.cadence


def sample_gait(rng: np.random.Generator, anthro: Anthropometry, posture: Posture, pain: float = 0.0) -> GaitParams:
    """A walking pattern for this body; the scoliosis curve (posture.scoliosis_cobb) makes arm swing, step length
    and trunk sway asymmetric (the convex side swings less), `pain` in 0..1 adds an antalgic step-time asymmetry."""
    cobb = posture.scoliosis_cobb
    cadence = float(np.clip(rng.normal(112, 7), 90, 135))
    stride = float(np.clip(rng.normal(0.78, 0.05) * anthro.height, 0.9, 1.7))
    return GaitParams(
        cadence=cadence,
        stride_length=stride,
        hip_amplitude=float(rng.normal(20, 2)),
        knee_swing_peak=float(rng.normal(58, 4)),
        arm_swing=float(np.clip(rng.normal(18, 4), 6, 32)),
        pelvic_rotation=float(np.clip(rng.normal(4, 1), 1, 8)),
        pelvic_obliquity=float(np.clip(rng.normal(4, 1), 1, 8)),
        trunk_sway=float(np.clip(rng.normal(2, 0.5), 0.5, 4)) + 0.05 * abs(cobb),
        arm_swing_asymmetry=float(rng.normal(0, 0.04)) + 0.012 * cobb,
        step_length_asymmetry=float(rng.normal(0, 0.02)) + 0.003 * cobb,
        step_time_asymmetry=float(rng.normal(0, 0.01)) + 0.05 * pain * (1 if rng.random() < 0.5 else -1),
    )


PAIN_PREVALENCE = 0.15


def pain_level(rng: np.random.Generator) -> float:
    """Back or leg pain unrelated to scoliosis (0 for most; 0.3-1 for PAIN_PREVALENCE of subjects): a confounder
    that makes gait asymmetric without a curve."""
    return float(rng.uniform(0.3, 1.0)) if rng.random() < PAIN_PREVALENCE else 0.0


def limb_pose_at(params: GaitParams, phase: float) -> LimbPose:
    """The limb angles at gait phase `phase` (cycles; 0 = left heel strike)."""
    phases = (phase % 1.0, (phase - 0.5 - params.step_time_asymmetry) % 1.0)
    hip, knee, ankle, shoulder, elbow = [], [], [], [], []
    for i, ph in enumerate(phases):
        sign = 1.0 if i == 0 else -1.0
        amp = params.hip_amplitude * (1 + sign * params.step_length_asymmetry)
        hip.append(float(8 + amp * np.cos(2 * np.pi * ph)))
        knee.append(float(4 + 14 * _bump(ph, 0.15, 0.07) + params.knee_swing_peak * _bump(ph, 0.72, 0.11)))
        ankle.append(float(-6 * _bump(ph, 0.05, 0.05) + 10 * _bump(ph, 0.45, 0.1) - 18 * _bump(ph, 0.62, 0.06) + 2))
        arm = params.arm_swing * (1 + sign * params.arm_swing_asymmetry)
        swing = -arm * np.cos(2 * np.pi * ph)  # the arm swings opposite to its own leg
        shoulder.append(float(swing + 3))
        elbow.append(float(15 + 0.6 * max(swing, 0.0)))
    rotation = -params.pelvic_rotation * np.cos(2 * np.pi * phases[0])
    return LimbPose(
        hip_flexion=(hip[0], hip[1]),
        knee_flexion=(knee[0], knee[1]),
        ankle_dorsiflexion=(ankle[0], ankle[1]),
        shoulder_flexion=(shoulder[0], shoulder[1]),
        elbow_flexion=(elbow[0], elbow[1]),
        pelvic_rotation=float(rotation),
        trunk_counter_rotation=float(-1.5 * rotation),
        pelvic_obliquity=float(params.pelvic_obliquity * np.cos(2 * np.pi * (phases[0] - 0.15))),
    )


def gait_sequence(
    anthro: Anthropometry,
    posture: Posture,
    params: GaitParams,
    *,
    fps: float,
    n_frames: int,
    start: npt.ArrayLike = (0.0, 0.0, 0.0),
    heading: float = 90.0,
    phase0: float = 0.0,
    speed_scale: float = 1.0,
) -> tuple[F64, F64]:
    """Walk for `n_frames` at `fps` from `start` (floor position of the mid-hip) along `heading` (degrees about
    Y; 90 walks towards +X). Returns (joints (T, NUM_JOINTS, 3), gait phase per frame). `speed_scale` 0 walks
    on the spot (used for someone standing still: pass a standing LimbPose instead)."""
    direction = np.array([np.sin(np.deg2rad(heading)), 0.0, np.cos(np.deg2rad(heading))])
    origin = np.asarray(start, dtype=np.float64)
    frames = []
    phases = phase0 + np.arange(n_frames) / fps / params.cycle_s
    for t, phase in enumerate(phases):
        limbs = limb_pose_at(params, float(phase))
        sway = params.trunk_sway * np.sin(2 * np.pi * (phase - 0.15))
        p = replace(posture, lateral_lean=posture.lateral_lean + float(sway))
        root = origin + direction * params.speed * speed_scale * t / fps
        frames.append(pose_body(anthro, p, limbs, root=root, heading=heading).joints)
    return np.stack(frames), phases


# --- forward flexion (BACK-to-MOVE) --------------------------------------------------------------------------


@dataclass(frozen=True)
class FlexionParams:
    """One forward-flexion trial: stand, bend forward as far as comfortable, return. Angles in degrees."""

    pattern: FlexionPattern
    total_flexion: float  # peak trunk flexion (hip + lumbar + thoracic)
    lumbar_share: float  # fraction of the peak carried by the lumbar spine
    thoracic_share: float
    lumbar_lead: float  # > 1: the lumbar spine flexes early in the descent (exponent on the progress curve)
    down_s: float
    hold_s: float
    up_s: float
    return_reversal: float  # 0..1: on the way up the hips extend first and the lumbar spine lags
    tremor: float  # amplitude (degrees) of jerky, poorly controlled motion
    lateral_deviation: float  # peak side shift of the trunk during the movement
    knee_bend: float


def sample_flexion(rng: np.random.Generator, pattern: FlexionPattern) -> FlexionParams:
    """Pattern-dependent distributions (they overlap, so the classes are not trivially separable).

    MI (movement impairment): pain-avoidant, guarded: reduced range, little lumbar contribution, slow and smooth.
    MCI (motor control impairment): full or excessive range with a lumbar-led descent, reversed lumbopelvic
    rhythm on return, jerky control and side deviation."""
    if pattern == "mi":
        return FlexionParams(
            pattern=pattern,
            total_flexion=float(np.clip(rng.normal(72, 14), 35, 120)),
            lumbar_share=float(np.clip(rng.normal(0.24, 0.06), 0.08, 0.5)),
            thoracic_share=float(np.clip(rng.normal(0.12, 0.04), 0.02, 0.3)),
            lumbar_lead=float(np.clip(rng.normal(0.95, 0.15), 0.6, 1.6)),
            down_s=float(np.clip(rng.normal(2.4, 0.4), 1.2, 4.0)),
            hold_s=float(np.clip(rng.normal(0.5, 0.2), 0.1, 1.2)),
            up_s=float(np.clip(rng.normal(2.6, 0.4), 1.2, 4.5)),
            return_reversal=float(np.clip(rng.normal(0.15, 0.12), 0, 1)),
            tremor=float(np.clip(rng.normal(0.6, 0.4), 0, 3)),
            lateral_deviation=float(rng.normal(0, 2)),
            knee_bend=float(np.clip(rng.normal(12, 5), 0, 30)),
        )
    return FlexionParams(
        pattern=pattern,
        total_flexion=float(np.clip(rng.normal(100, 14), 55, 140)),
        lumbar_share=float(np.clip(rng.normal(0.38, 0.07), 0.1, 0.6)),
        thoracic_share=float(np.clip(rng.normal(0.14, 0.04), 0.02, 0.3)),
        lumbar_lead=float(np.clip(rng.normal(1.35, 0.2), 0.7, 2.2)),
        down_s=float(np.clip(rng.normal(1.7, 0.35), 0.9, 3.0)),
        hold_s=float(np.clip(rng.normal(0.3, 0.15), 0.0, 1.0)),
        up_s=float(np.clip(rng.normal(1.9, 0.4), 0.9, 3.5)),
        return_reversal=float(np.clip(rng.normal(0.5, 0.18), 0, 1)),
        tremor=float(np.clip(rng.normal(1.6, 0.7), 0, 4)),
        lateral_deviation=float(rng.normal(0, 5)),
        knee_bend=float(np.clip(rng.normal(6, 4), 0, 25)),
    )


def flexion_states(
    posture: Posture, params: FlexionParams, rng: np.random.Generator, *, fps: float = 15.0
) -> tuple[F64, list[tuple[Posture, LimbPose]]]:
    """One trial's frame times and (posture, limbs) per frame: 0.4 s standing, descent, hold, return, 0.4 s
    standing."""
    still = 0.4
    total = 2 * still + params.down_s + params.hold_s + params.up_s
    t = np.arange(round(total * fps)) / fps
    up_start = still + params.down_s + params.hold_s
    progress = np.clip((t - still) / params.down_s, 0, 1)
    going_up = t >= up_start
    back = np.clip((t - up_start) / params.up_s, 0, 1)
    smooth = 0.5 - 0.5 * np.cos(np.pi * progress)
    smooth_up = 0.5 - 0.5 * np.cos(np.pi * back)
    level = np.where(going_up, 1.0 - smooth_up, smooth)
    lumbar_level = np.where(
        going_up, 1.0 - smooth_up ** (1.0 + 2.0 * params.return_reversal), smooth ** (1.0 / params.lumbar_lead)
    )
    hip_level = np.where(
        going_up, 1.0 - smooth_up ** (1.0 / (1.0 + params.return_reversal)), smooth**params.lumbar_lead
    )
    noise = np.cumsum(rng.normal(0, 1, t.size))
    noise -= np.linspace(noise[0], noise[-1], t.size)  # a bridge: no drift at the ends
    noise *= params.tremor / (np.abs(noise).max() + 1e-9) * (level > 0.02)
    hip_share = 1.0 - params.lumbar_share - params.thoracic_share
    states = []
    for i in range(t.size):
        limbs = LimbPose(
            pelvic_tilt=float(params.total_flexion * hip_share * hip_level[i] + noise[i]),
            lumbar_flexion=float(params.total_flexion * params.lumbar_share * lumbar_level[i] + noise[i] * 0.5),
            thoracic_flexion=float(params.total_flexion * params.thoracic_share * level[i]),
            knee_flexion=(params.knee_bend * level[i], params.knee_bend * level[i]),
            hip_flexion=(0.5 * params.knee_bend * level[i], 0.5 * params.knee_bend * level[i]),
            shoulder_flexion=(35 * level[i], 35 * level[i]),
        )
        p = replace(posture, lateral_lean=posture.lateral_lean + params.lateral_deviation * np.sin(np.pi * level[i]))
        states.append((p, limbs))
    return t, states


def flexion_sequence(
    anthro: Anthropometry,
    posture: Posture,
    params: FlexionParams,
    rng: np.random.Generator,
    *,
    fps: float = 15.0,
    heading: float = 0.0,
) -> F64:
    """Joints (T, NUM_JOINTS, 3) of one trial (flexion_states)."""
    _, states = flexion_states(posture, params, rng, fps=fps)
    return np.stack([pose_body(anthro, p, limbs, heading=heading).joints for p, limbs in states])
