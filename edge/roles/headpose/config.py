"""Configuration of the headpose role (the `headpose:` section of a device profile).

Defaults for the severity bands follow the TWSTRS-2 severity items as mapped in docs/metrics.md ("Head pose");
each can be changed per station.
"""

from __future__ import annotations

import itertools
from pathlib import Path
from typing import Annotated, Literal

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, ValidationInfo, model_validator

from edge.backends.base import Provider

HEADPOSE_METRICS: tuple[str, ...] = ("yaw_deg", "pitch_deg", "roll_deg", "lateral_shift_cm", "sagittal_shift_cm")
ANGLE_METRICS: tuple[str, ...] = HEADPOSE_METRICS[:3]  # measured by the face fit, or else from the keypoints
# the shift regressor's values when they are sent beside the keypoint shifts (`shift_source: both`)
MODEL_SHIFT_METRICS: dict[str, str] = {
    "lateral_shift_cm": "lateral_shift_model_cm",
    "sagittal_shift_cm": "sagittal_shift_model_cm",
}
ShiftSource = Literal["keypoints", "model", "both"]


def _relative_to_profile(value: Path, info: ValidationInfo) -> Path:
    """A relative path is relative to the profile's folder (the `base_dir` context `edge.config` passes)."""
    value = value.expanduser()
    base = (info.context or {}).get("base_dir")
    return Path(base) / value if base is not None and not value.is_absolute() else value


def _cpu_only() -> list[Provider]:
    return ["cpu"]


class AboveThresholds(BaseModel):
    """Magnitudes above which a frame counts towards a metric's `time_above_s`."""

    model_config = ConfigDict(extra="forbid")

    yaw_deg: float = Field(default=15.0, ge=0, description="head rotation magnitude (degrees)")
    pitch_deg: float = Field(default=15.0, ge=0, description="head flexion/extension magnitude (degrees)")
    roll_deg: float = Field(default=10.0, ge=0, description="head tilt magnitude (degrees)")
    lateral_shift_cm: float = Field(default=2.0, ge=0, description="lateral head shift magnitude (cm)")
    sagittal_shift_cm: float = Field(default=2.0, ge=0, description="sagittal head shift magnitude (cm)")


class SeverityBands(BaseModel):
    """Upper bounds (degrees) of the item scores; a typical deviation at or above the last bound gets the top score."""

    model_config = ConfigDict(extra="forbid")

    rotation: list[float] = Field(
        default_factory=lambda: [5.0, 22.5, 45.0, 67.5],
        description="TWSTRS-2 item 1A torticollis: 0 below the first bound, 1 slight (to 1/4 of 90°), 2 mild "
        "(to 1/2), 3 moderate (to 3/4), 4 severe",
    )
    laterocollis: list[float] = Field(
        default_factory=lambda: [5.0, 15.0, 35.0],
        description="TWSTRS-2 item 1B laterocollis: 0 none, 1 mild (to 15°), 2 moderate (16-35°), 3 severe (>35°)",
    )
    antero_retrocollis: list[float] = Field(
        default_factory=lambda: [5.0, 20.0, 35.0],
        description="TWSTRS-2 item 1C anterocollis/retrocollis: 0 none, 1 mild, 2 moderate (about half the range), "
        "3 severe",
    )
    shift_cm: float = Field(
        default=2.0, gt=0, description="TWSTRS-2 items 1D/1E lateral/sagittal shift: present (1) from this many cm"
    )

    @model_validator(mode="after")
    def _increasing(self) -> SeverityBands:
        for name in ("rotation", "laterocollis", "antero_retrocollis"):
            bounds = getattr(self, name)
            if not bounds or any(b <= a for a, b in itertools.pairwise(bounds)) or bounds[0] < 0:
                raise ValueError(f"severity.{name} must be non-negative, strictly increasing bounds, got {bounds}")
        return self


class ShiftModelConfig(BaseModel):
    """An exported head-shift regressor (`edgescreen export onnx` of a `--task head-shift` checkpoint)."""

    model_config = ConfigDict(extra="forbid")

    path: Annotated[Path, AfterValidator(_relative_to_profile)] = Field(
        description="ONNX file of the head-shift regressor (relative paths: from the profile's folder)"
    )
    every_n_frames: int = Field(
        default=1,
        ge=1,
        le=30,
        description="run the model on every n-th frame with a person; each value stands for the frames until the "
        "next run (raise it to keep the frame rate on a slow CPU)",
    )
    head_width_cm: float = Field(
        default=15.0,
        gt=5,
        le=30,
        description="ear-to-ear head width that turns the model's output (head widths) into centimetres",
    )
    threads: int = Field(default=1, ge=1, le=16, description="ONNX Runtime intra-op threads")
    providers: list[Provider] = Field(
        default_factory=_cpu_only, description="ONNX Runtime execution providers in order of preference"
    )


class HeadPoseConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")

    window_s: float = Field(default=60.0, gt=0, le=3600, description="length of a session window in seconds")
    min_visibility: float = Field(
        default=0.5, ge=0, le=1, description="keypoint visibility below which a keypoint is not used"
    )
    max_gap_s: float = Field(
        default=1.0, gt=0, description="a frame interval longer than this counts as this long for time_above_s"
    )
    above: AboveThresholds = Field(default_factory=AboveThresholds, description="thresholds for time_above_s")
    severity: SeverityBands = Field(default_factory=SeverityBands, description="TWSTRS-2-like severity bands")
    neutral_sagittal_cm: float = Field(
        default=0.0,
        description="ear-midpoint offset ahead of the shoulder midpoint in a neutral head posture; subtracted from "
        "the sagittal shift (calibrate per station)",
    )
    shift_source: ShiftSource = Field(
        default="keypoints",
        description="where lateral_shift_cm / sagittal_shift_cm come from: 'keypoints' (world landmarks), 'model' "
        "(the shift regressor), or 'both' (keypoints there, the regressor in lateral_shift_model_cm / "
        "sagittal_shift_model_cm)",
    )
    shift_model: ShiftModelConfig | None = Field(
        default=None, description="the head-shift regressor; needed by shift_source 'model' and 'both'"
    )

    @model_validator(mode="after")
    def _shift_model_matches_source(self) -> HeadPoseConfig:
        if self.shift_source != "keypoints" and self.shift_model is None:
            raise ValueError(f"shift_source {self.shift_source!r} needs shift_model (the exported ONNX file)")
        if self.shift_source == "keypoints" and self.shift_model is not None:
            raise ValueError("shift_model is set but shift_source is 'keypoints': set shift_source to 'model' or "
                             "'both', or remove shift_model")  # fmt: skip
        return self
