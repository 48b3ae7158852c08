"""Issuing tokens: authenticate, scope the request down to what the policy allows, sign."""

from __future__ import annotations

import time
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import jwt

from portside.auth.access import ALL, REPOSITORY_ACTIONS, Scope
from portside.auth.htpasswd import Htpasswd
from portside.auth.keys import SigningKey
from portside.auth.policy import Policy
from portside.auth.watched import WatchedFile

REFRESH_AUDIENCE_SUFFIX = "#refresh"


class InvalidGrant(Exception):
    """Credentials or a refresh token that do not authenticate anyone."""


@dataclass(frozen=True)
class IssuedToken:
    token: str
    issued_at: float
    expires_in: int
    granted: list[Scope]


class TokenIssuer:
    def __init__(
        self,
        key: SigningKey,
        issuer: str,
        service: str,
        users: Htpasswd,
        policy: WatchedFile[Policy] | None,
        expiration: float = 300.0,
        refresh_expiration: float = 30 * 24 * 3600.0,
    ) -> None:
        self.key = key
        self.issuer = issuer
        self.service = service
        self.users = users
        self._policy = policy
        self.expiration = int(expiration)
        self.refresh_expiration = int(refresh_expiration)

    def scope_down(self, user: str | None, requested: Sequence[Scope]) -> list[Scope]:
        """Each requested scope with only the actions the policy gives `user`; scopes left with none drop."""
        policy = self._policy.current() if self._policy is not None else None
        granted: list[Scope] = []
        for scope in requested:
            allowed = policy.allowed(user, scope.resource) if policy is not None else frozenset()
            if ALL in allowed:
                actions = tuple(scope.actions)
            else:
                wanted = REPOSITORY_ACTIONS if ALL in scope.actions else scope.actions
                actions = tuple(a for a in wanted if a in allowed)
            if actions:
                granted.append(Scope(scope.resource, actions))
        return granted

    async def authenticate(self, user: str, password: str) -> str:
        if not await self.users.verify(user, password):
            raise InvalidGrant("invalid username or password")
        return user

    def _sign(self, claims: dict[str, Any]) -> str:
        return jwt.encode(claims, self.key.private_key, algorithm=self.key.algorithm, headers=self.key.jwt_headers())

    def access_token(self, user: str | None, requested: Sequence[Scope]) -> IssuedToken:
        now = time.time()
        granted = self.scope_down(user, requested)
        claims = {
            "iss": self.issuer,
            "sub": user or "",
            "aud": self.service,
            "exp": int(now) + self.expiration,
            "nbf": int(now) - 1,
            "iat": int(now),
            "jti": uuid.uuid4().hex,
            "access": [scope.to_claim() for scope in granted],
        }
        return IssuedToken(self._sign(claims), now, self.expiration, granted)

    def refresh_token(self, user: str) -> str:
        now = int(time.time())
        claims = {
            "iss": self.issuer,
            "sub": user,
            "aud": self.service + REFRESH_AUDIENCE_SUFFIX,
            "exp": now + self.refresh_expiration,
            "iat": now,
            "jti": uuid.uuid4().hex,
        }
        return self._sign(claims)

    def user_of_refresh_token(self, token: str) -> str:
        """The user a refresh token was issued to, while that user still exists."""
        try:
            claims = jwt.decode(
                token,
                self.key.certificate.public_key(),  # type: ignore[arg-type]
                algorithms=[self.key.algorithm],
                audience=self.service + REFRESH_AUDIENCE_SUFFIX,
                issuer=self.issuer,
                options={"require": ["exp", "sub", "aud", "iss"]},
            )
        except jwt.InvalidTokenError:
            raise InvalidGrant("invalid refresh token") from None
        user = str(claims["sub"])
        if not self.users.exists(user):
            raise InvalidGrant("invalid refresh token")
        return user
