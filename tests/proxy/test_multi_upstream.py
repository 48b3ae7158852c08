"""Several upstreams in one cache (docs/operations.md, "A pull-through cache"): `proxy.remotes` chosen by the
first components of the name, each with its own credentials and TTL; the rest of the name is the upstream's.
With `local: true` other names are ordinary repositories; without it they are read-only.

One upstream is the Go registry (htpasswd, so Basic auth), the other a Portside with token auth through its
built-in token server (Docker Hub's flow: a 401 naming a realm, a token fetched there with the credentials).
"""

from __future__ import annotations

import datetime
from dataclasses import dataclass

import httpx
import pytest

from tests.conftest import Registry, RegistryFactory
from tests.proxy.conftest import Cache, TokenUpstream, relay_to
from tests.proxy.relay import Relay
from tests.proxy.support import (
    OCI_MANIFEST,
    GoRegistry,
    as_cached,
    get_manifest,
    keep_until,
    pull,
    push_image,
    unique,
)

GO_TTL = 3600
HUB_TTL = 7200


@dataclass
class Caches:
    mixed: Registry
    """Go under `go/`, the token upstream under `mirror/hub/`, local repositories beside them."""
    go_relay: Relay
    hub_relay: Relay


@pytest.fixture(scope="module")
def caches(
    module_registry_factory: RegistryFactory,
    go_upstream: GoRegistry,
    token_upstream: TokenUpstream,
    relays: list[Relay],
) -> Caches:
    go_relay = relay_to(relays, go_upstream.url)
    hub_relay = relay_to(relays, token_upstream.url)
    go = {"prefix": "go", "url": go_relay.url, "username": go_upstream.username, "password": go_upstream.password}
    hub = {
        "prefix": "mirror/hub",
        "url": hub_relay.url,
        "username": token_upstream.mirror[0],
        "password": token_upstream.mirror[1],
        "ttl": f"{HUB_TTL}s",
    }
    mixed = module_registry_factory(
        {"proxy": {"remotes": [{**go, "ttl": f"{GO_TTL}s"}, hub], "local": True}}, workers=1
    )
    return Caches(mixed, go_relay, hub_relay)


def test_each_prefix_is_its_upstreams(caches: Caches, go_upstream: GoRegistry, token_upstream: TokenUpstream) -> None:
    with go_upstream.client() as up:
        from_go = push_image(up, f"team/{unique()}", "v1")
    with token_upstream.client() as up:
        from_hub = push_image(up, f"org/{unique()}", "v1")
    with httpx.Client(base_url=caches.mixed.url, timeout=30.0) as c:
        pull(c, as_cached(from_go, "go"))
        pull(c, as_cached(from_hub, "mirror/hub"))
        # a name under one prefix is never looked for at the other upstream
        assert get_manifest(c, f"go/{from_hub.repository}", "v1").status_code == 404
        assert get_manifest(c, f"mirror/hub/{from_go.repository}", "v1").status_code == 404
        assert get_manifest(c, f"mirror/{from_hub.repository}", "v1").status_code == 404, "the whole prefix"
    assert caches.go_relay.count("GET", f"/v2/{from_go.repository}/blobs/") == len(from_go.blobs)
    assert caches.hub_relay.count("GET", f"/v2/{from_hub.repository}/blobs/") == len(from_hub.blobs)
    assert token_upstream.token_relay.count("GET", "/token") >= 1, "the token upstream was asked through its realm"


def test_each_upstream_keeps_content_for_its_own_ttl(
    caches: Caches, go_upstream: GoRegistry, token_upstream: TokenUpstream
) -> None:
    with go_upstream.client() as up:
        from_go = push_image(up, f"team/{unique()}", "v1")
    with token_upstream.client() as up:
        from_hub = push_image(up, f"org/{unique()}", "v1")
    before = datetime.datetime.now(datetime.UTC).replace(tzinfo=None)
    with httpx.Client(base_url=caches.mixed.url, timeout=30.0) as c:
        pull(c, as_cached(from_go, "go"))
        pull(c, as_cached(from_hub, "mirror/hub"))
    database = str(caches.mixed.root / "portside.db")
    for image, prefix, ttl in ((from_go, "go", GO_TTL), (from_hub, "mirror/hub", HUB_TTL)):
        kept = keep_until(database, f"{prefix}/{image.repository}")[image.digest]
        assert kept is not None
        left = (kept - before).total_seconds()
        assert ttl - 120 < left < ttl + 120, (prefix, left)


def test_local_repositories_beside_cached_ones(caches: Caches) -> None:
    with httpx.Client(base_url=caches.mixed.url, timeout=30.0) as c:
        image = push_image(c, f"ours/{unique()}", "v1")
        pull(c, image)
        r = c.delete(f"/v2/{image.repository}/manifests/{image.digest}")
        assert r.status_code == 202, r.text
        r = c.put(f"/v2/go/{unique()}/manifests/v1", content=image.manifest, headers={"Content-Type": OCI_MANIFEST})
        assert r.status_code == 405, r.text
        assert r.json()["errors"][0]["code"] == "UNSUPPORTED"


def test_without_local_other_names_are_read_only(prefixed_go_cache: Cache) -> None:
    with prefixed_go_cache.client() as c:
        r = c.post(f"/v2/ours/{unique()}/blobs/uploads/")
        assert r.status_code == 405, r.text
        assert r.json()["errors"][0]["code"] == "UNSUPPORTED"
        r = get_manifest(c, f"ours/{unique()}", "v1")
        assert r.status_code == 404, r.text
        assert prefixed_go_cache.relay.count("HEAD", "/v2/ours/") == 0
