"""The posture role's wire message: one per window of a desk camera."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import Field

from contract.wire import Count, Finite, Fraction, MetricName, Window, WireModel


class WindowStats(WireModel):
    """Distribution of one per-frame metric over a window."""

    mean: Finite | None = Field(description="mean over valid frames; null when no frame was valid")
    p10: Finite | None = Field(description="10th percentile")
    p50: Finite | None = Field(description="median")
    p90: Finite | None = Field(description="90th percentile")
    valid_frames: Count = Field(description="frames in which the metric could be measured")
    bands: dict[MetricName, Fraction] = Field(
        default_factory=dict, max_length=8, description="fraction of valid frames in each risk band"
    )
    sustained_risk: bool = Field(default=False, description="poor posture lasted longer than configured")


class PostureWindow(Window):
    kind: Literal["posture"] = "posture"
    frames: Count = Field(description="frames analysed in the window")
    presence_s: Annotated[float, Field(ge=0, allow_inf_nan=False)] = Field(description="seconds a person was in view")
    posture_changes: Count = Field(description="number of changes between risk bands")
    metrics: dict[MetricName, WindowStats] = Field(max_length=32, description="per-metric statistics")
    risk_score: Fraction | None = Field(default=None, description="posture model risk, when one is configured")


def flatten(message: PostureWindow) -> dict[str, float]:
    """`presence_s`, `risk_score`, `<metric>.mean`, `<metric>.band.<band>`, `<metric>.sustained`."""
    out: dict[str, float] = {"presence_s": message.presence_s}
    if message.risk_score is not None:
        out["risk_score"] = message.risk_score
    for name, stats in message.metrics.items():
        if stats.mean is not None:
            out[f"{name}.mean"] = stats.mean
        for band, fraction in stats.bands.items():
            out[f"{name}.band.{band}"] = fraction
        # Percentiles and flags stay in the stored payload; rows here are what trends and rules read.
        if stats.sustained_risk:
            out[f"{name}.sustained"] = 1.0
    return out
