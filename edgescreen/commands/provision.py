"""`edgescreen provision ca | device | collector | broker | broker-files | revoke`: the site PKI, the broker ACL
and the copies of both that the broker reads."""

from __future__ import annotations

import argparse
import os
from pathlib import Path
from typing import TYPE_CHECKING

from contract.errors import EdgeScreenError

if TYPE_CHECKING:
    from edgescreen.cli import Groups

PKI_ENV = "EDGESCREEN_PKI_DIR"


def _pki_dir(args: argparse.Namespace) -> Path:
    if args.pki:
        return Path(args.pki)
    return Path(os.environ.get(PKI_ENV, "/etc/edgescreen/pki"))


def register(groups: Groups) -> None:
    sub = groups.group("provision")

    def add(name: str, help_text: str) -> argparse.ArgumentParser:
        p = sub.add_parser(name, help=help_text, description=help_text)
        p.add_argument("--pki", help=f"PKI folder (default ${PKI_ENV} or /etc/edgescreen/pki)")
        p.add_argument("--site", required=True, help="site id (a-z, 0-9, _ and -)")
        return p

    p = add("ca", "create a site CA, its CRL and the site's HMAC secret for subject codes")
    p.add_argument("--days", type=int, default=3650, help="CA validity in days")
    p.set_defaults(func=_ca)

    for kind, help_text in (
        ("device", "issue a device certificate, write its credentials bundle and its ACL entry"),
        ("collector", "issue a collector certificate (reads all scores, writes alerts)"),
        ("broker", "issue the broker's server certificate"),
    ):
        p = add(kind, help_text)
        p.add_argument("name", metavar=kind.upper(), help=f"{kind} id")
        p.add_argument("--days", type=int, default=825, help="certificate validity in days")
        p.add_argument("--bundle", help="also write the credentials bundle as this .tar.gz")
        if kind == "broker":
            p.add_argument("--host", action="append", default=[], help="DNS name or IP of the broker (repeat)")
        p.set_defaults(func=_issue, kind=kind)

    p = add("broker-files", "copy what the broker reads (CA, its certificate and key, CRL, ACL) where it can read it")
    p.add_argument("name", metavar="BROKER", help="broker id (as given to `provision broker`)")
    p.add_argument("--dest", default="/etc/mosquitto/edgescreen", help="folder (default /etc/mosquitto/edgescreen)")
    p.add_argument("--group", default="mosquitto", help="group that may read the files (default mosquitto)")
    p.set_defaults(func=_broker_files)

    p = add("revoke", "revoke a certificate: add it to the CRL the broker reads and drop its ACL entry")
    p.add_argument("name", help="device id (or collector/broker name with --kind)")
    p.add_argument("--kind", choices=("device", "collector", "broker"), default="device")
    p.set_defaults(func=_revoke)


def _ca(args: argparse.Namespace) -> int:
    from edgescreen.provision import ProvisionError, SitePKI, write_acl

    root = _pki_dir(args)
    try:
        cert = SitePKI(root, args.site).create_ca(days=args.days)
        write_acl(root)
    except ProvisionError as exc:
        raise EdgeScreenError(str(exc)) from exc
    print(f"site CA: {cert}")
    return 0


def _issue(args: argparse.Namespace) -> int:
    from edgescreen.provision import ProvisionError, SitePKI, write_acl

    root = _pki_dir(args)
    try:
        pki = SitePKI(root, args.site)
        issued = pki.issue(args.kind, args.name, days=args.days, hosts=tuple(getattr(args, "host", []) or ()))
        acl = write_acl(root)
        if args.bundle:
            pki.pack(issued, Path(args.bundle))
    except ProvisionError as exc:
        raise EdgeScreenError(str(exc)) from exc
    print(f"{issued.kind} {issued.identity}: credentials in {issued.bundle_dir}; ACL updated: {acl}")
    return _refresh(root)


def _broker_files(args: argparse.Namespace) -> int:
    from edgescreen.broker_files import install_broker_files
    from edgescreen.provision import ProvisionError

    try:
        dest = install_broker_files(_pki_dir(args), args.site, args.name, Path(args.dest), args.group)
    except ProvisionError as exc:
        raise EdgeScreenError(str(exc)) from exc
    print(f"broker files in {dest} (reload the broker: systemctl reload mosquitto)")
    return 0


def _refresh(root: Path) -> int:
    """Bring the broker's copies of the CRL and ACL up to date after they changed."""
    from edgescreen.broker_files import refresh_broker_files
    from edgescreen.provision import ProvisionError

    try:
        for dest in refresh_broker_files(root):
            print(f"broker files updated in {dest} (reload the broker: systemctl reload mosquitto)")
    except ProvisionError as exc:
        raise EdgeScreenError(f"the PKI changed but the broker's copies did not: {exc}") from exc
    return 0


def _revoke(args: argparse.Namespace) -> int:
    from edgescreen.provision import ProvisionError, SitePKI, write_acl

    root = _pki_dir(args)
    try:
        pki = SitePKI(root, args.site)
        serial = pki.revoke(args.kind, args.name)
        write_acl(root)
    except ProvisionError as exc:
        raise EdgeScreenError(str(exc)) from exc
    print(f"revoked serial {serial:x}; CRL: {pki.dir / 'crl.pem'} (reload the broker: systemctl reload mosquitto)")
    return _refresh(root)
