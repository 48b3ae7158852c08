"""Outbox pruning is a job of its own (docs/operations.md, Notifications): delivered events are removed once
they are older than `notifications.outbox.retention`, whether or not upload purging is enabled."""

from __future__ import annotations

import asyncio
import os

from portside.config import load_config
from portside.service import open_store
from tests.conftest import Registry, RegistryFactory
from tests.operations.receiver import Receiver
from tests.operations.support import Client, events_list, sha256, unique_repo, wait_until


def test_delivered_events_are_pruned_with_upload_purging_disabled(
    registry_factory: RegistryFactory, receiver: Receiver
) -> None:
    reg = registry_factory(
        {
            "storage": {"maintenance": {"uploadpurging": {"enabled": False}}},
            "notifications": {
                "endpoints": [{"name": "hook", "url": receiver.url("/hook"), "timeout": "2s"}],
                "outbox": {"retention": "1s", "pruneinterval": "1s"},
            },
        }
    )
    blob = os.urandom(64)
    client = Client(reg.url)
    client.push_blob(unique_repo(), blob)
    client.close()
    receiver.wait_for(
        lambda: sha256(blob) in {e["target"]["digest"] for e in receiver.delivered_events("/hook")},
        60,
        "the push event delivered",
    )

    def pruned() -> bool | None:
        return True if events_list(reg) == [] else None

    # Delivered, then gone: once older than the retention, the next pruning run removes it.
    wait_until(pruned, 60, "the delivered event pruned from the outbox")


def test_pruning_keeps_events_younger_than_the_retention(registry_factory: RegistryFactory, receiver: Receiver) -> None:
    reg = registry_factory(
        {
            "notifications": {
                "endpoints": [{"name": "hook", "url": receiver.url("/hook"), "timeout": "2s"}],
                "outbox": {"retention": "1h", "pruneinterval": "1s"},
            },
        }
    )
    blob = os.urandom(64)
    client = Client(reg.url)
    client.push_blob(unique_repo(), blob)
    client.close()
    delivered = wait_until(lambda: events_list(reg, "--status", "delivered") or None, 60, "the event delivered")
    # Several pruning runs later (one a second, each recorded in the job's lease), the event is still there.
    wait_until(lambda: _runs(reg) >= 3 or None, 60, "three pruning runs")
    assert [e["id"] for e in events_list(reg, "--status", "delivered")] == [e["id"] for e in delivered]


def _runs(reg: Registry) -> int:
    """How many times the pruning job has run, as its lease records it."""

    async def runs() -> int:
        store = open_store(load_config(reg.config_path))
        try:
            return sum(job.runs for job in await store.leases.all() if job.name == "outboxpruning")
        finally:
            await store.close()

    return asyncio.run(runs())
