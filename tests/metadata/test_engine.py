"""How the SQLite database runs writes: grouped into shared transactions, each write isolated by a savepoint,
several processes queueing for one file."""

from __future__ import annotations

import asyncio
import multiprocessing
import sqlite3
from collections.abc import Callable
from pathlib import Path

import pytest
from sqlalchemy import text
from sqlalchemy.engine import Connection
from sqlalchemy.exc import IntegrityError

from portside.metadata.engine import SQLiteDatabase, migrate, open_database
from portside.metadata.store import MetadataStore


class Refused(Exception):
    pass


def _insert(value: int, fail: bool = False) -> object:
    def work(conn: Connection) -> int:
        conn.execute(text("INSERT INTO t (v) VALUES (:v)"), {"v": value})
        if fail:
            raise Refused(value)
        return value

    return work


async def _database(tmp_path: Path) -> SQLiteDatabase:
    db = open_database(f"sqlite:///{tmp_path}/engine.db")
    assert isinstance(db, SQLiteDatabase)
    await db.write(lambda conn: conn.execute(text("CREATE TABLE t (v INTEGER PRIMARY KEY)")))
    return db


async def _values(db: SQLiteDatabase) -> list[int]:
    return await db.read(lambda conn: [row[0] for row in conn.execute(text("SELECT v FROM t ORDER BY v"))])


async def test_a_failing_write_rolls_back_alone_when_grouped(tmp_path: Path) -> None:
    db = await _database(tmp_path)
    try:
        # Submitted together, these share transactions; every third one fails after its insert.
        results = await asyncio.gather(
            *(db.write(_insert(v, fail=v % 3 == 0)) for v in range(1, 61)), return_exceptions=True
        )
        for v, result in zip(range(1, 61), results, strict=True):
            if v % 3 == 0:
                assert isinstance(result, Refused)
                assert result.args == (v,)
            else:
                assert result == v
        assert await _values(db) == [v for v in range(1, 61) if v % 3]
    finally:
        await db.dispose()


async def test_a_statement_error_fails_only_its_own_write(tmp_path: Path) -> None:
    db = await _database(tmp_path)
    try:
        results = await asyncio.gather(
            db.write(_insert(1)), db.write(_insert(1)), db.write(_insert(2)), return_exceptions=True
        )
        assert results[0] == 1
        assert results[2] == 2
        assert isinstance(results[1], IntegrityError)  # the duplicate key, raised to its own caller only
        assert await _values(db) == [1, 2]
    finally:
        await db.dispose()


def _hammer(path: str, start: int, count: int) -> None:
    async def run() -> None:
        db = open_database(f"sqlite:///{path}", busy_timeout_ms=30000)
        store = MetadataStore(db)
        await asyncio.gather(
            *(store.registry.link_blob(f"repo{start}", f"sha256:{i:064x}", i) for i in range(start, start + count))
        )
        await store.close()

    asyncio.run(run())


async def test_processes_writing_one_file_lose_nothing(tmp_path: Path) -> None:
    path = str(tmp_path / "shared.db")
    db = open_database(f"sqlite:///{path}")
    await migrate(db)
    await db.dispose()
    context = multiprocessing.get_context("spawn")
    workers = [context.Process(target=_hammer, args=(path, n * 1000, 200)) for n in range(3)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join(120)
        assert worker.exitcode == 0
    with sqlite3.connect(path) as conn:
        assert conn.execute("SELECT count(*) FROM repository_blobs").fetchone() == (600,)
        assert conn.execute("PRAGMA integrity_check").fetchone() == ("ok",)


@pytest.mark.parametrize("memory", [True, False], ids=["in memory", "file"])
async def test_reads_see_committed_writes(tmp_path: Path, memory: bool) -> None:
    db = open_database("sqlite://" if memory else f"sqlite:///{tmp_path}/seen.db")
    await migrate(db)
    store = MetadataStore(db)
    try:
        await store.registry.link_blob("r", "sha256:" + "a" * 64, 3)
        assert await store.registry.repository_exists("r")
        record = await store.registry.blob_in_repository("r", "sha256:" + "a" * 64)
        assert record is not None
        assert record.size == 3
        upload = await store.uploads.create("4f6a3c1e-0000-4000-8000-000000000000", "r")
        assert await store.uploads.get(upload.id) == upload
    finally:
        await store.close()


async def test_a_write_where_the_lock_file_cannot_be_made_fails_instead_of_waiting(tmp_path: Path) -> None:
    """Each write takes an advisory lock file beside the database; when it cannot be created (a read-only or
    vanished directory) the write fails with that reason, and so does the next, instead of waiting for a
    writer thread that has died. The generous deadline only catches a hang."""
    directory = tmp_path / "gone"
    directory.mkdir()
    db = open_database(f"sqlite:///{directory / 'metadata.db'}")
    directory.rmdir()
    for _ in range(2):
        with pytest.raises(OSError, match=r"metadata\.db\.writelock"):
            await asyncio.wait_for(db.write(lambda conn: conn.execute(text("SELECT 1"))), 60)
    await db.dispose()


async def test_each_write_runs_after_its_step_and_not_at_all_when_the_step_fails(tmp_path: Path) -> None:
    """Steps (the fsyncs of what a write records) run before their group's transaction, several side by side;
    a write whose step raises fails with that error and its work never runs, the others of the group commit."""
    db = await _database(tmp_path)
    stepped: list[int] = []

    def step(value: int) -> Callable[[], None]:
        def run() -> None:
            if value % 4 == 0:
                raise OSError(f"step {value}")
            stepped.append(value)

        return run

    def insert_after_step(value: int) -> object:
        def work(conn: Connection) -> int:
            assert value in stepped, "the work ran before its step"
            conn.execute(text("INSERT INTO t (v) VALUES (:v)"), {"v": value})
            return value

        return work

    try:
        results = await asyncio.gather(
            *(db.write(insert_after_step(v), before=step(v)) for v in range(1, 41)),
            db.write(_insert(100)),
            return_exceptions=True,
        )
        for v, result in zip(range(1, 41), results, strict=False):
            if v % 4 == 0:
                assert isinstance(result, OSError)
                assert str(result) == f"step {v}"
            else:
                assert result == v
        assert results[-1] == 100
        assert await _values(db) == [v for v in range(1, 41) if v % 4] + [100]
    finally:
        await db.dispose()
