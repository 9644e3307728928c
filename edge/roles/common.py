"""Helpers more than one role uses: risk-band thresholds and picking the person a fixed camera watches."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from edge.perception.types import Person

BandDirection = Literal["above", "below", "abs_above"]


class BandThresholds(BaseModel):
    """Where a metric enters the `moderate` and the `high` risk band (below them it is `ok`)."""

    model_config = ConfigDict(extra="forbid")

    moderate: float = Field(description="boundary between the ok and the moderate band")
    high: float = Field(description="boundary between the moderate and the high band")
    direction: BandDirection = Field(
        description="'above': larger is worse; 'below': smaller is worse; 'abs_above': larger magnitude is worse"
    )

    @model_validator(mode="after")
    def _ordered(self) -> BandThresholds:
        worse_up = self.direction != "below"
        if (self.moderate > self.high) if worse_up else (self.moderate < self.high):
            order = "moderate <= high" if worse_up else "moderate >= high"
            raise ValueError(
                f"thresholds for direction {self.direction!r} need {order}, got {self.moderate}, {self.high}"
            )
        if self.direction == "abs_above" and self.moderate < 0:
            raise ValueError("abs_above thresholds are magnitudes and must not be negative")
        return self


def main_person(persons: list[Person]) -> Person | None:
    """The person the desk camera watches: the largest in view."""
    if not persons:
        return None
    return max(persons, key=lambda p: max(0.0, p.bbox[2] - p.bbox[0]) * max(0.0, p.bbox[3] - p.bbox[1]))
