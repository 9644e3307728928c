"""Device-side commands: `pose`, `edge run|check`, `models list|install`."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from edgescreen.cli import Groups


def register(groups: Groups) -> None:
    """Add the device commands (filled in by the perception and runtime modules)."""
