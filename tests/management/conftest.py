"""Servers for the management API tests: SQLite and PostgreSQL metadata (each query is written for both), and
clients that push content as a client of `/v2/` would."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from sqlalchemy.engine import make_url

from tests.conftest import Registry, deep_merge, default_config, free_port
from tests.management.content import Pusher
from tests.metadata.conftest import postgres_admin_dsn


def _admin_sync(sql: str) -> None:
    import asyncio

    from tests.metadata.conftest import _admin

    asyncio.run(_admin(sql))


def start(tmp_path_factory: pytest.TempPathFactory, overrides: dict[str, Any] | None = None) -> Registry:
    workdir = tmp_path_factory.mktemp("management")
    config = deep_merge(default_config(workdir, free_port()), overrides or {})
    registry = Registry(workdir=workdir, config=config, workers=1)
    registry.start()
    return registry


@pytest.fixture(scope="module", params=["sqlite", "postgresql"])
def server(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Registry]:
    """A registry on each metadata store, shared by a module's tests (each uses repositories of its own)."""
    if request.param == "sqlite":
        registry = start(tmp_path_factory)
        yield registry
        registry.stop()
        return
    name = f"portside_test_{uuid.uuid4().hex[:12]}"
    _admin_sync(f'CREATE DATABASE "{name}"')
    dsn = make_url(postgres_admin_dsn()).set(database=name).render_as_string(hide_password=False)
    registry = start(tmp_path_factory, {"database": {"dsn": dsn}})
    try:
        yield registry
    finally:
        registry.stop()
        _admin_sync(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture
def client(server: Registry) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=server.url, timeout=60.0) as c:
        yield c


@pytest.fixture
def pusher(client: httpx.Client) -> Pusher:
    return Pusher(client)


@pytest.fixture
def prefix() -> str:
    """A namespace no other test uses."""
    return f"t{uuid.uuid4().hex[:10]}"
