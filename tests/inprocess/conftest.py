"""The application in this process (aiohttp's TestServer and TestClient over `create_app`), on the in-memory
driver and an in-memory SQLite store: requests take milliseconds, and the library's state is at hand.

The subprocess suites stay for what needs real processes: workers, signals, crashes and real clients.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any, cast

import pytest
from aiohttp.test_utils import TestClient, TestServer

from portside.api.app import SERVICES, create_app
from portside.config import Config
from portside.registry import LocalNamespace
from tests.conftest import deep_merge

BASE: dict[str, Any] = {
    "log": {"level": "error", "accesslog": {"disabled": True}},
    "storage": {"inmemory": {}, "delete": {"enabled": True}},
}


@dataclass
class App:
    client: TestClient[Any, Any]

    @property
    def namespace(self) -> LocalNamespace:
        return cast(LocalNamespace, self.client.app[SERVICES].namespace)


async def start(overrides: dict[str, Any] | None = None) -> App:
    config = Config.model_validate(deep_merge(BASE, overrides or {}))
    client: TestClient[Any, Any] = TestClient(TestServer(create_app(config, migrate=True)))
    await client.start_server()
    return App(client)


@pytest.fixture
async def app() -> AsyncIterator[App]:
    started = await start()
    yield started
    await started.client.close()
