"""Gait booth end to end at the perception boundary: synthetic walk-throughs (training/synth/walkthrough.py) in
one replay → `edgescreen edge run --profile gait-booth.yaml --replay FILE` (as a side-wall
booth, tests/support/booth.py; a child process) → a real broker.

One message per walk-through, in order; screening walks are `screened`, the deliberately bad ones carry
their quality outcome; the arm-swing asymmetry separates positive from negative walks (no ScoNet-MT is
configured: its probabilities are null); a student code typed on stdin leaves only as its HMAC.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np

from edge.perception.types import FrameResult
from edge.replay import write_replay
from edge.roles.gait.message import GaitScreening
from edge.subject_code import subject_token
from tests.edge.test_delivery import Subscriber
from tests.support.booth import side_wall_profile
from tests.support.broker import MosquittoBroker
from training.synth.walkthrough import render_walkthrough

SECRET = b"site-secret-for-tests-0123456789"
CODE = "STUDENT-0042"
# (scenario, expected outcome); walks are rendered with seed 1 and their index
WALKS = (
    ("negative", "screened"), ("positive", "screened"), ("negative", "screened"), ("positive", "screened"),
    ("partial", "partial_walk"), ("two_people", "multiple_people"), ("standing", "standing_still"),
    ("wrong_direction", "wrong_direction"), ("positive", "screened"),
)  # fmt: skip
GAP_S = 1.0  # empty corridor between two walk-throughs (besides each render's own margins)


def _session(path: Path) -> list[dict[str, Any]]:
    """All walks one after the other in one replay, as a booth would see them in a session."""
    frames: list[FrameResult] = []
    labels = []
    offset = 0.0
    for index, (scenario, _) in enumerate(WALKS):
        walk, label = render_walkthrough(scenario, 1, index)
        for frame in walk:
            frame.timestamp += offset
        frames.extend(walk)
        offset = frames[-1].timestamp + GAP_S
        labels.append(label)
    write_replay(path, frames)
    return labels


def _run(replay: Path, url: str, tmp: Path, code_input: str) -> subprocess.CompletedProcess[str]:
    creds = tmp / "credentials"
    creds.mkdir()
    (creds / "site-secret").write_bytes(SECRET + b"\n")
    env = {**os.environ, "CREDENTIALS_DIRECTORY": str(creds), "OMP_NUM_THREADS": "1", "TMPDIR": str(tmp)}
    profile = side_wall_profile(tmp)
    cmd = [sys.executable, "-m", "edgescreen", "edge", "run", "--profile", str(profile), "--replay", str(replay),
           "--broker", url, "--outbox", str(tmp / "outbox.sqlite")]  # fmt: skip
    return subprocess.run(cmd, input=code_input, env=env, capture_output=True, text=True, timeout=180, check=False)


def test_synthetic_walkthroughs_give_one_screening_each(tmp_path: Path, broker: MosquittoBroker) -> None:
    replay = tmp_path / "session.npz"
    labels = _session(replay)
    sub = Subscriber(broker)
    run = _run(replay, broker.url, tmp_path, f"{CODE}\n")
    assert run.returncode == 0, run.stderr[-3000:]
    assert sub.wait_for(lambda: sum(1 for m, _ in sub.messages if m.kind == "gait") >= len(WALKS), 15), run.stderr[
        -3000:
    ]
    sub.close()
    with sub.lock:
        screenings = [m for m, _ in sub.messages if isinstance(m, GaitScreening)]
    screenings.sort(key=lambda m: m.seq)
    assert len(screenings) == len(WALKS), [m.outcome for m in screenings]

    outcomes = [m.outcome for m in screenings]
    expected = [outcome for _, outcome in WALKS]
    right = sum(o == e for o, e in zip(outcomes, expected, strict=True))
    print("outcomes:", outcomes)
    assert right >= 0.8 * len(WALKS), list(zip(outcomes, expected, strict=True))
    # every deliberately bad walk is flagged, never scored
    for message, (scenario, want) in zip(screenings, WALKS, strict=True):
        if want != "screened":
            assert message.outcome == want, (scenario, message.outcome, message.quality)
            assert message.measures == {} and message.probabilities is None
        else:
            assert message.probabilities is None and message.predicted is None  # no model configured
        assert message.frames > 0 and message.quality["frames_with_person"] > 0

    # the keypoint measures separate positive from negative walks (synthetic arm-swing asymmetry ~ Cobb angle)
    def swing(scenario: str) -> list[float]:
        return [
            abs(m.measures["arm_swing_asymmetry_pct"].value or 0.0)
            for m, (s, _) in zip(screenings, WALKS, strict=True)
            if s == scenario and m.outcome == "screened" and m.measures["arm_swing_asymmetry_pct"].value is not None
        ]

    positive, negative = swing("positive"), swing("negative")
    print("arm swing asymmetry |%|: positive", np.round(positive, 1), "negative", np.round(negative, 1))
    assert len(positive) >= 2 and len(negative) >= 2
    pairs = [p > n for p in positive for n in negative]
    assert sum(pairs) >= 0.8 * len(pairs), (positive, negative)
    for m in screenings:
        if m.outcome == "screened":
            assert all(g.cycles >= 2 for g in m.measures.values() if g.value is not None)
            assert 80 <= m.measures["cadence_spm"].value <= 150  # type: ignore[operator]
    cadences = [float(lab["cadence"]) for lab, m in zip(labels, screenings, strict=True) if m.outcome == "screened"]
    measured = [m.measures["cadence_spm"].value or 0.0 for m in screenings if m.outcome == "screened"]
    assert np.mean(np.abs(np.subtract(measured, cadences))) < 10.0, (measured, cadences)

    # the code typed at the booth: its HMAC on the first walk (screened, so it used it), then anonymous
    token = subject_token(CODE, SECRET)
    assert screenings[0].subject == token
    assert all(m.subject is None for m in screenings[1:])
    with sub.lock:
        payloads = [m.model_dump_json() for m, _ in sub.messages]
    assert not any(CODE in p for p in payloads)


def test_bad_replay_is_a_clear_error(tmp_path: Path) -> None:
    bogus = tmp_path / "not-a-replay.npz"
    bogus.write_bytes(b"nothing here")
    run = _run(bogus, "mqtt://127.0.0.1:1", tmp_path, "")
    assert run.returncode == 2
    assert str(bogus) in run.stderr and "replay" in run.stderr
