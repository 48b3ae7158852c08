"""Serving stale (docs/operations.md, "Serving stale"): when the upstream is unreachable, times out, or answers
429 or 5xx, what the cache holds is served anyway with a `Warning: 110` header (a manifest by tag, and while the
upstream is failing manifests by digest and blobs too; the prefixed cache has one worker, so one process knows
it); what the
cache has never seen gets a clean gateway error (502, 503 or 504, with the upstream's `Retry-After` when it
gave one) or the upstream's own 404, never a 500.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor

import httpx
import pytest

from tests.proxy.conftest import Cache
from tests.proxy.relay import Rule
from tests.proxy.support import (
    STALE_WARNING,
    Image,
    as_cached,
    get_manifest,
    pull,
    push_image,
    sha256,
    stored_blob,
    unique,
)

GATEWAY = (502, 503, 504)


@pytest.fixture
def cache(prefixed_go_cache: Cache) -> Iterator[Cache]:
    """The cache that gives up on its upstream at once (a 1 s timeout, no retries): each failure is answered
    without waiting; retries are tests/proxy/test_faults.py's."""
    yield prefixed_go_cache
    prefixed_go_cache.relay.clear()


@pytest.fixture
def cached(cache: Cache) -> Image:
    """An image pulled once through the cache (so it holds the tag, the manifest and the blobs)."""
    with cache.upstream.client() as up:
        image = as_cached(push_image(up, f"stale/{unique()}", "v1"), "up")
    with cache.client() as c:
        for r in pull(c, image):
            assert "Warning" not in r.headers
    return image


FAULTS = {
    "unreachable": Rule(match="/v2/", drop=True),
    "timeout": Rule(match="/v2/", stall=1.5),
    "503": Rule(match="/v2/", status=503),
    "500": Rule(match="/v2/", status=500),
    "429": Rule(match="/v2/", status=429, headers={"Retry-After": "1"}),
}


def fault(name: str) -> Rule:
    template = FAULTS[name]
    return Rule(
        match=template.match,
        drop=template.drop,
        stall=template.stall,
        status=template.status,
        headers=dict(template.headers),
    )


@pytest.mark.parametrize("name", list(FAULTS))
def test_cached_content_is_served_when_the_upstream_fails(cache: Cache, cached: Image, name: str) -> None:
    cache.relay.add(fault(name))
    with cache.client() as c:
        r = get_manifest(c, cached.repository, cached.tag)
        assert r.status_code == 200, r.text
        assert r.content == cached.manifest
        assert r.headers.get("Warning", "").startswith(STALE_WARNING), r.headers
        head = c.head(f"/v2/{cached.repository}/manifests/{cached.tag}", headers={"Accept": r.headers["Content-Type"]})
        assert head.status_code == 200
        assert head.headers["Docker-Content-Digest"] == cached.digest
        assert head.headers.get("Warning", "").startswith(STALE_WARNING)
        for r in pull(c, cached, reference=cached.digest):  # by digest and every blob, warned of too
            assert r.headers.get("Warning", "").startswith(STALE_WARNING), (r.request.url, r.headers)
    cache.relay.clear()
    with cache.client() as c:
        for r in pull(c, cached):
            assert "Warning" not in r.headers, "the upstream answers again: nothing is stale"


@pytest.mark.parametrize("name", list(FAULTS))
def test_what_was_never_seen_is_a_clean_gateway_error(cache: Cache, cached: Image, name: str) -> None:
    cache.relay.add(fault(name))
    missing = sha256(b"no such blob")
    asks: list[Callable[[httpx.Client], httpx.Response]] = [
        lambda c: get_manifest(c, cached.repository, "never-seen"),
        lambda c: get_manifest(c, f"up/stale/{unique()}", "v1"),
        lambda c: get_manifest(c, cached.repository, sha256(b"no such manifest")),
        lambda c: c.get(f"/v2/{cached.repository}/blobs/{missing}"),
        lambda c: c.head(f"/v2/{cached.repository}/blobs/{missing}"),
    ]
    with cache.client() as c, ThreadPoolExecutor(len(asks)) as pool:  # at once: a timeout each is waited for
        answers = list(pool.map(lambda ask: ask(c), asks))
    for r in answers:
        assert r.status_code in GATEWAY, (r.request.method, r.request.url, r.status_code, r.text)
        if r.request.method == "GET":
            assert r.json()["errors"][0]["code"] == "UNAVAILABLE", r.text
        if name == "429":
            assert r.headers.get("Retry-After") == "1", r.headers
    expected = {"unreachable": 503, "timeout": 504, "503": 502, "500": 502, "429": 503}[name]
    assert {r.status_code for r in answers} == {expected}


def test_an_upstream_that_stalls_mid_blob_cuts_the_answer_short(cache: Cache) -> None:
    with cache.upstream.client() as up:
        image = as_cached(push_image(up, f"stale/{unique()}", "v1", (300_000,)), "up")
    url = f"/v2/{image.repository}/blobs/{image.layer_digest}"
    rule = cache.relay.add(Rule(match=url.removeprefix("/v2/up"), methods=("GET",), hold_after=64 * 1024, times=1))
    received = bytearray()
    with cache.client() as c, pytest.raises(httpx.TransportError), c.stream("GET", url) as r:  # noqa: PT012
        assert r.status_code == 200
        for chunk in r.iter_raw():
            received += chunk
    assert rule.held.is_set()
    assert len(received) < len(image.layers[0])
    rule.release.set()
    assert not stored_blob(cache.registry.root, image.layer_digest).exists()
    with cache.client() as c:
        pull(c, image)
