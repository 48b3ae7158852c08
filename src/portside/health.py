"""Health checks of what the registry depends on, run in the background at their intervals.

`/debug/health` reports the latest results: a check is failing once it has failed `threshold` times in a row,
and healthy again at its first success.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import socket
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from portside.config.schema import Health, split_addr
from portside.registry import LocalNamespace

if TYPE_CHECKING:
    import aiohttp

Probe = Callable[[], Awaitable[None]]
PROBE_TIMEOUT = 5.0


@dataclass
class Check:
    name: str
    probe: Probe
    interval: float
    threshold: int = 1
    timeout: float = PROBE_TIMEOUT
    failures: int = 0
    error: str | None = None
    _task: asyncio.Task[None] | None = field(default=None, repr=False)

    @property
    def failing(self) -> bool:
        return self.error is not None and self.failures >= self.threshold

    async def run_once(self) -> None:
        try:
            # asyncio.timeout, not wait_for: on Python 3.11 wait_for can swallow a cancellation that arrives as
            # the probe finishes, and the check would then outlive `HealthChecker.stop`.
            async with asyncio.timeout(self.timeout):
                await self.probe()
        except Exception as exc:
            self.failures += 1
            self.error = f"{type(exc).__name__}: {exc}"[:500] or type(exc).__name__
        else:
            self.failures = 0
            self.error = None

    async def loop(self, stopping: asyncio.Event) -> None:
        while not stopping.is_set():
            started = time.monotonic()
            await self.run_once()
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(max(self.interval - (time.monotonic() - started), 0.05)):
                    await stopping.wait()


def storage_probe(namespace: LocalNamespace) -> Probe:
    """Write, read back and delete a small file: the driver is reachable and writable."""
    name = f"{socket.gethostname()}-{os.getpid()}"

    async def probe() -> None:
        await namespace.content.probe(name)

    return probe


def file_probe(path: str) -> Probe:
    async def probe() -> None:
        if await asyncio.to_thread(os.path.exists, path):
            raise RuntimeError(f"{path} exists")

    return probe


def http_probe(
    session: Callable[[], aiohttp.ClientSession], uri: str, headers: dict[str, list[str]], status: int
) -> Probe:
    async def probe() -> None:
        pairs = [(k, v) for k, values in headers.items() for v in values]
        async with session().get(uri, headers=pairs, allow_redirects=False) as response:
            if response.status != status:
                raise RuntimeError(f"{uri} answered {response.status}, not {status}")

    return probe


def tcp_probe(addr: str) -> Probe:
    host, port = split_addr(addr)

    async def probe() -> None:
        _, writer = await asyncio.open_connection(host or "127.0.0.1", port)
        writer.close()
        with contextlib.suppress(OSError):
            await writer.wait_closed()

    return probe


class HealthChecker:
    def __init__(self, namespace: LocalNamespace, config: Health) -> None:
        self._session: aiohttp.ClientSession | None = None
        self._stopping = asyncio.Event()
        base = config.storagedriver.interval
        self.checks = [Check("database", namespace.store.ping, base)]
        if config.storagedriver.enabled:
            self.checks.append(
                Check(
                    f"storagedriver_{namespace.driver.name}",
                    storage_probe(namespace),
                    config.storagedriver.interval,
                    config.storagedriver.threshold,
                )
            )
        self.checks += [Check(f"file:{f.file}", file_probe(f.file), f.interval) for f in config.file]
        self.checks += [
            Check(
                f"http:{h.uri}",
                http_probe(self.session, h.uri, h.headers, h.statuscode),
                h.interval,
                h.threshold,
                h.timeout,
            )
            for h in config.http
        ]
        self.checks += [
            Check(f"tcp:{t.addr}", tcp_probe(t.addr), t.interval, t.threshold, t.timeout) for t in config.tcp
        ]

    def session(self) -> aiohttp.ClientSession:
        import aiohttp

        if self._session is None:
            self._session = aiohttp.ClientSession()
        return self._session

    async def start(self) -> None:
        """Run every check once now, then each at its interval."""
        await asyncio.gather(*(check.run_once() for check in self.checks))
        for check in self.checks:
            check._task = asyncio.get_running_loop().create_task(check.loop(self._stopping))

    async def stop(self) -> None:
        self._stopping.set()
        for check in self.checks:
            if check._task is not None:
                check._task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await check._task
        if self._session is not None:
            await self._session.close()

    def failures(self) -> dict[str, str]:
        return {check.name: check.error or "failing" for check in self.checks if check.failing}


async def check(namespace: LocalNamespace) -> dict[str, str]:
    """Run the always-on checks once (database, storage driver): failing ones by name, with why."""
    checker = HealthChecker(namespace, Health())
    await asyncio.gather(*(c.run_once() for c in checker.checks))
    return {c.name: c.error for c in checker.checks if c.error is not None}
