"""A role is one package plus one registry line: the profile, the wire schema, the collector's flattening,
the alert rules and the device runtime's analyzer lookup accept a throwaway role with no other change."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest

from collector.alerts.rules import ThresholdRule
from collector.flatten import flatten
from contract import wire
from contract.roles import ROLE_PACKAGES, role_names
from edge.config import ProfileError, validate_profile
from edge.roles.base import EmitContext
from edge.roles.registry import create_analyzer
from tests.edge.fixtures.throwaway_role import ThrowawayConfig, ThrowawayWindow

THROWAWAY = "tests.edge.fixtures.throwaway_role"


@pytest.fixture
def throwaway(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(ROLE_PACKAGES, "throwaway", THROWAWAY)


def _profile(role: str, **sections: Any) -> dict[str, Any]:
    return {
        "device": {"site": "site-1", "device_id": "dev-1"},
        "role": role,
        "camera": {"source": "clip.mp4"},
        "broker": {"url": "mqtt://127.0.0.1:1883"},
        **sections,
    }


def _window(**fields: Any) -> ThrowawayWindow:
    now = datetime(2025, 1, 1, tzinfo=UTC)
    return ThrowawayWindow(site="site-1", device_id="dev-1", seq=3, window_start=now, window_end=now, **fields)


def test_an_unregistered_role_is_refused_everywhere() -> None:
    assert "throwaway" not in role_names()
    with pytest.raises(ProfileError, match="unknown role 'throwaway'"):
        validate_profile(_profile("throwaway"), source="p.yaml")
    with pytest.raises(wire.WireError) as err:
        wire.decode(wire.encode(_window(frames=1)), wire.topic_for("site-1", "dev-1", "throwaway"))
    assert err.value.reason == "invalid"  # no message of that kind is known


@pytest.mark.usefixtures("throwaway")
def test_profile_reads_the_registered_role_and_its_section() -> None:
    profile = validate_profile(_profile("throwaway", throwaway={"window_s": 5}), source="p.yaml")
    section = profile.role_config()
    assert isinstance(section, ThrowawayConfig) and section.window_s == 5
    with pytest.raises(ProfileError, match=r"throwaway\.window_s"):
        validate_profile(_profile("throwaway", throwaway={"window_s": -1}), source="p.yaml")
    with pytest.raises(ProfileError, match="section 'throwaway' given but role is 'posture'"):
        validate_profile(_profile("posture", throwaway={}), source="p.yaml")


@pytest.mark.usefixtures("throwaway")
def test_wire_schema_decodes_the_role_message_on_its_topic() -> None:
    assert "throwaway" in wire.device_kinds()
    message = _window(frames=12, blink_rate=0.25)
    decoded = wire.decode(wire.encode(message), wire.topic_for("site-1", "dev-1", "throwaway"))
    assert decoded == message
    with pytest.raises(wire.WireError) as err:  # the role's own fields stay strict
        wire.decode(wire.encode(message).replace(b'"frames":12', b'"frames":-1'))
    assert err.value.reason == "invalid"
    status = wire.Status(site="site-1", device_id="dev-1", seq=1, state="online", at=wire.utcnow(), role="throwaway")
    assert wire.decode(wire.encode(status)) == status


@pytest.mark.usefixtures("throwaway")
def test_collector_flattens_the_role_and_rules_may_watch_it() -> None:
    assert flatten(_window(frames=12, blink_rate=0.25)) == {"frames": 12.0, "blink_rate.mean": 0.25}
    rule = ThresholdRule(name="blinks", type="threshold", kind="throwaway", metric="blink_rate.mean", above=0.5)
    assert rule.kind == "throwaway"
    with pytest.raises(ValueError, match="unknown message kind 'nonsense'"):
        ThresholdRule(name="x", type="threshold", kind="nonsense", metric="m", above=1)


@pytest.mark.usefixtures("throwaway")
def test_device_runtime_finds_the_role_analyzer() -> None:
    analyzer = create_analyzer("throwaway", EmitContext(site="site-1", device_id="dev-1"), ThrowawayConfig())
    (message,) = analyzer.flush()
    assert isinstance(message, ThrowawayWindow) and message.frames == 0
