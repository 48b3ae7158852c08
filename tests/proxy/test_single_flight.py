"""Single flight (docs/operations.md, "Single flight"): however many clients ask for a blob the cache does not
have, it is fetched from upstream once; the bytes stream to the first client while being stored and hashed,
and every other client joins the download in progress. No client waits for the whole blob before its first
byte.

The relay in front of the upstream sends part of the blob and then holds the rest back until the test lets it
go: every client must have had bytes while the upstream is held, so none can have waited for the whole blob.
"""

from __future__ import annotations

import contextlib
import hashlib
from collections.abc import Iterator

import httpx
import pytest

from tests.proxy.conftest import Cache
from tests.proxy.relay import Rule
from tests.proxy.support import Image, get_manifest, push_image, unique

CLIENTS = 6
LAYER = 1024 * 1024 + 17
HELD_AT = 128 * 1024


@pytest.fixture
def image(cache: Cache) -> Image:
    with cache.upstream.client() as up:
        return push_image(up, f"sf/{unique()}", "v1", (LAYER,))


def first_bytes(stack: contextlib.ExitStack, client: httpx.Client, url: str) -> tuple[hashlib._Hash, Iterator[bytes]]:
    """Open a GET of `url` and read its first chunk (httpx's read timeout fails the test if none comes)."""
    response = stack.enter_context(client.stream("GET", url))
    assert response.status_code == 200, response.read()
    assert response.headers["Content-Length"] == str(LAYER)
    chunks = response.iter_raw()
    hasher = hashlib.sha256(next(chunks))
    return hasher, chunks


def test_concurrent_cold_pulls_fetch_the_blob_once(cache: Cache, image: Image) -> None:
    url = f"/v2/{image.repository}/blobs/{image.layer_digest}"
    rule = cache.relay.add(Rule(match=url, methods=("GET",), hold_after=HELD_AT, times=1))
    with (
        httpx.Client(base_url=cache.registry.url, timeout=20.0, limits=httpx.Limits(max_connections=20)) as c,
        contextlib.ExitStack() as stack,
    ):
        assert get_manifest(c, image.repository, image.tag).status_code == 200
        readers = [first_bytes(stack, c, url)]
        assert rule.held.wait(20), "the upstream sent the first part"
        readers += [first_bytes(stack, c, url) for _ in range(CLIENTS - 1)]
        rule.release.set()  # only now may the rest come: every client had its first bytes before
        for hasher, chunks in readers:
            for chunk in chunks:
                hasher.update(chunk)
            assert "sha256:" + hasher.hexdigest() == image.layer_digest
    assert cache.relay.count("GET", url) == 1, "one upstream fetch however many clients"

    with httpx.Client(base_url=cache.registry.url, timeout=20.0) as c:
        r = c.get(url)
    assert r.status_code == 200
    assert r.content == image.layers[0]
    assert cache.relay.count("GET", url) == 1, "then served from the cache"


def test_a_client_that_goes_away_does_not_end_the_fetch(cache: Cache, image: Image) -> None:
    url = f"/v2/{image.repository}/blobs/{image.layer_digest}"
    rule = cache.relay.add(Rule(match=url, methods=("GET",), hold_after=HELD_AT, times=1))
    with httpx.Client(base_url=cache.registry.url, timeout=20.0) as c:
        with contextlib.ExitStack() as stack:
            first_bytes(stack, c, url)
        # the first client hung up; a second joins while the upstream is still held
        with contextlib.ExitStack() as stack:
            hasher, chunks = first_bytes(stack, c, url)
            rule.release.set()
            for chunk in chunks:
                hasher.update(chunk)
        assert "sha256:" + hasher.hexdigest() == image.layer_digest
        assert c.get(url).content == image.layers[0]
    assert cache.relay.count("GET", url) == 1
