"""Single flight: however many clients ask for a blob the cache does not have, it is fetched from upstream
once, and every client is sent the bytes as they arrive.

The fetch writes a spool file on local disk (`<spool>/<digest>.part`) as it stores and hashes the blob; each
client reads the spool from its own offset, waiting for more while the fetch goes on. Processes on one host
share a spool directory: the fetcher holds a lock on `<digest>.lock` (fcntl, so a dead fetcher's lock goes with
it), a reader in another process polls the file and the lock, and `<digest>.done` says the bytes are whole.
The fetch is not any client's: it runs on if the client that started it goes away, so the others and the
cache still get the blob. Readers are sent every byte but the last as it comes; the last only once the whole
blob hashed to its digest and is stored. A fetch that fails (the upstream breaks off, the bytes are not the
digest) ends every reader with an error and stores nothing, so no client is ever sent a whole blob that is not
its digest.
"""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import logging
import os
from collections.abc import Awaitable, Callable
from pathlib import Path
from types import TracebackType
from typing import Self

from portside.registry.errors import UpstreamUnavailable

log = logging.getLogger("portside.proxy")

POLL = 0.01
POLL_MAX = 0.1
KEEP_SPOOL_SECONDS = 30.0
"""A finished spool stays this long for readers that are about to open it, then goes."""


class Flight:
    """One blob being fetched: its spool file and how far it has come."""

    def __init__(self, spool: Path, digest: str, size: int, owner: bool, lock_fd: int) -> None:
        self.digest = digest
        self.size = size
        self.owner = owner
        self.path = spool / f"{digest.replace(':', '-')}.part"
        self._done_path = spool / f"{digest.replace(':', '-')}.done"
        self._lock_fd = lock_fd
        self.written = 0
        self.done = False
        self.failed: str | None = None
        self._changed = asyncio.Event()
        self._fd = -1

    # ---------------------------------------------------------------- the fetcher's side

    def begin(self) -> None:
        self._fd = os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_TRUNC, 0o600)

    def append(self, chunk: bytes) -> None:
        os.write(self._fd, chunk)
        self.written += len(chunk)
        self._wake()

    def finish(self) -> None:
        self._done_path.touch()
        self.done = True
        self._wake()

    def fail(self, why: str) -> None:
        self.failed = why
        with contextlib.suppress(OSError):
            os.unlink(self.path)
        self._wake()

    def release(self) -> None:
        """The fetch is over: let others know (the lock) and close the spool."""
        if self._fd >= 0:
            os.close(self._fd)
            self._fd = -1
        if self._lock_fd >= 0:
            fcntl.flock(self._lock_fd, fcntl.LOCK_UN)
            os.close(self._lock_fd)
            self._lock_fd = -1

    def _wake(self) -> None:
        self._changed.set()
        self._changed = asyncio.Event()

    # ---------------------------------------------------------------- a reader's side

    async def wait(self) -> None:
        """Until the fetch has moved on (or, for a fetch in another process, a short poll)."""
        if self.owner:
            await self._changed.wait()
        else:
            await asyncio.sleep(POLL)

    def state(self) -> tuple[bool, str | None]:
        """(whole, failure): read from this process's own fetch, or from another's files and lock."""
        if self.owner:
            return self.done, self.failed
        if self._done_path.exists():
            return True, None
        if self._lock_fd >= 0:
            try:  # the fetcher's lock is free but no done mark: it ended without the bytes
                fcntl.flock(self._lock_fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
            except OSError:
                return False, None
            fcntl.flock(self._lock_fd, fcntl.LOCK_UN)
            if not self._done_path.exists():
                return False, "the fetch in another worker ended without the whole blob"
            return True, None
        return False, None

    async def reader(self, offset: int) -> SpoolReader:
        fd = -1
        for _ in range(500):  # another process's fetcher creates the file right after taking the lock
            try:
                fd = os.open(self.path, os.O_RDONLY)
                break
            except FileNotFoundError:
                failure = self.state()[1]
                if failure:
                    raise UpstreamUnavailable(f"blob {self.digest}: {failure}", "failing") from None
                await asyncio.sleep(POLL)
        if fd < 0:
            raise UpstreamUnavailable(f"blob {self.digest}: the fetch did not start", "failing")
        return SpoolReader(self, fd, offset)


class SpoolReader:
    """Reads a spool from an offset, waiting for bytes the fetch has not written yet."""

    def __init__(self, flight: Flight, fd: int, offset: int) -> None:
        self._flight = flight
        self._fd = fd
        self._position = offset

    async def read(self, size: int) -> bytes:
        """The next bytes. The last byte is held back until the whole blob is verified against its digest:
        a blob whose bytes are not its digest is never sent whole."""
        flight = self._flight
        wait = POLL
        while True:
            if self._position >= flight.size:
                return b""
            whole, failure = flight.state()
            if failure:
                raise UpstreamUnavailable(f"blob {flight.digest}: {failure}", "failing")
            limit = flight.size - self._position if whole else flight.size - 1 - self._position
            chunk = os.pread(self._fd, min(size, limit), self._position) if limit > 0 else b""
            if chunk:
                self._position += len(chunk)
                return chunk
            if whole:  # verified, yet shorter than promised: never pass it on as the blob
                raise UpstreamUnavailable(f"blob {flight.digest}: the upstream sent too few bytes", "failing")
            if flight.owner:
                await flight.wait()
            else:
                await asyncio.sleep(wait)
                wait = min(wait * 2, POLL_MAX)

    async def close(self) -> None:
        if self._fd >= 0:
            os.close(self._fd)
            self._fd = -1

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.close()


Fetch = Callable[[Flight], Awaitable[None]]
Ready = Callable[[], Awaitable[bool]]


class Flights:
    """The blobs being fetched now, in this process and (through the spool directory) on this host."""

    def __init__(self, spool: Path, joined: Callable[[], None] | None = None) -> None:
        self.spool = spool
        spool.mkdir(parents=True, exist_ok=True)
        self._flights: dict[str, Flight] = {}
        self._tasks: set[asyncio.Task[None]] = set()
        self._joined = joined or (lambda: None)

    def in_flight(self, digest: str) -> int | None:
        """The size of `digest` when this process is fetching it now (so a joiner need not ask upstream)."""
        flight = self._flights.get(digest)
        return flight.size if flight is not None and flight.state()[1] is None else None

    async def join(self, digest: str, size: int, fetch: Fetch, stored: Ready) -> Flight | None:
        """The flight of `digest`, started with `fetch` if nobody is fetching it; None when `stored` finds the
        blob cached meanwhile (another fetch finished just before)."""
        flight = self._flights.get(digest)
        if flight is not None and flight.state()[1] is None:
            self._joined()
            return flight
        lock_path = self.spool / f"{digest.replace(':', '-')}.lock"
        lock_fd = os.open(lock_path, os.O_RDWR | os.O_CREAT, 0o600)
        try:
            fcntl.flock(lock_fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:  # another process fetches it: read its spool
            self._joined()
            flight = Flight(self.spool, digest, size, owner=False, lock_fd=lock_fd)
            self._flights[digest] = flight
            self._forget_later(digest, flight)
            return flight
        done = self.spool / f"{digest.replace(':', '-')}.done"
        with contextlib.suppress(FileNotFoundError):
            done.unlink()
        if await stored():
            fcntl.flock(lock_fd, fcntl.LOCK_UN)
            os.close(lock_fd)
            return None
        flight = Flight(self.spool, digest, size, owner=True, lock_fd=lock_fd)
        flight.begin()
        self._flights[digest] = flight
        task = asyncio.get_running_loop().create_task(self._run(flight, fetch), name=f"fetch-{digest[:19]}")
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return flight

    async def _run(self, flight: Flight, fetch: Fetch) -> None:
        try:
            await fetch(flight)
            if not flight.done and flight.failed is None:
                flight.fail("the fetch ended without the whole blob")
        except Exception as exc:
            flight.fail(str(exc)[:300] or type(exc).__name__)
            log.warning("fetching %s from upstream failed: %s", flight.digest, exc)
        finally:
            flight.release()
            self._forget_later(flight.digest, flight)

    def _forget_later(self, digest: str, flight: Flight) -> None:
        loop = asyncio.get_running_loop()

        def forget() -> None:
            if self._flights.get(digest) is flight:
                del self._flights[digest]
            if flight.owner:
                self._remove_spool(digest)
            else:
                flight.release()

        loop.call_later(KEEP_SPOOL_SECONDS if flight.owner else KEEP_SPOOL_SECONDS * 2, forget)

    def _remove_spool(self, digest: str) -> None:
        """Remove a finished fetch's files, unless a newer fetch of the same blob (in this process or another,
        after this one failed) holds the lock and writes them now."""
        name = digest.replace(":", "-")
        try:
            lock_fd = os.open(self.spool / f"{name}.lock", os.O_RDWR)
        except OSError:
            return
        try:
            fcntl.flock(lock_fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            os.close(lock_fd)
            return
        try:
            for suffix in (".part", ".done"):
                with contextlib.suppress(OSError):
                    os.unlink(self.spool / f"{name}{suffix}")
        finally:
            fcntl.flock(lock_fd, fcntl.LOCK_UN)
            os.close(lock_fd)

    async def close(self) -> None:
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
