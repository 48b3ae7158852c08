"""The debug server's routes, served only on `http.debug.addr`: health and metrics."""

from __future__ import annotations

import json
from collections.abc import Iterable
from typing import Any

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
    """Prometheus exposition of every worker's samples, and what the metadata store holds now: open upload
    sessions and the notification backlog."""
    store = ctx.namespace.store
    pending = await store.pending_counts() if ctx.services.config.notifications.active else {}
    sessions = await store.upload_count()

    def computed() -> Iterable[Any]:
        from prometheus_client.core import GaugeMetricFamily

        family = GaugeMetricFamily("portside_notifications_pending", "Events waiting for delivery", labels=["endpoint"])
        for endpoint in ctx.services.config.notifications.active:
            family.add_metric([endpoint.name], pending.get(endpoint.name, 0))
        yield family
        yield GaugeMetricFamily(
            "portside_uploads_in_progress", "Upload sessions open (started, not finished)", sessions
        )

    body, content_type = exposition(computed)
    return web.Response(body=body, headers={"Content-Type": content_type})
