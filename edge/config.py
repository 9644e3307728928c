"""The device profile: one YAML file that names the device's role, camera, models, broker and windows.

`load_profile(path)` returns a validated `Profile` or raises `ProfileError` naming the file, the key path
and the reason (with "did you mean" for a mistyped key). Secrets never appear in a profile: it names a
file or a systemd credential (`$CREDENTIALS_DIRECTORY/<name>`) and `read_secret` reads it when needed.
Relative paths in a profile are relative to the profile's own folder, so a profile works from any cwd.
"""

from __future__ import annotations

import difflib
import functools
import os
import types
import typing
from pathlib import Path
from typing import Annotated, Any, Literal
from urllib.parse import urlsplit

import yaml
from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    ValidationError,
    ValidationInfo,
    create_model,
    field_validator,
    model_validator,
)

from contract.errors import EdgeScreenError, UsageError
from contract.roles import ROLE_PACKAGES, RoleName, role_spec, role_specs
from contract.wire import Identifier
from edge.perception.pipeline import PerceptionConfig

CREDENTIALS_ENV = "CREDENTIALS_DIRECTORY"
STATE_DIR_ENV = "EDGESCREEN_STATE_DIR"


class ProfileError(UsageError, ValueError):
    """A profile that cannot be used; the message names the file, the key path and the reason."""


class SecretError(EdgeScreenError, RuntimeError):
    """A secret the profile points to could not be read."""


def _resolve_path(value: Path, info: ValidationInfo) -> Path:
    value = value.expanduser()
    base = (info.context or {}).get("base_dir") if info.context else None
    if not value.is_absolute() and base is not None:
        value = Path(base) / value
    return value


ProfilePath = Annotated[Path, AfterValidator(_resolve_path)]


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid")


class SecretRef(_Section):
    """Where a secret lives: a file, or a systemd credential name. Never the secret itself."""

    file: ProfilePath | None = Field(default=None, description="file holding the secret (first line is used)")
    credential: str | None = Field(
        default=None,
        pattern=r"^[A-Za-z0-9_.-]{1,64}$",
        description="systemd credential name, read from $CREDENTIALS_DIRECTORY/<name> (LoadCredential=)",
    )

    @model_validator(mode="before")
    @classmethod
    def _no_inline(cls, data: Any) -> Any:
        if not isinstance(data, dict):
            raise ValueError(
                "secrets are not written in the profile: give {file: PATH} or {credential: NAME} "
                "(a systemd credential under $CREDENTIALS_DIRECTORY)"
            )
        return data

    @model_validator(mode="after")
    def _exactly_one(self) -> SecretRef:
        if (self.file is None) == (self.credential is None):
            raise ValueError("give exactly one of 'file' or 'credential'")
        return self

    def describe(self) -> str:
        return f"file {self.file}" if self.file is not None else f"credential {self.credential!r}"


def read_secret(ref: SecretRef, what: str) -> bytes:
    """Read a secret; `what` names it in errors (e.g. 'broker.password'). Trailing newlines are dropped."""
    path = secret_path(ref, what)
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise SecretError(f"{what}: cannot read {path}: {exc.strerror or exc}") from exc
    data = data.rstrip(b"\r\n")
    if not data:
        raise SecretError(f"{what}: {path} is empty")
    return data


class DeviceSection(_Section):
    site: Identifier = Field(description="site id (school, office); part of every topic")
    device_id: Identifier = Field(description="this device's id, unique within the site; part of every topic")


class CameraConfig(_Section):
    source: str = Field(
        min_length=1,
        description="camera URI: device index or /dev/videoN, gst:PIPELINE, rtsp://, http(s)://, a video file, "
        "a folder of images, or picamera2[:N]",
    )
    width: int = Field(default=640, ge=16, le=7680, description="requested frame width in pixels")
    height: int = Field(default=480, ge=16, le=4320, description="requested frame height in pixels")
    fps: float | None = Field(default=None, gt=0, le=240, description="requested frame rate; null keeps the camera's")
    reopen_backoff_s: float = Field(default=1.0, gt=0, le=60, description="first wait before reopening a lost camera")
    reopen_backoff_max_s: float = Field(default=30.0, gt=0, le=3600, description="longest wait between reopen tries")
    realtime: bool = Field(
        default=False,
        description="pace a file source at its own frame rate (like a live camera) instead of reading as fast as "
        "inference goes",
    )


def _path_or_ref(value: Any) -> Any:
    # A plain string is a file path; a mapping is {file: PATH} or {credential: NAME}.
    if isinstance(value, str | Path):
        return {"file": value}
    return value


FileOrCredential = Annotated[SecretRef, BeforeValidator(_path_or_ref)]


def secret_path(ref: SecretRef, what: str) -> Path:
    """The file a reference points to (a credential resolves under $CREDENTIALS_DIRECTORY)."""
    if ref.credential is None:
        assert ref.file is not None
        return ref.file
    directory = os.environ.get(CREDENTIALS_ENV)
    if not directory:
        raise SecretError(
            f"{what}: credential {ref.credential!r} needs ${CREDENTIALS_ENV} "
            "(set by systemd LoadCredential=/SetCredential=), which is not set"
        )
    return Path(directory) / ref.credential


class TlsConfig(_Section):
    ca: FileOrCredential = Field(
        description="CA certificate (PEM) that signed the broker's certificate: a path or {credential: NAME}"
    )
    cert: FileOrCredential | None = Field(
        default=None, description="this device's client certificate (PEM) for mutual TLS: a path or {credential: NAME}"
    )
    key: FileOrCredential | None = Field(
        default=None, description="private key of the client certificate (PEM): a path or {credential: NAME}"
    )

    @model_validator(mode="after")
    def _pair(self) -> TlsConfig:
        if (self.cert is None) != (self.key is None):
            raise ValueError("give both 'cert' and 'key' for mutual TLS, or neither")
        return self


class BrokerConfig(_Section):
    url: str = Field(description="mqtt://HOST[:1883] or mqtts://HOST[:8883]")
    client_id: str | None = Field(
        default=None,
        max_length=64,
        description="MQTT client id without a client certificate; default '<site>-<device_id>' (stable: session). "
        "With tls.cert the client id is the certificate's identity (its CN), as the site broker enforces",
    )
    keepalive_s: int = Field(default=30, ge=5, le=3600, description="MQTT keepalive; the last will fires after ~1.5x")
    session_expiry_s: int = Field(
        default=7 * 24 * 3600, ge=0, le=2**32 - 1, description="how long the broker keeps this device's session"
    )
    tls: TlsConfig | None = Field(default=None, description="TLS settings; required for mqtts://")
    username: str | None = Field(default=None, max_length=256, description="MQTT username, optional")
    password: SecretRef | None = Field(default=None, description="where the MQTT password is read from")
    qos: Literal[1] = Field(default=1, description="QoS of every score (fixed: at least once, de-duplicated later)")
    max_inflight: int = Field(default=20, ge=1, le=1000, description="scores sent but not yet acknowledged, at most")
    reconnect_min_s: float = Field(default=0.5, gt=0, le=60, description="first wait before reconnecting")
    reconnect_max_s: float = Field(default=30.0, gt=0, le=3600, description="longest wait between reconnect tries")

    @field_validator("url")
    @classmethod
    def _url(cls, value: str) -> str:
        parts = urlsplit(value)
        if parts.scheme not in ("mqtt", "mqtts"):
            raise ValueError(f"scheme must be mqtt:// or mqtts://, got {value!r}")
        if not parts.hostname:
            raise ValueError(f"no host in {value!r}")
        if parts.username or parts.password:
            raise ValueError("no credentials in the URL: use 'username' and 'password: {file|credential}'")
        _ = parts.port  # raises ValueError on a bad port
        return value

    @model_validator(mode="after")
    def _tls_for_mqtts(self) -> BrokerConfig:
        if self.url.startswith("mqtts://") and self.tls is None:
            raise ValueError("mqtts:// needs a 'tls' section (at least 'ca')")
        if self.password is not None and self.username is None:
            raise ValueError("'password' given without 'username'")
        return self

    @property
    def host(self) -> str:
        return urlsplit(self.url).hostname or ""

    @property
    def port(self) -> int:
        parts = urlsplit(self.url)
        return parts.port or (8883 if parts.scheme == "mqtts" else 1883)


class DeliveryConfig(_Section):
    confirm: Literal["receipt", "puback"] = Field(
        default="receipt",
        description="when a score leaves the outbox: 'receipt' when the collector's receipt says it is stored (a "
        "broker crash loses nothing); 'puback' when the broker acknowledges it (for a collector that sends no "
        "receipts: with 'receipt' its scores would stay queued until the outbox bound drops them)",
    )
    receipt_timeout_s: float = Field(
        default=60.0, gt=0, le=3600, description="a score sent this long ago without a receipt is sent again"
    )
    receipt_timeout_max_s: float = Field(
        default=600.0, gt=0, le=86400, description="the wait doubles with each re-send of a score, up to this"
    )

    @model_validator(mode="after")
    def _ordered(self) -> DeliveryConfig:
        if self.receipt_timeout_max_s < self.receipt_timeout_s:
            raise ValueError("receipt_timeout_max_s is below receipt_timeout_s")
        return self


class OutboxConfig(_Section):
    path: ProfilePath | None = Field(
        default=None,
        description="SQLite file of scores not yet acknowledged; default $EDGESCREEN_STATE_DIR/outbox.sqlite "
        "(systemd StateDirectory=) or /var/lib/edgescreen/outbox.sqlite",
    )
    max_messages: int = Field(
        default=100_000, ge=10, le=10_000_000, description="bound; when full the oldest are dropped and counted"
    )
    drain_on_stop_s: float = Field(
        default=5.0, ge=0, le=120, description="on SIGTERM, how long to keep sending what is queued"
    )


class SecretsConfig(_Section):
    site_hmac_key: SecretRef | None = Field(
        default=None, description="per-site secret for HMAC pseudonyms of subject codes (gait booths)"
    )


class Profile(_Section):
    """A whole device profile. Each registered role adds an optional section named after it (`profile_model`)."""

    device: DeviceSection = Field(description="identity of the device")
    role: RoleName = Field(description="what the device screens for")
    camera: CameraConfig = Field(description="the camera the device reads")
    perception: PerceptionConfig = Field(default_factory=PerceptionConfig, description="models and backend")
    broker: BrokerConfig = Field(description="where scores are published")
    outbox: OutboxConfig = Field(default_factory=OutboxConfig, description="durable queue of unsent scores")
    delivery: DeliveryConfig = Field(
        default_factory=DeliveryConfig, description="when a score counts as delivered, and when it is sent again"
    )
    heartbeat_s: float = Field(default=30.0, ge=1, le=3600, description="seconds between heartbeat messages")
    secrets: SecretsConfig = Field(default_factory=SecretsConfig, description="where secrets are read from")

    @model_validator(mode="after")
    def _role_section(self) -> Profile:
        for name in ROLE_PACKAGES:
            if name != self.role and getattr(self, name, None) is not None:
                raise ValueError(f"section '{name}' given but role is '{self.role}'")
        if getattr(self, self.role, None) is None:
            setattr(self, self.role, role_spec(self.role).config())
        return self

    def outbox_path(self) -> Path:
        if self.outbox.path is not None:
            return self.outbox.path
        state = os.environ.get(STATE_DIR_ENV)
        return (Path(state) if state else Path("/var/lib/edgescreen")) / "outbox.sqlite"

    def role_config(self) -> BaseModel:
        section: BaseModel = getattr(self, self.role)
        return section

    @property
    def client_id(self) -> str:
        """The configured client id; with a client certificate the publisher connects as the certificate's
        identity instead (edge.mqtt_client.client_id_for)."""
        return self.broker.client_id or f"{self.device.site}-{self.device.device_id}"


def profile_model() -> type[Profile]:
    """The Profile model with one optional section per registered role (built once per registry content)."""
    return _profile_model(tuple(ROLE_PACKAGES.items()))


@functools.cache
def _profile_model(_roles: tuple[tuple[str, str], ...]) -> type[Profile]:
    sections: dict[str, Any] = {
        spec.name: (spec.config | None, Field(default=None, description=spec.description)) for spec in role_specs()
    }
    model: type[Profile] = create_model("Profile", __base__=Profile, __module__=__name__, **sections)
    return model


def load_profile(path: str | Path) -> Profile:
    """Read and validate a profile; raises ProfileError naming the file, key path and reason."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise ProfileError(f"{path}: cannot read: {exc.strerror or exc}") from exc
    except UnicodeDecodeError as exc:
        raise ProfileError(f"{path}: not UTF-8 text (byte {exc.start}): save the profile as UTF-8") from exc
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"line {mark.line + 1}, column {mark.column + 1}: " if mark is not None else ""
        raise ProfileError(f"{path}: {where}not valid YAML: {getattr(exc, 'problem', exc)}") from exc
    if not isinstance(data, dict):
        raise ProfileError(f"{path}: top level must be a mapping of sections, got {type(data).__name__}")
    return validate_profile(data, source=str(path), base_dir=path.resolve().parent)


def validate_profile(data: dict[str, Any], source: str, base_dir: Path | None = None) -> Profile:
    try:
        return profile_model().model_validate(data, context={"base_dir": base_dir})
    except ValidationError as exc:
        lines = [_describe_error(err) for err in exc.errors()]
        detail = "\n  ".join(lines)
        raise ProfileError(f"{source}: {exc.error_count()} problem(s)\n  {detail}") from exc


def _describe_error(err: Any) -> str:
    loc = tuple(err["loc"])
    where = _key_path(loc) or "(top level)"
    if err["type"] == "extra_forbidden":
        known = _fields_at(profile_model(), loc[:-1])
        hint = ""
        if known:
            close = difflib.get_close_matches(str(loc[-1]), known, n=1, cutoff=0.6)
            hint = f"; did you mean '{close[0]}'?" if close else f"; known keys: {', '.join(sorted(known))}"
        return f"{where}: unknown key{hint}"
    msg = str(err["msg"]).removeprefix("Value error, ")
    return f"{where}: {msg}"


def _key_path(loc: tuple[Any, ...]) -> str:
    out = ""
    for part in loc:
        if isinstance(part, int):
            out += f"[{part}]"
        elif not _is_type_tag(part):
            out += f".{part}" if out else str(part)
    return out


def _is_type_tag(part: Any) -> bool:
    # pydantic puts union member tags ('function-after[...]', 'SecretRef') into the location
    return isinstance(part, str) and (part[:1].isupper() or "[" in part)


def _fields_at(model: type[BaseModel], loc: tuple[Any, ...]) -> list[str]:
    """Field names of the model found by following `loc` from `model` (empty when it cannot tell)."""
    current: Any = model
    for part in loc:
        if isinstance(part, int) or _is_type_tag(part):
            continue
        current = _model_in(current)
        if current is None or part not in current.model_fields:
            return []
        current = current.model_fields[part].annotation
    found = _model_in(current)
    return list(found.model_fields) if found is not None else []


def _model_in(annotation: Any) -> type[BaseModel] | None:
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return annotation
    origin = typing.get_origin(annotation)
    if origin is Annotated:
        return _model_in(typing.get_args(annotation)[0])
    if origin in (typing.Union, types.UnionType, list, dict, tuple):
        for arg in typing.get_args(annotation):
            found = _model_in(arg)
            if found is not None:
                return found
    return None
