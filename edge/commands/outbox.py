"""`edgescreen edge outbox-salvage FILE`: replace a damaged outbox with what can still be read of it."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from edgescreen.cli import Groups


def register(groups: Groups) -> None:
    edge = groups.group("edge")
    p = edge.add_parser(
        "outbox-salvage",
        help="replace a damaged outbox with every queued score that can still be read (device stopped)",
        description="Moves the damaged file aside (FILE.damaged-<time>) and writes a fresh outbox at FILE with the "
        "readable messages in order and the sequence mark, so no sequence number is reused.",
    )
    p.add_argument("file", type=Path, help="the outbox file (outbox.path of the profile)")
    p.set_defaults(func=_salvage)


def _salvage(args: argparse.Namespace) -> int:
    from edge.outbox import salvage

    report = salvage(args.file)
    print(
        f"{args.file}: {report.kept} queued message(s) kept, {report.unreadable} unreadable; sequence continues "
        f"from {report.seq}; the damaged file is {report.damaged}"
    )
    return 0
