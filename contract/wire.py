"""The wire schema: every message a device or the collector puts on MQTT.

One definition, imported by the device and by the collector (never copied). Messages carry numbers,
enums, timestamps, ids and hashes only: no image, no keypoint track, no raw subject code.
Unknown fields are rejected so that a device cannot leak a new field by accident.
"""

from __future__ import annotations

import functools
import json
import uuid
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Annotated, Any, Literal, NoReturn, Union

from pydantic import (
    AfterValidator,
    AwareDatetime,
    BaseModel,
    ConfigDict,
    Field,
    StringConstraints,
    TypeAdapter,
    ValidationError,
    model_validator,
)

from contract.errors import EdgeScreenError
from contract.roles import ROLE_PACKAGES, RoleName, role_names, role_specs

SCHEMA_VERSION = 1
TOPIC_ROOT = "edgescreen/v1"
MAX_PAYLOAD_BYTES = 64 * 1024

SYSTEM_KINDS: tuple[str, ...] = ("status", "heartbeat")  # every role adds its own kind (contract.roles)
# Every topic level the system uses itself: `edgescreen/v1/{site}/{device}/{kind}`, the site's `alerts` and
# the devices' `receipts`. A site or device named after one would make its topics, and its ACL entry, overlap
# the system's: a device `alerts` gets `…/{site}/alerts/#`, which covers the site's alert topic. MQTT's own
# `+`, `#`, `/` and `$…` are outside the identifier alphabet already.
RESERVED_NAMES: frozenset[str] = frozenset({*TOPIC_ROOT.split("/"), "alerts", "receipts", *role_names(), *SYSTEM_KINDS})


def check_not_reserved(value: str) -> str:
    """`value` if it is not a reserved topic level; raises ValueError saying which names are reserved."""
    if value in RESERVED_NAMES:
        raise ValueError(f"{value!r} is a topic level the system uses; reserved: {', '.join(sorted(RESERVED_NAMES))}")
    return value


# A site or device id: one topic level, never one the system uses.
Identifier = Annotated[
    str, StringConstraints(pattern=r"^[a-z0-9][a-z0-9_-]{0,62}$"), AfterValidator(check_not_reserved)
]
Sha256Hex = Annotated[str, StringConstraints(pattern=r"^[0-9a-f]{64}$")]
MetricName = Annotated[str, StringConstraints(pattern=r"^[a-z][a-z0-9_]{0,47}$")]
ModelName = Annotated[str, StringConstraints(pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,95}$")]
Finite = Annotated[float, Field(allow_inf_nan=False)]
Fraction = Annotated[float, Field(ge=0.0, le=1.0, allow_inf_nan=False)]
Count = Annotated[int, Field(ge=0, le=2**53)]


class WireError(EdgeScreenError, ValueError):
    """A payload that is not a valid message. `reason` is a short code the collector counts by."""

    def __init__(self, reason: str, detail: str) -> None:
        super().__init__(f"{reason}: {detail}")
        self.reason = reason
        self.detail = detail


class WireModel(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, strict=True)


class ModelRef(WireModel):
    name: ModelName = Field(description="model name as in the model store manifest")
    sha256: Sha256Hex = Field(description="sha256 of the model file the device ran")


class Envelope(WireModel):
    # A strict int, not Literal[1]: JSON `true` would pass as 1 there.
    schema_version: Annotated[int, Field(strict=True, ge=SCHEMA_VERSION, le=SCHEMA_VERSION)] = Field(
        default=SCHEMA_VERSION, description="wire schema version"
    )
    message_id: uuid.UUID = Field(default_factory=uuid.uuid4, description="unique id, for de-duplication")
    device_id: Identifier = Field(description="device id; must match the topic")
    site: Identifier = Field(description="site id; must match the topic")
    seq: Count = Field(description="per-device sequence number, increasing across restarts")

    if TYPE_CHECKING:
        kind: str  # each message declares it as a Literal field, last, so payloads keep their key order


class Window(Envelope):
    window_start: AwareDatetime = Field(description="start of the window (UTC)")
    window_end: AwareDatetime = Field(description="end of the window (UTC)")
    models: list[ModelRef] = Field(default_factory=list, max_length=16, description="models that produced it")

    @model_validator(mode="after")
    def _ordered(self) -> Window:
        if self.window_end < self.window_start:
            raise ValueError("window_end is before window_start")
        return self


class Status(Envelope):
    """Retained online/offline state; `offline` is also the MQTT last will."""

    kind: Literal["status"] = "status"
    state: Literal["online", "offline"]
    at: AwareDatetime
    role: RoleName | None = None


CameraState = Literal["open", "reopening", "failed", "ended"]


class Heartbeat(Envelope):
    kind: Literal["heartbeat"] = "heartbeat"
    at: AwareDatetime
    uptime_s: Annotated[float, Field(ge=0, allow_inf_nan=False)]
    fps: dict[MetricName, Annotated[float, Field(ge=0, allow_inf_nan=False)]] = Field(
        max_length=16, description="frames per second per stage"
    )
    frames_dropped: Count = Field(description="frames overwritten before inference (latest frame wins)")
    frames_corrupt: Count = Field(description="frames skipped as unreadable")
    absent_windows: Count = Field(description="windows with nobody in view (no score sent)")
    outbox_depth: Count
    outbox_dropped: Count = Field(description="scores dropped because the outbox was full")
    scores_lost: Count = Field(
        default=0, description="scores made but never stored (the disk was full), since the outbox file was created"
    )
    camera_state: CameraState
    camera_reopens: Count = Field(default=0, description="reconnects after the camera was lost")
    camera_no_frame_s: Annotated[float, Field(ge=0, allow_inf_nan=False)] = Field(
        default=0.0, description="seconds without a camera frame since start (opening, outages, reconnecting)"
    )
    backend: Annotated[str, StringConstraints(pattern=r"^[a-z0-9_-]{1,32}$")]
    backend_fallback: bool = Field(default=False, description="configured backend missing, fell back")
    models: list[ModelRef] = Field(default_factory=list, max_length=16)
    cpu_temp_c: Finite | None = None


class Alert(WireModel):
    """Published by the collector on edgescreen/v1/{site}/alerts."""

    schema_version: Literal[1] = 1
    alert_id: uuid.UUID
    site: Identifier
    device_id: Identifier | None
    rule: MetricName
    severity: Literal["info", "warning", "critical"]
    state: Literal["open", "acknowledged", "resolved"]
    summary: Annotated[str, StringConstraints(max_length=500)]
    dedup_key: Annotated[str, StringConstraints(max_length=200)]
    at: AwareDatetime


# Any device message: a role's window or screening, a status or a heartbeat. Each has a `kind` field.
DeviceMessage = Envelope


def device_kinds() -> tuple[str, ...]:
    """Topic and message kinds a device may publish: one per registered role, plus status and heartbeat."""
    return (*role_names(), *SYSTEM_KINDS)


@functools.cache
def _adapter(kinds: tuple[tuple[str, str], ...]) -> TypeAdapter[Any]:
    # Keyed by the registry's contents, so a role added to the registry is read without any other change.
    members = (*(spec.message for spec in role_specs()), Status, Heartbeat)
    union: Any = Union[members]  # noqa: UP007 - the members are known only at run time
    return TypeAdapter(Annotated[union, Field(discriminator="kind")])


def _device_adapter() -> TypeAdapter[Any]:
    return _adapter(tuple(ROLE_PACKAGES.items()))


def topic_for(site: str, device_id: str, kind: str) -> str:
    return f"{TOPIC_ROOT}/{site}/{device_id}/{kind}"


def alerts_topic(site: str) -> str:
    return f"{TOPIC_ROOT}/{site}/alerts"


def parse_topic(topic: str) -> tuple[str, str, str]:
    """Split `edgescreen/v1/{site}/{device}/{kind}`; raises WireError('wrong_topic')."""
    parts = topic.split("/")
    if len(parts) != 5 or "/".join(parts[:2]) != TOPIC_ROOT or parts[4] not in device_kinds():
        raise WireError("wrong_topic", f"not a device topic: {topic[:200]!r}")
    return parts[2], parts[3], parts[4]


def encode(message: BaseModel) -> bytes:
    """Serialise a message to its canonical compact JSON payload."""
    return message.model_dump_json(exclude_none=False).encode("utf-8")


def decode(payload: bytes, topic: str | None = None) -> DeviceMessage:
    """Validate a device payload (and, when given, that it matches its topic).

    Raises WireError with reason oversized | encoding (not UTF-8, or a NUL) | malformed_json | unknown_version |
    invalid | wrong_topic. Timestamps are checked against the receiver's clock separately (`check_clock`).
    """
    if len(payload) > MAX_PAYLOAD_BYTES:
        raise WireError("oversized", f"{len(payload)} bytes > {MAX_PAYLOAD_BYTES}")
    # NUL is no character of any message, and PostgreSQL text cannot hold it: refused before anything stores it.
    if (at := payload.find(b"\x00")) != -1:
        raise WireError("encoding", f"payload holds a NUL byte at offset {at}")
    try:
        text = payload.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise WireError("encoding", f"payload is not UTF-8: {exc}") from exc
    if (at := _escaped_nul(text)) != -1:
        raise WireError("encoding", f"payload holds the JSON escape \\u0000 (NUL) at offset {at}")
    try:
        # One parse on the happy path: the collector decodes every message it stores.
        message: DeviceMessage = _device_adapter().validate_json(text)
    except ValidationError as exc:
        _raise_reason(text, exc)
    if topic is not None:
        site, device, kind = parse_topic(topic)
        if (site, device, kind) != (message.site, message.device_id, message.kind):
            raise WireError(
                "wrong_topic",
                f"topic {topic!r} does not match payload site={message.site} device={message.device_id} "
                f"kind={message.kind}",
            )
    return message


# Timestamps a receiver accepts: at most this far ahead of its own clock by default, and none before CLOCK_FLOOR
# (a device whose clock was never set counts from 1970).
MAX_CLOCK_AHEAD_S = 300.0
CLOCK_FLOOR = datetime(2020, 1, 1, tzinfo=UTC)


def message_times(message: DeviceMessage) -> tuple[datetime, ...]:
    """The timestamps a message carries: a window's start and end, a status's or heartbeat's `at`."""
    if isinstance(message, Window):
        return (message.window_start, message.window_end)
    return (message.at,)  # type: ignore[attr-defined]  # status and heartbeat carry `at`


def check_clock(message: DeviceMessage, now: datetime, max_ahead_s: float = MAX_CLOCK_AHEAD_S) -> None:
    """Raise WireError('clock') when a timestamp of `message` is more than `max_ahead_s` after `now` (aware) or
    before CLOCK_FLOOR: a device clock gone wrong, whose times would move alerts and the registry."""
    latest = now + timedelta(seconds=max_ahead_s)
    for when in message_times(message):
        try:
            ahead = when > latest
            before = when < CLOCK_FLOOR
        except OverflowError:  # an offset pushing the time past year 9999
            ahead, before = True, False
        if ahead:
            raise WireError(
                "clock",
                f"{when.isoformat()} is more than {max_ahead_s:g} s ahead of the receiver's clock "
                f"({now:%Y-%m-%d %H:%M:%S} UTC)",
            )
        if before:
            raise WireError(
                "clock", f"{when.isoformat()} is before {CLOCK_FLOOR:%Y-%m-%d}: the device's clock is not set"
            )


def _escaped_nul(text: str) -> int:
    """Offset of a JSON escape `\\u0000` in `text`, or -1; an escaped backslash followed by `u0000` is no NUL."""
    at = text.find("\\u0000")
    while at != -1:
        start = at
        while start > 0 and text[start - 1] == "\\":
            start -= 1
        if (at - start) % 2 == 0:  # an even run of backslashes before it: this one starts an escape
            return at
        at = text.find("\\u0000", at + 1)
    return -1


def _raise_reason(text: str, exc: ValidationError) -> NoReturn:
    """Classify a rejected payload: malformed_json | unknown_version | invalid."""
    try:
        raw: Any = json.loads(text, parse_constant=_reject_constant)
    except (ValueError, RecursionError) as parse_exc:
        raise WireError("malformed_json", str(parse_exc)[:200]) from parse_exc
    if not isinstance(raw, dict):
        raise WireError("malformed_json", f"top level is {type(raw).__name__}, expected an object")
    version = raw.get("schema_version")
    if version != SCHEMA_VERSION or isinstance(version, bool):
        raise WireError(
            "unknown_version", f"schema_version {str(version)[:20]!r}, this build reads {SCHEMA_VERSION}"
        ) from exc
    first = exc.errors()[0]
    where = ".".join(str(p) for p in first["loc"])
    raise WireError("invalid", f"{where}: {first['msg']} ({exc.error_count()} error(s))") from exc


def _reject_constant(name: str) -> float:
    raise ValueError(f"{name} is not valid JSON")


def utcnow() -> datetime:
    return datetime.now(UTC)
