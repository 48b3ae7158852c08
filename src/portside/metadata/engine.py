"""Database engines for the metadata store, and schema migrations.

SQLite runs in WAL mode with foreign keys on. Its driver's own transaction handling is switched off so that
Portside decides how a transaction begins: `BEGIN IMMEDIATE` for writes (take the write lock first, so two
writers queue on the busy timeout instead of failing on a lock upgrade), a plain `BEGIN` for reads.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from sqlalchemy import event
from sqlalchemy.engine import Connection, make_url
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine
from sqlalchemy.pool import StaticPool

if TYPE_CHECKING:
    from alembic.config import Config as AlembicConfig

WRITE_OPTION = "portside_write"
_ASYNC_DRIVERS = {"sqlite": "sqlite+aiosqlite", "postgresql": "postgresql+asyncpg"}


def async_url(dsn: str) -> str:
    url = make_url(dsn)
    driver = _ASYNC_DRIVERS.get(url.drivername)
    if driver is None and url.drivername not in _ASYNC_DRIVERS.values():
        raise ValueError(f"unsupported database {url.drivername!r}: use sqlite:///PATH or postgresql://...")
    return url.set(drivername=driver or url.drivername).render_as_string(hide_password=False)


def _observe_queries(engine: AsyncEngine, observe: Callable[[str, float], None]) -> None:
    """Time every statement, labelled by its verb (select, insert, update, delete, other)."""

    @event.listens_for(engine.sync_engine, "before_cursor_execute")
    def _before(conn: Connection, cursor: Any, statement: str, *args: Any) -> None:
        conn.info.setdefault("portside_started", []).append(time.perf_counter())

    @event.listens_for(engine.sync_engine, "after_cursor_execute")
    def _after(conn: Connection, cursor: Any, statement: str, *args: Any) -> None:
        started = conn.info["portside_started"].pop()
        verb = statement.lstrip().split(" ", 1)[0].lower()
        observe(verb if verb in ("select", "insert", "update", "delete") else "other", time.perf_counter() - started)


def create_engine(
    dsn: str,
    busy_timeout_ms: int = 30000,
    observe: Callable[[str, float], None] | None = None,
    **pool: Any,
) -> AsyncEngine:
    """An engine for `dsn` (sqlite:///PATH, sqlite:// in memory, postgresql://...), with optional timing of
    every statement; `pool` takes pool_size, max_overflow, pool_recycle and connect_timeout."""
    engine = _create_engine(dsn, busy_timeout_ms, **pool)
    if observe is not None:
        _observe_queries(engine, observe)
    return engine


def _create_engine(
    dsn: str,
    busy_timeout_ms: int,
    pool_size: int = 5,
    max_overflow: int = 5,
    pool_recycle: int = 1800,
    connect_timeout: float = 10.0,
) -> AsyncEngine:
    url = make_url(async_url(dsn))
    if not url.drivername.startswith("sqlite"):
        return create_async_engine(
            url,
            pool_pre_ping=True,
            pool_size=pool_size,
            max_overflow=max_overflow,
            pool_recycle=pool_recycle,
            connect_args={"timeout": connect_timeout},
        )

    memory = url.database in (None, "", ":memory:")
    if memory:
        engine = create_async_engine(url, poolclass=StaticPool, connect_args={"check_same_thread": False})
    else:
        Path(os.path.dirname(os.path.abspath(str(url.database)))).mkdir(parents=True, exist_ok=True)
        engine = create_async_engine(url, pool_size=pool_size, max_overflow=max_overflow)

    @event.listens_for(engine.sync_engine, "connect")
    def _on_connect(dbapi_connection: Any, _record: Any) -> None:
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        if not memory:
            cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("PRAGMA synchronous=FULL")
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.execute(f"PRAGMA busy_timeout={int(busy_timeout_ms)}")
        cursor.close()

    @event.listens_for(engine.sync_engine, "begin")
    def _on_begin(connection: Connection) -> None:
        write = connection.get_execution_options().get(WRITE_OPTION)
        connection.exec_driver_sql("BEGIN IMMEDIATE" if write else "BEGIN")

    return engine


def _alembic_config(connection: Connection) -> AlembicConfig:
    # Alembic is imported only where migrations run, so serving processes do not carry it.
    from alembic.config import Config as AlembicConfig

    config = AlembicConfig()
    config.set_main_option("script_location", str(Path(__file__).parent / "migrations"))
    config.attributes["connection"] = connection
    return config


async def migrate(engine: AsyncEngine, revision: str = "head") -> None:
    """Bring the schema up to `revision`; safe to run from several processes (the write lock serialises)."""

    def upgrade(connection: Connection) -> None:
        from alembic import command

        command.upgrade(_alembic_config(connection), revision)

    async with engine.connect() as conn:
        conn = await conn.execution_options(**{WRITE_OPTION: True})
        await conn.run_sync(upgrade)
        await conn.commit()


async def current_revision(engine: AsyncEngine) -> str | None:
    from alembic.runtime.migration import MigrationContext

    def read(connection: Connection) -> str | None:
        return MigrationContext.configure(connection).get_current_revision()

    async with engine.connect() as conn:
        return await conn.run_sync(read)
