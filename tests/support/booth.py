"""The shipped gait-booth profile as a booth on a corridor's side wall: the tests whose walkers cross the image
(photos sliding across, synthetic walk-throughs) run the shipped settings with that one geometry change."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import yaml

from edge.roles.gait.message import GaitScreening
from tests.edge.test_delivery import Subscriber

ROOT = Path(__file__).resolve().parents[2]
BOOTH_PROFILE = ROOT / "firmware_config" / "profiles" / "gait-booth.yaml"


def side_wall_profile(tmp: Path) -> Path:
    """The shipped booth profile with walks crossing left to right, no far-end detection region and no gait model
    (its model was trained on walks along the corridor)."""
    data = yaml.safe_load(BOOTH_PROFILE.read_text())
    data["gait"]["direction"] = "left_to_right"
    data["gait"].pop("model", None)
    data["perception"].pop("detection_regions", None)
    path = tmp / "gait-booth-side-wall.yaml"
    path.write_text(yaml.safe_dump(data))
    return path


def run_booth(
    profile: Path, clip: Path, broker_url: str, tmp: Path, model_dir: Path, *, name: str = "booth"
) -> subprocess.CompletedProcess[str]:
    """`edgescreen edge run --profile PROFILE --source CLIP` as a child process, with the site secret the test put
    under tmp/credentials and its outbox at tmp/NAME-outbox.sqlite."""
    env = {**os.environ, "CREDENTIALS_DIRECTORY": str(tmp / "credentials"), "OMP_NUM_THREADS": "1",
           "EDGESCREEN_MODEL_DIR": str(model_dir), "TMPDIR": str(tmp)}  # fmt: skip
    cmd = [sys.executable, "-m", "edgescreen", "edge", "run", "--profile", str(profile), "--source", str(clip),
           "--broker", broker_url, "--outbox", str(tmp / f"{name}-outbox.sqlite")]  # fmt: skip
    return subprocess.run(cmd, input="", env=env, capture_output=True, text=True, timeout=240, check=False)


def only_screening(sub: Subscriber, run: subprocess.CompletedProcess[str]) -> GaitScreening:
    """The one walk-through message the run published (after its status), once the subscriber has it."""
    assert run.returncode == 0, run.stderr[-3000:]
    assert sub.wait_for(lambda: any(m.kind == "gait" for m, _ in sub.messages), 10), run.stderr[-3000:]
    assert sub.wait_for(lambda: any(m.kind == "status" for m, _ in sub.messages), 10)
    sub.close()
    with sub.lock:
        walks = [m for m, _ in sub.messages if isinstance(m, GaitScreening)]
    assert len(walks) == 1, [(w.outcome, w.quality) for w in walks]
    return walks[0]
