"""Authentication against another registry: Basic, and Docker's token flow.

A 401 names how to authenticate in `WWW-Authenticate`. For `Bearer realm=...,service=...,scope=...` a token is
fetched from the realm (with the Basic credentials, if any, as the token specification says), kept until it
expires, and sent with every request needing that scope; a 401 with a token in hand means it went stale, and it
is fetched again once.
"""

from __future__ import annotations

import base64
import re
import time
from dataclasses import dataclass
from typing import Any

_PARAM = re.compile(r'(\w+)\s*=\s*(?:"((?:[^"\\]|\\.)*)"|([^,\s]+))')
DEFAULT_TOKEN_SECONDS = 60.0
EARLY = 10.0
"""A token is fetched again this long before it expires, so none is used as it lapses."""


@dataclass(frozen=True)
class Challenge:
    scheme: str
    params: dict[str, str]

    @property
    def realm(self) -> str:
        return self.params.get("realm", "")


def parse_challenge(header: str) -> Challenge | None:
    """The first challenge of a `WWW-Authenticate` header (scheme and its parameters)."""
    header = header.strip()
    if not header:
        return None
    scheme, _, rest = header.partition(" ")
    params = {m[1].lower(): (m[2] if m[2] is not None else m[3]).replace('\\"', '"') for m in _PARAM.finditer(rest)}
    return Challenge(scheme.lower(), params)


def basic_header(username: str, password: str) -> str:
    return "Basic " + base64.b64encode(f"{username}:{password}".encode()).decode()


@dataclass
class _Token:
    value: str
    expires: float


class Credentials:
    """What is sent: Basic credentials, and the tokens fetched with them, by (realm, service, scope)."""

    def __init__(self, username: str = "", password: str = "") -> None:
        self.username = username
        self.password = password
        self._tokens: dict[tuple[str, str, str], _Token] = {}
        self._basic = False  # the registry asked for Basic: send it up front from then on

    @property
    def basic(self) -> str | None:
        return basic_header(self.username, self.password) if self.username else None

    def header(self, scope: str, challenge: Challenge | None) -> str | None:
        """The Authorization header for a request needing `scope`, given the last challenge seen."""
        if challenge is not None and challenge.scheme == "bearer":
            token = self._tokens.get(self._key(challenge, scope))
            if token is not None and token.expires > time.monotonic():
                return f"Bearer {token.value}"
            return None
        return self.basic if self._basic else None

    def _key(self, challenge: Challenge, scope: str) -> tuple[str, str, str]:
        return challenge.realm, challenge.params.get("service", ""), scope

    def remember(self, challenge: Challenge, scope: str, answer: dict[str, Any]) -> str:
        """Keep the token a token server answered; returns the header to send with it."""
        value = answer.get("token") or answer.get("access_token")
        if not isinstance(value, str) or not value:
            raise ValueError("the token server answered no token")
        seconds = answer.get("expires_in")
        lifetime = float(seconds) if isinstance(seconds, int | float) and seconds > 0 else DEFAULT_TOKEN_SECONDS
        self._tokens[self._key(challenge, scope)] = _Token(value, time.monotonic() + max(1.0, lifetime - EARLY))
        return f"Bearer {value}"

    def forget(self, challenge: Challenge, scope: str) -> None:
        self._tokens.pop(self._key(challenge, scope), None)

    def use_basic(self) -> str | None:
        self._basic = True
        return self.basic
