"""The cache's metrics on /metrics (docs/operations.md, Metrics), summed over both workers: requests by kind
and result (hit, miss, stale, error), blob bytes fetched upstream, upstream errors by status, and requests that
joined a fetch in flight."""

from __future__ import annotations

import contextlib
import time

import httpx

from tests.operations.support import Scrape, scrape
from tests.proxy.conftest import Cache
from tests.proxy.relay import Rule
from tests.proxy.support import get_manifest, pull, push_image, unique

REQUESTS = "portside_proxy_requests_total"
BYTES = "portside_proxy_upstream_bytes_total"
ERRORS = "portside_proxy_upstream_errors_total"
JOINS = "portside_proxy_single_flight_joins_total"


def wait_for_deltas(cache: Cache, before: Scrape, want: dict[tuple[str, tuple[tuple[str, str], ...]], float]) -> None:
    """Scrape until every metric has moved by what is expected (a worker may report a moment late)."""
    deadline = time.monotonic() + 10
    while True:
        now = scrape(cache.debug)
        got = {key: now.value(key[0], **dict(key[1])) - before.value(key[0], **dict(key[1])) for key in want}
        if got == want or time.monotonic() > deadline:
            assert got == want
            return
        time.sleep(0.2)


def test_hits_misses_and_upstream_bytes(cache: Cache) -> None:
    with cache.upstream.client() as up:
        image = push_image(up, f"metrics/{unique()}", "v1", (5000,))
    before = scrape(cache.debug)
    with cache.client() as c:
        pull(c, image)
        pull(c, image)
    wait_for_deltas(
        cache,
        before,
        {
            (REQUESTS, (("kind", "manifest"), ("result", "miss"))): 1,
            (REQUESTS, (("kind", "manifest"), ("result", "hit"))): 1,
            (REQUESTS, (("kind", "blob"), ("result", "miss"))): 2,
            (REQUESTS, (("kind", "blob"), ("result", "hit"))): 2,
            (BYTES, ()): sum(len(b) for b in image.blobs.values()),
        },
    )


def test_upstream_errors_by_status(cache: Cache) -> None:
    repo = f"metrics/{unique()}"
    cache.relay.add(Rule(match=f"/v2/{repo}/", status=500))
    before = scrape(cache.debug)
    with cache.client() as c:
        assert get_manifest(c, repo, "v1").status_code == 502
        assert get_manifest(c, repo, "v2").status_code == 502
    wait_for_deltas(
        cache,
        before,
        {(ERRORS, (("status", "500"),)): 2, (REQUESTS, (("kind", "manifest"), ("result", "error"))): 2},
    )


def test_single_flight_joins(cache: Cache) -> None:
    with cache.upstream.client() as up:
        image = push_image(up, f"metrics/{unique()}", "v1", (300_000,))
    url = f"/v2/{image.repository}/blobs/{image.layer_digest}"
    rule = cache.relay.add(Rule(match=url, methods=("GET",), hold_after=64 * 1024, times=1))
    before = scrape(cache.debug)
    with (
        httpx.Client(base_url=cache.registry.url, timeout=20.0) as c,
        contextlib.ExitStack() as stack,
    ):
        readers = []
        for _ in range(3):
            r = stack.enter_context(c.stream("GET", url))
            assert r.status_code == 200
            readers.append(r.iter_raw())
            next(readers[-1])  # each has its first bytes while the upstream is held
        rule.release.set()
        for chunks in readers:
            for _ in chunks:
                pass
    assert cache.relay.count("GET", url) == 1
    wait_for_deltas(cache, before, {(JOINS, ()): 2, (REQUESTS, (("kind", "blob"), ("result", "miss"))): 3})


def test_stale_answers(cache: Cache) -> None:
    with cache.upstream.client() as up:
        image = push_image(up, f"metrics/{unique()}", "v1")
    with cache.client() as c:
        pull(c, image)
        cache.relay.add(Rule(match=f"/v2/{image.repository}/", status=503))
        before = scrape(cache.debug)
        r = get_manifest(c, image.repository, image.tag)
        assert r.status_code == 200
        assert "Warning" in r.headers
    wait_for_deltas(
        cache,
        before,
        {(REQUESTS, (("kind", "manifest"), ("result", "stale"))): 1, (ERRORS, (("status", "503"),)): 1},
    )
