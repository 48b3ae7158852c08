"""Delivering the outbox: every worker runs a dispatcher; a lease in the metadata store lets only one of them
send a given endpoint's events at a time, oldest first, and a failing endpoint waits alone: each endpoint's
attempt runs as a task of its own, so a slow one never delays the next round for the others."""

from __future__ import annotations

import asyncio
import contextlib
import functools
import json
import logging
from dataclasses import replace
from datetime import timedelta
from typing import TYPE_CHECKING

from portside.config.schema import Endpoint
from portside.metadata.outbox import Outbox
from portside.metadata.records import Delivery, utcnow
from portside.metrics import Gauge, Metrics
from portside.notifications.events import EVENTS_MEDIA_TYPE

if TYPE_CHECKING:
    import aiohttp

log = logging.getLogger("portside.notifications")

BATCH = 100
PENDING_EVENTS = Gauge("portside_notifications_pending", "Events waiting for delivery", (), ("endpoint",))
IDLE_POLL = 1.0
MAX_BACKOFF = 300.0
QUICK_RETRY = 0.5


def retry_delay(endpoint: Endpoint, attempts: int) -> float:
    """Quick retries until `threshold` failures in a row, then `backoff`, doubling, at most five minutes."""
    if attempts < endpoint.threshold:
        return QUICK_RETRY
    return float(min(endpoint.backoff * 2 ** (attempts - endpoint.threshold), MAX_BACKOFF))


class Dispatcher:
    def __init__(self, outbox: Outbox, endpoints: list[Endpoint], metrics: Metrics | None = None) -> None:
        self.outbox = outbox
        self.endpoints = {e.name: e for e in endpoints}
        self.metrics = metrics or Metrics()
        self._wake = asyncio.Event()
        self._stopping = False
        self._session: aiohttp.ClientSession | None = None
        self._task: asyncio.Task[None] | None = None
        self._sending: dict[str, asyncio.Task[None]] = {}  # endpoint name -> its attempt in progress

    def start(self) -> None:
        import aiohttp

        self._session = aiohttp.ClientSession(auto_decompress=False)
        self._task = asyncio.get_running_loop().create_task(self._run())

    async def gauges(self) -> list[Gauge]:
        """The events waiting for each endpoint, now."""
        pending = await self.outbox.pending_counts()
        samples = tuple(((name,), float(pending.get(name, 0))) for name in self.endpoints)
        return [replace(PENDING_EVENTS, samples=samples)]

    def poke(self) -> None:
        """Events were just recorded: look now rather than at the next poll."""
        self._wake.set()

    async def stop(self) -> None:
        """Finish the attempt in progress, then stop; what is not delivered stays for the next start."""
        self._stopping = True
        self._wake.set()
        if self._task is not None:
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        if self._sending:
            await asyncio.gather(*self._sending.values(), return_exceptions=True)
        if self._session is not None:
            await self._session.close()

    async def _run(self) -> None:
        while not self._stopping:
            self._wake.clear()
            try:
                wait = await self._round()
            except Exception:
                log.exception("notification delivery round failed")
                wait = IDLE_POLL
            if self._stopping:
                break
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), wait)

    async def _round(self) -> float:
        """Start an attempt for each endpoint that is due and has none in progress; returns how long to sleep
        before looking again (an attempt that ends wakes the loop)."""
        due = await self.outbox.due_endpoints()
        now = utcnow()
        wait = IDLE_POLL
        for name, when in due.items():
            if name not in self.endpoints or name in self._sending:
                continue
            if when <= now:
                task = asyncio.get_running_loop().create_task(self._deliver(self.endpoints[name]))
                self._sending[name] = task
                task.add_done_callback(functools.partial(self._sent, name))
            else:
                wait = min(wait, max((when - now).total_seconds(), 0.01))
        return wait

    def _sent(self, name: str, task: asyncio.Task[None]) -> None:
        self._sending.pop(name, None)
        if task.cancelled():
            return
        if task.exception() is not None:
            log.error("notification delivery to %s failed", name, exc_info=task.exception())
            return  # the next poll tries again
        self._wake.set()  # look again at once: more may be due for this endpoint

    async def _deliver(self, endpoint: Endpoint) -> None:
        lease = endpoint.timeout * 2 + 5
        batch = await self.outbox.claim(endpoint.name, BATCH, lease)
        if not batch:
            return
        error = await self._send(endpoint, batch)
        ids = [d.id for d in batch]
        if error is None:
            await self.outbox.mark_delivered(ids)
            self.metrics.notification(endpoint.name, len(batch), 0)
            return
        attempts = batch[0].attempts + 1
        delay = retry_delay(endpoint, attempts)
        log.warning(
            "delivery of %d event(s) to %s failed (attempt %d, next in %.1fs): %s",
            len(batch),
            endpoint.name,
            attempts,
            delay,
            error,
        )
        self.metrics.notification(endpoint.name, 0, 1)
        await self.outbox.mark_failed(ids, error, utcnow() + timedelta(seconds=delay))

    async def _send(self, endpoint: Endpoint, batch: list[Delivery]) -> str | None:
        """None when the endpoint took the events, else why not."""
        import aiohttp

        assert self._session is not None
        body = json.dumps({"events": [json.loads(d.event) for d in batch]}).encode()
        headers = [(k, v) for k, values in endpoint.headers.items() for v in values]
        headers.append(("Content-Type", EVENTS_MEDIA_TYPE))
        try:
            async with self._session.post(
                endpoint.url,
                data=body,
                headers=headers,
                timeout=aiohttp.ClientTimeout(total=endpoint.timeout),
                allow_redirects=False,
            ) as response:
                if 200 <= response.status < 400:
                    return None
                return f"HTTP {response.status}"
        except (aiohttp.ClientError, TimeoutError, OSError) as exc:
            return f"{type(exc).__name__}: {exc}"[:500]
