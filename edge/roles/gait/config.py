"""Configuration of the gait role (the `gait:` section of a device profile).

A booth camera looks across a corridor; a screening walk enters at one side, crosses for several gait
cycles and leaves at the other (docs/metrics.md, "Gait").
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from edge.backends.base import Provider


def _cpu_only() -> list[Provider]:
    return ["cpu"]


WalkDirection = Literal["left_to_right", "right_to_left", "either", "towards", "away", "along"]
# Walks towards or away from the camera (Scoliosis1K's view 000_180): "along" accepts both.
ALONG_DIRECTIONS: frozenset[str] = frozenset({"towards", "away", "along"})


class GaitModelConfig(BaseModel):
    """An exported ScoNet-MT (ONNX, input silhouettes [1, T, 64, 44] in 0..1, output [1, 3] logits)."""

    model_config = ConfigDict(extra="forbid")

    path: Path = Field(description="ONNX file of the gait model (`edgescreen export onnx` of a ScoNet-MT checkpoint)")
    output: Literal["logits", "probabilities"] = Field(
        default="logits", description="what the first output holds: class logits (softmax applied) or probabilities"
    )
    max_frames: int = Field(
        default=30, ge=4, le=720, description="silhouettes fed to the model, evenly sampled over the walk"
    )
    threads: int = Field(default=1, ge=1, le=16, description="ONNX Runtime intra-op threads")
    providers: list[Provider] = Field(
        default_factory=_cpu_only,
        description="ONNX Runtime execution providers in order of preference (['cuda', 'cpu'] on a Jetson keeps "
        "the result within a second of the person leaving)",
    )


class SubjectCodeConfig(BaseModel):
    """Where staff enter a student's code (a QR/NFC reader acting as a keyboard types one code per line)."""

    model_config = ConfigDict(extra="forbid")

    input: str | None = Field(
        default=None,
        description="'-' reads codes from standard input, a path reads lines from that file, tty or FIFO; "
        "null: every walk-through is anonymous",
    )
    valid_s: float = Field(
        default=120.0, gt=0, le=3600, description="a code not used by a screened walk within this many seconds expires"
    )
    max_length: int = Field(default=128, ge=1, le=1024, description="longer lines are rejected as not a code")


class GaitConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")

    direction: WalkDirection = Field(
        default="left_to_right",
        description="the way a screening walk goes: across the image (left_to_right, right_to_left, either) or "
        "towards / away from the camera at the corridor's end (towards, away, along = either of them)",
    )
    min_approach: float = Field(
        default=0.25,
        gt=0,
        le=3,
        description="walks towards / away: net change of ln(person height in the image) a full walk needs "
        "(0.25: the person's image grows or shrinks by 28 %); under half of it the person stood still",
    )
    min_frontal: float = Field(
        default=0.35,
        ge=0,
        le=2,
        description="walks towards / away: median shoulder width over trunk length in the image below which the "
        "person was seen from the side (a crossing, not a walk along the corridor)",
    )
    min_cycles: int = Field(default=2, ge=1, le=50, description="gait cycles a walk must show to be screened")
    min_score: float = Field(default=0.5, ge=0, le=1, description="person score from which a detection counts")
    min_visibility: float = Field(
        default=0.5, ge=0, le=1, description="keypoint visibility below which a keypoint is not used"
    )
    leave_s: float = Field(
        default=0.4, gt=0, le=5, description="nobody in view this long (seconds) ends the walk-through"
    )
    max_walk_s: float = Field(
        default=30.0, gt=1, le=600, description="a walk-through longer than this is closed (someone lingering)"
    )
    min_walk_frames: int = Field(default=5, ge=1, description="shorter appearances are ignored as glitches")
    min_travel: float = Field(
        default=0.15,
        gt=0,
        lt=1,
        description="horizontal travel (fraction of the image width) below which the person stood still",
    )
    min_crossing: float = Field(
        default=0.4, gt=0, le=1, description="net travel (fraction of the image width) a full crossing needs"
    )
    max_multi_fraction: float = Field(
        default=0.15, ge=0, le=1, description="fraction of frames with two or more people above which it is a group"
    )
    min_valid_fraction: float = Field(
        default=0.5, gt=0, le=1, description="fraction of frames with usable keypoints and mask a screening needs"
    )
    model: GaitModelConfig | None = Field(default=None, description="optional ScoNet-MT model; null: no probabilities")
    subject_codes: SubjectCodeConfig = Field(
        default_factory=SubjectCodeConfig, description="student codes entered at the booth (only an HMAC leaves)"
    )

    @model_validator(mode="after")
    def _travel(self) -> GaitConfig:
        if self.min_crossing < self.min_travel:
            raise ValueError("min_crossing must not be smaller than min_travel")
        return self
