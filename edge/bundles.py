"""Signed model bundles on the device: verify, install atomically, roll back.

A bundle is an uncompressed tar holding `manifest.json`, `manifest.sig` (raw Ed25519 signature of the
manifest bytes) and the model files the manifest lists with their sha256. Install order:

1. verify the signature against the site's public key, then every entry against the manifest
   (nothing outside the manifest, not even a folder; no links, no absolute paths or `..`, no name twice),
   within the caps of contract/bundle.py (entries, bytes per member, bytes per bundle) and checking that
   every member's bytes are in the file (a truncated bundle is refused here, not half-way through extraction);
2. extract into a hidden temp dir under `releases/`, check each file's hash, fsync files and dirs;
3. rename the temp dir to `releases/<id>`; point `previous` at the old release; swap `current`
   with an atomic rename of a fresh symlink.

A power cut anywhere before the final rename leaves `current` on the old release; after it, on the
new one. Leftover temp dirs are removed by the next install. No onnx import here: this runs on devices.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import shutil
import tarfile
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Literal

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
from pydantic import ValidationError

from contract.bundle import (
    BUNDLE_FORMAT,
    MANIFEST_NAME,
    MAX_BUNDLE_BYTES,
    MAX_BUNDLE_ENTRIES,
    MAX_MEMBER_BYTES,
    SIGNATURE_NAME,
    BundleError,
    BundleManifest,
    BundleModel,
    InputSpec,
    key_id,
    load_private_key,
    load_public_key,
)
from contract.hashing import sha256_file
from edge.model_store import default_model_dir

log = logging.getLogger(__name__)

_MAX_MANIFEST_BYTES = 4 * 1024 * 1024
_CHUNK = 1 << 20

__all__ = [  # the manifest's names, re-exported for the device's bundle commands
    "BUNDLE_FORMAT",
    "MANIFEST_NAME",
    "SIGNATURE_NAME",
    "BundleError",
    "BundleManifest",
    "BundleModel",
    "InputSpec",
    "key_id",
    "load_private_key",
    "load_public_key",
]

# Called with the name of each install step; tests use it to stop the installer between steps.
StepHook = Callable[[str], None]
INSTALL_STEPS: tuple[str, ...] = ("verified", "extracted", "synced", "renamed", "previous_linked", "current_linked")


@dataclass(frozen=True)
class InstalledBundle:
    role: str
    release: Path
    manifest: BundleManifest

    def model_path(self, name: str) -> Path:
        for model in self.manifest.models:
            if model.name == name:
                return self.release / model.file
        known = ", ".join(m.name for m in self.manifest.models)
        raise BundleError(f"bundle for role {self.role!r} has no model {name!r}; it holds: {known}")


def default_bundle_dir() -> Path:
    return default_model_dir() / "bundles"


def _safe_member_path(name: str, bundle: Path) -> PurePosixPath:
    path = PurePosixPath(name)
    if path.is_absolute() or ".." in path.parts or name.startswith(("/", "\\")) or "\\" in name:
        raise BundleError(f"bundle {bundle}: member {name!r} escapes the bundle (absolute path or '..'); refused")
    if not path.parts:
        raise BundleError(f"bundle {bundle}: empty member name")
    return path


def _read_member(tar: tarfile.TarFile, name: str, bundle: Path, limit: int) -> bytes:
    try:
        info = tar.getmember(name)
    except KeyError:
        if name == SIGNATURE_NAME:
            raise BundleError(f"bundle {bundle} is unsigned (no {SIGNATURE_NAME}); refused") from None
        raise BundleError(f"bundle {bundle} has no {name}; not an EdgeScreen bundle") from None
    if not info.isfile():
        raise BundleError(f"bundle {bundle}: {name} is not a regular file; refused")
    if info.size > limit:
        raise BundleError(f"bundle {bundle}: {name} is {info.size} bytes, over the {limit}-byte limit")
    fh = tar.extractfile(info)
    if fh is None:
        raise BundleError(f"bundle {bundle}: cannot read {name}")
    return fh.read()


def _entries(tar: tarfile.TarFile, bundle: Path, size: int) -> list[tarfile.TarInfo]:
    """Every entry's header, read one at a time and checked before the next is read: the caps, safe names, regular
    files and folders only, no name twice, and each file's bytes inside the bundle file (`size` bytes)."""
    entries: list[tarfile.TarInfo] = []
    names: set[str] = set()
    while True:
        try:
            info = tar.next()
        except (tarfile.TarError, OSError) as exc:
            after = f"after {entries[-1].name}" if entries else "at its start"
            raise BundleError(f"bundle {bundle} is damaged or truncated {after} ({exc}); refused") from exc
        if info is None:
            return entries
        if len(entries) == MAX_BUNDLE_ENTRIES:
            raise BundleError(f"bundle {bundle} has more than {MAX_BUNDLE_ENTRIES} entries; refused")
        _safe_member_path(info.name, bundle)
        if not (info.isfile() or info.isdir()):
            raise BundleError(f"bundle {bundle}: member {info.name!r} is a link or device file; refused")
        if info.name in names:
            raise BundleError(f"bundle {bundle}: {info.name} appears twice; refused")
        if info.size > MAX_MEMBER_BYTES:
            raise BundleError(
                f"bundle {bundle}: {info.name} claims {info.size} bytes, over the {MAX_MEMBER_BYTES}-byte cap; refused"
            )
        if info.isfile() and info.offset_data + info.size > size:
            raise BundleError(
                f"bundle {bundle} is truncated: {info.name} needs {info.size} bytes from byte {info.offset_data}, "
                f"the file ends at {size}; refused"
            )
        names.add(info.name)
        entries.append(info)


def verify_bundle(bundle: Path, public_key: Ed25519PublicKey) -> BundleManifest:
    """Check signature, manifest and the member list (not yet file hashes: those are checked on extract)."""
    bundle = Path(bundle)
    try:
        size = bundle.stat().st_size
    except OSError as exc:
        raise BundleError(f"cannot read bundle {bundle}: {exc}") from exc
    if size > MAX_BUNDLE_BYTES:
        raise BundleError(f"bundle {bundle} is {size} bytes, over the {MAX_BUNDLE_BYTES}-byte cap; refused")
    try:
        tar = tarfile.open(bundle, "r:")  # noqa: SIM115  # closed by the `with` below
    except (OSError, tarfile.TarError) as exc:
        raise BundleError(f"cannot open bundle {bundle} as an uncompressed tar: {exc}") from exc
    with tar:
        members = _entries(tar, bundle, size)
        manifest_bytes = _read_member(tar, MANIFEST_NAME, bundle, _MAX_MANIFEST_BYTES)
        signature = _read_member(tar, SIGNATURE_NAME, bundle, 1024)
        try:
            public_key.verify(signature, manifest_bytes)
        except InvalidSignature:
            claimed = _claimed_key_id(manifest_bytes)
            raise BundleError(
                f"bundle {bundle}: signature does not verify against the site public key (key id "
                f"{key_id(public_key)}; the manifest names signing key {claimed}); the bundle was tampered "
                "with or signed by another key; refused"
            ) from None
        try:
            manifest = BundleManifest.model_validate_json(manifest_bytes)
        except ValidationError as exc:
            raise BundleError(f"bundle {bundle}: manifest is invalid: {exc}") from exc
        names = [m.name for m in manifest.models]
        if len(set(names)) != len(names):
            raise BundleError(f"bundle {bundle}: manifest lists a model name twice: {names}")
        listed = {m.file for m in manifest.models}
        folders: set[str] = set()
        for model in manifest.models:
            path = _safe_member_path(model.file, bundle)
            if path.parts[0] != "models":
                raise BundleError(f"bundle {bundle}: model file {model.file!r} is not under models/")
            folders.update(str(parent) for parent in path.parents if parent.parts)
        present = {info.name for info in members if info.isfile()}
        missing = listed - present
        if missing:
            raise BundleError(f"bundle {bundle}: files listed in the manifest are missing: {sorted(missing)}")
        # Only the signed files and the folders that hold them: a stray folder is no more welcome than a stray file.
        extra = {info.name for info in members} - listed - folders - {MANIFEST_NAME, SIGNATURE_NAME}
        if extra:
            shown = sorted(extra)[:10]
            more = f" and {len(extra) - len(shown)} more" if len(extra) > len(shown) else ""
            raise BundleError(f"bundle {bundle}: entries not in the signed manifest: {shown}{more}; refused")
        sizes = {info.name: info.size for info in members if info.isfile()}
        for model in manifest.models:
            if sizes[model.file] != model.size:
                raise BundleError(
                    f"bundle {bundle}: {model.file} is {sizes[model.file]} bytes, the signed manifest says "
                    f"{model.size}; the bundle was tampered with or damaged; refused"
                )
    return manifest


def _claimed_key_id(manifest_bytes: bytes) -> str:
    try:
        value = json.loads(manifest_bytes).get("key_id")
    except (ValueError, AttributeError):
        return "unreadable"
    return str(value)[:32]


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _extract_checked(bundle: Path, manifest: BundleManifest, dest: Path) -> None:
    """Copy the manifest, signature and models into `dest`, hashing while writing; fsync everything."""
    expected = {m.file: m for m in manifest.models}
    try:
        _extract_members(bundle, expected, dest)
    except (tarfile.TarError, EOFError) as exc:  # the file changed after it was verified
        raise BundleError(f"bundle {bundle} became unreadable while it was extracted ({exc}); refused") from exc
    for root, dirs, _files in os.walk(dest, topdown=False):
        for d in dirs:
            _fsync_dir(Path(root) / d)
    _fsync_dir(dest)


def _extract_members(bundle: Path, expected: dict[str, BundleModel], dest: Path) -> None:
    with tarfile.open(bundle, "r:") as tar:
        for info in tar.getmembers():
            if not info.isfile():
                continue
            rel = _safe_member_path(info.name, bundle)
            target = dest.joinpath(*rel.parts)
            target.parent.mkdir(parents=True, exist_ok=True)
            src = tar.extractfile(info)
            if src is None:
                raise BundleError(f"bundle {bundle}: cannot read {info.name}")
            digest = hashlib.sha256()
            with open(target, "wb") as out:
                while chunk := src.read(_CHUNK):
                    digest.update(chunk)
                    out.write(chunk)
                out.flush()
                os.fsync(out.fileno())
            model = expected.get(info.name)
            if model is not None and digest.hexdigest() != model.sha256:
                raise BundleError(
                    f"bundle {bundle}: {info.name} has sha256 {digest.hexdigest()}, the signed manifest says "
                    f"{model.sha256}; the bundle was tampered with or damaged; refused"
                )


def _release_id(manifest: BundleManifest, bundle: Path) -> str:
    return f"{manifest.role}-{manifest.created.strftime('%Y%m%dT%H%M%S')}-{sha256_file(bundle)[:12]}"


def _swap_link(link: Path, target: str) -> None:
    """Point `link` at `target` atomically (symlink to a temp name, then rename over)."""
    tmp = link.with_name(f".{link.name}.{uuid.uuid4().hex[:8]}")
    os.symlink(target, tmp)
    os.replace(tmp, link)
    _fsync_dir(link.parent)


def _clean_leftovers(role_dir: Path) -> None:
    releases = role_dir / "releases"
    if releases.is_dir():
        for entry in releases.iterdir():
            if entry.name.startswith(".tmp-"):
                log.info("removing %s left by an interrupted install", entry)
                shutil.rmtree(entry, ignore_errors=True)
    for entry in role_dir.glob(".current.*"):
        entry.unlink(missing_ok=True)
    for entry in role_dir.glob(".previous.*"):
        entry.unlink(missing_ok=True)


def install_bundle(
    bundle: Path, public_key: Ed25519PublicKey, directory: Path | None = None, on_step: StepHook | None = None
) -> InstalledBundle:
    """Verify and install `bundle` for its role; the old release stays as `previous`."""
    bundle = Path(bundle)
    directory = Path(directory) if directory is not None else default_bundle_dir()
    hook = on_step or (lambda _step: None)
    manifest = verify_bundle(bundle, public_key)
    hook("verified")
    role_dir = directory / manifest.role
    releases = role_dir / "releases"
    releases.mkdir(parents=True, exist_ok=True)
    _clean_leftovers(role_dir)
    release_id = _release_id(manifest, bundle)
    final = releases / release_id
    current_link = role_dir / "current"
    old_target = os.readlink(current_link) if current_link.is_symlink() else None
    reuse = final.is_dir() and _release_intact(final, manifest)
    if reuse and old_target == f"releases/{release_id}":
        log.info("bundle %s is already the current %s release", bundle, manifest.role)
        return InstalledBundle(manifest.role, final, manifest)
    if not reuse:
        tmp = releases / f".tmp-{uuid.uuid4().hex}"
        tmp.mkdir()
        try:
            _extract_checked(bundle, manifest, tmp)
            hook("extracted")
            _fsync_dir(releases)
            hook("synced")
            if final.exists():  # a damaged copy of this release: set it aside for the clean-up
                os.rename(final, releases / f".tmp-damaged-{uuid.uuid4().hex}")
            os.rename(tmp, final)
            _fsync_dir(releases)
        except BaseException:
            shutil.rmtree(tmp, ignore_errors=True)
            raise
    hook("renamed")
    if old_target is not None:
        _swap_link(role_dir / "previous", old_target)
    hook("previous_linked")
    _swap_link(current_link, f"releases/{release_id}")
    hook("current_linked")
    _prune(role_dir)
    log.info("installed %s bundle %s (%d models) as %s", manifest.role, bundle.name, len(manifest.models), final)
    return InstalledBundle(manifest.role, final, manifest)


def _release_intact(release: Path, manifest: BundleManifest) -> bool:
    """An already extracted release (e.g. the previous one, installed again) with every hash right."""
    try:
        return all(sha256_file(release / m.file) == m.sha256 for m in manifest.models)
    except OSError:
        return False


def _prune(role_dir: Path) -> None:
    """Keep only the releases `current` and `previous` point at."""
    keep = {os.readlink(role_dir / n) for n in ("current", "previous") if (role_dir / n).is_symlink()}
    for entry in (role_dir / "releases").iterdir():
        if f"releases/{entry.name}" not in keep and not entry.name.startswith(".tmp-"):
            shutil.rmtree(entry, ignore_errors=True)


def rollback(role: str, directory: Path | None = None) -> InstalledBundle:
    """Make the previous release current again (and the current one previous)."""
    directory = Path(directory) if directory is not None else default_bundle_dir()
    role_dir = directory / role
    current_link, previous_link = role_dir / "current", role_dir / "previous"
    if not previous_link.is_symlink():
        raise BundleError(f"no previous bundle to roll back to for role {role!r} in {directory}")
    previous_target = os.readlink(previous_link)
    if not (role_dir / previous_target / MANIFEST_NAME).is_file():
        raise BundleError(f"previous bundle {role_dir / previous_target} is incomplete; cannot roll back")
    current_target = os.readlink(current_link) if current_link.is_symlink() else None
    _swap_link(current_link, previous_target)
    if current_target is not None:
        _swap_link(previous_link, current_target)
    else:
        previous_link.unlink()
        _fsync_dir(role_dir)
    log.info("rolled back %s to %s", role, previous_target)
    return installed(role, directory)


Which = Literal["current", "previous"]


def installed(role: str, directory: Path | None = None, which: Which = "current") -> InstalledBundle:
    """The installed release of `role` (after re-checking each model's hash)."""
    directory = Path(directory) if directory is not None else default_bundle_dir()
    link = directory / role / which
    if not link.is_symlink():
        raise BundleError(f"no {which} bundle installed for role {role!r} in {directory}")
    release = (link.parent / os.readlink(link)).resolve()
    try:
        manifest = BundleManifest.model_validate_json((release / MANIFEST_NAME).read_bytes())
    except (OSError, ValidationError) as exc:
        raise BundleError(f"installed bundle {release} has no readable manifest: {exc}") from exc
    for model in manifest.models:
        path = release / model.file
        if not path.is_file() or sha256_file(path) != model.sha256:
            raise BundleError(f"installed model {path} is missing or does not match its manifest hash")
    return InstalledBundle(role, release, manifest)
