"""Screening rule: a gait screening of a given class with at least a given probability; one alert per screening."""

from __future__ import annotations

from typing import TYPE_CHECKING, Literal

from pydantic import Field

from collector.alerts.rules.base import Evaluation, RuleBase

if TYPE_CHECKING:
    from collector.storage.writes import Facts


class ScreeningRule(RuleBase):
    """A gait screening of a given class with at least a given probability."""

    type: Literal["screening"]
    predicted: Literal["positive", "neutral", "negative"] = Field(default="positive", description="class to alert on")
    min_probability: float = Field(default=0.5, ge=0, le=1, description="model probability of that class")
    dedup: str = Field(default="{rule}:{site}:{device}:{id}", description="one alert per screening by default")
    auto_resolve: bool = Field(default=False, description="screenings do not clear by themselves")

    def reads(self) -> tuple[str, ...]:
        return ("gait",)

    def _hit(self, fact: Facts) -> tuple[str, float] | None:
        """The dedup key and probability when the screening meets the rule."""
        p = fact.metrics.get(f"prob.{self.predicted}")
        screened = fact.outcome == "screened" and fact.predicted == self.predicted
        if not (screened and p is not None and p >= self.min_probability):
            return None
        day = fact.end.date().isoformat()
        return self.key(site=fact.site, device=fact.device_id, day=day, ident=fact.message_id), p

    def prefetch_key(self, fact: Facts) -> str | None:
        # A positive screening is its own incident (the default key holds its message id): the engine looks the
        # batch's candidates up in one query instead of one per screening.
        hit = self._hit(fact)
        return None if hit is None else hit[0]

    def on_message(self, ev: Evaluation, fact: Facts) -> None:
        hit = self._hit(fact)
        if hit is not None:
            key, p = hit
            summary = f"gait screening {self.predicted} (p={p:.2f}) at {fact.device_id}"
            ev.open(self, site=fact.site, device=fact.device_id, summary=summary, key=key, at=fact.end)
