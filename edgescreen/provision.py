"""Site PKI: a CA per site, certificates for devices, collectors and the broker, a CRL, and the broker ACL.

Layout under the PKI folder (keep it on the admin host, mode 0700):

    <site>/ca.key, ca.crt, crl.pem, site-secret, registry.json
    <site>/issued/<identity>/{cert.pem,key.pem,ca.crt[,site-secret]}   one credentials bundle each
    acl                                                                 Mosquitto acl_file, generated

A device's certificate CN is `<site>.<device>` (site and device ids cannot contain dots), which the
broker takes as the username (`use_identity_as_username`) and as the client id (`use_username_as_clientid`),
and the ACL restricts to the device's own topics. Sites and devices are topic levels, so they cannot be
named after a level the system uses (`contract.wire.RESERVED_NAMES`: `alerts`, `receipts`, the message kinds...).
The ACL is regenerated from every site's registry, so it always matches what was issued.
"""

from __future__ import annotations

import datetime as dt
import ipaddress
import json
import logging
import os
import secrets
import tarfile
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from contract.errors import EdgeScreenError
from contract.receipts import RECEIPTS_KIND
from contract.wire import RESERVED_NAMES, TOPIC_ROOT, check_not_reserved, device_kinds

log = logging.getLogger(__name__)

IdentityKind = Literal["device", "collector", "broker"]
# A CRL is signed for CRL_DAYS; the broker refuses every client once it has expired. The nightly
# `edgescreen maintenance --pki` re-signs it when less than CRL_RENEW_FRACTION of its validity is left, and
# `provision` warns from then on (the renewal is not running where the PKI lives).
CRL_DAYS = 30
CRL_RENEW_FRACTION = 0.5
_ID_CHARS = set("abcdefghijklmnopqrstuvwxyz0123456789_-")


class ProvisionError(EdgeScreenError, RuntimeError):
    """A provisioning step that cannot be done (bad id, missing CA, unknown identity)."""


@dataclass(frozen=True)
class Issued:
    identity: str
    kind: IdentityKind
    bundle_dir: Path
    serial: int


def _check_id(value: str, what: str) -> str:
    if not value or len(value) > 63 or not set(value) <= _ID_CHARS or value[0] in "_-":
        raise ProvisionError(f"{what} {value!r} must be 1-63 characters of a-z, 0-9, '_' or '-'")
    return value


def _check_topic_level(value: str, what: str) -> str:
    """A site or device id: also one level of the topic tree, so never a level the system uses itself."""
    _check_id(value, what)
    try:
        return check_not_reserved(value)
    except ValueError as exc:
        raise ProvisionError(f"{what} {exc}") from exc


def _now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


def _write_private(path: Path, data: bytes) -> None:
    """Write a secret with mode 0600 from the first byte (no window where it is world-readable)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(path.suffix + ".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as f:
        f.write(data)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)


def _write_public(path: Path, data: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(path.suffix + ".tmp")
    tmp.write_bytes(data)
    os.replace(tmp, path)


def _pem_key(key: ec.EllipticCurvePrivateKey) -> bytes:
    return key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )


class SitePKI:
    """The CA and registry of one site."""

    def __init__(self, root: Path, site: str) -> None:
        self.root = root
        self.site = _check_id(site, "site")
        self.dir = root / site

    # --- CA -------------------------------------------------------------------------------------
    def create_ca(self, days: int = 3650) -> Path:
        _check_topic_level(self.site, "site")
        if (self.dir / "ca.key").exists():
            raise ProvisionError(f"site {self.site!r} already has a CA in {self.dir}")
        key = ec.generate_private_key(ec.SECP256R1())
        name = x509.Name(
            [
                x509.NameAttribute(NameOID.ORGANIZATION_NAME, "EdgeScreen"),
                x509.NameAttribute(NameOID.COMMON_NAME, f"EdgeScreen site CA {self.site}"),
            ]
        )
        now = _now()
        cert = (
            x509.CertificateBuilder()
            .subject_name(name)
            .issuer_name(name)
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - dt.timedelta(minutes=5))
            .not_valid_after(now + dt.timedelta(days=days))
            .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
            .add_extension(x509.KeyUsage(False, False, False, False, False, True, True, False, False), critical=True)
            .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
            .sign(key, hashes.SHA256())
        )
        self.dir.mkdir(parents=True, exist_ok=True)
        os.chmod(self.dir, 0o700)
        _write_private(self.dir / "ca.key", _pem_key(key))
        _write_public(self.dir / "ca.crt", cert.public_bytes(serialization.Encoding.PEM))
        _write_private(self.dir / "site-secret", secrets.token_hex(32).encode() + b"\n")
        self._save_registry({"issued": {}, "revoked": []})
        self.write_crl()
        log.info("created CA for site %s in %s", self.site, self.dir)
        return self.dir / "ca.crt"

    def _ca(self) -> tuple[ec.EllipticCurvePrivateKey, x509.Certificate]:
        try:
            key = serialization.load_pem_private_key((self.dir / "ca.key").read_bytes(), password=None)
            cert = x509.load_pem_x509_certificate((self.dir / "ca.crt").read_bytes())
        except FileNotFoundError as exc:
            raise ProvisionError(
                f"site {self.site!r} has no CA in {self.dir}: run `edgescreen provision ca --site {self.site}` first"
            ) from exc
        if not isinstance(key, ec.EllipticCurvePrivateKey):
            raise ProvisionError(f"{self.dir / 'ca.key'} is not an EC private key")
        return key, cert

    # --- registry -------------------------------------------------------------------------------
    def registry(self) -> dict[str, object]:
        path = self.dir / "registry.json"
        try:
            data: dict[str, object] = json.loads(path.read_text())
        except FileNotFoundError as exc:
            raise ProvisionError(f"no registry for site {self.site!r} at {path}") from exc
        except json.JSONDecodeError as exc:
            raise ProvisionError(f"{path} is corrupt: {exc}") from exc
        return data

    def _save_registry(self, data: dict[str, object]) -> None:
        _write_public(self.dir / "registry.json", json.dumps(data, indent=2, sort_keys=True).encode())

    # --- leaf certificates ------------------------------------------------------------------------
    def issue(
        self,
        kind: IdentityKind,
        name: str,
        days: int = 825,
        hosts: tuple[str, ...] = (),
        not_before: dt.datetime | None = None,
    ) -> Issued:
        """Issue a certificate and write its credentials bundle.

        `not_before`/`days` can describe an already-expired certificate (used to test refusal).
        """
        _check_topic_level(self.site, "site")
        if kind == "device":
            _check_topic_level(name, kind)
        else:
            _check_id(name, kind)
        ca_key, ca_cert = self._ca()
        identity = self.identity(kind, name)
        key = ec.generate_private_key(ec.SECP256R1())
        start = not_before or (_now() - dt.timedelta(minutes=5))
        serial = x509.random_serial_number()
        usage = ExtendedKeyUsageOID.SERVER_AUTH if kind == "broker" else ExtendedKeyUsageOID.CLIENT_AUTH
        builder = (
            x509.CertificateBuilder()
            .subject_name(
                x509.Name(
                    [
                        x509.NameAttribute(NameOID.ORGANIZATION_NAME, "EdgeScreen"),
                        x509.NameAttribute(NameOID.ORGANIZATIONAL_UNIT_NAME, self.site),
                        x509.NameAttribute(NameOID.COMMON_NAME, identity),
                    ]
                )
            )
            .issuer_name(ca_cert.subject)
            .public_key(key.public_key())
            .serial_number(serial)
            .not_valid_before(start)
            .not_valid_after(start + dt.timedelta(days=days))
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .add_extension(x509.ExtendedKeyUsage([usage]), critical=False)
            .add_extension(
                x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_cert.public_key()),  # type: ignore[arg-type]
                critical=False,
            )
        )
        if kind == "broker":
            names: list[x509.GeneralName] = []
            for host in hosts or ("localhost", "127.0.0.1"):
                try:
                    names.append(x509.IPAddress(ipaddress.ip_address(host)))
                except ValueError:
                    names.append(x509.DNSName(host))
            builder = builder.add_extension(x509.SubjectAlternativeName(names), critical=False)
        cert = builder.sign(ca_key, hashes.SHA256())
        bundle = self.dir / "issued" / identity
        _write_private(bundle / "key.pem", _pem_key(key))
        _write_public(bundle / "cert.pem", cert.public_bytes(serialization.Encoding.PEM))
        _write_public(bundle / "ca.crt", (self.dir / "ca.crt").read_bytes())
        if kind == "device":
            # The HMAC secret for subject codes; only booths use it, every device of the site gets it.
            _write_private(bundle / "site-secret", (self.dir / "site-secret").read_bytes())
        registry = self.registry()
        issued = registry.setdefault("issued", {})
        assert isinstance(issued, dict)
        issued[identity] = {
            "kind": kind,
            "name": name,
            "serial": serial,
            "not_after": cert.not_valid_after_utc.isoformat(),
        }
        self._save_registry(registry)
        log.info("issued %s certificate %s (serial %x)", kind, identity, serial)
        self.warn_if_crl_due()
        return Issued(identity=identity, kind=kind, bundle_dir=bundle, serial=serial)

    def identity(self, kind: IdentityKind, name: str) -> str:
        if kind == "device":
            return f"{self.site}.{name}"
        return f"{kind}.{self.site}.{name}"

    def pack(self, issued: Issued, out: Path) -> Path:
        """Write the credentials bundle as a tar.gz with private members (mode 0600)."""
        out.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(out, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "wb") as raw, tarfile.open(fileobj=raw, mode="w:gz") as tar:
            for path in sorted(issued.bundle_dir.iterdir()):
                info = tar.gettarinfo(str(path), arcname=f"{issued.identity}/{path.name}")
                info.uid = info.gid = 0
                info.uname = info.gname = ""
                info.mode = 0o600
                with path.open("rb") as f:
                    tar.addfile(info, f)
        return out

    # --- revocation -----------------------------------------------------------------------------
    def revoke(self, kind: IdentityKind, name: str) -> int:
        identity = self.identity(kind, name)
        registry = self.registry()
        issued = registry.get("issued", {})
        assert isinstance(issued, dict)
        if identity not in issued:
            raise ProvisionError(f"{identity!r} was never issued by site {self.site!r}")
        serial = int(issued[identity]["serial"])
        revoked = registry.setdefault("revoked", [])
        assert isinstance(revoked, list)
        if serial not in revoked:
            revoked.append(serial)
        del issued[identity]
        self._save_registry(registry)
        self.write_crl()
        log.info("revoked %s (serial %x)", identity, serial)
        return serial

    def write_crl(self, days: int = CRL_DAYS) -> Path:
        ca_key, ca_cert = self._ca()
        registry = self.registry()
        now = _now()
        builder = (
            x509.CertificateRevocationListBuilder()
            .issuer_name(ca_cert.subject)
            .last_update(now - dt.timedelta(minutes=5))
            .next_update(now + dt.timedelta(days=days))
        )
        revoked = registry.get("revoked", [])
        assert isinstance(revoked, list)
        for serial in revoked:
            builder = builder.add_revoked_certificate(
                x509.RevokedCertificateBuilder().serial_number(int(serial)).revocation_date(now).build()
            )
        crl = builder.sign(ca_key, hashes.SHA256())
        path = self.dir / "crl.pem"
        _write_public(path, crl.public_bytes(serialization.Encoding.PEM))
        return path

    def crl_dates(self) -> tuple[dt.datetime, dt.datetime]:
        """The site CRL's last and next update (UTC)."""
        path = self.dir / "crl.pem"
        try:
            crl = x509.load_pem_x509_crl(path.read_bytes())
        except (OSError, ValueError) as exc:
            raise ProvisionError(f"{path}: cannot read the CRL: {exc}") from exc
        if crl.next_update_utc is None:
            raise ProvisionError(f"{path}: the CRL has no next update")
        return crl.last_update_utc, crl.next_update_utc

    def crl_due(self, now: dt.datetime | None = None) -> bool:
        """True once less than CRL_RENEW_FRACTION of the CRL's validity is left (or it has expired)."""
        last, next_ = self.crl_dates()
        return next_ - (now or _now()) < (next_ - last) * CRL_RENEW_FRACTION

    def warn_if_crl_due(self) -> None:
        """One warning line when the CRL is due for renewal: once it expires the broker refuses every client."""
        try:
            if not self.crl_due():
                return
            _, next_ = self.crl_dates()
        except ProvisionError as exc:
            log.warning("site %s: %s", self.site, exc)
            return
        left = next_ - _now()
        if left <= dt.timedelta(0):
            state = f"expired on {next_:%Y-%m-%d %H:%M} UTC: the broker refuses every client"
        else:
            state = f"expires on {next_:%Y-%m-%d %H:%M} UTC (in {left.days} days), then the broker refuses every client"
        log.warning(
            "site %s: the CRL %s; renew it with `edgescreen maintenance --pki %s` "
            "(edgescreen-maintenance.timer does it nightly on the host that holds the PKI)",
            self.site,
            state,
            self.root,
        )


def sites(root: Path) -> list[SitePKI]:
    return [SitePKI(root, d.name) for d in sorted(root.iterdir()) if (d / "registry.json").exists()]


def render_acl(root: Path) -> str:
    """The Mosquitto ACL for every identity issued under `root`.

    Devices: write only their own `edgescreen/v1/<site>/<device>/<kind>`, one topic per message kind (so a
    device holds at most one retained message per kind in the broker), read only their own receipts topic.
    Collectors: read `edgescreen/v1/#`, write alerts and receipts only. Brokers: nothing (they are servers).
    A device issued under a reserved name (before names were reserved) gets nothing: its topics would be
    the system's, such as the site's alerts.
    """
    lines = ["# Generated by `edgescreen provision`; do not edit by hand.", ""]
    for pki in sites(root):
        issued = pki.registry().get("issued", {})
        assert isinstance(issued, dict)
        for identity, entry in sorted(issued.items()):
            kind = entry["kind"]
            if kind == "device" and RESERVED_NAMES & {pki.site, entry["name"]}:
                log.warning("%s has a reserved name: no ACL entry; revoke it and issue it under another", identity)
            elif kind == "device":
                own = f"{TOPIC_ROOT}/{pki.site}/{entry['name']}"
                writes = [f"topic write {own}/{k}" for k in device_kinds()]
                lines += [f"user {identity}", *writes, f"topic read {own}/{RECEIPTS_KIND}", ""]
            elif kind == "collector":
                lines += [
                    f"user {identity}",
                    f"topic read {TOPIC_ROOT}/#",
                    f"topic write {TOPIC_ROOT}/+/alerts",
                    f"topic write {TOPIC_ROOT}/+/+/{RECEIPTS_KIND}",
                    "",
                ]
    return "\n".join(lines)


def write_acl(root: Path) -> Path:
    path = root / "acl"
    _write_public(path, render_acl(root).encode())
    return path
