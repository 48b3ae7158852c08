"""Expiry (docs/operations.md, "Expiry"): each pull keeps cached content for `ttl` more, recorded as
`keep_until` in the metadata store; the `proxyexpiry` job deletes the cached manifests nobody pulled for that
long, and garbage collection then takes their blobs by its usual rules. Being in the store, it survives a
restart, on SQLite and on PostgreSQL alike.
"""

from __future__ import annotations

import datetime
import time
from collections.abc import Callable

import httpx
import pytest

from tests.conftest import Registry, RegistryFactory
from tests.proxy.conftest import relay_to
from tests.proxy.relay import Relay
from tests.proxy.support import GoRegistry, get_manifest, keep_until, pull, push_image, stored_blob, unique

TTL = 2.0


def wait_for(condition: Callable[[], bool], what: str, timeout: float = 40.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, f"{what} did not happen within {timeout}s"
        time.sleep(0.25)


@pytest.fixture(scope="module")
def relay(go_upstream: GoRegistry, relays: list[Relay]) -> Relay:
    return relay_to(relays, go_upstream.url)


@pytest.mark.parametrize("store", ["sqlite", "postgresql"])
def test_what_nobody_pulls_expires_across_a_restart(
    registry_factory: RegistryFactory, go_upstream: GoRegistry, relay: Relay, store: str, request: pytest.FixtureRequest
) -> None:
    overrides: dict[str, object] = {
        "proxy": {
            "remoteurl": relay.url,
            "username": go_upstream.username,
            "password": go_upstream.password,
            "ttl": f"{TTL}s",
        },
        "gc": {"reviewafter": "1s", "blobs": {"interval": "0.5s"}, "manifests": {"interval": "0.5s"}},
    }
    if store == "postgresql":
        overrides["database"] = {"dsn": request.getfixturevalue("postgres_dsn")}
    cache: Registry = registry_factory(overrides)
    database = overrides["database"]["dsn"] if store == "postgresql" else str(cache.root / "portside.db")  # type: ignore[index]
    with go_upstream.client() as up:
        image = push_image(up, f"exp/{unique()}", "v1")
    started = datetime.datetime.now(datetime.UTC).replace(tzinfo=None)
    with httpx.Client(base_url=cache.url, timeout=30.0) as c:
        pull(c, image)
    kept = keep_until(database, image.repository)
    assert set(kept) == {image.digest}
    until = kept[image.digest]
    assert until is not None
    assert started < until <= started + datetime.timedelta(seconds=TTL + 60)
    layer = stored_blob(cache.root, image.layer_digest)
    assert layer.exists()

    cache.kill()  # the cache dies while the TTL runs out: the expiry is the store's, not the process's
    assert keep_until(database, image.repository) == kept
    cache.start()
    wait_for(lambda: keep_until(database, image.repository) == {}, "the proxyexpiry job deleting the manifest")
    wait_for(lambda: not layer.exists(), "garbage collection deleting the blob")

    relay.reset_counts()
    with httpx.Client(base_url=cache.url, timeout=30.0) as c:
        pull(c, image)
        assert get_manifest(c, image.repository, image.digest).status_code == 200
    assert relay.count("GET", f"/v2/{image.repository}/blobs/") == len(image.blobs), "fetched again"
    assert layer.exists()
