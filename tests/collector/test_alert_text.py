"""Alerts in plain words: every summary form the rules write becomes a sentence that says what to do."""

from __future__ import annotations

import pytest

from collector.alerts.text import facts_from_alert, notification_text, plain_summary

CASES = [
    ("cva_deg.band.high above 0.5 for 30 min at desk-02 (now 0.45)", "posture", "threshold",
     ["desk desk-02", "head held forward", "high-risk range", "half of the time", "30 minutes", "break"]),
    ("gait screening positive (p=0.91) at booth-1", "gait", "screening",
     ["screening booth booth-1", "screened positive", "91%", "follow-up list", "not a diagnosis"]),
    ("station-2 offline for 45 min (last seen 2026-01-01 08:00 UTC)", "headpose", "device_offline",
     ["head-pose station station-2", "45 minutes", "power and network"]),
    ("desk-02 at 9.5 fps, below 15 for 10 min", "posture", "fps_below", ["9.5 frames a second", "IT support"]),
    ("desk-02 outbox at 120 and growing (was 80)", "posture", "outbox_growing", ["120 waiting", "network"]),
    ("desk-02 dropped 12 scores (outbox full)", "posture", "dropped_scores", ["drop 12 scores", "network"]),
]  # fmt: skip


@pytest.mark.parametrize(("summary", "role", "kind", "phrases"), CASES)
def test_each_summary_form_reads_plainly(summary: str, role: str, kind: str, phrases: list[str]) -> None:
    facts = facts_from_alert({"rule": "r", "summary": summary, "device_id": "x"}, role)
    assert facts.kind == kind
    text = plain_summary(facts)
    for phrase in phrases:
        assert phrase in text, (phrase, text)
    assert "cva_deg" not in text and "band." not in text and "p=" not in text, text


def test_an_unknown_summary_is_kept_and_notifications_link_the_alert() -> None:
    facts = facts_from_alert({"rule": "custom", "summary": "something new", "device_id": "desk-9"}, "posture")
    assert facts.kind == "unknown" and "something new" in plain_summary(facts)
    alert = {"rule": "gait_positive", "summary": CASES[1][0], "severity": "warning", "site": "school-a"}
    subject, body = notification_text(alert, "gait", "https://dash.example/alerts#alert-1")
    assert subject.startswith("[EdgeScreen warning] school-a: A walk-through at screening booth booth-1")
    assert "https://dash.example/alerts#alert-1" in body and "follow-up list" in body
