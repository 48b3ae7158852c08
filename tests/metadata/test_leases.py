"""Job leases (metadata/leases.py), on SQLite and PostgreSQL: one holder at a time, at most one start per
interval, a lapsed lease taken over, and each run's outcome recorded."""

from __future__ import annotations

import asyncio

from portside.metadata.records import JobRecord
from portside.metadata.store import MetadataStore


async def _record(store: MetadataStore, name: str) -> JobRecord:
    return next(job for job in await store.leases.all() if job.name == name)


async def test_one_holder_at_a_time(store: MetadataStore) -> None:
    leases = store.leases
    assert await leases.claim("gc", "a", lease_seconds=60, every_seconds=0)
    assert not await leases.claim("gc", "b", lease_seconds=60, every_seconds=0)
    await leases.release("gc", "a", None)
    assert await leases.claim("gc", "b", lease_seconds=60, every_seconds=0)
    record = await _record(store, "gc")
    assert record.holder == "b"
    assert record.runs == 1


async def test_concurrent_claims_have_one_winner(store: MetadataStore) -> None:
    results = await asyncio.gather(*(store.leases.claim("purge", f"w{i}", 60, 0) for i in range(8)))
    assert sorted(results) == [False] * 7 + [True]


async def test_no_second_start_within_the_interval(store: MetadataStore) -> None:
    leases = store.leases
    assert await leases.claim("prune", "a", 60, every_seconds=3600)
    await leases.release("prune", "a", None)
    assert not await leases.claim("prune", "b", 60, every_seconds=3600)
    assert not await leases.claim("prune", "a", 60, every_seconds=3600)
    assert await leases.claim("prune", "b", 60, every_seconds=0)


async def test_a_lapsed_lease_is_taken_over_and_its_holder_can_no_longer_renew(store: MetadataStore) -> None:
    leases = store.leases
    assert await leases.claim("gc", "dead", lease_seconds=0.2, every_seconds=0)
    await asyncio.sleep(0.5)
    assert await leases.claim("gc", "alive", lease_seconds=60, every_seconds=0)
    assert not await leases.renew("gc", "dead", 60)
    assert await leases.renew("gc", "alive", 60)
    await leases.release("gc", "dead", None)  # a late release by the old holder changes nothing
    assert (await _record(store, "gc")).holder == "alive"


async def test_outcomes_are_recorded(store: MetadataStore) -> None:
    leases = store.leases
    assert await leases.claim("gc", "a", 60, 0)
    await leases.release("gc", "a", None)
    succeeded = (await _record(store, "gc")).last_success_at
    assert succeeded is not None
    assert await leases.claim("gc", "a", 60, 0)
    await leases.release("gc", "a", "OSError: disk on fire")
    record = await _record(store, "gc")
    assert (record.runs, record.failures, record.last_error) == (2, 1, "OSError: disk on fire")
    assert record.last_success_at == succeeded, "a failure keeps the time of the last success"
    assert record.holder is None
    assert record.lease_until is None
    assert await leases.claim("gc", "a", 60, 0)
    await leases.release("gc", "a", None)
    assert (await _record(store, "gc")).last_error is None
