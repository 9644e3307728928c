"""Device offline rule (periodic): a device offline, or silent, for longer than a limit."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import ClassVar, Literal

from pydantic import Field

from collector.alerts.rules.base import DeviceStatus, Evaluation, RuleBase


class DeviceOfflineRule(RuleBase):
    periodic: ClassVar[bool] = True

    type: Literal["device_offline"]
    minutes: float = Field(default=10.0, gt=0, description="offline (or silent) for longer than this")

    def on_tick(self, ev: Evaluation, devices: list[DeviceStatus], now: datetime) -> None:
        limit = timedelta(minutes=self.minutes)
        for d in devices:
            if not self.applies_to(d.site):
                continue
            key = self.key(site=d.site, device=d.device_id, day=now.date().isoformat(), ident=d.device_id)
            offline_since = d.state_at if d.state == "offline" and d.state_at else d.last_seen
            silent = now - d.last_seen > limit
            if (d.state == "offline" and now - offline_since > limit) or silent:
                minutes = (now - min(offline_since, d.last_seen)).total_seconds() / 60
                summary = f"{d.device_id} offline for {minutes:.0f} min (last seen {d.last_seen:%Y-%m-%d %H:%M} UTC)"
                ev.open(self, site=d.site, device=d.device_id, summary=summary, key=key, at=now)
            elif self.auto_resolve and d.state != "offline":
                ev.resolve(key, now)
