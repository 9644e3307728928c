"""The bundle manifest: what a signed model bundle holds, shared by the workstation that builds and signs it
(export/bundle.py) and the device that verifies and installs it (edge/bundles.py)."""

from __future__ import annotations

import base64
import hashlib
from datetime import datetime
from pathlib import Path
from typing import Any, Literal

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from pydantic import BaseModel, ConfigDict, Field

from contract.errors import EdgeScreenError
from contract.roles import RoleName

MANIFEST_NAME = "manifest.json"
SIGNATURE_NAME = "manifest.sig"
BUNDLE_FORMAT = "edgescreen-bundle"

# Caps a device applies before reading a bundle: a role's bundle holds a few models of tens of MB each, so these
# are far above any real one and far below what would fill a device's disk or memory.
MAX_BUNDLE_ENTRIES = 256  # tar entries of every kind (files and folders)
MAX_MEMBER_BYTES = 2 * 1024**3  # one file (an ONNX file cannot exceed 2 GiB without external data anyway)
MAX_BUNDLE_BYTES = 4 * 1024**3  # the bundle file


class BundleError(EdgeScreenError, RuntimeError):
    """A bundle that must not be installed, or an install/rollback that could not be done."""


class InputSpec(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str = Field(description="graph input name")
    shape: list[int | str | None] = Field(description="shape; strings or null are dynamic dimensions")
    dtype: str = Field(description="numpy dtype name, e.g. float32")
    layout: str | None = Field(default=None, description="NCHW, NHWC, ... when known")


class BundleModel(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str = Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,95}$", description="model name the runtime asks for")
    file: str = Field(description="path of the file inside the bundle, under models/")
    sha256: str = Field(pattern=r"^[0-9a-f]{64}$", description="sha256 of the file")
    size: int = Field(ge=0, le=MAX_MEMBER_BYTES, description="file size in bytes")
    precision: Literal["fp32", "fp16", "int8"] = Field(description="numeric precision of the weights")
    variant_of: str | None = Field(default=None, description="name of the FP32 model this is a variant of")
    task: str | None = Field(default=None, description="task of the model (perception model name or training task)")
    inputs: list[InputSpec] = Field(description="graph inputs")
    label_map: dict[str, int] | None = Field(default=None, description="class name → output index")
    normalisation: dict[str, Any] | None = Field(default=None, description="input normalisation from export")
    metrics: dict[str, Any] | None = Field(default=None, description="parity report summary for this model")


class BundleManifest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    format: Literal["edgescreen-bundle"] = Field(default="edgescreen-bundle", description="bundle format tag")
    format_version: Literal[1] = Field(default=1, description="bundle format version")
    role: RoleName = Field(description="device role this bundle serves")
    created: datetime = Field(description="when the bundle was made (UTC)")
    key_id: str = Field(pattern=r"^[0-9a-f]{16}$", description="first 16 hex of sha256 of the signing public key")
    models: list[BundleModel] = Field(
        min_length=1, max_length=MAX_BUNDLE_ENTRIES, description="the models in the bundle"
    )


def key_id(public_key: Ed25519PublicKey) -> str:
    raw = public_key.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    return hashlib.sha256(raw).hexdigest()[:16]


def load_public_key(path: Path) -> Ed25519PublicKey:
    """Read a site public key: PEM (SubjectPublicKeyInfo) or 32 raw bytes in base64/hex."""
    try:
        data = Path(path).read_bytes()
    except OSError as exc:
        raise BundleError(f"cannot read public key {path}: {exc}") from exc
    try:
        if b"BEGIN" in data:
            key = serialization.load_pem_public_key(data)
        else:
            text = data.decode("ascii").strip()
            raw = bytes.fromhex(text) if len(text) == 64 else base64.b64decode(text, validate=True)
            key = Ed25519PublicKey.from_public_bytes(raw)
    except (ValueError, UnicodeDecodeError) as exc:
        raise BundleError(f"{path} is not an Ed25519 public key (PEM, or 32 bytes as hex/base64): {exc}") from exc
    if not isinstance(key, Ed25519PublicKey):
        raise BundleError(f"{path} holds a {type(key).__name__}, not an Ed25519 public key")
    return key


def load_private_key(path: Path) -> Ed25519PrivateKey:
    try:
        data = Path(path).read_bytes()
    except OSError as exc:
        raise BundleError(f"cannot read signing key {path}: {exc}") from exc
    try:
        key = serialization.load_pem_private_key(data, password=None)
    except (ValueError, TypeError) as exc:
        raise BundleError(f"{path} is not an unencrypted PEM private key: {exc}") from exc
    if not isinstance(key, Ed25519PrivateKey):
        raise BundleError(f"{path} holds a {type(key).__name__}, not an Ed25519 signing key")
    return key
