"""A replay file (edge/replay.py) of one person seated at a desk, for runs of `edgescreen edge run --replay` with
the shipped office-posture profile: `minutes` of media time at `fps` frames a second, fed as fast as the
runtime takes them (far faster than real time)."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from contract.landmarks import NUM_LANDMARKS
from edge.perception.types import FrameResult, Person
from edge.replay import write_replay
from training.synth.body import J, pose_body, sample_anthropometry
from training.synth.camera import view_camera
from training.synth.posture import Posture
from training.synth.render import estimator_keypoints
from training.synth.tasks import SEAT_HEIGHT, SEATED

ROOT = Path(__file__).resolve().parents[2]
POSTURE_PROFILE = ROOT / "firmware_config" / "profiles" / "office-posture.yaml"


def seated_person(seed: int = 0) -> Person:
    """One seated body seen from the front, as perception would report it."""
    rng = np.random.default_rng(seed)
    skel = pose_body(sample_anthropometry(rng), Posture(), SEATED, root=(0.0, SEAT_HEIGHT, 0.0), on_ground=False)
    target = skel["c7"] + np.array([0.0, 0.06, 0.0])
    level = (float(target[1]), float(target[1]))
    cam = view_camera(rng, 640, 480, view="front", target=target, distance=(1.0, 1.0), camera_height=level,
                      hfov=(42.0, 42.0), distortion=0.0)  # fmt: skip
    kp = estimator_keypoints(skel.joints, cam, rng, noise=0.0, dropout=0.0).reshape(NUM_LANDMARKS, 3)
    world = cam.to_camera(skel.joints[:NUM_LANDMARKS]) - cam.to_camera(skel.joints[J["pelvis"]])
    return Person(score=0.9, bbox=(0, 0, 640, 480), keypoints=kp.astype(np.float32), world=world.astype(np.float32))


def write_posture_replay(path: Path, minutes: float, fps: float = 2.0) -> int:
    """Write the replay; returns its number of frames."""
    person = seated_person()
    frames = [FrameResult(i / fps, 640, 480, [person]) for i in range(int(minutes * 60 * fps))]
    return write_replay(path, frames)
