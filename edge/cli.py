"""Device-side commands. Each module below adds its own subcommands."""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from edgescreen.cli import Groups

_COMMANDS = (
    "edge.commands.models",  # models list
    "edge.commands.bundle",  # models install
    "edge.commands.pose",  # pose IMAGE
    "edge.commands.runtime",  # edge run | check
    "edge.commands.engine",  # engine build
    "edge.commands.outbox",  # edge outbox-salvage
)


def register(groups: Groups) -> None:
    for name in _COMMANDS:
        importlib.import_module(name).register(groups)
