"""The shipped gait-booth profile as a booth on a corridor's side wall: the tests whose walkers cross the image
(photos sliding across, synthetic walk-throughs) run the shipped settings with that one geometry change."""

from __future__ import annotations

from pathlib import Path

import yaml

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
