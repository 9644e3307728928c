"""Dropped scores rule: a device's full outbox dropped scores since its last heartbeat."""

from __future__ import annotations

from typing import TYPE_CHECKING, Literal

from collector.alerts.rules.base import RuleState
from collector.alerts.rules.health import HeartbeatRule

if TYPE_CHECKING:
    from collector.storage.writes import Facts


class DroppedScoresRule(HeartbeatRule):
    type: Literal["dropped_scores"]

    def check(self, state: RuleState, hb: Facts) -> tuple[bool, str]:
        previous = state.last_value
        dropped = hb.metrics["outbox_dropped"]
        state.last_value = dropped
        if previous is None or dropped <= previous:
            return False, ""
        return True, f"{hb.device_id} dropped {dropped - previous:.0f} scores (outbox full)"
