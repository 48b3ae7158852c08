"""The registry's housekeeping as jobs: upload purging (`storage.maintenance.uploadpurging`) and outbox
pruning (`notifications.outbox`), each behind its own configuration."""

from __future__ import annotations

from datetime import timedelta

from portside.config import Config
from portside.jobs.runner import Job
from portside.metadata.records import utcnow
from portside.registry import LocalNamespace


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
