"""Alert rules in YAML: validated with pydantic (unknown keys rejected with a did-you-mean hint)."""

from __future__ import annotations

import difflib
from pathlib import Path
from typing import Annotated, Literal

import yaml
from pydantic import AfterValidator, BaseModel, ConfigDict, Field, ValidationError, model_validator

from contract.errors import UsageError
from contract.roles import role_names

Severity = Literal["info", "warning", "critical"]
RuleName = Annotated[str, Field(pattern=r"^[a-z][a-z0-9_]{0,47}$")]


def _metric_kind(kind: str) -> str:
    known = (*role_names(), "heartbeat")
    if kind not in known:
        raise ValueError(f"unknown message kind {kind!r}; known: {', '.join(known)}")
    return kind


# A message kind whose flattened metrics a rule reads: a registered role, or the heartbeat.
MetricKind = Annotated[str, AfterValidator(_metric_kind)]


class RulesError(UsageError, ValueError):
    """A rules file that cannot be used; the message names the file and the key."""


class _Config(BaseModel):
    model_config = ConfigDict(extra="forbid")


class _RuleBase(_Config):
    name: RuleName = Field(description="rule id; also the `rule` field of the alert")
    severity: Severity = Field(default="warning", description="info, warning or critical")
    cooldown_minutes: float = Field(default=60.0, ge=0, description="after an incident ends, no new alert before this")
    dedup: str = Field(
        default="{rule}:{site}:{device}",
        description="template of the de-duplication key: one open alert per key ({rule} {site} {device} {day} {id})",
    )
    sites: list[str] = Field(default_factory=list, description="only these sites (empty: every site)")
    auto_resolve: bool = Field(default=True, description="resolve the alert when the condition clears")


class ThresholdRule(_RuleBase):
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


class ScreeningRule(_RuleBase):
    """A gait screening of a given class with at least a given probability."""

    type: Literal["screening"]
    predicted: Literal["positive", "neutral", "negative"] = Field(default="positive", description="class to alert on")
    min_probability: float = Field(default=0.5, ge=0, le=1, description="model probability of that class")
    dedup: str = Field(default="{rule}:{site}:{device}:{id}", description="one alert per screening by default")
    auto_resolve: bool = Field(default=False, description="screenings do not clear by themselves")


class DeviceOfflineRule(_RuleBase):
    type: Literal["device_offline"]
    minutes: float = Field(default=10.0, gt=0, description="offline (or silent) for longer than this")


class OutboxGrowingRule(_RuleBase):
    type: Literal["outbox_growing"]
    depth_above: int = Field(default=100, ge=0, description="outbox depth above this and rising between heartbeats")


class FpsBelowRule(_RuleBase):
    type: Literal["fps_below"]
    target: float = Field(gt=0, description="slowest stage fps below this")
    min_duration_minutes: float = Field(default=5.0, ge=0, description="for at least this long")


class DroppedScoresRule(_RuleBase):
    type: Literal["dropped_scores"]


Rule = Annotated[
    ThresholdRule | ScreeningRule | DeviceOfflineRule | OutboxGrowingRule | FpsBelowRule | DroppedScoresRule,
    Field(discriminator="type"),
]


class WebhookConfig(_Config):
    url: str = Field(pattern=r"^https?://[^\s/]+", description="http(s) URL the alert JSON is POSTed to")
    secret_file: Path = Field(description="file with the HMAC-SHA256 key; signature in X-EdgeScreen-Signature")
    timeout_s: float = Field(default=5.0, gt=0, description="per request")


class SmtpConfig(_Config):
    host: str = Field(description="SMTP server")
    port: int = Field(default=25, description="SMTP port")
    sender: str = Field(description="From address")
    recipients: list[str] = Field(min_length=1, description="To addresses")
    starttls: bool = Field(default=False, description="upgrade with STARTTLS before sending")
    username: str | None = Field(default=None, description="login, when the server needs one")
    password_file: Path | None = Field(default=None, description="file with the SMTP password")


class NotifyConfig(_Config):
    mqtt: bool = Field(default=True, description="publish on edgescreen/v1/{site}/alerts")
    webhook: WebhookConfig | None = Field(default=None, description="POST each alert here")
    smtp: SmtpConfig | None = Field(default=None, description="e-mail each alert")


class RulesFile(_Config):
    notify: NotifyConfig = Field(default_factory=NotifyConfig, description="where alerts go")
    rules: list[Rule] = Field(default_factory=list, description="the rules")

    @model_validator(mode="after")
    def _unique(self) -> RulesFile:
        names = [r.name for r in self.rules]
        dup = {n for n in names if names.count(n) > 1}
        if dup:
            raise ValueError(f"rule names must be unique: {sorted(dup)}")
        return self


def _known_keys(loc: tuple[int | str, ...]) -> list[str]:
    if len(loc) >= 2 and loc[0] == "rules":
        model_keys: set[str] = set()
        for model in (ThresholdRule, ScreeningRule, DeviceOfflineRule, OutboxGrowingRule, FpsBelowRule):
            model_keys |= set(model.model_fields)
        return sorted(model_keys | set(DroppedScoresRule.model_fields))
    if loc and loc[0] == "notify":
        if len(loc) >= 3 and loc[1] == "webhook":
            return list(WebhookConfig.model_fields)
        if len(loc) >= 3 and loc[1] == "smtp":
            return list(SmtpConfig.model_fields)
        return list(NotifyConfig.model_fields)
    return list(RulesFile.model_fields)


def parse_rules(text: str, source: str = "<rules>") -> RulesFile:
    try:
        raw = yaml.safe_load(text) or {}
    except yaml.YAMLError as exc:
        raise RulesError(f"{source}: not valid YAML: {exc}") from exc
    try:
        return RulesFile.model_validate(raw)
    except ValidationError as exc:
        problems = []
        for err in exc.errors():
            where = ".".join(str(p) for p in err["loc"])
            msg = err["msg"]
            if err["type"] == "extra_forbidden":
                key = str(err["loc"][-1])
                close = difflib.get_close_matches(key, _known_keys(tuple(err["loc"])), n=1)
                msg = f"unknown key {key!r}" + (f" (did you mean {close[0]!r}?)" if close else "")
            problems.append(f"{where}: {msg}")
        raise RulesError(f"{source}: " + "; ".join(problems)) from exc


def load_rules(path: Path) -> RulesFile:
    """Parse a rules file and check the secret files it names, so that a missing webhook key or SMTP password
    stops the collector at start instead of failing every delivery later."""
    try:
        text = path.read_text()
    except OSError as exc:
        raise RulesError(f"cannot read rules file {path}: {exc}") from exc
    rules = parse_rules(text, str(path))
    secrets = {
        "notify.webhook.secret_file": rules.notify.webhook.secret_file if rules.notify.webhook else None,
        "notify.smtp.password_file": rules.notify.smtp.password_file if rules.notify.smtp else None,
    }
    for key, secret in secrets.items():
        if secret is None:
            continue
        try:
            empty = not secret.read_bytes().strip()
        except OSError as exc:
            raise RulesError(f"{path}: {key} {secret}: cannot read it ({exc.strerror or exc})") from exc
        if empty:
            raise RulesError(f"{path}: {key} {secret} is empty")
    return rules
