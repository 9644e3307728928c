"""Walks towards and away from the booth camera (Scoliosis1K's view 000_180): detected from the person's growing or
shrinking image and a frontal trunk, gait cycles counted from the feet's alternating image height."""

from __future__ import annotations

import math

import numpy as np
import pytest

from contract.landmarks import Landmark as Lm
from edge.roles.base import EmitContext
from edge.roles.gait.analyzer import GaitAnalyzer
from edge.roles.gait.config import GaitConfig
from edge.roles.gait.measures import Track, gait_cycles
from edge.roles.gait.walk import Walk, WalkFrame

FPS = 15.0
CYCLE_S = 1.1


def _frame(t: float, scale: float, frontal: bool, step: float, floor: float = 1.0) -> WalkFrame:
    """A person at image scale `scale` (fraction of the image height); `step` in -1..1: +1 left foot ahead;
    `floor` scales how far apart the feet look in image height (the floor foreshortens with distance)."""
    kp = np.zeros((33, 3), np.float32)
    kp[:, 2] = 1.0
    cx, px = 320.0, 480.0 * scale  # px: the person's height in pixels
    top = 440.0 - px
    half_sh, half_hip = (0.13 if frontal else 0.02) * px, (0.09 if frontal else 0.015) * px
    kp[:, 0], kp[:, 1] = cx, top + 0.1 * px
    kp[Lm.LEFT_SHOULDER, :2] = (cx + half_sh, top + 0.18 * px)
    kp[Lm.RIGHT_SHOULDER, :2] = (cx - half_sh, top + 0.18 * px)
    kp[Lm.LEFT_HIP, :2] = (cx + half_hip, top + 0.5 * px)
    kp[Lm.RIGHT_HIP, :2] = (cx - half_hip, top + 0.5 * px)
    for side, sign in ((0, 1.0), (1, -1.0)):
        ankle, heel = (Lm.LEFT_ANKLE, Lm.LEFT_HEEL) if side == 0 else (Lm.RIGHT_ANKLE, Lm.RIGHT_HEEL)
        x = cx + (0.05 * px if side == 0 else -0.05 * px)
        y = 440.0 + sign * 0.04 * px * step * floor  # the front foot (nearer the camera) lower in the image
        kp[ankle, :2] = (x, y - 3)
        kp[heel, :2] = (x, y)
    kp[Lm.LEFT_WRIST, :2] = (cx + 0.15 * px, top + 0.45 * px)
    kp[Lm.RIGHT_WRIST, :2] = (cx - 0.15 * px, top + 0.45 * px)
    world = np.zeros((33, 3), np.float32)
    world[:, :2] = (kp[:, :2] - (cx, top + 0.5 * px)) / px * 1.5
    world[Lm.LEFT_WRIST, 2] = 0.1 * step
    world[Lm.RIGHT_WRIST, 2] = -0.1 * step
    f = WalkFrame(t=t, people=1, cx=cx / 640, height=scale, keypoints=kp, world=world)
    f.silhouette = np.full((64, 44), 255, np.uint8)
    return f


def _walk(direction: int, frontal: bool = True, seconds: float = 3.4) -> Walk:
    n = int(seconds * FPS)
    frames = []
    for i in range(n):
        t = i / FPS
        u = i / (n - 1)
        scale = 0.35 + 0.35 * (u if direction > 0 else 1 - u) if direction else 0.5
        # towards: the left foot ahead is the lower one; away: the left foot ahead is the higher one
        step = math.sin(2 * math.pi * t / CYCLE_S) * (1 if direction >= 0 else -1)
        frames.append(_frame(t, scale, frontal, step))
    return Walk(frames, closed_at=frames[-1].t + 0.5)


def _screen(walk: Walk, direction: str) -> object:
    analyzer = GaitAnalyzer(EmitContext(site="north", device_id="booth-1"), GaitConfig(direction=direction))
    analyzer.timeline.accept(walk.frames[0].t)
    return analyzer._screen(walk)


@pytest.mark.parametrize(("towards", "config"), [(1, "towards"), (-1, "away"), (1, "along"), (-1, "along")])
def test_walks_towards_and_away_are_screened_with_their_cycles(towards: int, config: str) -> None:
    message = _screen(_walk(towards), config)
    assert message.outcome == "screened", message.quality  # type: ignore[attr-defined]
    cycles = message.quality["gait_cycles"]  # type: ignore[attr-defined]
    assert 2 <= cycles <= 3.4 / CYCLE_S
    assert abs(message.measures["cadence_spm"].value - 120 / CYCLE_S) < 8  # type: ignore[attr-defined]
    assert (message.quality["net_travel"] > 0) == (towards > 0)  # type: ignore[attr-defined]


def test_wrong_way_side_view_and_standing_still_are_not_screened() -> None:
    assert _screen(_walk(-1), "towards").outcome == "wrong_direction"  # type: ignore[attr-defined]
    assert _screen(_walk(1, frontal=False), "along").outcome == "wrong_direction"  # type: ignore[attr-defined]
    assert _screen(_walk(0), "along").outcome == "standing_still"  # type: ignore[attr-defined]


@pytest.mark.parametrize("towards", [1, -1])
def test_steps_far_down_the_corridor_count_as_much_as_near_ones(towards: int) -> None:
    # A 6 m walk: the student grows threefold in the image between the corridor's far end and the camera, and the
    # floor is foreshortened by as much again, so the far steps look nine times shorter than the near ones.
    n = int(6.0 * FPS)
    frames = []
    for i in range(n):
        t, u = i / FPS, i / (n - 1)
        scale = 0.2 + 0.4 * (u if towards > 0 else 1 - u)
        step = math.sin(2 * math.pi * t / CYCLE_S) * towards
        frames.append(_frame(t, scale, True, step, floor=scale / 0.6))
    track = Track.from_frames(frames, min_visibility=0.5)
    cycles, _ = gait_cycles(track, towards, along=True)
    # Every full cycle of the walk, the far ones included (6 s of 1.1 s cycles: 5 minus the ends).
    assert len(cycles) >= 4, [(track.t[c.start], track.t[c.end]) for c in cycles]
