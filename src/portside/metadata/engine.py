"""Where the metadata store's statements run: SQLite on the event loop's own thread, PostgreSQL through asyncpg.

The store writes every operation as a plain function of a SQLAlchemy `Connection`; a `Database` runs it.

- SQLite (`SQLiteDatabase`): reads run directly on the event loop thread on a connection of their own. A WAL
  reader never waits for a writer and a lookup takes microseconds, far less than handing it to a thread
  would. A write transaction runs whole on a writer thread, so waiting for the database lock (the busy
  timeout) never blocks the loop, and it costs one hand-off, not one per statement. Writes begin with
  `BEGIN IMMEDIATE`, taking the write lock first, so concurrent writers queue instead of failing on a lock
  upgrade. `synchronous=NORMAL`: a commit survives any crash of the process; on power loss the last
  commits may be lost, which leaves the store consistent because bytes are made durable before the
  metadata that refers to them (see docs/architecture.md).
- PostgreSQL (`AsyncDatabase`): an asyncpg engine; the same functions run through `run_sync`.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from contextlib import AbstractContextManager
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

from sqlalchemy import create_engine as create_sync_engine
from sqlalchemy import event
from sqlalchemy.engine import Connection, Engine, make_url
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine
from sqlalchemy.pool import StaticPool

if TYPE_CHECKING:
    from alembic.config import Config as AlembicConfig

T = TypeVar("T")
Work = Callable[[Connection], T]
Observer = Callable[[str, float], None]


def _observe_queries(engine: Engine, observe: Observer) -> None:
    """Time every statement, labelled by its verb (select, insert, update, delete, other)."""

    @event.listens_for(engine, "before_cursor_execute")
    def _before(conn: Connection, cursor: Any, statement: str, *args: Any) -> None:
        conn.info.setdefault("portside_started", []).append(time.perf_counter())

    @event.listens_for(engine, "after_cursor_execute")
    def _after(conn: Connection, cursor: Any, statement: str, *args: Any) -> None:
        started = conn.info["portside_started"].pop()
        verb = statement.lstrip().split(" ", 1)[0].lower()
        observe(verb if verb in ("select", "insert", "update", "delete") else "other", time.perf_counter() - started)


class Database:
    """Runs store operations; `read` for queries, `write` for transactions."""

    dialect: str = ""

    async def read(self, work: Work[T]) -> T:
        raise NotImplementedError

    async def write(self, work: Work[T]) -> T:
        raise NotImplementedError

    async def run_sync_write(self, work: Work[T]) -> T:
        """A write whose work may call code that is not SQLAlchemy's (migrations)."""
        return await self.write(work)

    async def dispose(self) -> None:
        raise NotImplementedError


class SQLiteDatabase(Database):
    dialect = "sqlite"

    def __init__(self, path: str | None, busy_timeout_ms: int, observe: Observer | None = None) -> None:
        memory = path is None
        if not memory:
            assert path is not None
            Path(os.path.dirname(os.path.abspath(path))).mkdir(parents=True, exist_ok=True)
        url = "sqlite://" if memory else f"sqlite:///{path}"
        # In memory, one connection is the database; elsewhere each thread gets its own.
        kwargs: dict[str, Any] = {"poolclass": StaticPool} if memory else {"pool_size": 4, "max_overflow": 4}
        self.engine = create_sync_engine(url, connect_args={"check_same_thread": False}, **kwargs)
        self._memory = memory

        @event.listens_for(self.engine, "connect")
        def _on_connect(dbapi_connection: Any, _record: Any) -> None:
            dbapi_connection.isolation_level = None  # Portside issues BEGIN itself
            cursor = dbapi_connection.cursor()
            if not memory:
                cursor.execute("PRAGMA journal_mode=WAL")
            cursor.execute("PRAGMA synchronous=NORMAL")
            cursor.execute("PRAGMA foreign_keys=ON")
            cursor.execute(f"PRAGMA busy_timeout={int(busy_timeout_ms)}")
            cursor.close()

        if observe is not None:
            _observe_queries(self.engine, observe)
        self._writer = ThreadPoolExecutor(max_workers=1, thread_name_prefix="sqlite-writer")
        # An in-memory database is one connection, shared by the loop thread and the writer thread.
        self._lock: AbstractContextManager[Any] = threading.Lock() if memory else contextlib.nullcontext()
        self._reader: Connection | None = None

    def _reading(self) -> Connection:
        if self._reader is None or self._reader.closed:
            self._reader = self.engine.connect()
        return self._reader

    async def read(self, work: Work[T]) -> T:
        with self._lock:
            conn = self._reading()
            try:
                return work(conn)
            finally:
                # Without BEGIN each statement reads its own snapshot; end whatever SQLAlchemy began.
                conn.rollback()

    def _transaction(self, work: Work[T]) -> T:
        with self._lock, self.engine.connect() as conn:
            conn.exec_driver_sql("BEGIN IMMEDIATE")
            try:
                result = work(conn)
            except BaseException:
                conn.exec_driver_sql("ROLLBACK")
                raise
            conn.exec_driver_sql("COMMIT")
            return result

    async def write(self, work: Work[T]) -> T:
        return await asyncio.get_running_loop().run_in_executor(self._writer, self._transaction, work)

    async def dispose(self) -> None:
        if self._reader is not None:
            self._reader.close()
        self._writer.shutdown(wait=True)
        self.engine.dispose()


class AsyncDatabase(Database):
    dialect = "postgresql"

    def __init__(self, engine: AsyncEngine, observe: Observer | None = None) -> None:
        self.engine = engine
        if observe is not None:
            _observe_queries(engine.sync_engine, observe)

    async def read(self, work: Work[T]) -> T:
        async with self.engine.connect() as conn:
            return await conn.run_sync(work)

    async def write(self, work: Work[T]) -> T:
        async with self.engine.begin() as conn:
            return await conn.run_sync(work)

    async def dispose(self) -> None:
        await self.engine.dispose()


def open_database(
    dsn: str,
    busy_timeout_ms: int = 30000,
    observe: Observer | None = None,
    pool_size: int = 5,
    max_overflow: int = 5,
    pool_recycle: int = 1800,
    connect_timeout: float = 10.0,
) -> Database:
    """The database for `dsn`: sqlite:///PATH, sqlite:// (in memory) or postgresql://..."""
    url = make_url(dsn)
    if url.drivername in ("sqlite", "sqlite+pysqlite"):
        path = url.database if url.database not in (None, "", ":memory:") else None
        return SQLiteDatabase(path, busy_timeout_ms, observe)
    if url.drivername in ("postgresql", "postgresql+asyncpg"):
        engine = create_async_engine(
            url.set(drivername="postgresql+asyncpg"),
            pool_pre_ping=True,
            pool_size=pool_size,
            max_overflow=max_overflow,
            pool_recycle=pool_recycle,
            connect_args={"timeout": connect_timeout},
        )
        return AsyncDatabase(engine, observe)
    raise ValueError(f"unsupported database {url.drivername!r}: use sqlite:///PATH or postgresql://...")


def _alembic_config(connection: Connection) -> AlembicConfig:
    # Alembic is imported only where migrations run, so serving processes do not carry it.
    from alembic.config import Config as AlembicConfig

    config = AlembicConfig()
    config.set_main_option("script_location", str(Path(__file__).parent / "migrations"))
    config.attributes["connection"] = connection
    return config


async def migrate(database: Database, revision: str = "head") -> None:
    """Bring the schema up to `revision`; safe from several processes (the write lock serialises them)."""

    def upgrade(connection: Connection) -> None:
        from alembic import command

        command.upgrade(_alembic_config(connection), revision)

    await database.write(upgrade)


async def current_revision(database: Database) -> str | None:
    def read(connection: Connection) -> str | None:
        from alembic.runtime.migration import MigrationContext

        return MigrationContext.configure(connection).get_current_revision()

    return await database.read(read)
