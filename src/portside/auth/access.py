"""Resources, actions and scopes: the vocabulary of Docker's token authentication (`repository:name:pull,push`)."""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any, Final

from portside import reference

REPOSITORY: Final = "repository"
REGISTRY: Final = "registry"
CATALOG: Final = "catalog"
PULL, PUSH, DELETE, ALL = "pull", "push", "delete", "*"
REPOSITORY_ACTIONS: Final = (PULL, PUSH, DELETE)

_SCOPE: Final = re.compile(
    r"^(?P<type>[a-z0-9]+)(?:\((?P<class>[a-z0-9]+)\))?:(?P<name>[^\s]+):(?P<actions>[a-z*,]*)\Z"
)


class ScopeError(ValueError):
    """A scope string that does not follow `type[(class)]:name:action[,action...]`."""


@dataclass(frozen=True)
class Resource:
    type: str
    name: str
    cls: str = ""

    def __str__(self) -> str:
        kind = f"{self.type}({self.cls})" if self.cls else self.type
        return f"{kind}:{self.name}"


@dataclass(frozen=True)
class Access:
    resource: Resource
    action: str

    def to_detail(self) -> dict[str, str]:
        """The shape distribution puts in an UNAUTHORIZED error's detail."""
        return {
            "Type": self.resource.type,
            "Class": self.resource.cls,
            "Name": self.resource.name,
            "Action": self.action,
        }


def repository_access(name: str, *actions: str) -> list[Access]:
    return [Access(Resource(REPOSITORY, name), action) for action in actions]


CATALOG_ACCESS: Final = (Access(Resource(REGISTRY, CATALOG), ALL),)


@dataclass(frozen=True)
class Scope:
    """A resource and the actions asked for (or granted) on it."""

    resource: Resource
    actions: tuple[str, ...]

    def __str__(self) -> str:
        return f"{self.resource}:{','.join(self.actions)}"

    def to_claim(self) -> dict[str, Any]:
        return {"type": self.resource.type, "name": self.resource.name, "actions": list(self.actions)}


def parse_scope(text: str) -> Scope:
    """A scope as Docker's scope grammar writes it; repository names must follow the name grammar."""
    match = _SCOPE.match(text)
    if match is None:
        raise ScopeError(f"malformed scope {text[:200]!r}")
    if match["type"] == REPOSITORY:
        try:
            reference.parse(match["name"])
        except reference.ReferenceError as exc:
            raise ScopeError(f"malformed scope {text[:200]!r}: {exc}") from None
    actions = tuple(dict.fromkeys(a for a in match["actions"].split(",") if a))
    return Scope(Resource(match["type"], match["name"], match["class"] or ""), actions)


def scopes_for(needed: Iterable[Access]) -> list[Scope]:
    """Group accesses by resource, keeping the order they were needed in."""
    grouped: dict[Resource, list[str]] = {}
    for access in needed:
        actions = grouped.setdefault(access.resource, [])
        if access.action not in actions:
            actions.append(access.action)
    return [Scope(resource, tuple(actions)) for resource, actions in grouped.items()]


def details(needed: Sequence[Access]) -> list[dict[str, str]]:
    return [access.to_detail() for access in needed]


def bearer_challenge(realm: str, service: str, needed: Sequence[Access], error: str | None = None) -> str:
    parts = [f'realm="{realm}"', f'service="{service}"']
    scopes = scopes_for(needed)
    if scopes:
        parts.append(f'scope="{" ".join(str(s) for s in scopes)}"')
    if error:
        parts.append(f'error="{error}"')
    return "Bearer " + ",".join(parts)
