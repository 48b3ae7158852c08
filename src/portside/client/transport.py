"""The transport to another registry: one aiohttp session, authentication, timeouts and retries.

Requests that are safe to repeat (GET, HEAD, and PUT of a manifest) are tried again after a connection
failure, a timeout, a 429 or a 502/503/504, waiting what `Retry-After` asks (up to `max_wait`) or a growing,
jittered backoff. A request that cannot be answered ends in `UpstreamUnavailable`, whose reason tells a cache
whether serving what it has is the right answer.
"""

from __future__ import annotations

import asyncio
import contextlib
import email.utils
import json
import random
import ssl
import time
from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import aiohttp

from portside.client.auth import Challenge, Credentials, parse_challenge
from portside.client.errors import UpstreamError, UpstreamUnavailable
from portside.registry.errors import BlobUnknown, ManifestUnknown, NameUnknown, RegistryError

if TYPE_CHECKING:
    from portside.client.repository import RemoteRepository

RETRIED_STATUSES = frozenset({429, 502, 503, 504})
SAFE_METHODS = frozenset({"GET", "HEAD"})


@dataclass(frozen=True)
class Timeouts:
    connect: float = 10.0
    read: float = 60.0
    """Longest silence while a response (or a blob's bytes) comes."""
    total: float | None = None
    """Longest a whole request may take; None for none (blobs of any size stream under `read`)."""


def retry_after(value: str | None) -> float | None:
    """Seconds from a `Retry-After` header: a number, or an HTTP date."""
    if not value:
        return None
    value = value.strip()
    if value.isdigit():
        return float(value)
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(0.0, when.timestamp() - time.time())


async def error_for(
    response: aiohttp.ClientResponse, what: str, missing: type[RegistryError] = ManifestUnknown
) -> Exception:
    """The library's error for an error answer (read from its body when it has one). A 404 whose body names
    no code (a HEAD has none) is `missing`: what the request asked for is unknown."""
    code = None
    message = ""
    with contextlib.suppress(Exception):
        body = json.loads(await response.read())
        first = (body.get("errors") or [{}])[0]
        code, message = first.get("code"), first.get("message", "")
    status = response.status
    detail = (
        f"{what}: the registry answered {status}" + (f" {code}" if code else "") + (f": {message}" if message else "")
    )
    if status == 404 or code in ("MANIFEST_UNKNOWN", "BLOB_UNKNOWN", "NAME_UNKNOWN"):
        if code == "NAME_UNKNOWN":
            return NameUnknown(detail)
        if code == "BLOB_UNKNOWN":
            return BlobUnknown(detail)
        if code == "MANIFEST_UNKNOWN":
            return ManifestUnknown(detail)
        return missing(detail)
    if status == 429:
        return UpstreamUnavailable(detail, "throttled", retry_after(response.headers.get("Retry-After")), status)
    if status >= 500:
        return UpstreamUnavailable(detail, "failing", retry_after(response.headers.get("Retry-After")), status)
    return UpstreamError(detail, status, code)


class RegistryClient:
    def __init__(
        self,
        url: str,
        *,
        username: str = "",
        password: str = "",
        verify_tls: bool = True,
        ca_file: str | None = None,
        timeouts: Timeouts | None = None,
        retries: int = 3,
        backoff: float = 0.5,
        max_wait: float = 30.0,
        user_agent: str = "portside",
    ) -> None:
        self.url = url.rstrip("/")
        self.credentials = Credentials(username, password)
        self.timeouts = timeouts or Timeouts()
        self.retries = retries
        self.backoff = backoff
        self.max_wait = max_wait
        self.user_agent = user_agent
        self._verify_tls = verify_tls
        self._ca_file = ca_file
        self._session: aiohttp.ClientSession | None = None
        self._challenge: Challenge | None = None
        self._token_locks: dict[str, asyncio.Lock] = {}

    async def __aenter__(self) -> RegistryClient:
        self.session()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    def session(self) -> aiohttp.ClientSession:
        if self._session is None or self._session.closed:
            tls: ssl.SSLContext | bool = True
            if not self._verify_tls:
                tls = False
            elif self._ca_file:
                tls = ssl.create_default_context(cafile=self._ca_file)
            timeout = aiohttp.ClientTimeout(
                total=self.timeouts.total, sock_connect=self.timeouts.connect, sock_read=self.timeouts.read
            )
            connector = aiohttp.TCPConnector(ssl=tls, limit=100)
            self._session = aiohttp.ClientSession(
                connector=connector, timeout=timeout, headers={"User-Agent": self.user_agent}, auto_decompress=False
            )
        return self._session

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None

    def repository(self, name: str) -> RemoteRepository:
        from portside.client.repository import RemoteRepository

        return RemoteRepository(self, name)

    # ---------------------------------------------------------------- requests

    @contextlib.asynccontextmanager
    async def request(
        self,
        method: str,
        path: str,
        *,
        scope: str,
        params: Mapping[str, str] | None = None,
        headers: Mapping[str, str] | None = None,
        data: bytes | None = None,
        retried: bool | None = None,
        retries: int | None = None,
    ) -> AsyncIterator[aiohttp.ClientResponse]:
        """One request to `path` (below the registry's URL, or absolute), authenticated for `scope`; the
        response is released when the block ends. `retried` says whether it may be sent again (by default,
        for GET and HEAD), `retries` how often (by default the client's)."""
        may_retry = method in SAFE_METHODS if retried is None else retried
        limit = self.retries if retries is None else retries
        url = path if "://" in path else self.url + path
        attempt, authenticated = 0, False
        while True:
            sent = dict(headers or {})
            authorization = self.credentials.header(scope, self._challenge)
            if authorization:
                sent["Authorization"] = authorization
            try:
                response = await self.session().request(
                    method, url, params=params, headers=sent, data=data, allow_redirects=method in SAFE_METHODS
                )
            except (aiohttp.ClientConnectionError, TimeoutError, OSError) as exc:
                if may_retry and attempt < limit:
                    attempt += 1
                    await asyncio.sleep(self._wait(attempt, None))
                    continue
                reason = "timeout" if isinstance(exc, TimeoutError) else "unreachable"
                raise UpstreamUnavailable(f"{method} {url}: {type(exc).__name__}: {exc}", reason) from None
            if response.status == 401 and not authenticated:
                authenticated = True
                challenge = parse_challenge(response.headers.get("WWW-Authenticate", ""))
                response.release()
                if await self._authenticate(challenge, scope, authorization):
                    continue
                raise UpstreamError(f"{method} {url}: the registry refused the credentials", 401, "UNAUTHORIZED")
            if response.status in RETRIED_STATUSES and may_retry and attempt < limit:
                wait = retry_after(response.headers.get("Retry-After"))
                if wait is None or wait <= self.max_wait:
                    attempt += 1
                    response.release()
                    await asyncio.sleep(self._wait(attempt, wait))
                    continue
            try:
                yield response
            finally:
                response.release()
            return

    def _wait(self, attempt: int, asked: float | None) -> float:
        if asked is not None:
            return asked
        return float(min(self.max_wait, self.backoff * 2 ** (attempt - 1)) * random.uniform(0.5, 1.0))

    async def _authenticate(self, challenge: Challenge | None, scope: str, sent: str | None) -> bool:
        """Get what the challenge asks for; False when there is nothing more to try."""
        if challenge is None:
            return False
        if challenge.scheme == "basic":
            if not self.credentials.username or (sent or "").startswith("Basic"):
                return False
            self.credentials.use_basic()
            return True
        if challenge.scheme != "bearer" or not challenge.realm:
            return False
        self._challenge = challenge
        self.credentials.forget(challenge, scope)
        lock = self._token_locks.setdefault(scope, asyncio.Lock())
        async with lock:  # one token request per scope, however many requests wait for it
            if self.credentials.header(scope, challenge) is None:
                await self._fetch_token(challenge, scope)
        return True

    async def _fetch_token(self, challenge: Challenge, scope: str) -> None:
        params = {"service": challenge.params.get("service", "")}
        if scope:
            params["scope"] = scope
        headers = {"Authorization": self.credentials.basic} if self.credentials.basic else {}
        try:
            async with self.session().get(challenge.realm, params=params, headers=headers) as response:
                if response.status != 200:
                    raise await error_for(response, "token request")
                answer: dict[str, Any] = json.loads(await response.read())
        except (aiohttp.ClientConnectionError, TimeoutError, OSError) as exc:
            raise UpstreamUnavailable(f"token request to {challenge.realm}: {exc}", "unreachable") from None
        self.credentials.remember(challenge, scope, answer)
