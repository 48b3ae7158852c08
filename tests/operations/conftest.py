"""Fixtures of the operations tests: servers shared by the tests of one module, and HTTP receivers."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from tests.conftest import Registry, RegistryFactory, deep_merge, default_config, free_port
from tests.operations.receiver import Receiver


@pytest.fixture(scope="module")
def module_registry_factory(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RegistryFactory]:
    """Like `registry_factory`, for servers that every test of a module shares (two workers by default)."""
    started: list[Registry] = []

    def start(overrides: dict[str, Any] | None = None, workers: int = 2) -> Registry:
        workdir = tmp_path_factory.mktemp("portside-ops")
        config = deep_merge(default_config(workdir, free_port()), overrides or {})
        reg = Registry(workdir=workdir, config=config, workers=workers)
        started.append(reg)
        reg.start()
        return reg

    yield start
    for reg in started:
        reg.stop()


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    rec = Receiver().up()
    yield rec
    rec.down()


@pytest.fixture
def second_receiver() -> Iterator[Receiver]:
    rec = Receiver().up()
    yield rec
    rec.down()


@pytest.fixture(scope="module")
def module_receiver() -> Iterator[Receiver]:
    rec = Receiver().up()
    yield rec
    rec.down()
