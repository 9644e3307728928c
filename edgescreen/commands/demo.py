from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from edgescreen.cli import Groups


def register(groups: Groups) -> None:
    pass
