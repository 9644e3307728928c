"""`models install | rollback | bundles`: signed model bundles on the device."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import TYPE_CHECKING

from contract.errors import EdgeScreenError
from contract.roles import role_names

if TYPE_CHECKING:
    from edgescreen.cli import Groups


def register(groups: Groups) -> None:
    models = groups.group("models")

    p = models.add_parser("install", help="verify a signed model bundle and install it atomically")
    p.add_argument("bundle", type=Path, help="bundle archive made by `edgescreen export bundle`")
    p.add_argument("--public-key", type=Path, required=True, help="the site's Ed25519 public key (PEM)")
    p.add_argument("--dir", type=Path, default=None, help="bundle store (default: <model dir>/bundles)")
    p.set_defaults(func=_install)

    p = models.add_parser("rollback", help="make the previously installed bundle of a role current again")
    p.add_argument("role", choices=role_names(), help="device role")
    p.add_argument("--dir", type=Path, default=None, help="bundle store (default: <model dir>/bundles)")
    p.set_defaults(func=_rollback)

    p = models.add_parser("bundles", help="show the installed bundles (current and previous) per role")
    p.add_argument("--dir", type=Path, default=None, help="bundle store (default: <model dir>/bundles)")
    p.set_defaults(func=_show)


def _install(args: argparse.Namespace) -> int:
    from edge.bundles import BundleError, install_bundle, load_public_key

    try:
        result = install_bundle(args.bundle, load_public_key(args.public_key), args.dir)
    except BundleError as exc:
        raise EdgeScreenError(str(exc)) from exc
    print(f"installed {result.role} bundle ({len(result.manifest.models)} models) at {result.release}")
    for model in result.manifest.models:
        print(f"  {model.name:32s} {model.precision:5s} {model.sha256[:16]}")
    return 0


def _rollback(args: argparse.Namespace) -> int:
    from edge.bundles import BundleError, rollback

    try:
        result = rollback(args.role, args.dir)
    except BundleError as exc:
        raise EdgeScreenError(str(exc)) from exc
    print(f"{result.role}: current bundle is now {result.release.name}")
    return 0


def _show(args: argparse.Namespace) -> int:
    from edge.bundles import BundleError, Which, installed

    for role in role_names():
        which: Which
        for which in ("current", "previous"):
            try:
                bundle = installed(role, args.dir, which)
            except BundleError:
                continue
            names = ", ".join(f"{m.name}({m.precision})" for m in bundle.manifest.models)
            print(f"{role:9s} {which:9s} {bundle.release.name}  {names}")
    return 0
