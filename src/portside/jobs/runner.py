"""The job runner: each job runs in a loop of its own, every `interval` (with jitter, so workers and instances
that started together drift apart), until the runner stops.

An exclusive job runs under a lease in the metadata store (metadata/leases.py): of all the workers of all the
instances, one takes it, and only when the job last started at least an interval ago, so it runs about once an
interval in the whole deployment. The holder renews the lease while the job runs; if the holder dies, the
lease lapses and another worker takes the next turn. Non-exclusive jobs (work shared through the database,
such as a queue each worker takes from) run in every worker.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import random
import socket
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from portside.metadata.leases import JobLeases
from portside.metrics import Metrics

log = logging.getLogger("portside.jobs")

LEASE_SECONDS = 60.0
STOP_GRACE_SECONDS = 10.0


@dataclass(frozen=True)
class Job:
    name: str
    run: Callable[[], Awaitable[object]]
    """The work; a run that returns a number of seconds sets the wait before the next run (a backoff)."""
    interval: float
    exclusive: bool = True
    jitter: float = 0.1
    """Each wait is the interval times a random factor within ±jitter."""
    first_delay: float = 60.0
    """The first run comes after a random delay of up to this (bounded by the interval), not at start-up."""


def holder_id() -> str:
    """Who holds a lease: this host and process, and a random part in case a pid is reused."""
    return f"{socket.gethostname()}:{os.getpid()}:{os.urandom(4).hex()}"


class JobRunner:
    def __init__(self, jobs: list[Job], leases: JobLeases, metrics: Metrics | None = None) -> None:
        self.jobs = {job.name: job for job in jobs}
        self._leases = leases
        self._metrics = metrics or Metrics()
        self._holder = holder_id()
        self._stopping = asyncio.Event()
        self._loops: list[asyncio.Task[None]] = []

    def start(self) -> None:
        loop = asyncio.get_running_loop()
        self._loops = [loop.create_task(self._loop(job), name=f"job-{job.name}") for job in self.jobs.values()]

    async def stop(self, grace: float = STOP_GRACE_SECONDS) -> None:
        """Stop the loops; a run in progress gets `grace` seconds to finish, then is cancelled."""
        self._stopping.set()
        if not self._loops:
            return
        _, pending = await asyncio.wait(self._loops, timeout=grace)
        for task in pending:
            task.cancel()
        await asyncio.gather(*self._loops, return_exceptions=True)

    async def _sleep(self, seconds: float) -> None:
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(seconds):
                await self._stopping.wait()

    async def _loop(self, job: Job) -> None:
        await self._sleep(random.uniform(min(1.0, job.interval), min(job.first_delay, job.interval)))
        while not self._stopping.is_set():
            wait = job.interval
            try:
                ran = await self.run_once(job.name)
                if isinstance(ran, int | float) and not isinstance(ran, bool):
                    wait = float(ran)
            except Exception:  # a run's own failure is logged by run_once; this is the lease's
                log.exception("job %s could not be started", job.name)
            await self._sleep(wait * random.uniform(1 - job.jitter, 1 + job.jitter))

    async def run_once(self, name: str) -> bool | float:
        """Run job `name` now (once its lease is had, for an exclusive job); False when it was not its turn,
        else True, or the wait the job asked for before its next run."""
        job = self.jobs[name]
        if job.exclusive:
            every = job.interval * (1 - job.jitter)
            if not await self._leases.claim(job.name, self._holder, LEASE_SECONDS, every):
                return False
        renewing = asyncio.get_running_loop().create_task(self._renew(job)) if job.exclusive else None
        started = time.perf_counter()
        error: str | None = None
        result: object = None
        try:
            result = await job.run()
        except asyncio.CancelledError:
            error = "stopped before it finished"
            raise
        except Exception as exc:
            error = f"{type(exc).__name__}: {exc}"[:2000]
            log.exception("job %s failed", job.name)
        finally:
            seconds = time.perf_counter() - started
            if renewing is not None:
                renewing.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await renewing
            self._metrics.job(job.name, seconds, error)
            if job.exclusive:
                await self._release(job, error)
        if isinstance(result, int | float) and not isinstance(result, bool):
            return float(result)
        return True

    async def _release(self, job: Job, error: str | None) -> None:
        try:
            await self._leases.release(job.name, self._holder, error)
        except Exception:
            log.exception("could not release the lease of job %s (it lapses in %.0f s)", job.name, LEASE_SECONDS)

    async def _renew(self, job: Job) -> None:
        while True:
            await asyncio.sleep(LEASE_SECONDS / 3)
            try:
                if not await self._leases.renew(job.name, self._holder, LEASE_SECONDS):
                    log.warning("job %s lost its lease while running; another worker may start it", job.name)
                    return
            except Exception:
                log.exception("could not renew the lease of job %s", job.name)
