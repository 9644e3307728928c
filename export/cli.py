"""Workstation-side commands of export. Each module below adds its own subcommands."""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from edgescreen.cli import Groups

_COMMANDS = (
    "export.commands.fetch",  # models fetch
    "export.commands.chain",  # export onnx | quantize | fp16 | verify | bundle
)


def register(groups: Groups) -> None:
    for name in _COMMANDS:
        importlib.import_module(name).register(groups)
