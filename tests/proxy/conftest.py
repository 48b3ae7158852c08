"""Upstreams for the pull-through cache tests, shared by the whole session: the Go registry with htpasswd auth,
and a Portside with token auth through its built-in token server (the Docker Hub flow). Each test module puts
relays of its own in front of them and caches of its own in front of those."""

from __future__ import annotations

import asyncio
import os
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml
from sqlalchemy.engine import make_url

from tests.conftest import Registry, RegistryFactory, deep_merge, default_config, free_port
from tests.proxy.relay import Relay
from tests.proxy.support import GoRegistry, TokenAuth, bcrypt_line

TOKEN_SERVICE = "upstream.test"


@dataclass
class TokenUpstream:
    """A Portside with `auth.token` and its token server; the realm is reached through `token_relay`, which
    counts token requests."""

    registry: Registry
    token_relay: Relay
    owner: tuple[str, str]
    mirror: tuple[str, str]

    @property
    def url(self) -> str:
        return self.registry.url

    def client(self) -> httpx.Client:
        return httpx.Client(base_url=self.url, auth=TokenAuth(*self.owner), timeout=30.0)


def _password() -> str:
    return f"Pw-{uuid.uuid4().hex[:16]}"


@pytest.fixture(scope="session")
def go_upstream(tmp_path_factory: pytest.TempPathFactory) -> Iterator[GoRegistry]:
    reg = GoRegistry(tmp_path_factory.mktemp("go-upstream"), "gouser", _password()).start()
    yield reg
    reg.stop()


def token_upstream_config(workdir: Path, realm: str, expiration: str = "5m") -> tuple[dict[str, Any], dict[str, str]]:
    users = {"owner": _password(), "mirror": _password()}
    htpasswd = workdir / "htpasswd"
    htpasswd.write_text("".join(bcrypt_line(u, p) + "\n" for u, p in users.items()))
    policy = workdir / "policy.yml"
    policy.write_text(
        yaml.safe_dump(
            {
                "rules": [
                    {"subjects": ["owner"], "repositories": ["**"], "actions": ["*"], "catalog": True},
                    {"subjects": ["mirror"], "repositories": ["**"], "actions": ["pull"]},
                ]
            }
        )
    )
    config = {
        "auth": {"token": {"service": TOKEN_SERVICE, "issuer": "upstream-issuer", "realm": realm}},
        "tokenserver": {
            "path": "/token",
            "htpasswd": str(htpasswd),
            "policy": str(policy),
            "keydir": str(workdir / "keys"),
            "expiration": expiration,
        },
    }
    return config, users


def start_token_upstream(workdir: Path, expiration: str = "5m") -> TokenUpstream:
    relay = Relay().start()
    overrides, users = token_upstream_config(workdir, relay.url + "/token", expiration)
    config = deep_merge(default_config(workdir, free_port()), overrides)
    reg = Registry(workdir=workdir, config=config, workers=1)
    reg.start()
    relay.target = reg.url
    return TokenUpstream(reg, relay, ("owner", users["owner"]), ("mirror", users["mirror"]))


@pytest.fixture(scope="session")
def token_upstream(tmp_path_factory: pytest.TempPathFactory) -> Iterator[TokenUpstream]:
    yield from shared_token_upstream(tmp_path_factory)


TOKEN_SECONDS = 11
"""The token server's token lifetime: a second past the client library's 10 s margin, so tests/client sees a
token expire."""
_SHARED: dict[str, TokenUpstream] = {}
_USERS: list[int] = [0]


def shared_token_upstream(tmp_path_factory: pytest.TempPathFactory) -> Iterator[TokenUpstream]:
    """One token upstream per test process for tests/proxy and tests/client alike (each conftest's session
    fixture is a fixture of its own, so they share the server here)."""
    if "up" not in _SHARED:
        _SHARED["up"] = start_token_upstream(tmp_path_factory.mktemp("token-upstream"), f"{TOKEN_SECONDS}s")
    _USERS[0] += 1
    yield _SHARED["up"]
    _USERS[0] -= 1
    if _USERS[0] == 0:
        up = _SHARED.pop("up")
        up.registry.stop()
        up.token_relay.stop()


@pytest.fixture(scope="module")
def relays() -> Iterator[list[Relay]]:
    """Relays a module starts (`relays.append(Relay(url).start())`), stopped when it ends."""
    started: list[Relay] = []
    yield started
    for relay in started:
        relay.stop()


def relay_to(relays: list[Relay], url: str) -> Relay:
    relay = Relay(url).start()
    relays.append(relay)
    return relay


@pytest.fixture(scope="module")
def module_registry_factory(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RegistryFactory]:
    """Like `registry_factory`, for caches every test of a module shares."""
    started: list[Registry] = []

    def start(overrides: dict[str, Any] | None = None, workers: int = 2, env: dict[str, str] | None = None) -> Registry:
        workdir = tmp_path_factory.mktemp("portside-cache")
        config = deep_merge(default_config(workdir, free_port()), overrides or {})
        reg = Registry(workdir=workdir, config=config, workers=workers, env=env or {})
        started.append(reg)
        reg.start()
        return reg

    yield start
    for reg in started:
        reg.stop()


async def _postgres_admin(sql: str) -> None:
    import asyncpg

    dsn = os.environ.get("PORTSIDE_TEST_POSTGRES")
    if not dsn:
        pytest.fail("PORTSIDE_TEST_POSTGRES is not set: scripts/test starts PostgreSQL and sets it")
    conn = await asyncpg.connect(dsn)
    try:
        await conn.execute(sql)
    finally:
        await conn.close()


@pytest.fixture
def postgres_dsn() -> Iterator[str]:
    """A PostgreSQL database of the test's own, dropped afterwards."""
    name = f"portside_proxy_{uuid.uuid4().hex[:12]}"
    asyncio.run(_postgres_admin(f'CREATE DATABASE "{name}"'))
    try:
        yield make_url(os.environ["PORTSIDE_TEST_POSTGRES"]).set(database=name).render_as_string(hide_password=False)
    finally:
        asyncio.run(_postgres_admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))


@dataclass
class Cache:
    """A Portside cache of the Go registry (Distribution's `remoteurl` form, two workers, a spool directory of
    its own, Prometheus on its debug server), reached upstream through `relay`."""

    registry: Registry
    relay: Relay
    upstream: GoRegistry
    debug: str

    def client(self) -> httpx.Client:
        return httpx.Client(base_url=self.registry.url, timeout=30.0)


@pytest.fixture(scope="session")
def go_cache(tmp_path_factory: pytest.TempPathFactory, go_upstream: GoRegistry) -> Iterator[Cache]:
    """Shared by the modules whose tests each use repositories of their own and leave no relay rules behind."""
    relay = Relay(go_upstream.url).start()
    workdir = tmp_path_factory.mktemp("go-cache")
    debug = f"127.0.0.1:{free_port()}"
    overrides = {
        "proxy": {
            "remoteurl": relay.url,
            "username": go_upstream.username,
            "password": go_upstream.password,
            "spooldirectory": str(workdir / "spool"),
        },
        "http": {"debug": {"addr": debug, "prometheus": {"enabled": True}}},
    }
    reg = Registry(workdir=workdir, config=deep_merge(default_config(workdir, free_port()), overrides), workers=2)
    reg.start()
    yield Cache(reg, relay, go_upstream, debug)
    reg.stop()
    relay.stop()


@pytest.fixture
def cache(go_cache: Cache) -> Iterator[Cache]:
    yield go_cache
    go_cache.relay.clear()
    go_cache.relay.target = go_cache.upstream.url


@pytest.fixture(scope="session")
def prefixed_go_cache(tmp_path_factory: pytest.TempPathFactory, go_upstream: GoRegistry) -> Iterator[Cache]:
    """A cache with one remote under the prefix `up` (the Go registry) and no local repositories; it gives up
    on the upstream quickly (a 1 s timeout, no retries) so the stale tests do not wait."""
    relay = Relay(go_upstream.url).start()
    workdir = tmp_path_factory.mktemp("prefixed-cache")
    remote = {
        "prefix": "up",
        "url": relay.url,
        "username": go_upstream.username,
        "password": go_upstream.password,
        "timeout": "1s",
        "retries": 0,
    }
    overrides = {"proxy": {"remotes": [remote]}}
    reg = Registry(workdir=workdir, config=deep_merge(default_config(workdir, free_port()), overrides), workers=1)
    reg.start()
    yield Cache(reg, relay, go_upstream, "")
    reg.stop()
    relay.stop()
