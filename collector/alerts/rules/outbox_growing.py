"""Outbox rule: a device's outbox deep and still growing between heartbeats (the broker is not taking scores)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Literal

from pydantic import Field

from collector.alerts.rules.base import RuleState
from collector.alerts.rules.health import HeartbeatRule

if TYPE_CHECKING:
    from collector.storage.writes import Facts


class OutboxGrowingRule(HeartbeatRule):
    type: Literal["outbox_growing"]
    depth_above: int = Field(default=100, ge=0, description="outbox depth above this and rising between heartbeats")

    def check(self, state: RuleState, hb: Facts) -> tuple[bool, str]:
        previous = state.last_value
        depth = hb.metrics["outbox_depth"]
        bad = depth > self.depth_above and previous is not None and depth > previous
        summary = ""
        if bad:
            summary = f"{hb.device_id} outbox at {depth:.0f} and growing (was {previous:.0f})"
        elif depth <= self.depth_above:
            state.active = False
        state.last_value = depth
        return bad, summary
