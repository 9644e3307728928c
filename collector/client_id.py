"""The collector's MQTT client id: its certificate's identity, or an unguessable id kept across restarts.

With `--tls-cert` the client id is the certificate's identity (its CN), which the shipped broker enforces
anyway (`use_username_as_clientid`): no other certificate can take over the collector's persistent
session. Several collectors, or `--workers`, therefore need one certificate each: two connections with
one certificate replace each other on the broker, over and over.

Without a certificate (plain development set-ups, brokers with passwords) the default is random, so that
nobody can guess it and take the session over, and kept in the state folder, so that the broker keeps
queueing for the same session across restarts. One id per database and share group: two collectors on
one host that feed different databases do not share a session.
"""

from __future__ import annotations

import hashlib
import logging
import os
import secrets
import socket
from pathlib import Path

from collector.mqtt_url import TlsFiles
from contract.tls_identity import CertificateIdentityError, certificate_identity

log = logging.getLogger(__name__)


def collector_client_id(
    given: str | None, tls: TlsFiles, db_url: str, share: str | None, *, workers: int = 1, state_dir: Path | None = None
) -> str:
    """The client id for `collector run`; raises ValueError naming the option that is wrong."""
    if tls.cert is None:
        return given or _kept_random_id(state_dir or default_state_dir(), db_url, share)
    try:
        identity = certificate_identity(tls.cert)
    except CertificateIdentityError as exc:
        raise ValueError(f"--tls-cert {exc}") from exc
    if given is not None and given != identity:
        raise ValueError(
            f"--client-id {given!r}: with --tls-cert the client id is the certificate's identity {identity!r}; "
            "drop --client-id"
        )
    if workers > 1:
        raise ValueError(
            f"--workers {workers} with --tls-cert: the broker gives every connection of certificate {identity!r} "
            "the same client id, so the ingest processes would disconnect each other; run one collector per "
            "certificate (`edgescreen provision collector`) with the same --share group instead"
        )
    return identity


def default_state_dir() -> Path:
    """systemd's StateDirectory= ($STATE_DIRECTORY), else $XDG_STATE_HOME/edgescreen or ~/.local/state/edgescreen."""
    state = os.environ.get("STATE_DIRECTORY")
    if state:
        return Path(state.split(":")[0])
    xdg = os.environ.get("XDG_STATE_HOME")
    return (Path(xdg) if xdg else Path.home() / ".local" / "state") / "edgescreen"


def _kept_random_id(state_dir: Path, db_url: str, share: str | None) -> str:
    key = hashlib.sha256(f"{db_url}\n{share or ''}".encode()).hexdigest()[:16]
    path = state_dir / f"collector-{key}.client-id"
    try:
        kept = path.read_text().strip()
    except FileNotFoundError:
        kept = ""
    except OSError as exc:
        raise _cannot_keep(path, exc) from exc
    if kept:
        return kept
    new = f"edgescreen-collector-{socket.gethostname()}-{secrets.token_hex(8)}"
    tmp = state_dir / f".{path.name}.{os.getpid()}.{secrets.token_hex(4)}"
    try:
        state_dir.mkdir(parents=True, exist_ok=True)
        with os.fdopen(os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600), "w") as f:
            f.write(new + "\n")  # private: the id is only as safe as it is unknown
        os.link(tmp, path)  # appears with its content or not at all
    except FileExistsError:
        return path.read_text().strip()  # another collector wrote it first: the same session
    except OSError as exc:
        raise _cannot_keep(path, exc) from exc
    finally:
        tmp.unlink(missing_ok=True)
    log.info("new client id %s, kept in %s", new, path)
    return new


def _cannot_keep(path: Path, exc: OSError) -> ValueError:
    return ValueError(
        f"cannot keep the collector's client id in {path} ({exc.strerror or exc}): give --client-id, or a state "
        "folder it can write ($STATE_DIRECTORY)"
    )
