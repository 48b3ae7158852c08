"""Digest locks: blob bytes are written or removed only by the holder of their digest's lock.

A push that stores a blob decides whether the bytes are already there, writes them if not and records them,
all under the lock; garbage collection removes a blob's record and then its bytes under the same lock. So a
collection can never remove bytes that a push has just relied on or just written, whatever the timing, in any
worker of any instance. Holders of several digests take them in one order, so two never wait on each other.

- SQLite (one host): a task lock per digest inside the process, and a byte-range lock (fcntl) on
  `<database>.digestlocks` between processes; the kernel releases a dead process's locks.
- PostgreSQL: a session advisory lock per digest on a connection kept for the holder; the server releases it
  when the connection ends.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import fcntl
import os
from collections.abc import AsyncIterator, Iterable
from typing import Any


def lock_key(digest: str) -> int:
    """A 60-bit number for a digest (its first 15 hex digits): a byte offset, or an advisory lock key."""
    encoded = digest.split(":", 1)[-1]
    try:
        return int(encoded[:15], 16)
    except ValueError:
        return hash(digest) & (2**60 - 1)


class DigestLocks:
    """Locks within this process only: enough for an in-memory database, which no other process shares."""

    def __init__(self) -> None:
        self._locks: dict[int, tuple[asyncio.Lock, int]] = {}

    @contextlib.asynccontextmanager
    async def hold(self, digests: Iterable[str]) -> AsyncIterator[None]:
        """Hold the locks of `digests` (taken in one order, whoever asks)."""
        keys = sorted({lock_key(d) for d in digests})
        taken: list[int] = []
        try:
            for key in keys:
                await self._take(key)
                taken.append(key)
            async with self._shared(keys):
                yield
        finally:
            for key in reversed(taken):
                self._give(key)

    async def _take(self, key: int) -> None:
        lock, users = self._locks.get(key) or (asyncio.Lock(), 0)
        self._locks[key] = (lock, users + 1)
        try:
            await lock.acquire()
        except BaseException:
            self._forget(key)
            raise

    def _give(self, key: int) -> None:
        self._locks[key][0].release()
        self._forget(key)

    def _forget(self, key: int) -> None:
        lock, users = self._locks[key]
        if users <= 1:
            del self._locks[key]
        else:
            self._locks[key] = (lock, users - 1)

    @contextlib.asynccontextmanager
    async def _shared(self, keys: list[int]) -> AsyncIterator[None]:
        """The same locks between processes (this process's tasks already hold them among themselves)."""
        yield

    async def close(self) -> None:
        return None


class FileDigestLocks(DigestLocks):
    """Byte-range locks on one file, shared by the processes of one host."""

    def __init__(self, path: str) -> None:
        super().__init__()
        self._path = path
        self._fd = -1
        self._pid = -1

    def _file(self) -> int:
        # One descriptor per process, opened after any fork, and kept: closing any descriptor of the file
        # would drop every lock this process holds on it.
        if self._fd < 0 or self._pid != os.getpid():
            self._fd = os.open(self._path, os.O_RDWR | os.O_CREAT, 0o644)
            self._pid = os.getpid()
        return self._fd

    @contextlib.asynccontextmanager
    async def _shared(self, keys: list[int]) -> AsyncIterator[None]:
        fd = self._file()
        locked: list[int] = []
        try:
            for key in keys:
                try:
                    fcntl.lockf(fd, fcntl.LOCK_EX | fcntl.LOCK_NB, 1, key)
                except OSError:  # another process holds it: wait for it on a thread, not on the loop
                    await _wait_for(fd, key)
                locked.append(key)
            yield
        finally:
            for key in locked:
                fcntl.lockf(fd, fcntl.LOCK_UN, 1, key)

    async def close(self) -> None:
        if self._fd >= 0 and self._pid == os.getpid():
            os.close(self._fd)
        self._fd = -1


async def _wait_for(fd: int, key: int) -> None:
    """Block on a thread until the byte is ours. The kernel answers EDEADLK when the wait would close a cycle
    of processes waiting on each other, but it knows only processes: a task of this process waiting for a
    byte another process holds, while that process waits for a byte a different task of ours holds, looks
    like one, though our holder waits for nothing and will let go (holders take their keys in one order, so
    no true cycle exists). So EDEADLK means "try again shortly", never failure."""
    delay = 0.001
    while True:
        try:
            await asyncio.to_thread(fcntl.lockf, fd, fcntl.LOCK_EX, 1, key)
            return
        except OSError as exc:
            if exc.errno != errno.EDEADLK:
                raise
            await asyncio.sleep(delay)
            delay = min(delay * 2, 0.05)


class AdvisoryDigestLocks(DigestLocks):
    """PostgreSQL advisory locks, held on one connection of their own for as long as the holder needs them."""

    def __init__(self, pool: Any) -> None:
        super().__init__()
        self._pool = pool

    @contextlib.asynccontextmanager
    async def _shared(self, keys: list[int]) -> AsyncIterator[None]:
        pool = await self._pool()
        async with pool.acquire() as connection:
            locked: list[int] = []
            try:
                for key in keys:
                    await connection.execute("SELECT pg_advisory_lock($1)", key)
                    locked.append(key)
                yield
            finally:
                if locked:
                    await connection.execute("SELECT pg_advisory_unlock(k) FROM unnest($1::bigint[]) AS k", locked)
