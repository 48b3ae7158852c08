"""The access controller interface: given a request and the access it needs, grant it or challenge.

Modelled on Docker Distribution's `auth.AccessController`. A controller sees only what authentication needs
from a request (`AuthRequest`); the HTTP layer turns a `Challenge` into the 401/403 answer.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from portside.auth.access import Access


@dataclass(frozen=True)
class AuthRequest:
    authorization: str | None
    remote: str
    # This registry's own base URL, for realms that point back at it.
    base_url: str


class Grant(ABC):
    """What an authorised caller may do; consulted again for access beyond the route's (a mount's source)."""

    user: str | None = None

    @abstractmethod
    def allows(self, access: Access) -> bool: ...


class AllowAll(Grant):
    def __init__(self, user: str | None = None) -> None:
        self.user = user

    def allows(self, access: Access) -> bool:
        return True


@dataclass
class Challenge(Exception):
    """A refusal: 401 with `www_authenticate`, or 403 when the caller is known but not allowed."""

    status: int
    code: str
    message: str
    www_authenticate: str | None = None
    detail: Any = None
    headers: dict[str, str] = field(default_factory=dict)


class AccessController(ABC):
    @abstractmethod
    async def authorize(self, request: AuthRequest, needed: Sequence[Access]) -> Grant:
        """The grant for `request`, or raise `Challenge`. An empty `needed` asks for authentication only."""

    async def close(self) -> None:
        return None
