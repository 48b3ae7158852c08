"""PostgreSQL: the metadata store's statements through asyncpg.

A module of its own so that a SQLite deployment never imports asyncpg or SQLAlchemy's asyncio layer.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Sequence
from typing import Any, TypeVar

import asyncpg
from sqlalchemy import Select
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import AsyncEngine

from portside.metadata.engine import Database, Observer, Prepare, Work, _observe_queries
from portside.metadata.locks import AdvisoryDigestLocks

log = logging.getLogger("portside.metadata")
T = TypeVar("T")
WRITE_ATTEMPTS = 4
TRANSIENT = (asyncpg.exceptions.DeadlockDetectedError, asyncpg.exceptions.SerializationError)


def _transient(exc: DBAPIError) -> bool:
    cause = exc.orig.__cause__ if exc.orig is not None else None
    return isinstance(cause, TRANSIENT) or isinstance(exc.orig, TRANSIENT)


class AsyncDatabase(Database):
    """PostgreSQL: transactions through SQLAlchemy on asyncpg; the prebuilt queries straight on asyncpg.

    The hottest reads (`fetch`) skip SQLAlchemy's execution layer and its greenlet hand-off: they run on a
    pool of plain asyncpg connections, where each becomes a server-side prepared statement.
    """

    dialect = "postgresql"
    engine: AsyncEngine
    RETRIED = (OSError, asyncpg.exceptions.ConnectionDoesNotExistError, asyncpg.exceptions.InterfaceError)

    def __init__(
        self, engine: AsyncEngine, observe: Observer | None = None, pool_options: dict[str, Any] | None = None
    ) -> None:
        self.engine = engine
        self._observe = observe
        if observe is not None:
            _observe_queries(engine.sync_engine, observe)
        self._pool_options = pool_options or {}
        self._pool: asyncpg.Pool | None = None
        self._pool_lock = asyncio.Lock()
        self._lock_pool: asyncpg.Pool | None = None
        self._prepared = {}
        self.locks = AdvisoryDigestLocks(self._lock_connections)

    async def read(self, work: Work[T]) -> T:
        async with self.engine.connect() as conn:
            return await conn.run_sync(work)

    async def write(self, work: Work[T], before: Prepare | None = None) -> T:
        """One transaction; run again when the server aborted it to break a deadlock or a serialization
        conflict (the work is a function of the connection alone, so running it again is safe). `before`
        runs on a thread first: with PostgreSQL the loop does not wait on a writer thread anyway."""
        if before is not None:
            await asyncio.to_thread(before)
        for attempt in range(WRITE_ATTEMPTS):
            try:
                async with self.engine.begin() as conn:
                    return await conn.run_sync(work)
            except DBAPIError as exc:
                if attempt + 1 == WRITE_ATTEMPTS or not _transient(exc):
                    raise
                log.warning("transaction aborted by the server, run again: %s", str(exc.orig)[:200])
                await asyncio.sleep(0.01 * 2**attempt)
        raise AssertionError("unreachable")

    async def _create_pool(self) -> asyncpg.Pool:
        url = self.engine.url
        pool: asyncpg.Pool = await asyncpg.create_pool(
            user=url.username,
            password=url.password,
            host=url.host,
            port=url.port or 5432,
            database=url.database,
            **self._pool_options,
        )
        return pool

    async def _connections(self) -> asyncpg.Pool:
        if self._pool is None:
            async with self._pool_lock:
                if self._pool is None:
                    self._pool = await self._create_pool()
        return self._pool

    async def _lock_connections(self) -> asyncpg.Pool:
        """A pool of its own for digest locks, which hold a connection while the holder stores bytes."""
        if self._lock_pool is None:
            async with self._pool_lock:
                if self._lock_pool is None:
                    self._lock_pool = await self._create_pool()
        return self._lock_pool

    async def fetch(self, statement: Select[Any], params: dict[str, Any]) -> Sequence[Any]:
        prepared = self._prepare(statement)
        if prepared.expanding:
            return await super().fetch(statement, params)
        values = prepared.parameters(params)
        pool = await self._connections()
        started = time.perf_counter()
        try:
            records = await pool.fetch(prepared.sql, *values)
        except self.RETRIED:
            records = await pool.fetch(prepared.sql, *values)  # a read: safe to try once more on a new connection
        if self._observe is not None:
            self._observe("select", time.perf_counter() - started)
        return prepared.rows([tuple(r) for r in records]) if records else []

    async def dispose(self) -> None:
        for pool in (self._pool, self._lock_pool):
            if pool is not None:
                await pool.close()
        self._pool = self._lock_pool = None
        await self.engine.dispose()
