"""Fixtures for the HTTP conformance tests."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Iterator

import pytest
from sqlalchemy.engine import make_url

from tests.conftest import Registry, deep_merge, default_config, free_port

from .oci import repo_name


@pytest.fixture
def repo() -> str:
    """A repository name of this test's own."""
    return repo_name()


@pytest.fixture(scope="session")
def postgres_registry(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Registry]:
    """A server like the shared one with its metadata on PostgreSQL (a database of its own, dropped after)."""
    from tests.metadata.conftest import _admin, postgres_admin_dsn

    name = f"portside_api_{uuid.uuid4().hex[:10]}"
    asyncio.run(_admin(f'CREATE DATABASE "{name}"'))
    dsn = make_url(postgres_admin_dsn()).set(database=name).render_as_string(hide_password=False)
    workdir = tmp_path_factory.mktemp("portside-postgres")
    config = deep_merge(default_config(workdir, free_port()), {"database": {"dsn": dsn}})
    reg = Registry(workdir=workdir, config=config, workers=2)
    try:
        reg.start()
        yield reg
    finally:
        reg.stop()
        asyncio.run(_admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
