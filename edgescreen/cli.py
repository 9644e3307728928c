"""The `edgescreen` command.

Each part of the system registers its own subcommands (argparse only, no heavy imports) so that
`edgescreen --help` stays fast and the device never imports what only a workstation needs.
"""

from __future__ import annotations

import argparse
import importlib
import logging
import sys
from collections.abc import Callable, Sequence

from contract.errors import EdgeScreenError, one_line

# Modules that expose `register(sub, groups)`. Each handler imports its heavy dependencies lazily.
COMMAND_MODULES = (
    "edge.cli",
    "export.cli",
    "collector.cli",
    "training.cli",
    "edgescreen.ops_cli",
)

Handler = Callable[[argparse.Namespace], int]


class Groups:
    """Command groups shared between parts (e.g. `models fetch` from export, `models list` from edge)."""

    def __init__(self, sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
        self._sub = sub
        self._groups: dict[str, argparse._SubParsersAction[argparse.ArgumentParser]] = {}

    @property
    def top(self) -> argparse._SubParsersAction[argparse.ArgumentParser]:
        return self._sub

    def group(self, name: str, help_text: str) -> argparse._SubParsersAction[argparse.ArgumentParser]:
        """Return the subcommand table of group `name`, creating the group on first use."""
        if name not in self._groups:
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
    for module_name in COMMAND_MODULES:
        module = importlib.import_module(module_name)
        module.register(groups)
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
