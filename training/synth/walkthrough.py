"""Synthetic walk-throughs at a gait-screening booth, as perception output (FrameResults) in replay files.

The booth camera looks across a corridor from the side; a screening walk enters at the image left, crosses for
several gait cycles and leaves at the image right. Scenarios: `negative`, `neutral`, `positive` (a screening
walk of a student with that scoliosis class) and the deliberately bad `partial` (enters, turns back halfway),
`two_people` (two students walking together), `standing` (someone standing still in view) and
`wrong_direction` (crosses right to left). Labels go to `labels.json` beside the replays."""

from __future__ import annotations

import json
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from contract.labels import GAIT_LABELS
from contract.landmarks import NUM_LANDMARKS
from edge.perception.types import FrameResult, Person
from edge.replay import write_replay
from training.synth import labels as rules
from training.synth.body import Anthropometry, J, LimbPose, Skeleton, body_radii, pose_body, sample_anthropometry
from training.synth.camera import Camera, make_camera
from training.synth.gait import gait_sequence, pain_level, sample_gait
from training.synth.posture import sample_posture, scoliosis
from training.synth.render import estimator_keypoints, render_mask

F64 = npt.NDArray[np.float64]

WIDTH, HEIGHT, FPS = 640, 480, 25.0
SCENARIOS = ("negative", "positive", "neutral", "partial", "two_people", "standing", "wrong_direction")
BAD_SCENARIOS = {"partial", "two_people", "standing", "wrong_direction"}
# Generation cycle: screening walks dominate, every bad kind appears once per cycle of ten.
_CYCLE = ("negative", "positive", "neutral", "partial", "negative", "positive", "two_people", "standing",
          "wrong_direction", "positive")  # fmt: skip
MARGIN_S = 0.6  # empty corridor before the person appears and after they leave


@dataclass
class Walker:
    joints: F64  # (T, NUM_JOINTS, 3) world
    anthro: Anthropometry
    start_frame: int


def booth_camera(rng: np.random.Generator) -> Camera:
    """The booth camera: 3.5-4.5 m from the walking line, at 1.0-1.4 m, looking across (image right = -X)."""
    distance = float(rng.uniform(3.5, 4.5))
    return make_camera(
        WIDTH, HEIGHT, eye=(0.0, float(rng.uniform(1.0, 1.4)), -distance), target=(0.0, 0.9, 0.0), hfov_deg=70.0,
        k1=float(rng.uniform(-0.03, 0.03)),
    )  # fmt: skip


def _walk(rng: np.random.Generator, cobb: float, *, direction: int, depth: float, turn_back: bool = False,
          half_width: float) -> tuple[F64, Anthropometry, dict[str, Any]]:  # fmt: skip
    """One walker crossing the view. direction +1 walks towards image right (world -X)."""
    anthro = sample_anthropometry(rng, age="adolescent")
    posture = replace(sample_posture(rng, "standing"), **scoliosis(cobb, rng))
    params = sample_gait(rng, anthro, posture, pain=pain_level(rng))
    heading = -90.0 if direction > 0 else 90.0
    start_x = direction * (half_width + 0.8)
    if turn_back:
        n_in = round((half_width + 0.8) / params.speed * FPS)  # walk to the middle ...
        first, phases = gait_sequence(anthro, posture, params, fps=FPS, n_frames=n_in, start=(start_x, 0, depth),
                                      heading=heading)  # fmt: skip
        pelvis = first[-1, J["pelvis"]]
        back, _ = gait_sequence(anthro, posture, params, fps=FPS, n_frames=n_in, start=(pelvis[0], 0, depth),
                                heading=-heading, phase0=float(phases[-1]))  # fmt: skip  # ... and back out
        joints = np.concatenate([first, back])
    else:
        n_frames = round(2 * (half_width + 0.8) / params.speed * FPS)
        joints, _ = gait_sequence(anthro, posture, params, fps=FPS, n_frames=n_frames, start=(start_x, 0, depth),
                                  heading=heading, phase0=float(rng.random()))  # fmt: skip
    info = {"height_m": anthro.height, "cadence": params.cadence, "speed_mps": params.speed,
            "cycle_s": params.cycle_s}  # fmt: skip
    return joints, anthro, info


def _standing(rng: np.random.Generator, seconds: float) -> tuple[F64, Anthropometry]:
    anthro = sample_anthropometry(rng, age="adolescent")
    posture = sample_posture(rng, "standing")
    n = int(seconds * FPS)
    sway = np.cumsum(rng.normal(0, 0.002, (n, 2)), axis=0)
    frames = [
        pose_body(anthro, posture, LimbPose(), root=(0.3 + sway[t, 0], 0, 0.2 + sway[t, 1]), heading=180.0).joints
        for t in range(n)
    ]
    return np.stack(frames), anthro


def scenario_walkers(scenario: str, rng: np.random.Generator, cam: Camera) -> tuple[list[Walker], dict[str, Any]]:
    """The people of one scenario and its labels."""
    half_width = 4.0 * np.tan(np.deg2rad(35.0))  # half the view's width at the walking line
    label: dict[str, Any] = {"scenario": scenario}
    if scenario in GAIT_LABELS:
        cobb = rules.sample_cobb(rng, GAIT_LABELS[scenario])
        joints, radii, info = _walk(rng, cobb, direction=1, depth=0.0, half_width=half_width)
        label.update(cobb=cobb, **{"class": scenario}, direction="left_to_right", expected="screened", **info)
        return [Walker(joints, radii, 0)], label
    cobb = rules.sample_cobb(rng)
    label["cobb"] = cobb
    if scenario == "partial":
        joints, radii, info = _walk(rng, cobb, direction=1, depth=0.0, turn_back=True, half_width=half_width)
        label.update(direction="left_then_back", expected="partial", **info)
        return [Walker(joints, radii, 0)], label
    if scenario == "wrong_direction":
        joints, radii, info = _walk(rng, cobb, direction=-1, depth=0.0, half_width=half_width)
        label.update(direction="right_to_left", expected="wrong_direction", **info)
        return [Walker(joints, radii, 0)], label
    if scenario == "two_people":
        a, ra, info = _walk(rng, cobb, direction=1, depth=0.0, half_width=half_width)
        b, rb, _ = _walk(rng, rules.sample_cobb(rng), direction=1, depth=0.7, half_width=half_width)
        label.update(direction="left_to_right", expected="multiple_people", **info)
        return [Walker(a, ra, 0), Walker(b, rb, int(rng.integers(0, 8)))], label
    if scenario == "standing":
        joints, radii = _standing(rng, float(rng.uniform(4.0, 6.0)))
        label.update(direction="none", expected="standing_still")
        return [Walker(joints, radii, 0)], label
    raise ValueError(f"unknown scenario {scenario!r}; known: {', '.join(SCENARIOS)}")


def _person(joints: F64, keypoints: npt.NDArray[np.float32], anthro: Anthropometry, cam: Camera,
            rng: np.random.Generator) -> Person | None:  # fmt: skip
    visible = keypoints[:, 2] > 0.3
    if visible.sum() < 8:
        return None
    mask = render_mask(Skeleton(joints, anthro, body_radii(anthro)), cam)
    ys, xs = np.nonzero(mask)
    if xs.size == 0:
        return None
    world = cam.to_camera(joints[:NUM_LANDMARKS]) - cam.to_camera(joints[J["pelvis"]])
    return Person(
        score=float(np.clip(rng.normal(0.92, 0.03), 0.5, 1.0)),
        bbox=(float(xs.min()), float(ys.min()), float(xs.max() + 1), float(ys.max() + 1)),
        keypoints=keypoints.astype(np.float32),
        world=world.astype(np.float32),
        mask=(mask > 0).astype(np.float32),
    )


def render_walkthrough(scenario: str, seed: int, index: int) -> tuple[list[FrameResult], dict[str, Any]]:
    """FrameResults of one walk-through (WIDTH x HEIGHT at FPS) and its labels."""
    rng = np.random.default_rng([seed, 7, index])
    cam = booth_camera(rng)
    walkers, label = scenario_walkers(scenario, rng, cam)
    margin = int(MARGIN_S * FPS)
    n_frames = margin * 2 + max(w.start_frame + len(w.joints) for w in walkers)
    tracks = [estimator_keypoints(w.joints, cam, rng, noise=0.005) for w in walkers]
    frames = []
    for f in range(n_frames):
        persons = []
        for walker, track in zip(walkers, tracks, strict=True):
            t = f - margin - walker.start_frame
            if 0 <= t < len(walker.joints):
                person = _person(walker.joints[t], track[t], walker.anthro, cam, rng)
                if person is not None:
                    persons.append(person)
        frames.append(FrameResult(timestamp=f / FPS, width=WIDTH, height=HEIGHT, persons=persons))
    label.update(n_frames=n_frames, fps=FPS, width=WIDTH, height=HEIGHT, n_people=len(walkers),
                 frames_with_person=sum(1 for fr in frames if fr.persons))  # fmt: skip
    return frames, label


def write_walkthroughs(out: str | Path, n: int, seed: int = 0, scenarios: tuple[str, ...] | None = None) -> Path:
    """Write `n` replays (`walk_0000.npz` ...) and `labels.json` to `out`; scenarios cycle through a fixed mix
    of screening walks and bad walks unless given."""
    root = Path(out)
    root.mkdir(parents=True, exist_ok=True)
    cycle = scenarios or _CYCLE
    unknown = [s for s in cycle if s not in SCENARIOS]
    if unknown:
        raise ValueError(f"unknown walk-through scenario(s) {unknown}; known: {', '.join(SCENARIOS)}")
    labels: dict[str, Any] = {}
    for i in range(n):
        scenario = cycle[i % len(cycle)]
        frames, label = render_walkthrough(scenario, seed, i)
        name = f"walk_{i:04d}.npz"
        write_replay(root / name, frames)
        labels[name] = label
    doc = {"format": "edgescreen-walkthroughs", "version": 1, "seed": seed, "expected_direction": "left_to_right",
           "files": labels}  # fmt: skip
    path = root / "labels.json"
    path.write_text(json.dumps(doc, indent=1, sort_keys=True), encoding="utf-8")
    return path
