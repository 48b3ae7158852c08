"""Several upstreams in one cache (docs/operations.md, "A pull-through cache"): `proxy.remotes` chosen by the
first components of the name, each with its own credentials and TTL; the rest of the name is the upstream's.
With `local: true` other names are ordinary repositories; without it they are read-only.

One upstream is the Go registry (htpasswd, so Basic auth), the other a Portside with token auth through its
built-in token server (Docker Hub's flow: a 401 naming a realm, a token fetched there with the credentials).
"""

from __future__ import annotations

import datetime

import pytest

from tests.proxy.conftest import GO_TTL, HUB_TTL, Cache, MixedCache, TokenUpstream
from tests.proxy.support import OCI_MANIFEST, GoRegistry, as_cached, get_manifest, keep_until, pull, push_image, unique


@pytest.fixture
def mixed(mixed_cache: MixedCache) -> MixedCache:
    mixed_cache.relay.reset_counts()
    assert mixed_cache.hub_relay is not None
    mixed_cache.hub_relay.reset_counts()
    return mixed_cache


def test_each_prefix_is_its_upstreams(
    mixed: MixedCache, go_upstream: GoRegistry, token_upstream: TokenUpstream
) -> None:
    assert mixed.hub_relay is not None
    with go_upstream.client() as up:
        from_go = push_image(up, f"team/{unique()}", "v1")
    with token_upstream.client() as up:
        from_hub = push_image(up, f"org/{unique()}", "v1")
    tokens = token_upstream.token_relay.count("GET", "/token")
    with mixed.client() as c:
        pull(c, as_cached(from_go, "go"))
        pull(c, as_cached(from_hub, "mirror/hub"))
        # the rest of the name is looked for at that upstream only
        assert get_manifest(c, f"go/{from_hub.repository}", "v1").status_code == 404
        assert get_manifest(c, f"mirror/hub/{from_go.repository}", "v1").status_code == 404
        assert get_manifest(c, f"mirror/{from_hub.repository}", "v1").status_code == 404, "the whole prefix"
    assert mixed.relay.count("GET", f"/v2/{from_go.repository}/blobs/") == len(from_go.blobs)
    assert mixed.hub_relay.count("GET", f"/v2/{from_hub.repository}/blobs/") == len(from_hub.blobs)
    assert token_upstream.token_relay.count("GET", "/token") > tokens, "the token upstream's realm was asked"


def test_each_upstream_keeps_content_for_its_own_ttl(
    mixed: MixedCache, go_upstream: GoRegistry, token_upstream: TokenUpstream
) -> None:
    with go_upstream.client() as up:
        from_go = push_image(up, f"team/{unique()}", "v1")
    with token_upstream.client() as up:
        from_hub = push_image(up, f"org/{unique()}", "v1")
    before = datetime.datetime.now(datetime.UTC).replace(tzinfo=None)
    with mixed.client() as c:
        pull(c, as_cached(from_go, "go"))
        pull(c, as_cached(from_hub, "mirror/hub"))
    for image, prefix, ttl in ((from_go, "go", GO_TTL), (from_hub, "mirror/hub", HUB_TTL)):
        kept = keep_until(mixed.database, f"{prefix}/{image.repository}")[image.digest]
        assert kept is not None
        left = (kept - before).total_seconds()
        assert ttl - 120 < left < ttl + 120, (prefix, left)


def test_local_repositories_beside_cached_ones(mixed: MixedCache) -> None:
    with mixed.client() as c:
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
