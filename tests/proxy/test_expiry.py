"""Expiry (docs/operations.md, "Expiry"): each pull keeps cached content for `ttl` more, recorded as
`keep_until` in the metadata store; the `proxyexpiry` job deletes the cached manifests nobody pulled for that
long, and garbage collection then takes their blobs by its usual rules. Being in the store, it survives the
cache's process dying, on SQLite (the prefixed cache) and on PostgreSQL (the mixed cache) alike.
"""

from __future__ import annotations

import datetime
import time
from collections.abc import Callable

import pytest

from tests.proxy.conftest import SHORT_TTL, Cache
from tests.proxy.support import as_cached, get_manifest, keep_until, pull, push_image, stored_blob, unique


def wait_for(condition: Callable[[], bool], what: str, timeout: float = 40.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, f"{what} did not happen within {timeout}s"
        time.sleep(0.25)


def now() -> datetime.datetime:
    return datetime.datetime.now(datetime.UTC).replace(tzinfo=None)


@pytest.mark.parametrize("name", ["prefixed_go_cache", "mixed_cache"], ids=["sqlite", "postgresql"])
def test_what_nobody_pulls_expires_across_a_restart(name: str, request: pytest.FixtureRequest) -> None:
    cache: Cache = request.getfixturevalue(name)
    assert cache.database.startswith("postgresql") == (name == "mixed_cache")
    with cache.upstream.client() as up:
        image = as_cached(push_image(up, f"exp/{unique()}", "v1"), "short")
    started = now()
    with cache.client() as c:
        pull(c, image)
    kept = keep_until(cache.database, image.repository)
    assert set(kept) == {image.digest}
    until = kept[image.digest]
    assert until is not None
    assert started < until <= started + datetime.timedelta(seconds=SHORT_TTL + 60)
    layer = stored_blob(cache.registry.root, image.layer_digest)
    assert layer.exists()

    cache.registry.kill()  # the cache dies before the TTL runs out: the expiry is the store's, not the process's
    assert keep_until(cache.database, image.repository) == kept
    cache.registry.start()
    wait_for(lambda: keep_until(cache.database, image.repository) == {}, "the proxyexpiry job deleting the manifest")
    assert now() > until
    wait_for(lambda: not layer.exists(), "garbage collection deleting the blob")

    upstream_name = image.repository.removeprefix("short")
    cache.relay.reset_counts()
    with cache.client() as c:
        pull(c, image)
        assert get_manifest(c, image.repository, image.digest).status_code == 200
    assert cache.relay.count("GET", f"/v2{upstream_name}/blobs/") == len(image.blobs), "fetched again"
    assert layer.exists()
