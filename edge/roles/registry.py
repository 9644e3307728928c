"""Which analyzer class serves each role, read from the role registry (contract.roles).

Imported lazily so a device loads only its own role's code.
"""

from __future__ import annotations

import importlib
import inspect
from typing import Any

from pydantic import BaseModel

from contract.errors import EdgeScreenError
from contract.roles import ROLE_PACKAGES, UnknownRole, role_spec
from edge.roles.base import EmitContext, RoleAnalyzer


class RoleUnavailable(EdgeScreenError, RuntimeError):
    """The role is known but its analyzer is not part of this build."""


def analyzer_class(role: str) -> type[RoleAnalyzer]:
    if role not in ROLE_PACKAGES:
        raise RoleUnavailable(f"unknown role {role!r}; known: {', '.join(ROLE_PACKAGES)}")
    try:
        target = role_spec(role).analyzer
    except UnknownRole as exc:
        raise RoleUnavailable(str(exc)) from exc
    module_name, _, class_name = target.partition(":")
    try:
        module = importlib.import_module(module_name)
    except ModuleNotFoundError as exc:
        if exc.name != module_name:
            raise
        raise RoleUnavailable(f"role {role!r}: its analyzer ({module_name}) is not in this build") from exc
    cls: Any = getattr(module, class_name, None)
    if not (inspect.isclass(cls) and issubclass(cls, RoleAnalyzer)):
        raise RoleUnavailable(f"role {role!r}: {target} is not a RoleAnalyzer")
    return cls


def create_analyzer(role: str, ctx: EmitContext, config: BaseModel) -> RoleAnalyzer:
    """Instantiate the role's analyzer with the emit context and its profile section."""
    cls = analyzer_class(role)
    analyzer: RoleAnalyzer = cls(ctx, config)  # type: ignore[call-arg]
    return analyzer
