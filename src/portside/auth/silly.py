"""The `silly` access controller, for development: any Authorization header is enough."""

from __future__ import annotations

from collections.abc import Sequence

from portside.auth.access import Access, bearer_challenge, details
from portside.auth.controller import AccessController, AllowAll, AuthRequest, Challenge, Grant


class SillyController(AccessController):
    def __init__(self, realm: str, service: str) -> None:
        self.realm = realm
        self.service = service

    async def authorize(self, request: AuthRequest, needed: Sequence[Access]) -> Grant:
        if not request.authorization:
            header = bearer_challenge(self.realm, self.service, needed)
            raise Challenge(401, "UNAUTHORIZED", "authentication required", header, details(needed))
        return AllowAll()
