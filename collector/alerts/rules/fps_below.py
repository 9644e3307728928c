"""Frame rate rule: the slowest stage's fps below a target for long enough."""

from __future__ import annotations

from typing import TYPE_CHECKING, Literal

from pydantic import Field

from collector.alerts.rules.base import RuleState
from collector.alerts.rules.health import HeartbeatRule

if TYPE_CHECKING:
    from collector.storage.writes import Facts


class FpsBelowRule(HeartbeatRule):
    type: Literal["fps_below"]
    target: float = Field(gt=0, description="slowest stage fps below this")
    min_duration_minutes: float = Field(default=5.0, ge=0, description="for at least this long")

    def check(self, state: RuleState, hb: Facts) -> tuple[bool, str]:
        at = hb.end
        fps = hb.metrics.get("fps.min")
        bad, summary = False, ""
        if fps is not None and fps < self.target:
            if not state.active:
                state.active, state.last_at = True, at
            held = (at - (state.last_at or at)).total_seconds()
            bad = held >= self.min_duration_minutes * 60
            summary = f"{hb.device_id} at {fps:.1f} fps, below {self.target:g} for {held / 60:.0f} min"
        else:
            state.active, state.last_at = False, at
        state.last_value = fps
        return bad, summary
