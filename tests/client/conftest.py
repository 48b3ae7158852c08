"""Real Portside servers for the client library's tests: one with token auth through its built-in token server
(tests/proxy/conftest.py's, shared), one with htpasswd (Basic auth). Each
is reached through a relay that counts requests and injects faults; the token realm through one of its own."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import pytest

from tests.conftest import Registry, deep_merge, default_config, free_port
from tests.proxy.conftest import TokenUpstream, shared_token_upstream
from tests.proxy.relay import Relay
from tests.proxy.support import bcrypt_line


@dataclass
class Basic:
    registry: Registry
    relay: Relay
    username: str
    password: str


@pytest.fixture(scope="session")
def token_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[TokenUpstream, Relay]]:
    for up in shared_token_upstream(tmp_path_factory):
        relay = Relay(up.url).start()
        yield up, relay
        relay.stop()


@pytest.fixture(scope="session")
def basic_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Basic]:
    workdir = tmp_path_factory.mktemp("client-basic")
    htpasswd = workdir / "htpasswd"
    htpasswd.write_text(bcrypt_line("alice", "alice-secret") + "\n")
    config = deep_merge(
        default_config(workdir, free_port()), {"auth": {"htpasswd": {"realm": "basic", "path": str(htpasswd)}}}
    )
    reg = Registry(workdir=workdir, config=config, workers=1)
    reg.start()
    relay = Relay(reg.url).start()
    yield Basic(reg, relay, "alice", "alice-secret")
    relay.stop()
    reg.stop()


@pytest.fixture(autouse=True)
def _clean_relays(request: pytest.FixtureRequest) -> Iterator[None]:
    yield
    for name in ("token_server", "basic_server"):
        if name in request.fixturenames:
            value = request.getfixturevalue(name)
            (value[1] if isinstance(value, tuple) else value.relay).clear()
