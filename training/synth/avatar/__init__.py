"""Avatar generator: posed human bodies (anny) with their truth, and a headless renderer for them.

Importing this package stays light (numpy only); the body model and the GL context load on first use.

Body side (build a posed body and its truth):
    build_body(phenotype, pose, t=None) -> (AvatarMesh, BodyPoints); build_bodies([BodyRequest, ...]) batched
    Phenotype, sample_phenotype                      who (phenotype.py)
    PoseParams, seated, Scoliosis, sample_scoliosis  how they stand or sit (pose.py)
    WalkCycle, sample_walk, FlexionTrial             how they move (walk.py)
    frame_truth, gait_truth                          every metric by wire name (truth.py)
"""

from __future__ import annotations

import importlib
from typing import Any

from training.synth.avatar.mesh import ANATOMICAL_POINTS, AvatarMesh, BodyPoints, Region, SeatedPlacement

_LAZY = {
    "build_body": "builder",
    "build_bodies": "builder",
    "BodyRequest": "builder",
    "stature_m": "builder",
    "Phenotype": "phenotype",
    "sample_phenotype": "phenotype",
    "PoseParams": "pose",
    "seated": "pose",
    "Scoliosis": "pose",
    "sample_scoliosis": "pose",
    "WalkCycle": "walk",
    "sample_walk": "walk",
    "FlexionTrial": "walk",
    "frame_truth": "truth",
    "gait_truth": "truth",
}

__all__ = [  # noqa: RUF022 (the mesh types, then the lazily imported names in _LAZY's order)
    "ANATOMICAL_POINTS",
    "AvatarMesh",
    "BodyPoints",
    "Region",
    "SeatedPlacement",
    "build_body",
    "build_bodies",
    "BodyRequest",
    "stature_m",
    "Phenotype",
    "sample_phenotype",
    "PoseParams",
    "seated",
    "Scoliosis",
    "sample_scoliosis",
    "WalkCycle",
    "sample_walk",
    "FlexionTrial",
    "frame_truth",
    "gait_truth",
]


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        return getattr(importlib.import_module(f"training.synth.avatar.{_LAZY[name]}"), name)
    raise AttributeError(f"module 'training.synth.avatar' has no attribute {name!r}")
