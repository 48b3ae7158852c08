"""Fixtures of the operations tests: servers shared by the tests of one module, and HTTP receivers."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.conftest import RegistryFactory, starting_registries
from tests.operations.receiver import Receiver


@pytest.fixture(scope="module")
def module_registry_factory(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RegistryFactory]:
    """Like `registry_factory`, for servers that every test of a module shares (two workers by default)."""
    yield from starting_registries(tmp_path_factory, "portside-ops", workers=2)


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
