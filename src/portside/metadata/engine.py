"""Where the metadata store's statements run: SQLite on the event loop's own thread, PostgreSQL through asyncpg.

The store writes every operation as a plain function of a SQLAlchemy `Connection`; a `Database` runs it.

- SQLite (`SQLiteDatabase`): reads run directly on the event loop thread on a connection of their own. A WAL
  reader never waits for a writer and a lookup takes microseconds, far less than handing it to a thread
  would. Writes run on one writer thread, so waiting for the database lock never blocks the loop, grouped
  into shared transactions (group commit, one savepoint per write). Transactions begin with
  `BEGIN IMMEDIATE`, taking the write lock first, so concurrent writers queue instead of failing on a lock
  upgrade. `synchronous=NORMAL`: a commit survives any crash of the process; on power loss the last
  commits may be lost, which leaves the store consistent because bytes are made durable before the
  metadata that refers to them (see docs/architecture.md).
- PostgreSQL (`portside.metadata.postgres.AsyncDatabase`): an asyncpg engine; the same functions run through
  `run_sync`.
"""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import os
import queue
import threading
import time
from collections import namedtuple
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import AbstractContextManager
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Generic, TypeVar

from sqlalchemy import Executable, Select, event
from sqlalchemy import create_engine as create_sync_engine
from sqlalchemy.engine import Connection, Dialect, Engine, make_url
from sqlalchemy.pool import StaticPool
from sqlalchemy.sql import ClauseElement
from sqlalchemy.sql.compiler import SQLCompiler

from portside.metadata.locks import DigestLocks, FileDigestLocks

if TYPE_CHECKING:
    from alembic.config import Config as AlembicConfig

T = TypeVar("T")
Work = Callable[[Connection], T]
Observer = Callable[[str, float], None]
Prepare = Callable[[], None]


def dialect_insert(dialect: str) -> Any:
    """The dialect's INSERT construct, which has ON CONFLICT (SQLite and PostgreSQL spell it alike); only the
    dialect in use is imported."""
    if dialect == "postgresql":
        from sqlalchemy.dialects import postgresql

        return postgresql.insert
    from sqlalchemy.dialects import sqlite

    return sqlite.insert


def _verb(sql: str) -> str:
    """A statement's label in the query metrics: select, insert, update, delete or other."""
    verb = sql.lstrip().split(" ", 1)[0].lower()
    return verb if verb in ("select", "insert", "update", "delete") else "other"


def _observe_queries(engine: Engine, observe: Observer) -> None:
    """Time every statement, labelled by its verb (select, insert, update, delete, other)."""

    @event.listens_for(engine, "before_cursor_execute")
    def _before(conn: Connection, cursor: Any, statement: str, *args: Any) -> None:
        conn.info.setdefault("portside_started", []).append(time.perf_counter())

    @event.listens_for(engine, "after_cursor_execute")
    def _after(conn: Connection, cursor: Any, statement: str, *args: Any) -> None:
        started = conn.info["portside_started"].pop()
        observe(_verb(statement), time.perf_counter() - started)


class Database:
    """Runs store operations; `read` for queries, `write` for transactions, `fetch` for prebuilt queries."""

    dialect: str = ""
    engine: Any
    locks: DigestLocks
    """Who may write or remove a blob's bytes now (metadata/locks.py)."""
    _prepared: dict[Executable, _Prepared]

    def _prepare(self, statement: Executable) -> _Prepared:
        """A prebuilt statement compiled once for this database (the dict holds the statements, so none is
        mistaken for another)."""
        prepared = self._prepared.get(statement)
        if prepared is None:
            prepared = self._prepared[statement] = _Prepared(statement, self.engine.dialect)
        return prepared

    async def read(self, work: Work[T]) -> T:
        raise NotImplementedError

    async def fetch(self, statement: Select[Any], params: dict[str, Any]) -> Sequence[Any]:
        """The rows of a query built once and run often (attribute access by column key)."""
        return await self.read(lambda conn: conn.execute(statement, params).all())

    def execute(
        self, conn: Connection, statement: Executable, params: dict[str, Any] | list[dict[str, Any]]
    ) -> Outcome:
        """Run a statement built once inside a `read` or `write` (a list of parameter sets runs it for each)."""
        result = conn.execute(statement, params)
        return Outcome(result.all() if result.returns_rows else [], result.rowcount)

    async def write(self, work: Work[T], before: Prepare | None = None) -> T:
        """Run `work` in one transaction. `before` is a blocking step that must be done first (making the
        bytes the transaction records durable); it runs off the event loop, and when it raises, the write
        fails with its error and `work` never runs."""
        raise NotImplementedError

    async def run_sync_write(self, work: Work[T]) -> T:
        """A write whose work may call code that is not SQLAlchemy's (migrations)."""
        return await self.write(work)

    async def dispose(self) -> None:
        raise NotImplementedError


@dataclass
class _Job(Generic[T]):
    work: Work[T]
    future: asyncio.Future[T]
    before: Prepare | None = None


Settled = tuple[asyncio.Future[Any], Any, BaseException | None]


def _run_steps(jobs: list[_Job[Any]]) -> dict[asyncio.Future[Any], tuple[Any, BaseException | None]]:
    """Run the jobs' `before` steps one after another; the jobs whose step failed, with their errors."""
    failed: dict[asyncio.Future[Any], tuple[Any, BaseException | None]] = {}
    for job in jobs:
        try:
            if job.before is not None:
                job.before()
        except Exception as exc:
            failed[job.future] = (None, exc)
    return failed


def _settle(settled: list[Settled]) -> None:
    """On the waiting loop: hand every write of a group its outcome (one wake-up of the loop per group)."""
    for future, result, error in settled:
        if future.cancelled():
            continue
        if error is not None:
            future.set_exception(error)
        else:
            future.set_result(result)


@dataclass
class Outcome:
    """What a statement run by `Database.execute` gave: its rows (for a query or RETURNING) and rowcount."""

    rows: Sequence[Any]
    rowcount: int

    def scalar(self) -> Any:
        return self.rows[0][0] if self.rows else None


class _Prepared:
    """A statement compiled once for SQLite, run straight on the driver's cursor.

    SQLAlchemy's execution layer costs tens of microseconds a statement, more than SQLite takes to answer a
    lookup by key or to insert a row; the registry's hottest statements skip it. Parameters and results still
    go through each column type's own processors, so values are what SQLAlchemy would give. An expanding
    parameter (`IN`) gets one placeholder per value at run time.
    """

    def __init__(self, statement: Executable, dialect: Dialect) -> None:
        assert isinstance(statement, ClauseElement)
        compiled = statement.compile(dialect=dialect)
        assert isinstance(compiled, SQLCompiler)
        self.sql = compiled.string
        names = list(compiled.positiontup or ())
        binds = [compiled.binds[name] for name in names]
        self.names = names
        self.expanding = {n for n, b in zip(names, binds, strict=True) if b.expanding}
        self.defaults: dict[str, Any] = {
            n: b.effective_value for n, b in zip(names, binds, strict=True) if not b.required
        }
        self.bind_processors = [b.type.dialect_impl(dialect).bind_processor(dialect) for b in binds]
        columns = list(getattr(statement, "exported_columns", ()))
        self.result_processors = [c.type.dialect_impl(dialect).result_processor(dialect, None) for c in columns]
        self.plain = not any(self.result_processors)
        self.row: Any = namedtuple("Row", [c.key for c in columns]) if columns else None

    def parameters(self, params: dict[str, Any]) -> list[Any]:
        values: list[Any] = []
        for name, process in zip(self.names, self.bind_processors, strict=True):
            value = params[name] if name in params else self.defaults[name]
            if name in self.expanding:
                values.extend(value if process is None else map(process, value))
            else:
                values.append(value if process is None else process(value))
        return values

    def sql_for(self, params: dict[str, Any]) -> str:
        sql: str = self.sql
        for name in self.expanding:
            count = len(params[name])
            placeholders = ", ".join("?" * count) if count else "NULL"  # IN (NULL) matches nothing
            sql = sql.replace(f"__[POSTCOMPILE_{name}]", placeholders)
        return sql

    def rows(self, raw: list[tuple[Any, ...]]) -> list[Any]:
        make = self.row._make
        if self.plain:
            return [make(r) for r in raw]
        processors = self.result_processors
        return [make(v if p is None else p(v) for p, v in zip(processors, r, strict=True)) for r in raw]

    def run(self, driver: Any, params: dict[str, Any] | list[dict[str, Any]]) -> Outcome:
        if isinstance(params, list):
            cursor = driver.executemany(self.sql, [self.parameters(p) for p in params])
            return Outcome([], cursor.rowcount)
        cursor = driver.execute(self.sql_for(params) if self.expanding else self.sql, self.parameters(params))
        raw = cursor.fetchall() if self.row is not None else []
        return Outcome(self.rows(raw) if raw else [], cursor.rowcount)


class SQLiteDatabase(Database):
    """Reads inline on the calling thread; writes grouped into shared transactions on one writer thread.

    Group commit: the writer takes every write waiting when it is free and runs them in one transaction, each
    inside its own savepoint, so one failing write rolls back alone. Taking the lock and committing once per
    group instead of once per write is what lets many concurrent pushes share one SQLite file. Worker
    processes queue for the write lock on an advisory file lock, which wakes the next writer the moment the
    lock is free; SQLite's own busy handler (still there for other processes) polls with growing sleeps.
    """

    dialect = "sqlite"
    engine: Engine
    MAX_GROUP = 64
    DURABLE_STREAMS = 2

    def __init__(self, path: str | None, busy_timeout_ms: int, observe: Observer | None = None) -> None:
        memory = path is None
        if not memory:
            assert path is not None
            Path(os.path.dirname(os.path.abspath(path))).mkdir(parents=True, exist_ok=True)
        url = "sqlite://" if memory else f"sqlite:///{path}"
        # In memory, one connection is the database; elsewhere each thread gets its own.
        kwargs: dict[str, Any] = {"poolclass": StaticPool} if memory else {"pool_size": 4, "max_overflow": 4}
        self.engine = create_sync_engine(url, connect_args={"check_same_thread": False}, **kwargs)

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
        # An in-memory database is one connection, shared by the reading thread and the writer thread.
        self._lock: AbstractContextManager[Any] = threading.Lock() if memory else contextlib.nullcontext()
        self._lock_path = None if memory else f"{os.path.abspath(path or '')}.writelock"
        self.locks = DigestLocks() if memory else FileDigestLocks(f"{os.path.abspath(path or '')}.digestlocks")
        self._reader: Connection | None = None
        self._prepared = {}
        self._observe = observe
        self._jobs: queue.SimpleQueue[list[_Job[Any]] | None] = queue.SimpleQueue()
        self._pending: dict[asyncio.AbstractEventLoop, list[_Job[Any]]] = {}
        self._writer: threading.Thread | None = None
        self._write_conn: Connection | None = None
        self._durability: ThreadPoolExecutor | None = None

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

    async def fetch(self, statement: Select[Any], params: dict[str, Any]) -> Sequence[Any]:
        prepared = self._prepare(statement)
        started = time.perf_counter()
        with self._lock:
            outcome = prepared.run(self._reading().connection.dbapi_connection, params)
        if self._observe is not None:
            self._observe("select", time.perf_counter() - started)
        return outcome.rows

    def execute(
        self, conn: Connection, statement: Executable, params: dict[str, Any] | list[dict[str, Any]]
    ) -> Outcome:
        prepared = self._prepare(statement)
        started = time.perf_counter()
        outcome = prepared.run(conn.connection.dbapi_connection, params)
        if self._observe is not None:
            self._observe(_verb(prepared.sql), time.perf_counter() - started)
        return outcome

    async def write(self, work: Work[T], before: Prepare | None = None) -> T:
        if self._writer is None:
            # Opened here, so a directory where the lock file cannot be made fails this write (an OSError naming
            # the file) instead of ending the writer thread with every write left waiting.
            lock_fd = os.open(self._lock_path, os.O_RDWR | os.O_CREAT, 0o644) if self._lock_path else -1
            self._writer = threading.Thread(target=self._write_loop, args=(lock_fd,), name="sqlite-writer", daemon=True)
            self._writer.start()
        loop = asyncio.get_running_loop()
        future: asyncio.Future[T] = loop.create_future()
        pending = self._pending.get(loop)
        if pending is None:
            # The writes a turn of the loop makes are handed to the writer together, once the turn is over:
            # one wake-up of the writer thread for all of them.
            pending = self._pending[loop] = []
            loop.call_soon(self._hand_over, loop)
        pending.append(_Job(work, future, before))
        return await future

    def _hand_over(self, loop: asyncio.AbstractEventLoop) -> None:
        jobs = self._pending.pop(loop, None)
        if jobs:
            self._jobs.put(jobs)

    def _write_loop(self, lock_fd: int) -> None:
        try:
            while True:
                jobs = self._jobs.get()
                if jobs is None:
                    return
                group = list(jobs)
                with contextlib.suppress(queue.Empty):
                    while len(group) < self.MAX_GROUP:
                        more = self._jobs.get_nowait()
                        if more is None:
                            self._jobs.put(None)  # stop after this group
                            break
                        group.extend(more)
                settled = self._prepare_group(group)
                group = [job for job in group if job.future not in settled]
                if group:
                    try:
                        if lock_fd >= 0:
                            fcntl.flock(lock_fd, fcntl.LOCK_EX)
                        try:
                            outcomes = self._run_group(group)
                        finally:
                            if lock_fd >= 0:
                                fcntl.flock(lock_fd, fcntl.LOCK_UN)
                    except OSError as exc:  # the lock itself failed: so did every write of the group
                        outcomes = [(None, exc)] * len(group)
                    settled.update((job.future, outcome) for job, outcome in zip(group, outcomes, strict=True))
                self._wake(settled)
        finally:
            if self._write_conn is not None:
                with contextlib.suppress(Exception):
                    self._write_conn.close()
                self._write_conn = None
            if lock_fd >= 0:
                os.close(lock_fd)

    def _prepare_group(self, group: list[_Job[Any]]) -> dict[asyncio.Future[Any], tuple[Any, BaseException | None]]:
        """Run the group's `before` steps (fsyncs of the bytes its writes record), outside the write lock so
        other processes write meanwhile; the writes whose step failed, with their errors.

        The steps run in `DURABLE_STREAMS` streams side by side, the writer running one itself: a disk
        completes concurrent fsyncs in shared journal commits, where one after another each waits for its
        own. Measured on the reference machine under load, for 16 small blobs: 2.0 ms a blob in one stream,
        0.68 in two, 0.66 in four, 0.42 with 16 threads. Two streams take most of the gain for one thread
        wake-up a group; four measured 33 futex calls a push against 16 to 19 with two (benchmarks.syscalls).
        """
        steps = [job for job in group if job.before is not None]
        if not steps:
            return {}
        streams = [steps[i :: self.DURABLE_STREAMS] for i in range(min(len(steps), self.DURABLE_STREAMS))]
        if len(streams) > 1 and self._durability is None:
            self._durability = ThreadPoolExecutor(self.DURABLE_STREAMS - 1, thread_name_prefix="sqlite-durable")
        helpers = [self._durability.submit(_run_steps, stream) for stream in streams[1:]] if self._durability else []
        failed = _run_steps(streams[0])
        for helper in helpers:
            failed.update(helper.result())
        return failed

    @staticmethod
    def _wake(settled: dict[asyncio.Future[Any], tuple[Any, BaseException | None]]) -> None:
        """Hand the outcomes to the waiting loops, one call per loop for the whole group."""
        by_loop: dict[asyncio.AbstractEventLoop, list[Settled]] = {}
        for future, (result, error) in settled.items():
            by_loop.setdefault(future.get_loop(), []).append((future, result, error))
        for loop, outcomes in by_loop.items():
            with contextlib.suppress(RuntimeError):  # the waiting loop has closed
                loop.call_soon_threadsafe(_settle, outcomes)

    def _writing(self) -> Connection:
        """The writer thread's connection, kept from group to group (dropped after a failed transaction)."""
        if self._write_conn is None or self._write_conn.closed:
            self._write_conn = self.engine.connect()
        return self._write_conn

    def _run_group(self, group: list[_Job[Any]]) -> list[tuple[Any, BaseException | None]]:
        """One transaction for the whole group; a write that raises is rolled back to its savepoint alone.

        Savepoints go straight to the driver: SQLAlchemy's execution layer would only add time during which
        the writer holds the interpreter the event loop is waiting for.
        """
        single = len(group) == 1
        outcomes: list[tuple[Any, BaseException | None]] = []
        try:
            with self._lock:
                conn = self._writing()
                driver = conn.connection.dbapi_connection
                assert driver is not None
                conn.exec_driver_sql("BEGIN IMMEDIATE")  # SQLAlchemy's too: work may ask whether one is open
                try:
                    for job in group:
                        if not single:
                            driver.execute("SAVEPOINT portside_write")
                        try:
                            result = job.work(conn)
                        except Exception as exc:
                            if single:
                                raise
                            driver.execute("ROLLBACK TO portside_write")
                            driver.execute("RELEASE portside_write")
                            outcomes.append((None, exc))
                            continue
                        if not single:
                            driver.execute("RELEASE portside_write")
                        outcomes.append((result, None))
                except BaseException:
                    conn.exec_driver_sql("ROLLBACK")
                    raise
                conn.exec_driver_sql("COMMIT")
                conn.rollback()  # ends SQLAlchemy's idea of the transaction; the database's is over
        except BaseException as exc:  # the transaction itself failed: every write in it failed
            if self._write_conn is not None:
                with contextlib.suppress(Exception):
                    self._write_conn.close()
                self._write_conn = None
            return [(None, exc)] * len(group)
        return outcomes

    async def dispose(self) -> None:
        await self.locks.close()
        if self._reader is not None:
            self._reader.close()
        if self._writer is not None:
            for loop in list(self._pending):  # writes not handed over yet go before the stop
                self._hand_over(loop)
            self._jobs.put(None)
            await asyncio.to_thread(self._writer.join)
            self._writer = None
        if self._durability is not None:
            self._durability.shutdown(wait=True)
            self._durability = None
        self.engine.dispose()


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
        # Imported here: asyncpg and SQLAlchemy's asyncio layer cost a worker some 20 MiB it needs only here.
        from sqlalchemy.ext.asyncio import create_async_engine

        from portside.metadata.postgres import AsyncDatabase

        engine = create_async_engine(
            url.set(drivername="postgresql+asyncpg"),
            pool_pre_ping=True,
            pool_size=pool_size,
            max_overflow=max_overflow,
            pool_recycle=pool_recycle,
            connect_args={"timeout": connect_timeout},
        )
        pool_options = {
            "min_size": 0,
            "max_size": max(1, pool_size + max_overflow),
            "max_inactive_connection_lifetime": float(pool_recycle),
            "timeout": connect_timeout,
        }
        return AsyncDatabase(engine, observe, pool_options)
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


async def migrate_if_behind(database: Database) -> None:
    """Bring the schema up to date unless it already is (one query, and Alembic is not even loaded)."""
    from sqlalchemy import text

    from portside.metadata.migrations import LATEST

    def read(connection: Connection) -> str | None:
        try:
            return connection.execute(text("SELECT version_num FROM alembic_version")).scalar()
        except Exception:  # no schema yet
            return None

    if await database.read(read) != LATEST:
        await migrate(database)


async def current_revision(database: Database) -> str | None:
    def read(connection: Connection) -> str | None:
        from alembic.runtime.migration import MigrationContext

        return MigrationContext.configure(connection).get_current_revision()

    return await database.read(read)
