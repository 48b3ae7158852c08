"""Upstreams for the pull-through cache tests, shared by the whole session: the Go registry with htpasswd auth,
and a Portside with token auth through its built-in token server (the Docker Hub flow). Each test module puts
relays of its own in front of them and caches of its own in front of those."""

from __future__ import annotations

import asyncio
import os
import uuid
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import httpx
import pytest
import yaml
from sqlalchemy.engine import make_url

from tests.conftest import Registry, RegistryFactory, deep_merge, default_config, free_port, starting_registries
from tests.proxy.relay import Relay
from tests.proxy.support import GoRegistry, TokenAuth, bcrypt_line

TOKEN_SERVICE = "upstream.test"
T = TypeVar("T")


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


_SHARED: dict[str, Any] = {}
_USERS: Counter[str] = Counter()


def shared(name: str, start: Callable[[], T], stop: Callable[[T], None]) -> Iterator[T]:
    """One server per test process however many session fixtures ask for it: tests/client's conftest imports
    these fixtures, and pytest keeps each conftest's copy apart, so they share the server here."""
    if name not in _SHARED:
        _SHARED[name] = start()
    _USERS[name] += 1
    try:
        yield _SHARED[name]
    finally:
        _USERS[name] -= 1
        if _USERS[name] == 0:
            stop(_SHARED.pop(name))


@pytest.fixture(scope="session")
def go_upstream(tmp_path_factory: pytest.TempPathFactory) -> Iterator[GoRegistry]:
    yield from shared(
        "go",
        lambda: GoRegistry(tmp_path_factory.mktemp("go-upstream"), "gouser", _password()).start(),
        GoRegistry.stop,
    )


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


TOKEN_SECONDS = 13
"""The token server's token lifetime: three seconds past the client library's 10 s margin, so tests/client sees a
token expire."""


def _stop_token_upstream(up: TokenUpstream) -> None:
    up.registry.stop()
    up.token_relay.stop()


@pytest.fixture(scope="session")
def token_upstream(tmp_path_factory: pytest.TempPathFactory) -> Iterator[TokenUpstream]:
    yield from shared(
        "token",
        lambda: start_token_upstream(tmp_path_factory.mktemp("token-upstream"), f"{TOKEN_SECONDS}s"),
        _stop_token_upstream,
    )


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
    yield from starting_registries(tmp_path_factory, "portside-cache", workers=2)


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


def _create_database() -> str:
    name = f"portside_proxy_{uuid.uuid4().hex[:12]}"
    asyncio.run(_postgres_admin(f'CREATE DATABASE "{name}"'))
    return make_url(os.environ["PORTSIDE_TEST_POSTGRES"]).set(database=name).render_as_string(hide_password=False)


def _drop_database(dsn: str) -> None:
    asyncio.run(_postgres_admin(f'DROP DATABASE IF EXISTS "{make_url(dsn).database}" WITH (FORCE)'))


@pytest.fixture(scope="session")
def postgres_dsn() -> Iterator[str]:
    """A PostgreSQL database of the session's own, dropped afterwards."""
    yield from shared("postgres", _create_database, _drop_database)


SHORT_TTL = 2.0
"""The TTL of the `short/` remote of the prefixed and mixed caches (tests/proxy/test_expiry.py)."""
FAST_GC = {"gc": {"reviewafter": "1s", "blobs": {"interval": "0.5s"}, "manifests": {"interval": "0.5s"}}}
CACHE_USER = ("alice", "alice-Pw-" + uuid.uuid4().hex[:12])


@dataclass
class Cache:
    """A Portside cache in front of the Go registry (reached through `relay`) and maybe other upstreams."""

    registry: Registry
    relay: Relay
    upstream: GoRegistry
    database: str
    """The metadata store: a SQLite file or a PostgreSQL DSN."""
    debug: str = ""
    auth: tuple[str, str] | None = None
    """Basic credentials the cache asks of its own clients."""

    def client(self) -> httpx.Client:
        return httpx.Client(base_url=self.registry.url, timeout=30.0, auth=self.auth)


def _go_remote(prefix: str, relay: Relay, go: GoRegistry, **extra: Any) -> dict[str, Any]:
    return {"prefix": prefix, "url": relay.url, "username": go.username, "password": go.password, **extra}


def _start(workdir: Path, overrides: dict[str, Any], workers: int = 1) -> Registry:
    reg = Registry(workdir=workdir, config=deep_merge(default_config(workdir, free_port()), overrides), workers=workers)
    reg.start()
    return reg


@pytest.fixture(scope="session")
def go_cache(tmp_path_factory: pytest.TempPathFactory, go_upstream: GoRegistry) -> Iterator[Cache]:
    """Distribution's `remoteurl` form: every name is the Go registry's. Two workers (so single flight crosses
    processes), a spool directory of its own, Prometheus on its debug server. Shared by the modules whose tests
    each use repositories of their own and leave no relay rules behind."""
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
    reg = _start(workdir, overrides, workers=2)
    yield Cache(reg, relay, go_upstream, str(reg.root / "portside.db"), debug)
    reg.stop()
    relay.stop()


@pytest.fixture
def cache(go_cache: Cache) -> Iterator[Cache]:
    yield go_cache
    go_cache.relay.clear()
    go_cache.relay.target = go_cache.upstream.url


@pytest.fixture(scope="session")
def prefixed_go_cache(tmp_path_factory: pytest.TempPathFactory, go_upstream: GoRegistry) -> Iterator[Cache]:
    """The Go registry under `up/` (giving up on it quickly: a 1 s timeout, no retries, so the stale tests do
    not wait) and under `short/` (a TTL of SHORT_TTL); no local repositories; SQLite."""
    relay = Relay(go_upstream.url).start()
    workdir = tmp_path_factory.mktemp("prefixed-cache")
    remotes = [
        _go_remote("up", relay, go_upstream, timeout="1s", retries=0),
        _go_remote("short", relay, go_upstream, ttl=f"{SHORT_TTL}s"),
    ]
    reg = _start(workdir, deep_merge(FAST_GC, {"proxy": {"remotes": remotes}}))
    yield Cache(reg, relay, go_upstream, str(reg.root / "portside.db"))
    reg.stop()
    relay.stop()


GO_TTL = 3600
HUB_TTL = 7200


@dataclass
class MixedCache(Cache):
    hub_relay: Relay | None = None


@pytest.fixture(scope="session")
def mixed_cache(
    tmp_path_factory: pytest.TempPathFactory,
    go_upstream: GoRegistry,
    token_upstream: TokenUpstream,
    postgres_dsn: str,
) -> Iterator[MixedCache]:
    """The Go registry under `go/` (TTL GO_TTL) and `short/` (SHORT_TTL), the token upstream under
    `mirror/hub/` (HUB_TTL), local repositories beside them; PostgreSQL; htpasswd auth for its own clients
    (so tests/client has a Portside with Basic auth here too)."""

    def start() -> MixedCache:
        relay = Relay(go_upstream.url).start()
        hub_relay = Relay(token_upstream.url).start()
        workdir = tmp_path_factory.mktemp("mixed-cache")
        htpasswd = workdir / "htpasswd"
        htpasswd.write_text(bcrypt_line(*CACHE_USER) + "\n")
        hub = {
            "prefix": "mirror/hub",
            "url": hub_relay.url,
            "username": token_upstream.mirror[0],
            "password": token_upstream.mirror[1],
            "ttl": f"{HUB_TTL}s",
        }
        remotes = [
            _go_remote("go", relay, go_upstream, ttl=f"{GO_TTL}s"),
            hub,
            _go_remote("short", relay, go_upstream, ttl=f"{SHORT_TTL}s"),
        ]
        overrides = deep_merge(
            FAST_GC,
            {
                "proxy": {"remotes": remotes, "local": True},
                "database": {"dsn": postgres_dsn},
                "auth": {"htpasswd": {"realm": "mixed-cache", "path": str(htpasswd)}},
            },
        )
        reg = _start(workdir, overrides)
        return MixedCache(reg, relay, go_upstream, postgres_dsn, auth=CACHE_USER, hub_relay=hub_relay)

    def stop(cache: MixedCache) -> None:
        cache.registry.stop()
        cache.relay.stop()
        assert cache.hub_relay is not None
        cache.hub_relay.stop()

    yield from shared("mixed", start, stop)
