"""Gait cycles and interpretable asymmetry measures from a walk's keypoint track (docs/metrics.md, "Gait").

Cycles come from the feet: s(t) = d · (x_left_foot − x_right_foot) / leg length(t), with d = +1 when the walk goes
towards image right, peaks where the left foot is furthest ahead (left heel strike) and dips at right heel
strikes. A cycle runs from one left heel strike to the next with one right heel strike between, lasts
0.6–2.0 s and has usable keypoints in at least 70 % of its frames. Each measure is the mean over the cycles in
which it could be computed, with that number of cycles. Signs: asymmetries are 100 · (left − right) / mean of
both (positive: the left side larger / longer); shoulder height difference and pelvic obliquity are positive
when the subject's left side is higher; trunk lateral lean is positive towards the subject's left.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from contract.landmarks import Landmark as Lm
from edge.roles.gait.walk import WalkFrame

F64 = npt.NDArray[np.float64]
GAIT_MEASURES: tuple[str, ...] = (
    "cadence_spm",
    "step_time_asymmetry_pct",
    "step_length_asymmetry_pct",
    "arm_swing_asymmetry_pct",
    "shoulder_height_diff_deg",
    "pelvic_obliquity_deg",
    "trunk_lateral_lean_deg",
)
MIN_CYCLE_S, MAX_CYCLE_S = 0.6, 2.0
MIN_CYCLE_VALID = 0.7
LEG_WINDOW_S = 1.0  # the leg length that scales the foot signal is a running median over about one gait cycle
_NEEDED = (Lm.LEFT_SHOULDER, Lm.RIGHT_SHOULDER, Lm.LEFT_HIP, Lm.RIGHT_HIP, Lm.LEFT_ANKLE, Lm.RIGHT_ANKLE)
_UP = np.array([0.0, -1.0, 0.0])


@dataclass(frozen=True)
class Cycle:
    start: int  # frame index (into the track) of the left heel strike opening the cycle
    right: int  # the right heel strike inside it
    end: int  # the next left heel strike


@dataclass
class Track:
    """A walk's keypoints as arrays over the frames with a person (NaN where a keypoint was not usable)."""

    t: F64  # (N,)
    kp: F64  # (N, 33, 2) image pixels
    world: F64  # (N, 33, 3) metres
    valid: npt.NDArray[np.bool_]  # (N,) the frame has every keypoint the cycles need

    @classmethod
    def from_frames(cls, frames: Sequence[WalkFrame], min_visibility: float) -> Track:
        n = len(frames)
        t = np.array([f.t for f in frames], np.float64)
        kp = np.full((n, 33, 2), np.nan)
        world = np.full((n, 33, 3), np.nan)
        for i, f in enumerate(frames):
            if f.keypoints is None:
                continue
            vis = f.keypoints[:, 2] >= min_visibility
            kp[i, vis] = f.keypoints[vis, :2]
            if f.world is not None:
                world[i, vis] = f.world[vis]
        valid = np.isfinite(kp[:, list(_NEEDED), 0]).all(axis=1)
        return cls(t, kp, world, valid)


def _foot(kp: F64, heel: int, ankle: int, axis: int = 0) -> F64:
    x = kp[:, heel, axis].copy()
    missing = ~np.isfinite(x)
    x[missing] = kp[missing, ankle, axis]
    return x


def _interp(t: F64, y: F64) -> F64:
    ok = np.isfinite(y)
    if ok.sum() < 2:
        return np.full_like(y, np.nan)
    return np.asarray(np.interp(t, t[ok], y[ok]))


def _leg_length(track: Track) -> F64:
    """Each frame's leg length in pixels (hip to ankle, both legs), the median over LEG_WINDOW_S around it.

    Per frame, not one figure per walk: a student walking towards a camera at the corridor's end grows two- to
    threefold in the image, and one walk-wide length would shrink the far steps below the peak finder's cut."""
    legs = [np.linalg.norm(track.kp[:, hip] - track.kp[:, ankle], axis=1)
            for hip, ankle in ((Lm.LEFT_HIP, Lm.LEFT_ANKLE), (Lm.RIGHT_HIP, Lm.RIGHT_ANKLE))]  # fmt: skip
    stacked = np.stack(legs, axis=1) if len(track.t) else np.empty((0, 2))
    seen = np.isfinite(stacked)
    count = seen.sum(axis=1)
    mean = np.where(seen, stacked, 0.0).sum(axis=1) / np.maximum(count, 1)
    per_frame = _interp(track.t, np.where(count > 0, mean, np.nan))
    half = LEG_WINDOW_S / 2
    return np.array([np.median(per_frame[np.abs(track.t - t) <= half]) for t in track.t], np.float64)


def foot_signal(track: Track, direction: int, along: bool = False) -> F64:
    """s(t): how far the left foot is ahead of the right one, in leg lengths (positive: left ahead).

    Across the image the feet are compared on x. Walking towards or away from the camera (`along`, direction +1
    towards, -1 away) they are compared on image y: the camera looks down on the floor, so the foot nearer to it
    is lower in the image: the front foot when the walk comes towards the camera, the back foot when it goes away.
    """
    kp = track.kp
    axis = 1 if along else 0
    left = _foot(kp, Lm.LEFT_HEEL, Lm.LEFT_ANKLE, axis)
    right = _foot(kp, Lm.RIGHT_HEEL, Lm.RIGHT_ANKLE, axis)
    leg = _leg_length(track)
    if not np.isfinite(leg).all() or (leg <= 0).any():
        return np.full(len(track.t), np.nan)  # no leg seen: no signal
    s = _interp(track.t, direction * (left - right) / leg)
    if len(s) >= 3 and np.isfinite(s).all():
        s = np.convolve(np.pad(s, 1, mode="edge"), np.ones(3) / 3, mode="valid")  # light smoothing
    return s


def _peaks(s: F64, t: F64, min_gap_s: float) -> list[int]:
    """Local maxima of s above a third of its largest value, at least `min_gap_s` apart."""
    if len(s) < 3 or not np.isfinite(s).all():
        return []
    top = float(np.max(s))
    if top <= 0:
        return []
    found: list[int] = []
    for i in range(1, len(s) - 1):
        if s[i] < top / 3 or s[i] < s[i - 1] or s[i] < s[i + 1]:
            continue
        if found and t[i] - t[found[-1]] < min_gap_s:
            if s[i] > s[found[-1]]:
                found[-1] = i
            continue
        found.append(i)
    return found


def gait_cycles(track: Track, direction: int, along: bool = False) -> tuple[list[Cycle], F64]:
    """The valid gait cycles of a track and the foot signal they were found on."""
    s = foot_signal(track, direction, along)
    if direction == 0 or not np.isfinite(s).all():
        return [], s
    lefts = _peaks(s, track.t, MIN_CYCLE_S / 2)
    rights = _peaks(-s, track.t, MIN_CYCLE_S / 2)
    cycles = []
    for a, b in itertools.pairwise(lefts):
        between = [r for r in rights if a < r < b]
        duration = track.t[b] - track.t[a]
        if len(between) != 1 or not MIN_CYCLE_S <= duration <= MAX_CYCLE_S:
            continue
        if track.valid[a : b + 1].mean() < MIN_CYCLE_VALID:
            continue
        cycles.append(Cycle(a, between[0], b))
    return cycles, s


def _asymmetry(left: float, right: float) -> float | None:
    mean = (left + right) / 2
    if not (math.isfinite(left) and math.isfinite(right)) or mean <= 1e-9:
        return None
    return 100.0 * (left - right) / mean


def _frontal_angle(world: F64, left: int, right: int) -> float | None:
    """Mean elevation of the left point over the right one (degrees, positive: left higher) over the frames."""
    v = world[:, left] - world[:, right]
    v = v[np.isfinite(v).all(axis=1)]
    if len(v) == 0:
        return None
    horizontal = np.linalg.norm(v[:, [0, 2]], axis=1)
    return float(np.degrees(np.arctan2(-v[:, 1], horizontal)).mean())


def _trunk_lean(world: F64) -> float | None:
    mid_sh = (world[:, Lm.LEFT_SHOULDER] + world[:, Lm.RIGHT_SHOULDER]) / 2
    mid_hip = (world[:, Lm.LEFT_HIP] + world[:, Lm.RIGHT_HIP]) / 2
    lateral = world[:, Lm.LEFT_HIP] - world[:, Lm.RIGHT_HIP]
    lateral[:, 1] = 0.0
    trunk = mid_sh - mid_hip
    ok = np.isfinite(trunk).all(axis=1) & np.isfinite(lateral).all(axis=1)
    norms = np.linalg.norm(lateral[ok], axis=1)
    ok_idx = np.flatnonzero(ok)[norms > 1e-6]
    if len(ok_idx) == 0:
        return None
    lat = lateral[ok_idx] / np.linalg.norm(lateral[ok_idx], axis=1, keepdims=True)
    tr = trunk[ok_idx]
    return float(np.degrees(np.arctan2((tr * lat).sum(axis=1), tr @ _UP)).mean())


def _arm_swing(kp: F64, wrist: int, shoulder: int, axis: int = 0) -> float:
    rel = kp[:, wrist, axis] - kp[:, shoulder, axis]
    rel = rel[np.isfinite(rel)]
    return float(rel.max() - rel.min()) if len(rel) >= 3 else math.nan


def _cycle_measures(track: Track, s: F64, c: Cycle, along: bool = False) -> dict[str, float | None]:
    t = track.t
    sl = slice(c.start, c.end + 1)
    kp, world = track.kp[sl], track.world[sl]
    # arm swing along the walk: image x across the view; towards or away, the world landmarks' depth
    swing, axis = (world, 2) if along else (kp, 0)
    right_step = t[c.right] - t[c.start]  # left heel strike → right heel strike: the right foot's step
    left_step = t[c.end] - t[c.right]
    return {
        "cadence_spm": 120.0 / (t[c.end] - t[c.start]),
        "step_time_asymmetry_pct": _asymmetry(left_step, right_step),
        "step_length_asymmetry_pct": _asymmetry(float(s[c.end]), float(-s[c.right])),
        "arm_swing_asymmetry_pct": _asymmetry(
            _arm_swing(swing, Lm.LEFT_WRIST, Lm.LEFT_SHOULDER, axis),
            _arm_swing(swing, Lm.RIGHT_WRIST, Lm.RIGHT_SHOULDER, axis),
        ),
        "shoulder_height_diff_deg": _frontal_angle(world, Lm.LEFT_SHOULDER, Lm.RIGHT_SHOULDER),
        "pelvic_obliquity_deg": _frontal_angle(world, Lm.LEFT_HIP, Lm.RIGHT_HIP),
        "trunk_lateral_lean_deg": _trunk_lean(world),
    }


def gait_measures(
    track: Track, s: F64, cycles: Sequence[Cycle], along: bool = False
) -> dict[str, tuple[float | None, int]]:
    """Each measure's mean over the cycles in which it was computed, and that number of cycles."""
    per_cycle = [_cycle_measures(track, s, c, along) for c in cycles]
    out: dict[str, tuple[float | None, int]] = {}
    for name in GAIT_MEASURES:
        values = [v for m in per_cycle if (v := m[name]) is not None and math.isfinite(v)]
        out[name] = (float(np.mean(values)) if values else None, len(values))
    return out
