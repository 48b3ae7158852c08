"""Fixtures of the import tests: Go registries writing stores, and PostgreSQL databases of their own."""

from __future__ import annotations

import os
import uuid
from collections.abc import AsyncIterator, Callable, Iterator
from typing import Any

import pytest
from sqlalchemy.engine import make_url

from tests.importer.support import GoRegistry

GoFactory = Callable[[dict[str, Any]], GoRegistry]


@pytest.fixture
def go_registry(tmp_path_factory: pytest.TempPathFactory) -> Iterator[GoFactory]:
    """Start Go registries over a storage section: `go_registry({"filesystem": {...}})`."""
    started: list[GoRegistry] = []

    def start(storage: dict[str, Any]) -> GoRegistry:
        registry = GoRegistry(tmp_path_factory.mktemp("go-registry"), storage)
        started.append(registry)
        return registry.start()

    yield start
    for registry in started:
        registry.stop()


async def _admin(sql: str) -> None:
    import asyncpg

    dsn = os.environ.get("PORTSIDE_TEST_POSTGRES")
    if not dsn:
        pytest.fail("PORTSIDE_TEST_POSTGRES is not set: scripts/test starts PostgreSQL and sets it")
    url = make_url(dsn)
    conn = await asyncpg.connect(
        user=url.username, password=url.password, host=url.host, port=url.port or 5432, database=url.database
    )
    try:
        await conn.execute(sql)
    finally:
        await conn.close()


@pytest.fixture
async def postgres_dsn() -> AsyncIterator[str]:
    """A PostgreSQL database of the test's own, dropped afterwards."""
    name = f"portside_import_{uuid.uuid4().hex[:12]}"
    await _admin(f'CREATE DATABASE "{name}"')
    try:
        yield make_url(os.environ["PORTSIDE_TEST_POSTGRES"]).set(database=name).render_as_string(hide_password=False)
    finally:
        await _admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
