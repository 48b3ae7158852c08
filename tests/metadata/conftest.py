"""Metadata store fixtures: every test runs against SQLite and against PostgreSQL.

PostgreSQL comes from `PORTSIDE_TEST_POSTGRES` (a DSN of a user allowed to create databases; scripts/test
starts the server and sets it). Each test gets a database of its own, dropped afterwards.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from sqlalchemy.engine import make_url

from portside.metadata.engine import migrate, open_database
from portside.metadata.store import MetadataStore

POSTGRES_ENV = "PORTSIDE_TEST_POSTGRES"


def postgres_admin_dsn() -> str:
    dsn = os.environ.get(POSTGRES_ENV)
    if not dsn:
        pytest.fail(f"{POSTGRES_ENV} is not set: scripts/test starts PostgreSQL and sets it")
    return dsn


async def _admin(sql: str) -> None:
    import asyncpg

    url = make_url(postgres_admin_dsn())
    conn = await asyncpg.connect(
        user=url.username, password=url.password, host=url.host, port=url.port or 5432, database=url.database
    )
    try:
        await conn.execute(sql)
    finally:
        await conn.close()


@pytest.fixture(params=["sqlite", "postgresql"])
async def store_dsn(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[str]:
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path}/metadata.db"
        return
    name = f"portside_test_{uuid.uuid4().hex[:12]}"
    await _admin(f'CREATE DATABASE "{name}"')
    try:
        yield make_url(postgres_admin_dsn()).set(database=name).render_as_string(hide_password=False)
    finally:
        await _admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture
async def store(store_dsn: str) -> AsyncIterator[MetadataStore]:
    db = open_database(store_dsn)
    await migrate(db)
    s = MetadataStore(db)
    yield s
    await s.close()
