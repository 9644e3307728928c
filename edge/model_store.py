"""Where converted models live on a host: `$EDGESCREEN_MODEL_DIR` or `~/.cache/edgescreen/models`."""

from __future__ import annotations

import os
from pathlib import Path

MODEL_DIR_ENV = "EDGESCREEN_MODEL_DIR"

# The five pretrained perception models taken from the pinned MediaPipe wheel.
PERCEPTION_MODELS: tuple[str, ...] = (
    "pose_detection",
    "pose_landmark_full",
    "face_detection_short_range",
    "face_landmark",
    "selfie_segmentation",
)


def default_model_dir() -> Path:
    env = os.environ.get(MODEL_DIR_ENV)
    if env:
        return Path(env).expanduser()
    return Path.home() / ".cache" / "edgescreen" / "models"
