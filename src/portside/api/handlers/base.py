"""`/v2/`: the API version check."""

from __future__ import annotations

from aiohttp import web

from portside.api.context import Context


async def version_check(ctx: Context) -> web.StreamResponse:
    return web.Response(body=b"{}", headers={"Content-Type": "application/json"})
