"""Who a browser is, for the web UI's pages.

A browser sends what it was asked for: after a `Basic` challenge, the user's name and password on every
request to the site. With `htpasswd` that is all the registry's controller needs, so the UI's pages use it
unchanged. With `token` authentication a browser cannot fetch and present Bearer tokens on page loads, so
the UI does what a client does with the same credentials: it asks the token server for a token with the
scopes the page needs (and `delete` on its repository, so a page knows whether to offer deletes), and has
the configured controller check that token. The token server scopes it down by its policy, so a user sees
in the UI exactly what `docker` or `skopeo` would let them see. With `silly`, any credentials do.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Protocol

import aiohttp

from portside.api.errors import ApiError, ErrorCode
from portside.auth import Access, AccessController, AuthRequest, Challenge, Grant
from portside.auth.access import DELETE, REPOSITORY, details, parse_scope, scopes_for
from portside.auth.htpasswd import HtpasswdController, basic_credentials
from portside.config import Config

if TYPE_CHECKING:  # token authentication's modules load only where it is configured
    from portside.tokenserver import TokenIssuer


class TokenSource(Protocol):
    async def token(self, user: str, password: str, scopes: list[str]) -> str | None:
        """A token for `user` with what the token server grants of `scopes`; None for wrong credentials."""
        ...


class IssuerTokens:
    """The built-in token server, in this process."""

    def __init__(self, issuer: TokenIssuer) -> None:
        self.issuer = issuer

    async def token(self, user: str, password: str, scopes: list[str]) -> str | None:
        from portside.tokenserver import InvalidGrant

        try:
            who = await self.issuer.authenticate(user, password)
        except InvalidGrant:
            return None
        return self.issuer.access_token(who, [parse_scope(s) for s in scopes]).token


class RealmTokens:
    """A token server elsewhere (`auth.token.realm`), asked as Docker's token specification describes."""

    def __init__(self, realm: str, service: str, timeout: float = 10.0) -> None:
        self.realm = realm
        self.service = service
        self.timeout = timeout

    async def token(self, user: str, password: str, scopes: list[str]) -> str | None:
        params = [("service", self.service), *(("scope", s) for s in scopes)]
        timeout = aiohttp.ClientTimeout(total=self.timeout)
        try:
            async with (
                aiohttp.ClientSession(timeout=timeout) as session,
                session.get(self.realm, params=params, auth=aiohttp.BasicAuth(user, password)) as response,
            ):
                if response.status in (401, 403):
                    return None
                response.raise_for_status()
                body = await response.json(content_type=None)
        except (aiohttp.ClientError, TimeoutError, ValueError) as exc:
            raise ApiError(ErrorCode.UNAVAILABLE, f"the token server did not answer: {exc}"[:300]) from None
        token = body.get("token") or body.get("access_token") if isinstance(body, dict) else None
        if not isinstance(token, str):
            raise ApiError(ErrorCode.UNAVAILABLE, "the token server answered without a token")
        return token


class BrowserAccess(AccessController):
    """Asks a browser for Basic credentials and turns them into what `controller` checks: the same
    credentials (`tokens` None), or a token from the token server."""

    def __init__(self, controller: AccessController, realm: str, tokens: TokenSource | None = None) -> None:
        self.controller = controller
        self.realm = realm
        self.tokens = tokens

    def _challenge(self, message: str, needed: Sequence[Access]) -> Challenge:
        return Challenge(401, "UNAUTHORIZED", message, f'Basic realm="{self.realm}"', details(needed))

    async def authorize(self, request: AuthRequest, needed: Sequence[Access]) -> Grant:
        credentials = basic_credentials(request.authorization)
        if credentials is None:
            raise self._challenge("authentication required", needed)
        if self.tokens is None:
            return await self.controller.authorize(request, needed)
        wanted = [*needed, *(Access(a.resource, DELETE) for a in needed if a.resource.type == REPOSITORY)]
        token = await self.tokens.token(*credentials, [str(s) for s in scopes_for(wanted)])
        if token is None:
            raise self._challenge("invalid username or password", needed)
        bearer = AuthRequest(f"Bearer {token}", request.remote, request.base_url)
        try:
            return await self.controller.authorize(bearer, needed)
        except Challenge as exc:
            if exc.status != 401:
                raise
            # The user is known; the token server gave them less than the page needs.
            denied = "requested access to the resource is denied"
            raise Challenge(403, "DENIED", denied, detail=details(needed)) from None


def browser_controller(
    config: Config, controller: AccessController | None, issuer: TokenIssuer | None
) -> AccessController | None:
    """The controller of the UI's pages for this configuration (None without access control)."""
    if controller is None or config.auth is None:
        return None
    if isinstance(controller, HtpasswdController):
        return controller
    if config.auth.token is None:  # silly
        return BrowserAccess(controller, "Portside")
    token = config.auth.token
    if issuer is not None:
        return BrowserAccess(controller, token.service, IssuerTokens(issuer))
    return BrowserAccess(controller, token.service, RealmTokens(token.realm, token.service))
