"""Commands of the collector part."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from edgescreen.cli import Groups


def register(groups: Groups) -> None:
    """Add this part's commands."""
    from collector.cli_commands import add_commands

    add_commands(groups.group("collector", "central collector: store scores once, raise alerts, serve the dashboard"))
