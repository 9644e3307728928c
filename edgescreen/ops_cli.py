"""Operations commands: `demo`, `provision ca|device|revoke`."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from edgescreen.cli import Groups


def register(groups: Groups) -> None:
    """Add this part's commands."""
