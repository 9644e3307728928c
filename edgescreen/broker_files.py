"""The files the site broker reads, copied out of the PKI folder into a folder of their own.

Mosquitto 2 opens its certificate, key, CRL and ACL after it has dropped to the `mosquitto` user, so it
cannot read them inside the PKI folder (mode 0700, next to the CA's private key). `install_broker_files`
copies the five it needs into DEST (mode 0750, files 0640, group `mosquitto`), where
firmware_config/mosquitto/edgescreen.conf expects them, and records DEST in the PKI folder so that every
later `provision device | collector | revoke` refreshes the CRL and ACL there too.
"""

from __future__ import annotations

import grp
import json
import logging
import os
from pathlib import Path

from edgescreen.provision import ProvisionError, SitePKI

log = logging.getLogger(__name__)

DEFAULT_DEST = Path("/etc/mosquitto/edgescreen")
DEFAULT_GROUP = "mosquitto"
_RECORD = "broker-files.json"  # in the PKI folder: {dest: {"site", "name", "group"}}


def _group_id(group: str | None) -> int:
    if group is None:
        return -1
    try:
        return grp.getgrnam(group).gr_gid
    except KeyError as exc:
        raise ProvisionError(f"group {group!r} does not exist (is Mosquitto installed?)") from exc


def install_broker_files(root: Path, site: str, name: str, dest: Path, group: str | None = DEFAULT_GROUP) -> Path:
    """Copy the site CA, the broker's certificate and key, the CRL and the ACL into `dest`; returns `dest`."""
    pki = SitePKI(root, site)
    bundle = pki.dir / "issued" / pki.identity("broker", name)
    sources = {
        "ca.crt": pki.dir / "ca.crt",
        "cert.pem": bundle / "cert.pem",
        "key.pem": bundle / "key.pem",
        "crl.pem": pki.dir / "crl.pem",
        "acl": root / "acl",
    }
    missing = [str(path) for path in sources.values() if not path.is_file()]
    if missing:
        raise ProvisionError(f"cannot install the broker files, missing: {', '.join(missing)} (provision broker first)")
    gid = _group_id(group)
    try:
        dest.mkdir(parents=True, exist_ok=True)
        os.chown(dest, -1, gid)
        dest.chmod(0o750)
        for file_name, source in sources.items():
            _copy(source, dest / file_name, gid)
    except PermissionError as exc:
        raise ProvisionError(
            f"cannot write the broker files to {dest} as group {group!r}: {exc} (run as root)"
        ) from exc
    _record(root, dest, {"site": site, "name": name, "group": group})
    log.info("broker files for %s/%s in %s", site, name, dest)
    pki.warn_if_crl_due()
    return dest


def refresh_broker_files(root: Path) -> list[Path]:
    """Install the broker files again into every folder they were installed to (after the CRL or ACL changed)."""
    done = []
    for dest, entry in _recorded(root).items():
        site, name, group = str(entry["site"]), str(entry["name"]), entry.get("group")
        done.append(install_broker_files(root, site, name, Path(dest), None if group is None else str(group)))
    return done


def broker_files_stale(root: Path) -> bool:
    """True when a recorded folder's CRL or ACL differs from the PKI's (or is missing): a refresh is due."""
    for dest, entry in _recorded(root).items():
        for copy, source in (("crl.pem", root / str(entry["site"]) / "crl.pem"), ("acl", root / "acl")):
            try:
                if (Path(dest) / copy).read_bytes() != source.read_bytes():
                    return True
            except OSError:  # missing or unreadable: the refresh rewrites it, or says why it cannot
                return True
    return False


def _copy(source: Path, target: Path, gid: int) -> None:
    """Replace `target` atomically with mode 0640 and the given group from the first byte."""
    tmp = target.with_name(f".{target.name}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as f:
        os.fchown(fd, -1, gid)
        os.fchmod(fd, 0o640)
        f.write(source.read_bytes())
        f.flush()
        os.fsync(fd)
    os.replace(tmp, target)


def _recorded(root: Path) -> dict[str, dict[str, str | None]]:
    path = root / _RECORD
    if not path.is_file():
        return {}
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError) as exc:
        raise ProvisionError(f"{path}: unreadable record of broker file folders: {exc}") from exc
    return data if isinstance(data, dict) else {}


def _record(root: Path, dest: Path, entry: dict[str, str | None]) -> None:
    data = _recorded(root)
    data[str(dest)] = entry
    path = root / _RECORD
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(json.dumps(data, indent=2, sort_keys=True) + "\n")
    os.replace(tmp, path)
