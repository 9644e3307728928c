"""The head-pose role's wire message: one per window of a head-pose station."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import Field

from contract.wire import Count, Finite, MetricName, Window, WireModel


class HeadPoseStats(WireModel):
    mean: Finite | None
    minimum: Finite | None
    maximum: Finite | None
    range: Finite | None
    time_above_s: Annotated[float, Field(ge=0, allow_inf_nan=False)] = Field(
        description="seconds the absolute value was above the configured threshold"
    )
    valid_frames: Count


class HeadPoseWindow(Window):
    kind: Literal["headpose"] = "headpose"
    frames: Count
    presence_s: Annotated[float, Field(ge=0, allow_inf_nan=False)]
    metrics: dict[MetricName, HeadPoseStats] = Field(max_length=16)
    severity: dict[MetricName, Annotated[int, Field(ge=0, le=10)]] = Field(
        default_factory=dict, max_length=16, description="TWSTRS-like item scores (see docs/metrics.md)"
    )


def flatten(message: HeadPoseWindow) -> dict[str, float]:
    """`presence_s`, `<metric>.mean|range|time_above_s`, `severity.<item>`, `severity.total`."""
    out: dict[str, float] = {"presence_s": message.presence_s}
    for name, hp in message.metrics.items():
        if hp.mean is not None:
            out[f"{name}.mean"] = hp.mean
        if hp.range is not None:
            out[f"{name}.range"] = hp.range
        out[f"{name}.time_above_s"] = hp.time_above_s
    for item, score in message.severity.items():
        out[f"severity.{item}"] = float(score)
    if message.severity:
        out["severity.total"] = float(sum(message.severity.values()))
    return out
