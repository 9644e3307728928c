"""What every alert rule kind shares: the common config fields, the typed per-subject state, and the two hooks
the engine calls (`on_message` for each stored message of a kind the rule reads, `on_tick` periodically)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Annotated, ClassVar, Literal, Protocol

from pydantic import BaseModel, ConfigDict, Field

if TYPE_CHECKING:
    from collector.storage.writes import Facts

Severity = Literal["info", "warning", "critical"]
RuleName = Annotated[str, Field(pattern=r"^[a-z][a-z0-9_]{0,47}$")]


class StrictModel(BaseModel):
    """A config section: unknown keys are refused (and named, with a did-you-mean hint, by parse_rules)."""

    model_config = ConfigDict(extra="forbid")


@dataclass
class RuleState:
    """One rule's memory of one subject (a device): a row of `alert_state`, read and written by the engine."""

    active: bool = False  # the condition holds (an alert of the rule is open while it does)
    period: str = "-"  # the UTC day accumulated_s counts in, or "-" for one unbroken stretch
    accumulated_s: float = 0.0  # how long the condition has held
    last_at: datetime | None = None  # naive UTC of the last message (or of the condition's start)
    last_value: float | None = None  # the metric's last value


@dataclass(frozen=True)
class DeviceStatus:
    """A device registry row, as the periodic rules read it."""

    site: str
    device_id: str
    state: str
    state_at: datetime | None
    last_seen: datetime


class Evaluation(Protocol):
    """One evaluation pass of the engine, inside one transaction: what a rule reads and changes."""

    def state(self, rule: str, subject: str) -> RuleState:
        """The rule's state for a subject, to change in place; written back at the end of the pass."""
        ...

    def open(self, rule: RuleBase, *, site: str, device: str | None, summary: str, key: str, at: datetime) -> None:
        """Open an alert under `key`, unless one is open or the last one ended within the rule's cool-down."""
        ...

    def resolve(self, key: str, at: datetime) -> None:
        """Resolve the open alert under `key`, if any."""
        ...


class RuleBase(StrictModel):
    """The fields every rule has. A rule kind subclasses it with `type: Literal["<kind>"]`, its own fields, and
    `reads` + `on_message` (a message rule) or `periodic = True` + `on_tick`."""

    periodic: ClassVar[bool] = False  # evaluated by the engine's tick instead of on stored messages

    name: RuleName = Field(description="rule id; also the `rule` field of the alert")
    severity: Severity = Field(default="warning", description="info, warning or critical")
    cooldown_minutes: float = Field(default=60.0, ge=0, description="after an incident ends, no new alert before this")
    dedup: str = Field(
        default="{rule}:{site}:{device}",
        description="template of the de-duplication key: one open alert per key ({rule} {site} {device} {day} {id})",
    )
    sites: list[str] = Field(default_factory=list, description="only these sites (empty: every site)")
    auto_resolve: bool = Field(default=True, description="resolve the alert when the condition clears")

    def applies_to(self, site: str) -> bool:
        return not self.sites or site in self.sites

    def key(self, *, site: str, device: str | None, day: str, ident: str) -> str:
        """The de-duplication key of an incident (the `dedup` template filled in)."""
        return self.dedup.format(rule=self.name, site=site, device=device or "-", day=day, id=ident)[:200]

    def reads(self) -> tuple[str, ...]:
        """The message kinds whose stored messages this rule evaluates (none for a periodic rule)."""
        return ()

    def prefetch_key(self, fact: Facts) -> str | None:
        """The dedup key this message would raise, when the engine should look keys up for a whole batch at once."""
        return None

    def on_message(self, ev: Evaluation, fact: Facts) -> None:
        """Evaluate one stored message (of a kind in `reads`, on a site the rule applies to)."""

    def on_tick(self, ev: Evaluation, devices: list[DeviceStatus], now: datetime) -> None:
        """Evaluate periodically, on the device registry (only for `periodic` rules)."""
