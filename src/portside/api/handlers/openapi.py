"""`/openapi.json`: the OpenAPI document of this registry's routes, built once when the worker starts."""

from __future__ import annotations

from aiohttp import web

from portside.api.context import Context


async def document(ctx: Context) -> web.StreamResponse:
    return web.Response(body=ctx.services.openapi, headers={"Content-Type": "application/json"})
