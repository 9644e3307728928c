"""The rules file in YAML: where alerts go and the rules (collector/alerts/rules/), validated with pydantic
(unknown keys rejected with a did-you-mean hint)."""

from __future__ import annotations

import difflib
from pathlib import Path

import yaml
from pydantic import Field, ValidationError, model_validator

from collector.alerts.rules import RULE_KINDS, Rule
from collector.alerts.rules.base import StrictModel
from contract.errors import UsageError


class RulesError(UsageError, ValueError):
    """A rules file that cannot be used; the message names the file and the key."""


class WebhookConfig(StrictModel):
    url: str = Field(pattern=r"^https?://[^\s/]+", description="http(s) URL the alert JSON is POSTed to")
    secret_file: Path = Field(description="file with the HMAC-SHA256 key; signature in X-EdgeScreen-Signature")
    timeout_s: float = Field(default=5.0, gt=0, description="per request")


class SmtpConfig(StrictModel):
    host: str = Field(description="SMTP server")
    port: int = Field(default=25, description="SMTP port")
    sender: str = Field(description="From address")
    recipients: list[str] = Field(min_length=1, description="To addresses")
    starttls: bool = Field(default=False, description="upgrade with STARTTLS before sending")
    username: str | None = Field(default=None, description="login, when the server needs one")
    password_file: Path | None = Field(default=None, description="file with the SMTP password")


class NotifyConfig(StrictModel):
    mqtt: bool = Field(default=True, description="publish on edgescreen/v1/{site}/alerts")
    webhook: WebhookConfig | None = Field(default=None, description="POST each alert here")
    smtp: SmtpConfig | None = Field(default=None, description="e-mail each alert")
    dashboard_url: str | None = Field(
        default=None,
        pattern=r"^https?://[^\s/]+",
        description="the dashboard's address as staff reach it; e-mails and webhooks link each alert there",
    )


class RulesFile(StrictModel):
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
        return sorted({key for kind in RULE_KINDS for key in kind.model_fields})
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
