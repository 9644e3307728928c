"""The identity a client certificate gives its holder on the site broker: the subject's common name (CN).

The shipped broker (firmware_config/mosquitto/edgescreen.conf) takes the CN as the username and as the
client id, whatever client id the client sends. Devices and collectors therefore connect with their CN as
client id, so that their logs, the broker's log and the persistent session all name the same thing.
"""

from __future__ import annotations

from pathlib import Path

from cryptography import x509
from cryptography.x509.oid import NameOID


class CertificateIdentityError(ValueError):
    """A certificate file whose identity cannot be read (unreadable, not PEM, no CN)."""


def certificate_identity(path: Path) -> str:
    """The CN of the PEM certificate at `path`; raises CertificateIdentityError naming the file."""
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise CertificateIdentityError(f"{path}: cannot read the certificate ({exc.strerror or exc})") from exc
    try:
        cert = x509.load_pem_x509_certificate(data)
    except ValueError as exc:
        raise CertificateIdentityError(f"{path}: not a PEM certificate ({exc})") from exc
    names = cert.subject.get_attributes_for_oid(NameOID.COMMON_NAME)
    if not names or not isinstance(names[0].value, str) or not names[0].value:
        raise CertificateIdentityError(f"{path}: the certificate's subject has no common name (CN)")
    return names[0].value
