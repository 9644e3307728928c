"""The gait role's wire message: one per walk-through at a gait booth."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import Field, StringConstraints

from contract.wire import Count, Finite, Fraction, MetricName, Window, WireModel

GaitClass = Literal["negative", "neutral", "positive"]
GaitOutcome = Literal[
    "screened", "partial_walk", "multiple_people", "standing_still", "wrong_direction", "too_few_cycles", "poor_view"
]


class GaitMeasure(WireModel):
    value: Finite | None = Field(description="value of the measure; null when no cycle was valid")
    cycles: Count = Field(description="number of valid gait cycles it was computed from")


class GaitScreening(Window):
    """One message per walk-through at a gait booth."""

    kind: Literal["gait"] = "gait"
    outcome: GaitOutcome = Field(description="'screened' or the quality reason it was not")
    subject: Annotated[str, StringConstraints(pattern=r"^[0-9a-f]{64}$")] | None = Field(
        default=None, description="HMAC-SHA256 of the student's code with the site secret; null if anonymous"
    )
    probabilities: dict[GaitClass, Fraction] | None = Field(default=None, description="gait model output")
    predicted: GaitClass | None = Field(default=None, description="most probable class")
    measures: dict[MetricName, GaitMeasure] = Field(default_factory=dict, max_length=32)
    quality: dict[MetricName, Finite] = Field(default_factory=dict, max_length=32, description="counts and flags")
    frames: Count = Field(description="frames in the walk-through")


def flatten(message: GaitScreening) -> dict[str, float]:
    """`prob.<class>` and `measure.<name>`."""
    out: dict[str, float] = {}
    for cls, p in (message.probabilities or {}).items():
        out[f"prob.{cls}"] = p
    for name, measure in message.measures.items():
        if measure.value is not None:
            out[f"measure.{name}"] = measure.value
    return out
