"""Alerts in plain words: what happened, where, and what to do, for the alerts page (collector/web/pages.py) and
for notifications (collector/alerts/notify.py). One place for both, beside the rules that write the summaries.

An alert is stored with its rule name, severity, device and a technical summary written by its rule
(collector/alerts/rules/*.py), e.g. "cva_deg.band.high above 0.5 for 30 min at desk-02 (now 0.45)".
`facts_from_alert` reads the facts back out of that summary (rule kind, metric, threshold, value, minutes),
`plain_summary` turns facts into a sentence a nurse or an office safety officer can act on, and
`notification_text` gives the subject and body of an e-mail or webhook text with a link to the alert.
A summary in no known form is shown as it is, after a generic sentence, never dropped.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from collector.words import METRIC_WORDS, ROLE_WORDS

BAND_WORDS = {"high": "the high-risk range", "moderate": "the moderate-risk range", "ok": "a comfortable range"}


@dataclass(frozen=True)
class AlertFacts:
    rule: str
    kind: str  # threshold | screening | device_offline | fps_below | outbox_growing | dropped_scores | unknown
    device: str | None
    role: str | None = None
    metric: str | None = None
    threshold: float | None = None
    value: float | None = None
    minutes: float | None = None
    detail: str = ""  # the stored summary


_FORMS: tuple[tuple[str, re.Pattern[str]], ...] = (
    (
        "threshold",
        re.compile(
            r"^(?P<metric>\S+) above (?P<threshold>[-\d.e+]+) for (?P<minutes>[\d.]+) min at (?P<device>\S+) "
            r"\(now (?P<value>[-\d.e+]+)\)$"
        ),
    ),
    ("screening", re.compile(r"^gait screening (?P<metric>\w+) \(p=(?P<value>[\d.]+)\) at (?P<device>\S+)$")),
    ("device_offline", re.compile(r"^(?P<device>\S+) offline for (?P<minutes>[\d.]+) min")),
    (
        "fps_below",
        re.compile(
            r"^(?P<device>\S+) at (?P<value>[\d.]+) fps, below (?P<threshold>[\d.]+) for (?P<minutes>[\d.]+) min"
        ),
    ),
    ("outbox_growing", re.compile(r"^(?P<device>\S+) outbox at (?P<value>\d+) and growing \(was (?P<threshold>\d+)\)")),
    ("dropped_scores", re.compile(r"^(?P<device>\S+) dropped (?P<value>\d+) scores")),
)


def facts_from_alert(alert: Mapping[str, Any], role: str | None = None) -> AlertFacts:
    """The facts of a stored alert row (`rule`, `summary`, `device_id`), given its device's role."""
    summary = str(alert.get("summary", ""))
    for kind, form in _FORMS:
        match = form.match(summary)
        if match:
            found = match.groupdict()

            def number(name: str, found: dict[str, str] = found) -> float | None:
                return float(found[name]) if found.get(name) else None

            return AlertFacts(
                rule=str(alert.get("rule", "")), kind=kind, device=found.get("device") or alert.get("device_id"),
                role=role, metric=found.get("metric"), threshold=number("threshold"), value=number("value"),
                minutes=number("minutes"), detail=summary,
            )  # fmt: skip
    return AlertFacts(str(alert.get("rule", "")), "unknown", alert.get("device_id"), role, detail=summary)


def _place(facts: AlertFacts) -> str:
    if facts.device is None:
        return "on this site"
    what = ROLE_WORDS.get(facts.role or "", "device")
    return f"at {what} {facts.device}"


def _metric_words(metric: str) -> tuple[str, str | None]:
    """('head held forward', 'high') for 'cva_deg.band.high'; the band is None for a plain mean."""
    base, _, rest = metric.partition(".")
    words = METRIC_WORDS.get(base, base.replace("_", " "))
    band = rest.removeprefix("band.") if rest.startswith("band.") else None
    return words, band


def _share(value: float) -> str:
    if value >= 0.99:
        return "all of the time"
    if abs(value - 0.5) < 0.03:
        return "half of the time"
    return f"{value:.0%} of the time"


def plain_summary(facts: AlertFacts) -> str:
    """One or two sentences: what was seen, where, and what to do."""
    place = _place(facts)
    if facts.kind == "threshold" and facts.metric:
        words, band = _metric_words(facts.metric)
        lasting = f" for {facts.minutes:.0f} minutes" if facts.minutes else ""
        if band is not None and facts.threshold is not None:
            share = _share(facts.threshold)
            seen = f"{place.capitalize()}, {words} was in {BAND_WORDS.get(band, band)} more than {share}{lasting}."
        else:
            limit = f" above {facts.threshold:g}" if facts.threshold is not None else ""
            seen = f"{place.capitalize()}, {words} stayed{limit}{lasting}."
        if facts.role == "headpose":
            return f"{seen} Let the nurse review this station's sessions; nothing needs to be done at the station."
        return (
            f"{seen} Suggest a short break and a look at the screen height and the chair; "
            "if it comes back day after day, review the desk set-up with the person."
        )
    if facts.kind == "screening":
        cls = facts.metric or "positive"
        sure = f" (the model was {facts.value:.0%} sure)" if facts.value is not None else ""
        return (
            f"A walk-through {place} was screened {cls}{sure}. "
            "Check the follow-up list and decide whether to refer the student; a screening is not a diagnosis."
        )
    if facts.kind == "device_offline":
        gone = f" for {facts.minutes:.0f} minutes" if facts.minutes else ""
        return (
            f"The {ROLE_WORDS.get(facts.role or '', 'device')} {facts.device} has not been heard from{gone}. "
            "Check that it has power and network; it keeps its scores and sends them when it is back."
        )
    if facts.kind == "fps_below":
        return (
            f"The camera {place} runs slowly ({facts.value:g} frames a second, below {facts.threshold:g}). "
            "Measurements are still made but less often; tell IT support if it lasts."
        )
    if facts.kind == "outbox_growing":
        return (
            f"The device {place.removeprefix('at ')} cannot deliver its scores ({facts.value:.0f} waiting). "
            "Check its network connection; nothing is lost while the queue has room."
        )
    if facts.kind == "dropped_scores":
        return (
            f"The device {place.removeprefix('at ')} had to drop {facts.value:.0f} scores because it could not "
            "deliver them for a long time. Tell IT support to check its network connection."
        )
    return f"Alert {facts.rule} {place}: {facts.detail}"


def alert_link(dashboard_url: str | None, alert_id: object) -> str:
    """Where staff see an alert: its row on the dashboard's alerts page (the row's id is `alert-{id}`)."""
    base = (dashboard_url or "").rstrip("/")
    return f"{base}/alerts?show=all#alert-{alert_id}"


def notification_text(alert: Mapping[str, Any], role: str | None, link: str) -> tuple[str, str]:
    """Subject and body of an e-mail (or the text of a webhook) for a stored alert row or a wire alert, with a
    link to it. A resolved alert says so first."""
    facts = facts_from_alert(alert, role)
    severity = str(alert.get("severity", "info"))
    resolved = alert.get("state") == "resolved"
    headline = plain_summary(facts).split(". ")[0]
    subject = f"[EdgeScreen {severity}] {alert.get('site', '')}: {'Resolved: ' if resolved else ''}{headline}"
    first = "This alert is resolved; no action is needed now.\n\n" if resolved else ""
    body = f"{first}{plain_summary(facts)}\n\nSee the alert: {link}\n\nDetails: {facts.detail} (rule {facts.rule})\n"
    return subject[:200], body
