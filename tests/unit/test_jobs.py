"""The job runner (portside/jobs): exclusive jobs run in one worker at a time across processes sharing a
metadata store, failures are recorded and retried at the next interval, and stopping ends a run cleanly."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from portside.jobs import Job, JobRunner
from portside.metadata.engine import migrate, open_database
from portside.metadata.store import MetadataStore


@pytest.fixture
async def stores(tmp_path: Path) -> AsyncIterator[list[MetadataStore]]:
    """Two stores on one SQLite file, as two worker processes have."""
    dsn = f"sqlite:///{tmp_path}/metadata.db"
    first = MetadataStore(open_database(dsn))
    await migrate(first.db)
    second = MetadataStore(open_database(dsn))
    yield [first, second]
    await first.close()
    await second.close()


async def _runs(store: MetadataStore, name: str) -> tuple[int, int, str | None]:
    job = next(job for job in await store.leases.all() if job.name == name)
    return job.runs, job.failures, job.last_error


async def test_an_exclusive_job_runs_in_one_worker_at_a_time(stores: list[MetadataStore]) -> None:
    running = 0
    most = 0
    started = asyncio.Event()

    async def work() -> None:
        nonlocal running, most
        running += 1
        most = max(most, running)
        started.set()
        await asyncio.sleep(0.3)
        running -= 1

    runners = [JobRunner([Job("purge", work, interval=3600)], store.leases) for store in stores]
    ran = await asyncio.gather(*(runner.run_once("purge") for runner in runners))
    assert sorted(ran) == [False, True]
    assert most == 1
    assert await _runs(stores[0], "purge") == (1, 0, None)
    # Within its interval the job does not start again, in either worker.
    assert not await runners[0].run_once("purge")
    assert not await runners[1].run_once("purge")


async def test_a_shared_job_runs_in_every_worker(stores: list[MetadataStore]) -> None:
    calls: list[int] = []

    async def work() -> None:
        calls.append(1)

    runners = [JobRunner([Job("review", work, interval=3600, exclusive=False)], store.leases) for store in stores]
    assert await asyncio.gather(*(runner.run_once("review") for runner in runners)) == [True, True]
    assert len(calls) == 2


async def test_failures_are_recorded_and_the_job_runs_again_next_interval(stores: list[MetadataStore]) -> None:
    attempts = 0

    async def work() -> None:
        nonlocal attempts
        attempts += 1
        raise OSError("disk on fire")

    runner = JobRunner([Job("purge", work, interval=0.2, first_delay=0.0)], stores[0].leases)
    runner.start()
    try:
        for _ in range(600):
            if attempts >= 3:
                break
            await asyncio.sleep(0.05)
    finally:
        await runner.stop()
    runs, failures, error = await _runs(stores[0], "purge")
    assert attempts >= 3
    assert runs == failures == attempts
    assert error == "OSError: disk on fire"


async def test_stop_cancels_a_run_that_outlasts_the_grace_and_frees_its_lease(stores: list[MetadataStore]) -> None:
    entered = asyncio.Event()

    async def work() -> None:
        entered.set()
        await asyncio.Event().wait()  # never ends by itself

    runner = JobRunner([Job("gc", work, interval=3600, first_delay=0.0)], stores[0].leases)
    runner.start()
    await asyncio.wait_for(entered.wait(), 30)
    await runner.stop(grace=0.1)
    assert await _runs(stores[0], "gc") == (1, 1, "stopped before it finished")
    lease = next(job for job in await stores[0].leases.all() if job.name == "gc")
    assert lease.holder is None
