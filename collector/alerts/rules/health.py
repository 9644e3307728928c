"""What the device-health rules share: they read heartbeats, and an alert stays open while the check fails."""

from __future__ import annotations

from typing import TYPE_CHECKING

from collector.alerts.rules.base import Evaluation, RuleBase, RuleState

if TYPE_CHECKING:
    from collector.storage.writes import Facts


class HeartbeatRule(RuleBase):
    """A rule on each heartbeat: `check` says whether the device is in a bad way (and why), and may keep what it
    needs (the previous value) in the state; the engine-facing part (open, resolve on the turn) is here."""

    def reads(self) -> tuple[str, ...]:
        return ("heartbeat",)

    def check(self, state: RuleState, hb: Facts) -> tuple[bool, str]:
        """(bad, summary) for this heartbeat."""
        raise NotImplementedError

    def on_message(self, ev: Evaluation, fact: Facts) -> None:
        state = ev.state(self.name, f"{fact.site}/{fact.device_id}")
        was_active = state.active
        bad, summary = self.check(state, fact)
        resolving = not bad and was_active and not state.active and self.auto_resolve
        if not (bad or resolving):
            return
        at = fact.end
        key = self.key(site=fact.site, device=fact.device_id, day=at.date().isoformat(), ident=fact.message_id)
        if bad:
            state.active = True
            ev.open(self, site=fact.site, device=fact.device_id, summary=summary, key=key, at=at)
        else:
            # Only on the turn from bad to good: an alert of this rule is open only while its state is active.
            ev.resolve(key, at)
