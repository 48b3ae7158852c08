"""Users from an htpasswd file (bcrypt entries only), and the `htpasswd` access controller."""

from __future__ import annotations

import asyncio
import base64
import binascii
import hashlib
import hmac
import logging
import os
from collections import OrderedDict
from collections.abc import Sequence
from pathlib import Path

import bcrypt

from portside.auth.access import Access, details
from portside.auth.controller import AccessController, AllowAll, AuthRequest, Challenge, Grant
from portside.auth.policy import Policy
from portside.auth.watched import WatchedFile

log = logging.getLogger("portside.auth")

_BCRYPT_PREFIXES = (b"$2a$", b"$2b$", b"$2y$")
# Compared against when the user is unknown, so that an unknown name costs as much as a wrong password.
_DUMMY_HASH = bcrypt.hashpw(b"portside-unknown-user", bcrypt.gensalt(rounds=10))


class HtpasswdError(ValueError):
    pass


def parse_htpasswd(path: str) -> dict[str, bytes]:
    try:
        lines = Path(path).read_bytes().splitlines()
    except OSError as exc:
        raise HtpasswdError(f"cannot read htpasswd file {path}: {exc.strerror}") from None
    users: dict[str, bytes] = {}
    for number, raw in enumerate(lines, 1):
        line = raw.strip()
        if not line or line.startswith(b"#"):
            continue
        user, sep, hashed = line.partition(b":")
        if not sep or not user:
            log.warning("%s:%d: not a user:hash line, ignored", path, number)
            continue
        if not hashed.startswith(_BCRYPT_PREFIXES):
            log.warning("%s:%d: %s does not have a bcrypt hash, ignored", path, number, user.decode(errors="replace"))
            continue
        users[user.decode(errors="replace")] = hashed
    return users


def basic_credentials(authorization: str | None) -> tuple[str, str] | None:
    """(user, password) from `Authorization: Basic ...`, or None."""
    if not authorization:
        return None
    scheme, _, value = authorization.partition(" ")
    if scheme.lower() != "basic":
        return None
    try:
        decoded = base64.b64decode(value.strip(), validate=True).decode("utf-8")
    except (binascii.Error, UnicodeDecodeError):
        return None
    user, sep, password = decoded.partition(":")
    return (user, password) if sep else None


class Htpasswd:
    """Checks passwords against the file (re-read when it changes). bcrypt is slow on purpose, so checks run
    on a thread, and a successful check is remembered (keyed by an HMAC, never the password) until the file
    changes or a few minutes pass."""

    def __init__(self, path: str, cache_size: int = 1024, cache_seconds: float = 300.0) -> None:
        self._file = WatchedFile(path, parse_htpasswd)
        self._key = os.urandom(32)
        self._cache: OrderedDict[bytes, tuple[float, dict[str, bytes]]] = OrderedDict()
        self._cache_size = cache_size
        self._cache_seconds = cache_seconds

    def exists(self, user: str) -> bool:
        return user in self._file.current()

    async def verify(self, user: str, password: str) -> bool:
        users = self._file.current()
        key = hmac.new(self._key, f"{user}\0{password}".encode(), hashlib.sha256).digest()
        loop = asyncio.get_running_loop()
        cached = self._cache.get(key)
        if cached is not None and cached[1] is users and loop.time() - cached[0] < self._cache_seconds:
            return True
        hashed = users.get(user)
        ok = await asyncio.to_thread(bcrypt.checkpw, password.encode(), hashed or _DUMMY_HASH)
        ok = ok and hashed is not None
        if ok:
            self._cache[key] = (loop.time(), users)
            while len(self._cache) > self._cache_size:
                self._cache.popitem(last=False)
        return ok


class PolicyGrant(Grant):
    def __init__(self, user: str | None, policy: Policy) -> None:
        self.user = user
        self._policy = policy

    def allows(self, access: Access) -> bool:
        allowed = self._policy.allowed(self.user, access.resource)
        return access.action in allowed or "*" in allowed


class HtpasswdController(AccessController):
    """HTTP Basic authentication against an htpasswd file; with a policy, authorisation by it (403 DENIED)."""

    def __init__(self, realm: str, path: str, policy: str = "") -> None:
        self.realm = realm
        self.users = Htpasswd(path)
        self._policy = WatchedFile(policy, Policy.load) if policy else None

    def _challenge(self, message: str, needed: Sequence[Access]) -> Challenge:
        return Challenge(401, "UNAUTHORIZED", message, f'Basic realm="{self.realm}"', details(needed))

    def _anonymous(self, needed: Sequence[Access]) -> Grant | None:
        """A grant for a request without credentials, when the policy gives `anonymous` all it needs (`/v2/`
        itself, which needs no access, still asks for credentials, as it does for everyone)."""
        if self._policy is None or not needed:
            return None
        policy = self._policy.current()
        if not policy.has_anonymous_rules:
            return None
        grant = PolicyGrant(None, policy)
        return grant if all(grant.allows(access) for access in needed) else None

    async def authorize(self, request: AuthRequest, needed: Sequence[Access]) -> Grant:
        credentials = basic_credentials(request.authorization)
        if credentials is None:
            grant = self._anonymous(needed)
            if grant is not None:
                return grant
            raise self._challenge("authentication required", needed)
        user, password = credentials
        if not await self.users.verify(user, password):
            log.warning("failed login for %r from %s: invalid username or password", user, request.remote)
            raise self._challenge("invalid username or password", needed)
        if self._policy is None:
            return AllowAll(user)
        grant = PolicyGrant(user, self._policy.current())
        refused = [access for access in needed if not grant.allows(access)]
        if refused:
            raise Challenge(403, "DENIED", "requested access to the resource is denied", detail=details(refused))
        return grant
