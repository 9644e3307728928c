"""Configuration of the posture role (the `posture:` section of a device profile).

Threshold defaults come from the literature cited in docs/metrics.md ("Posture"); every one can be changed
per device.
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from edge.backends.base import Provider
from edge.roles.common import BandDirection, BandThresholds


def _cpu_only() -> list[Provider]:
    return ["cpu"]


POSTURE_METRICS: tuple[str, ...] = (
    "cva_deg",
    "neck_flexion_deg",
    "head_forward_ratio",
    "head_tilt_deg",
    "shoulder_asymmetry_deg",
    "trunk_flexion_deg",
    "trunk_lateral_lean_deg",
)


def _bands(moderate: float, high: float, direction: BandDirection) -> BandThresholds:
    return BandThresholds(moderate=moderate, high=high, direction=direction)


class PostureThresholds(BaseModel):
    """Risk bands per metric (units as in the metric's name)."""

    model_config = ConfigDict(extra="forbid")

    cva_deg: BandThresholds = Field(
        default_factory=lambda: _bands(50.0, 40.0, "below"),
        description="craniovertebral angle: below 50° is forward head posture",
    )
    neck_flexion_deg: BandThresholds = Field(
        default_factory=lambda: _bands(20.0, 45.0, "above"),
        description="neck flexion: beyond 20° is the RULA/Ariëns risk range",
    )
    head_forward_ratio: BandThresholds = Field(
        default_factory=lambda: _bands(0.15, 0.30, "above"),
        description="ear ahead of C7 over the torso length",
    )
    head_tilt_deg: BandThresholds = Field(
        default_factory=lambda: _bands(5.0, 10.0, "abs_above"), description="head roll magnitude"
    )
    shoulder_asymmetry_deg: BandThresholds = Field(
        default_factory=lambda: _bands(3.0, 6.0, "abs_above"), description="shoulder line angle magnitude"
    )
    trunk_flexion_deg: BandThresholds = Field(
        default_factory=lambda: _bands(20.0, 60.0, "above"), description="trunk forward inclination (RULA bands)"
    )
    trunk_lateral_lean_deg: BandThresholds = Field(
        default_factory=lambda: _bands(5.0, 10.0, "abs_above"),
        description="trunk sideways inclination magnitude (ISO 11226: over 10° not acceptable)",
    )

    def for_metric(self, name: str) -> BandThresholds:
        value = getattr(self, name)
        assert isinstance(value, BandThresholds)
        return value


class PostureModelConfig(BaseModel):
    """A trained posture model (ONNX) whose positive-class probability becomes the window's risk score."""

    model_config = ConfigDict(extra="forbid")

    path: Path = Field(description="ONNX file of the posture model")
    input: Literal["metrics", "keypoints"] = Field(
        default="metrics",
        description="'metrics': one row of per-frame metrics in `metrics` order; 'keypoints': the 33 pose keypoints",
    )
    metrics: list[str] = Field(
        default_factory=lambda: list(POSTURE_METRICS), description="metric order of the input row (input=metrics)"
    )
    output: Literal["logits", "probabilities"] = Field(
        default="logits", description="what the first output holds: logits (softmax/sigmoid applied) or probabilities"
    )
    positive_index: int = Field(default=1, ge=0, description="column of the at-risk class in a [N, K] output")
    threads: int = Field(default=1, ge=1, le=16, description="ONNX Runtime intra-op threads")
    providers: list[Provider] = Field(
        default_factory=_cpu_only, description="ONNX Runtime execution providers in order of preference"
    )

    @model_validator(mode="after")
    def _known_metrics(self) -> PostureModelConfig:
        unknown = [m for m in self.metrics if m not in POSTURE_METRICS]
        if unknown:
            raise ValueError(f"unknown metric(s) {unknown} in model.metrics; known: {', '.join(POSTURE_METRICS)}")
        if not self.metrics:
            raise ValueError("model.metrics must name at least one metric")
        return self


class PostureConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")

    window_s: float = Field(default=60.0, gt=0, le=3600, description="length of a score window in seconds")
    min_visibility: float = Field(
        default=0.5, ge=0, le=1, description="keypoint visibility below which a metric that needs it is not measured"
    )
    front_view_max_deg: float = Field(
        default=30.0, ge=0, le=90, description="body yaw up to which the view counts as front (or back) view"
    )
    side_view_min_deg: float = Field(
        default=60.0, ge=0, le=90, description="body yaw from which the view is a side view"
    )
    thresholds: PostureThresholds = Field(default_factory=PostureThresholds, description="risk bands per metric")
    sustained_s: float = Field(
        default=120.0, gt=0, description="poor posture lasting this long (seconds) sets the metric's sustained_risk"
    )
    sustained_band: Literal["moderate", "high"] = Field(
        default="moderate", description="lowest band that counts as poor posture for sustained_risk"
    )
    max_gap_s: float = Field(
        default=2.0,
        gt=0,
        description="a gap in measurement up to this long (seconds; longer than the frame interval) "
        "does not break a sustained run",
    )
    min_change_s: float = Field(
        default=2.0, ge=0, description="a new overall risk band must hold this long to count as a posture change"
    )
    model: PostureModelConfig | None = Field(default=None, description="optional trained posture model")

    @model_validator(mode="after")
    def _views(self) -> PostureConfig:
        if self.front_view_max_deg > self.side_view_min_deg:
            raise ValueError("front_view_max_deg must not exceed side_view_min_deg")
        return self
