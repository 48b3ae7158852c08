"""The debug server's routes, served only on `http.debug.addr`: health and metrics."""

from __future__ import annotations

import json

from aiohttp import web

from portside.api.context import Context
from portside.metrics import exposition


async def health_status(ctx: Context) -> web.StreamResponse:
    """200 `{}` when healthy; 503 with each failing check and its error, as Docker Distribution answers."""
    failures = ctx.services.health.failures()
    return web.Response(
        status=503 if failures else 200,
        body=json.dumps(failures).encode(),
        headers={"Content-Type": "application/json"},
    )


async def metrics(ctx: Context) -> web.StreamResponse:
    """Prometheus exposition of every worker's samples, and what the parts of the registry report now (open
    upload sessions, the notification backlog, background jobs)."""
    gauges = [gauge for probe in ctx.services.gauges for gauge in await probe()]
    body, content_type = exposition(gauges)
    return web.Response(body=body, headers={"Content-Type": content_type})
