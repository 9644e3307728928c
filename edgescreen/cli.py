"""The `edgescreen` command.

Every part registers its commands the same way: its `cli.py` lists its command modules in `COMMANDS`, and
each of those has `register(groups)` adding its subcommands (argparse only, no heavy imports, so that
`edgescreen --help` stays fast and the device never imports what only a workstation needs). Groups that
several modules add to (`models`: list and install from edge, fetch from export) are declared once, in `GROUPS`.
"""

from __future__ import annotations

import argparse
import importlib
import logging
import sys
from collections.abc import Callable, Sequence

from contract.errors import EdgeScreenError, one_line

# Each part's `cli.py`, whose COMMANDS name modules with `register(groups)`. Handlers import heavy dependencies lazily.
PARTS = (
    "edge.cli",
    "export.cli",
    "collector.cli",
    "training.cli",
    "edgescreen.ops_cli",
)

# The command groups, with their help; a command module adds its subcommands with `groups.group(name)`.
GROUPS = {
    "edge": "run the device runtime",
    "engine": "build TensorRT engines on the device",
    "models": "manage the model store",
    "collector": "central collector: store scores once, raise alerts, serve the dashboard",
    "export": "export trained and pretrained models: ONNX, INT8/FP16, parity, bundles",
    "provision": "issue and revoke the certificates of a site (run on the admin host)",
    "codes": "pseudonymous student codes of the gait booths (run at the school, offline)",
}

Handler = Callable[[argparse.Namespace], int]


class Groups:
    """The top-level command table, and the `GROUPS` tables, each created on first use."""

    def __init__(self, sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
        self._sub = sub
        self._groups: dict[str, argparse._SubParsersAction[argparse.ArgumentParser]] = {}

    @property
    def top(self) -> argparse._SubParsersAction[argparse.ArgumentParser]:
        return self._sub

    def group(self, name: str) -> argparse._SubParsersAction[argparse.ArgumentParser]:
        """Return the subcommand table of group `name` (one of `GROUPS`), creating the group on first use."""
        if name not in self._groups:
            help_text = GROUPS[name]
            parser = self._sub.add_parser(name, help=help_text, description=help_text)
            parser.set_defaults(func=_group_help(parser))
            self._groups[name] = parser.add_subparsers(metavar="COMMAND")
        return self._groups[name]


def _group_help(parser: argparse.ArgumentParser) -> Handler:
    def show(_: argparse.Namespace) -> int:
        parser.print_help()
        return 2

    return show


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="edgescreen",
        description="EdgeScreen: on-device musculoskeletal screening that publishes only anonymised scores.",
    )
    parser.add_argument("-v", "--verbose", action="count", default=0, help="debug log output")
    parser.set_defaults(func=None)
    sub = parser.add_subparsers(metavar="COMMAND")
    groups = Groups(sub)
    for part in PARTS:
        for module_name in importlib.import_module(part).COMMANDS:
            importlib.import_module(module_name).register(groups)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    level = logging.DEBUG if args.verbose else logging.INFO
    logging.basicConfig(level=level, format="%(asctime)s %(levelname)s %(name)s: %(message)s", stream=sys.stderr)
    if args.func is None:
        parser.print_help()
        return 2
    try:
        result: int = args.func(args)
    except EdgeScreenError as exc:
        report(exc, verbose=bool(args.verbose))
        return exc.exit_code
    return result


def report(exc: EdgeScreenError, verbose: bool = False) -> None:
    """The one place a failed command is reported: one line on stderr, and with -v the chain of causes."""
    print(f"error: {one_line(exc)}", file=sys.stderr)
    cause = exc.__cause__ or exc.__context__
    while verbose and cause is not None:
        print(f"  cause: {type(cause).__name__}: {one_line(cause)}", file=sys.stderr)
        cause = cause.__cause__ or cause.__context__
