"""The debug server's routes, served only on `http.debug.addr`."""

from __future__ import annotations

import json

from aiohttp import web

from portside import health
from portside.api.context import Context


async def health_status(ctx: Context) -> web.StreamResponse:
    """200 `{}` when healthy; 503 with each failing check and its error, as Docker Distribution answers."""
    failures = await health.check(ctx.namespace)
    return web.Response(
        status=503 if failures else 200,
        body=json.dumps(failures).encode(),
        headers={"Content-Type": "application/json"},
    )
