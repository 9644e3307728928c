"""Broker URLs: mqtt://[user:pass@]host[:1883] and mqtts://…[:8883], and the TLS files for mqtts://.

Without `--tls-ca`, mqtts:// checks the broker against the system CAs; the shipped broker
(firmware_config/mosquitto/edgescreen.conf) has a site CA and requires a client certificate, so a
collector there gives `--tls-ca`, `--tls-cert` and `--tls-key` (the files `edgescreen provision
collector` issues).
"""

from __future__ import annotations

import ssl
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import unquote, urlsplit


@dataclass(frozen=True)
class BrokerAddress:
    host: str
    port: int
    tls: bool
    username: str | None
    password: str | None


def parse_broker_url(url: str) -> BrokerAddress:
    parts = urlsplit(url)
    if parts.scheme not in ("mqtt", "mqtts") or not parts.hostname:
        raise ValueError(f"--broker {url!r}: expected mqtt://host[:port] or mqtts://host[:port]")
    tls = parts.scheme == "mqtts"
    try:
        port = parts.port or (8883 if tls else 1883)
    except ValueError as exc:
        raise ValueError(f"--broker {url!r}: bad port") from exc
    return BrokerAddress(
        host=parts.hostname,
        port=port,
        tls=tls,
        username=unquote(parts.username) if parts.username else None,
        password=unquote(parts.password) if parts.password else None,
    )


@dataclass(frozen=True)
class TlsFiles:
    """CA bundle that signed the broker's certificate and, for mutual TLS, this collector's certificate."""

    ca: Path | None = None
    cert: Path | None = None
    key: Path | None = None

    def __bool__(self) -> bool:
        return any((self.ca, self.cert, self.key))

    def context(self) -> ssl.SSLContext:
        """A client context that verifies the broker; raises ValueError naming the option that is wrong."""
        if (self.cert is None) != (self.key is None):
            raise ValueError("--tls-cert and --tls-key go together: give both for mutual TLS, or neither")
        for option, path in (("--tls-ca", self.ca), ("--tls-cert", self.cert), ("--tls-key", self.key)):
            if path is not None and not path.is_file():
                raise ValueError(f"{option} {path}: no such file")
        try:
            context = ssl.create_default_context(ssl.Purpose.SERVER_AUTH, cafile=str(self.ca) if self.ca else None)
        except (ssl.SSLError, OSError) as exc:
            raise ValueError(f"--tls-ca {self.ca}: not a PEM CA certificate ({exc})") from exc
        if self.cert is not None and self.key is not None:
            try:
                context.load_cert_chain(str(self.cert), str(self.key))
            except (ssl.SSLError, OSError) as exc:
                raise ValueError(
                    f"--tls-cert {self.cert} / --tls-key {self.key}: cannot load the pair ({exc})"
                ) from exc
        return context


def client_tls(address: BrokerAddress, tls: TlsFiles) -> ssl.SSLContext | None:
    """The TLS context for the broker (None for plain mqtt://); raises ValueError naming the option that is wrong."""
    if not address.tls:
        if tls:
            raise ValueError("--tls-ca, --tls-cert and --tls-key need an mqtts:// --broker")
        return None
    return tls.context()
