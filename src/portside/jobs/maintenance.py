"""The registry's housekeeping as jobs: upload purging (`storage.maintenance.uploadpurging`), outbox pruning
(`notifications.outbox`) and a pull-through cache's expiry (`proxy`), each behind its own configuration."""

from __future__ import annotations

from datetime import timedelta

from portside.config import Config
from portside.jobs.runner import Job
from portside.metadata.records import utcnow
from portside.registry import LocalNamespace, Namespace


def maintenance_jobs(config: Config, namespace: LocalNamespace) -> list[Job]:
    jobs: list[Job] = []
    purging = config.storage.maintenance.uploadpurging
    if purging.enabled and not config.storage.maintenance.readonly.enabled:
        age = timedelta(seconds=purging.age)

        async def purge() -> None:
            await namespace.purge_uploads(age, purging.dryrun)

        jobs.append(Job("uploadpurging", purge, purging.interval))
    outbox = config.notifications.outbox
    if outbox.retention > 0:
        retention = timedelta(seconds=outbox.retention)

        async def prune() -> None:
            await namespace.store.outbox.prune_delivered(utcnow() - retention)

        jobs.append(Job("outboxpruning", prune, outbox.pruneinterval))
    return jobs


def proxy_jobs(config: Config, namespace: Namespace) -> list[Job]:
    """Expiry of what a pull-through cache fetched and nobody pulled for its upstream's TTL: the manifests are
    deleted, and garbage collection takes the blobs once their own TTL has passed."""
    from portside.proxy import ProxyNamespace

    if not isinstance(namespace, ProxyNamespace) or config.storage.maintenance.readonly.enabled:
        return []
    shortest = min(upstream.ttl for upstream in namespace.upstreams)
    cache = namespace

    async def expire() -> None:
        await cache.expire()

    return [Job("proxyexpiry", expire, max(1.0, min(3600.0, shortest / 4)))]
