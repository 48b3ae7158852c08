"""Online garbage collection as jobs: one works through manifest (and repository) reviews, one through link
and blob reviews. Both run in every worker of every instance, sharing the queues (a review is claimed by one
collector at a time), and wait longer while there is nothing to do (`gc.maxbackoff`)."""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable

from portside.config import Config
from portside.jobs.runner import Job
from portside.metrics import Gauge, Metrics
from portside.notifications import NotificationSink, RequestRecord
from portside.registry import LocalNamespace
from portside.registry.gc import BATCH, Collector

log = logging.getLogger("portside.gc")


class IdleBackoff:
    """The wait before the next run: the interval after a run that found work, doubling while none comes."""

    def __init__(self, interval: float, maximum: float, enabled: bool = True) -> None:
        self.interval = interval
        self.maximum = max(maximum, interval)
        self.enabled = enabled
        self._idle = 0

    def after(self, worked: bool) -> float:
        if worked or not self.enabled:
            self._idle = 0
            return self.interval
        self._idle += 1
        return float(min(self.interval * 2**self._idle, self.maximum))


def gc_events(config: Config) -> NotificationSink | None:
    """Delete events for what collection removes, for the notification endpoints that want them."""
    endpoints = config.notifications.active
    if not endpoints:
        return None
    request = RequestRecord(id="", addr="", host="", method="DELETE", useragent="portside garbage collection")
    return NotificationSink(endpoints, request, None, "", config.http.addr, False)


def collector_for(config: Config, namespace: LocalNamespace, metrics: Metrics | None = None) -> Collector:
    return Collector(namespace, gc_events(config), metrics, storage_timeout=config.gc.blobs.storagetimeout)


def gc_jobs(config: Config, namespace: LocalNamespace, metrics: Metrics | None = None) -> list[Job]:
    gc = config.gc
    if not gc.online or config.storage.maintenance.readonly.enabled:
        return []
    collector = collector_for(config, namespace, metrics)
    jobs: list[Job] = []

    def job(name: str, review: str, interval: float) -> Job:
        backoff = IdleBackoff(interval, gc.maxbackoff, not gc.noidlebackoff)
        passes = collector.review_manifests if review == "manifests" else collector.review_blobs

        async def run() -> float:
            reviewed = 0
            while (due := await passes(BATCH)) > 0:
                reviewed += due
                if due < BATCH:  # the queue is drained for now (a full batch suggests more)
                    break
            if reviewed:
                log.info("gc: %d %s review(s) done", reviewed, review)
            return backoff.after(reviewed > 0)

        return Job(name, run, interval, exclusive=False, first_delay=interval)

    if not gc.manifests.disabled:
        jobs.append(job("gc_manifests", "manifests", gc.manifests.interval))
    if not gc.blobs.disabled:
        jobs.append(job("gc_blobs", "blob", gc.blobs.interval))
    return jobs


def gc_queue_gauges(namespace: LocalNamespace) -> Callable[[], Awaitable[list[Gauge]]]:
    """Review queue depth and lag, read from the metadata store at each scrape."""

    async def probe() -> list[Gauge]:
        stats = await namespace.store.gc.queue_stats()
        return [
            Gauge(
                "portside_gc_queue_due", "Reviews due now", tuple(((q,), s[0]) for q, s in stats.items()), ("queue",)
            ),
            Gauge(
                "portside_gc_queue_lag_seconds",
                "How long the oldest due review has waited",
                tuple(((q,), s[1]) for q, s in stats.items()),
                ("queue",),
            ),
            Gauge(
                "portside_gc_queue_size",
                "Reviews queued, due or not",
                tuple(((q,), s[2]) for q, s in stats.items()),
                ("queue",),
            ),
        ]

    return probe
