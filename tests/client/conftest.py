"""Real Portside servers for the client library's tests, shared with tests/proxy: the token upstream (token auth
through its built-in token server) and the mixed cache (htpasswd auth, so Basic). Each is reached through a
relay of tests/client's own that counts requests and injects faults; the token realm through one of its own."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import pytest

from tests.conftest import Registry
from tests.proxy.conftest import (  # noqa: F401  (fixtures, shared with tests/proxy through conftest.shared)
    MixedCache,
    TokenUpstream,
    go_upstream,
    mixed_cache,
    postgres_dsn,
    token_upstream,
)
from tests.proxy.relay import Relay


@dataclass
class Basic:
    registry: Registry
    relay: Relay
    username: str
    password: str


@pytest.fixture(scope="session")
def token_server(token_upstream: TokenUpstream) -> Iterator[tuple[TokenUpstream, Relay]]:  # noqa: F811
    relay = Relay(token_upstream.url).start()
    yield token_upstream, relay
    relay.stop()


@pytest.fixture(scope="session")
def basic_server(mixed_cache: MixedCache) -> Iterator[Basic]:  # noqa: F811
    """The mixed cache of tests/proxy: a Portside with htpasswd auth, whose names outside its remotes' prefixes
    are ordinary repositories."""
    assert mixed_cache.auth is not None
    relay = Relay(mixed_cache.registry.url).start()
    yield Basic(mixed_cache.registry, relay, *mixed_cache.auth)
    relay.stop()


@pytest.fixture(autouse=True)
def _clean_relays(request: pytest.FixtureRequest) -> Iterator[None]:
    yield
    for name in ("token_server", "basic_server"):
        if name in request.fixturenames:
            value = request.getfixturevalue(name)
            (value[1] if isinstance(value, tuple) else value.relay).clear()
