"""Alert rule kinds, one module each holding its config model and its evaluation (`on_message` or `on_tick`).

Add a kind: a module here with a `RuleBase` subclass (`type: Literal["<kind>"]`), and one line in `RULE_KINDS`;
the rules file, its error hints and the engine read this tuple.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated, Union

from pydantic import Field

from collector.alerts.rules.base import DeviceStatus, Evaluation, RuleBase, RuleState
from collector.alerts.rules.device_offline import DeviceOfflineRule
from collector.alerts.rules.dropped_scores import DroppedScoresRule
from collector.alerts.rules.fps_below import FpsBelowRule
from collector.alerts.rules.outbox_growing import OutboxGrowingRule
from collector.alerts.rules.screening import ScreeningRule
from collector.alerts.rules.threshold import ThresholdRule

RULE_KINDS: tuple[type[RuleBase], ...] = (
    ThresholdRule,
    ScreeningRule,
    DeviceOfflineRule,
    OutboxGrowingRule,
    FpsBelowRule,
    DroppedScoresRule,
)

if TYPE_CHECKING:
    Rule = RuleBase
else:
    # One entry of the rules file: the kind named by its `type`.
    Rule = Annotated[Union[RULE_KINDS], Field(discriminator="type")]  # noqa: UP007 (a union built from a tuple)

__all__ = [
    "RULE_KINDS",
    "DeviceOfflineRule",
    "DeviceStatus",
    "DroppedScoresRule",
    "Evaluation",
    "FpsBelowRule",
    "OutboxGrowingRule",
    "Rule",
    "RuleBase",
    "RuleState",
    "ScreeningRule",
    "ThresholdRule",
]
