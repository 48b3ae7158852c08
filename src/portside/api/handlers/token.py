"""The built-in token server's endpoint, when it runs inside the registry (`tokenserver.path`)."""

from __future__ import annotations

from aiohttp import web

from portside.api.context import Context


async def token(ctx: Context) -> web.StreamResponse:
    from portside.tokenserver import http  # loaded with the issuer, not for every worker

    issuer = ctx.services.issuer
    assert issuer is not None  # the route exists only when the token server is configured
    return await http.handle(ctx.request, issuer)
