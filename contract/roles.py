"""The role registry: the one list of roles. Every role name, profile section, CLI choice, topic kind, wire
message and flattening rule is read from here, so adding a role means adding its package and one line below.

A role package (`edge/roles/<role>/`) exposes `ROLE = RoleSpec(...)` in its `__init__.py` and keeps that
module light (pydantic models and plain functions): the collector reads roles too, without the device
runtime. The analyzer is named by "module:Class" and imported only on the device that runs the role.
"""

from __future__ import annotations

import functools
import importlib
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Annotated, Any

from pydantic import AfterValidator, BaseModel

from contract.errors import UsageError

if TYPE_CHECKING:
    from contract.wire import Envelope

# role name -> its package. The order is the order of CLI choices and docs.
ROLE_PACKAGES: dict[str, str] = {
    "posture": "edge.roles.posture",
    "gait": "edge.roles.gait",
    "headpose": "edge.roles.headpose",
}


@dataclass(frozen=True)
class RoleSpec:
    """What a role brings: its profile section, its wire message, how the collector flattens it, its analyzer."""

    name: str
    description: str  # one line, used for the profile section and the docs
    config: type[BaseModel]  # the profile section `<name>:`
    message: type[Envelope]  # the wire message; its `kind` field is Literal[name]
    flatten: Callable[[Any], dict[str, float]]  # message -> `metric.stat` numbers for trends and alert rules
    analyzer: str  # "module:Class" of its RoleAnalyzer, imported lazily on the device


class UnknownRole(UsageError, ValueError):
    """A role name that is not in the registry."""


def role_names() -> tuple[str, ...]:
    return tuple(ROLE_PACKAGES)


def check_role(name: str) -> str:
    if name not in ROLE_PACKAGES:
        raise UnknownRole(f"unknown role {name!r}; known: {', '.join(ROLE_PACKAGES)}")
    return name


# A role name, checked against the registry when a profile or a message is validated.
RoleName = Annotated[str, AfterValidator(check_role)]


def role_spec(name: str) -> RoleSpec:
    check_role(name)
    return _load(name, ROLE_PACKAGES[name])


def role_specs() -> list[RoleSpec]:
    return [_load(name, package) for name, package in ROLE_PACKAGES.items()]


def spec_for_kind(kind: str) -> RoleSpec | None:
    """The role whose messages have this kind, or None (status, heartbeat)."""
    return role_spec(kind) if kind in ROLE_PACKAGES else None


@functools.cache
def _load(name: str, package: str) -> RoleSpec:
    module = importlib.import_module(package)
    spec = getattr(module, "ROLE", None)
    if not isinstance(spec, RoleSpec) or spec.name != name:
        raise UnknownRole(f"role {name!r}: {package} has no ROLE = RoleSpec(name={name!r}, ...)")
    return spec
