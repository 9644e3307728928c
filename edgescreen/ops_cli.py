"""Operations commands: `demo` and `provision`. Each module below adds its own subcommands."""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from edgescreen.cli import Groups

_COMMANDS = (
    "edgescreen.commands.demo",  # demo
    "edgescreen.commands.provision",  # provision ca | device | revoke
    "edgescreen.commands.maintenance",  # maintenance
)


def register(groups: Groups) -> None:
    for name in _COMMANDS:
        importlib.import_module(name).register(groups)
