"""The token endpoint over HTTP: `GET` as Docker's token specification describes, `POST` for OAuth2."""

from __future__ import annotations

import json
import logging
from datetime import UTC, datetime
from typing import Any

from aiohttp import web

from portside.auth.access import ScopeError, parse_scope
from portside.auth.htpasswd import basic_credentials
from portside.tokenserver.issuer import InvalidGrant, IssuedToken, TokenIssuer

log = logging.getLogger("portside.auth")

TOKEN_ISSUER = web.AppKey("token_issuer", TokenIssuer)


def _json(status: int, body: dict[str, Any], headers: dict[str, str] | None = None) -> web.Response:
    headers = {"Content-Type": "application/json", "Cache-Control": "no-store", **(headers or {})}
    return web.Response(status=status, body=json.dumps(body).encode(), headers=headers)


def _registry_error(status: int, code: str, message: str, headers: dict[str, str] | None = None) -> web.Response:
    return _json(status, {"errors": [{"code": code, "message": message}]}, headers)


def _issued_at(token: IssuedToken) -> str:
    return datetime.fromtimestamp(token.issued_at, UTC).isoformat().replace("+00:00", "Z")


async def get_token(request: web.Request, issuer: TokenIssuer) -> web.Response:
    query = request.rel_url.query
    service = query.get("service")
    if service is not None and service != issuer.service:
        return _registry_error(400, "UNSUPPORTED", f"this token server does not issue tokens for {service[:100]!r}")
    try:
        scopes = [parse_scope(s) for raw in query.getall("scope", []) for s in raw.split(" ") if s]
    except ScopeError as exc:
        return _registry_error(400, "UNSUPPORTED", str(exc))
    user: str | None = None
    authorization = request.headers.get("Authorization")
    if authorization:
        credentials = basic_credentials(authorization)
        try:
            if credentials is None:
                raise InvalidGrant("credentials must be sent with HTTP Basic authentication")
            user = await issuer.authenticate(*credentials)
        except InvalidGrant as exc:
            name = credentials[0] if credentials else ""
            log.warning("failed login for %r from %s: %s", name, request.remote, exc)
            challenge = {"WWW-Authenticate": f'Basic realm="{issuer.service}"'}
            return _registry_error(401, "UNAUTHORIZED", str(exc), challenge)
    token = issuer.access_token(user, scopes)
    body: dict[str, Any] = {
        "token": token.token,
        "access_token": token.token,
        "expires_in": token.expires_in,
        "issued_at": _issued_at(token),
    }
    if user is not None and query.get("offline_token", "").lower() == "true":
        body["refresh_token"] = issuer.refresh_token(user)
    return _json(200, body)


def _oauth_error(status: int, error: str, description: str) -> web.Response:
    return _json(status, {"error": error, "error_description": description})


async def post_token(request: web.Request, issuer: TokenIssuer) -> web.Response:
    form = await request.post()
    fields = {key: str(value) for key, value in form.items() if isinstance(value, str)}
    service = fields.get("service")
    if service is not None and service != issuer.service:
        return _oauth_error(400, "invalid_request", f"this token server does not issue tokens for {service[:100]!r}")
    try:
        scopes = [parse_scope(s) for s in fields.get("scope", "").split(" ") if s]
    except ScopeError as exc:
        return _oauth_error(400, "invalid_scope", str(exc))
    grant_type = fields.get("grant_type")
    if not grant_type:
        return _oauth_error(400, "invalid_request", "grant_type is required")
    offline = False
    try:
        if grant_type == "password":
            if "username" not in fields or "password" not in fields:
                return _oauth_error(400, "invalid_request", "username and password are required")
            user = await issuer.authenticate(fields["username"], fields["password"])
            offline = fields.get("access_type") == "offline"
        elif grant_type == "refresh_token":
            if "refresh_token" not in fields:
                return _oauth_error(400, "invalid_request", "refresh_token is required")
            user = issuer.user_of_refresh_token(fields["refresh_token"])
        else:
            return _oauth_error(400, "unsupported_grant_type", f"grant_type {str(grant_type)[:40]!r} is not supported")
    except InvalidGrant as exc:
        log.warning("failed login for %r from %s: %s", fields.get("username", ""), request.remote, exc)
        return _oauth_error(401, "invalid_grant", str(exc))
    token = issuer.access_token(user, scopes)
    body: dict[str, Any] = {
        "access_token": token.token,
        "token_type": "Bearer",
        "scope": " ".join(str(s) for s in token.granted),
        "expires_in": token.expires_in,
        "issued_at": _issued_at(token),
    }
    if offline:
        body["refresh_token"] = issuer.refresh_token(user)
    return _json(200, body)


async def handle(request: web.Request, issuer: TokenIssuer) -> web.StreamResponse:
    if request.method in ("GET", "HEAD"):
        return await get_token(request, issuer)
    if request.method == "POST":
        return await post_token(request, issuer)
    return _registry_error(405, "UNSUPPORTED", f"method {request.method} is not allowed here", {"Allow": "GET, POST"})


def create_app(issuer: TokenIssuer, path: str) -> web.Application:
    """The token server alone (`portside token-server`)."""
    app = web.Application()
    app[TOKEN_ISSUER] = issuer

    async def endpoint(request: web.Request) -> web.StreamResponse:
        return await handle(request, request.app[TOKEN_ISSUER])

    async def server_header(request: web.Request, response: web.StreamResponse) -> None:
        response.headers["Server"] = "Portside"  # not aiohttp's default, which names its and Python's versions

    app.router.add_route("*", path, endpoint)
    app.on_response_prepare.append(server_header)
    return app
