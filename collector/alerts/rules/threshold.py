"""Threshold rule: a metric above a level for long enough, with hysteresis, per stretch or per UTC day."""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated, Literal

from pydantic import AfterValidator, Field, model_validator

from collector.alerts.rules.base import Evaluation, RuleBase
from contract.roles import role_names

if TYPE_CHECKING:
    from collector.storage.writes import Facts


def _metric_kind(kind: str) -> str:
    known = (*role_names(), "heartbeat")
    if kind not in known:
        raise ValueError(f"unknown message kind {kind!r}; known: {', '.join(known)}")
    return kind


# A message kind whose flattened metrics a rule reads: a registered role, or the heartbeat.
MetricKind = Annotated[str, AfterValidator(_metric_kind)]


class ThresholdRule(RuleBase):
    """A metric above (or below) a level for long enough, with hysteresis."""

    type: Literal["threshold"]
    kind: MetricKind = Field(description="message kind the metric is in: a role or heartbeat")
    metric: str = Field(description="flattened metric name, e.g. cva_deg.band.high or severity.rotation")
    above: float = Field(description="the condition starts when the value exceeds this")
    clear_below: float | None = Field(default=None, description="and ends only when it drops below this (hysteresis)")
    min_duration_minutes: float = Field(default=0.0, ge=0, description="time the condition must hold before alerting")
    period: Literal["continuous", "day"] = Field(
        default="continuous", description="count time in one unbroken stretch, or summed over a UTC day"
    )

    @model_validator(mode="after")
    def _hysteresis(self) -> ThresholdRule:
        if self.clear_below is not None and self.clear_below > self.above:
            raise ValueError(f"clear_below {self.clear_below} is above `above` {self.above}")
        return self

    def reads(self) -> tuple[str, ...]:
        return (self.kind,)

    def on_message(self, ev: Evaluation, fact: Facts) -> None:
        value = fact.metrics.get(self.metric)
        if value is None:
            return
        start, end = fact.start, fact.end
        day = end.date().isoformat()
        state = ev.state(self.name, f"{fact.site}/{fact.device_id}")
        period = day if self.period == "day" else "-"
        if state.period != period:
            state.period, state.accumulated_s, state.active = period, 0.0, False
        clear = self.clear_below if self.clear_below is not None else self.above
        was_active = state.active
        active = value >= clear if was_active else value > self.above
        if active:
            state.accumulated_s += max((end - start).total_seconds(), 0.0)
        elif self.period == "continuous":
            state.accumulated_s = 0.0
        state.active, state.last_at, state.last_value = active, end, value
        held = active and state.accumulated_s >= self.min_duration_minutes * 60
        cleared = was_active and not active and self.auto_resolve
        if not (held or cleared):
            return
        key = self.key(site=fact.site, device=fact.device_id, day=day, ident=fact.message_id)
        if held:
            minutes = state.accumulated_s / 60
            summary = f"{self.metric} above {self.above:g} for {minutes:.0f} min at {fact.device_id} (now {value:.3g})"
            ev.open(self, site=fact.site, device=fact.device_id, summary=summary, key=key, at=end)
        if cleared:
            ev.resolve(key, end)
