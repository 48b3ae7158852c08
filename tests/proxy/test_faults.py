"""An upstream that fails part-way, and one that throttles.

docs/operations.md, "Single flight": the last byte is held back until the digest is verified, so a download
that breaks off or does not hash to its digest ends every client's response short (the client sees a failed
pull, not a corrupt blob) and stores nothing; a later pull fetches it again. "Credentials": requests to the
upstream are retried with backoff, honouring `Retry-After` on 429 and 503.
"""

from __future__ import annotations

import contextlib
import os

import httpx
import pytest

from tests.proxy.conftest import Cache
from tests.proxy.relay import Rule
from tests.proxy.support import (
    OCI_MANIFEST,
    GoRegistry,
    Image,
    get_manifest,
    keep_until,
    pull,
    push_image,
    sha256,
    stored_blob,
    unique,
)

LAYER = 512 * 1024 + 3
BIG_LAYER = 24 * 1024 * 1024


@pytest.fixture
def image(cache: Cache) -> Image:
    with cache.upstream.client() as up:
        return push_image(up, f"fault/{unique()}", "v1", (LAYER,))


def read_short(client: httpx.Client, url: str, size: int) -> bytes:
    """GET `url` and read what comes: the answer must be cut short (an error before `size` bytes)."""
    received = bytearray()
    with pytest.raises(httpx.TransportError), client.stream("GET", url) as r:  # noqa: PT012
        assert r.status_code == 200
        assert r.headers["Content-Length"] == str(size)
        for chunk in r.iter_raw():
            received += chunk
    assert len(received) < size
    return bytes(received)


def drain(response: httpx.Response, into: bytearray) -> None:
    for chunk in response.iter_raw():
        into += chunk


def assert_refetched(cache: Cache, image: Image, url: str, gets_before: int) -> None:
    with cache.client() as c:
        pull(c, image)
    assert cache.relay.count("GET", url) == gets_before + 1, "nothing was stored: the next pull fetched it again"
    assert stored_blob(cache.registry.root, image.layer_digest).read_bytes() == image.layers[0]


def test_a_blob_cut_off_mid_stream_is_never_served_or_stored(cache: Cache, image: Image) -> None:
    url = f"/v2/{image.repository}/blobs/{image.layer_digest}"
    cache.relay.add(Rule(match=url, methods=("GET",), cut_after=100_000, times=1))
    with cache.client() as c:
        assert get_manifest(c, image.repository, image.tag).status_code == 200
        received = read_short(c, url, LAYER)
    assert image.layers[0].startswith(received)
    assert not stored_blob(cache.registry.root, image.layer_digest).exists()
    assert_refetched(cache, image, url, 1)


def test_bytes_that_are_not_the_digest_never_reach_a_client_whole(cache: Cache, image: Image) -> None:
    url = f"/v2/{image.repository}/blobs/{image.layer_digest}"
    cache.relay.add(Rule(match=url, methods=("GET",), corrupt=True, times=1))
    with cache.client() as c:
        read_short(c, url, LAYER)
    assert not stored_blob(cache.registry.root, image.layer_digest).exists()
    assert_refetched(cache, image, url, 1)


def test_an_upstream_killed_mid_blob(
    cache: Cache, go_upstream: GoRegistry, tmp_path_factory: pytest.TempPathFactory
) -> None:
    """A Go registry of its own, SIGKILLed while the cache (and two clients) are part-way through a blob."""
    doomed = GoRegistry(tmp_path_factory.mktemp("doomed"), go_upstream.username, go_upstream.password).start()
    relay = cache.relay
    try:
        with doomed.client() as up:
            image = push_image(up, f"fault/{unique()}", "v1", (BIG_LAYER,))
        relay.target = doomed.url
        url = f"/v2/{image.repository}/blobs/{image.layer_digest}"
        rule = relay.add(Rule(match=url, methods=("GET",), hold_after=256 * 1024, times=1))
        with cache.client() as c, contextlib.ExitStack() as stack:
            streams = [stack.enter_context(c.stream("GET", url)) for _ in range(2)]
            assert rule.held.wait(20)
            doomed.process.kill()  # type: ignore[union-attr]
            doomed.process.wait()  # type: ignore[union-attr]
            rule.release.set()
            for r in streams:
                received = bytearray()
                with pytest.raises(httpx.TransportError):
                    drain(r, received)
                assert len(received) < BIG_LAYER
        assert not stored_blob(cache.registry.root, image.layer_digest).exists()
        # the upstream comes back (same storage): the next pull succeeds
        doomed.start()
        relay.target = doomed.url
        with cache.client() as c:
            r = c.get(url)
        assert r.status_code == 200
        assert r.content == image.layers[0]
        assert stored_blob(cache.registry.root, image.layer_digest).exists()
    finally:
        relay.target = go_upstream.url
        doomed.stop()


def test_a_429_is_retried_after_the_wait_it_asks_for(cache: Cache) -> None:
    with cache.upstream.client() as up:
        image = push_image(up, f"fault/{unique()}", "v1", (os.urandom(1)[0] + 100,))
    manifest = f"/v2/{image.repository}/manifests/{image.tag}"
    blob = f"/v2/{image.repository}/blobs/{image.layer_digest}"
    cache.relay.add(Rule(match=manifest, status=429, headers={"Retry-After": "1"}, times=1))
    cache.relay.add(Rule(match=blob, methods=("GET",), status=429, headers={"Retry-After": "1"}, times=1))
    with cache.client() as c:
        pull(c, image)
    for method, path in (("HEAD", manifest), ("GET", blob)):
        times = cache.relay.times(method, path)
        assert len(times) >= 2, (method, path, times)
        assert times[-1] - times[0] >= 0.95, f"{method} {path} was asked again before its Retry-After"


def assert_bad_gateway(r: httpx.Response) -> None:
    assert r.status_code == 502, (r.request.method, r.request.url, r.status_code, r.text)
    assert r.json()["errors"][0]["code"] == "UNAVAILABLE"


def test_a_manifest_that_is_not_its_digest_is_a_bad_gateway(cache: Cache, image: Image) -> None:
    tampered = image.manifest.replace(b'"schemaVersion": 2', b'"schemaVersion":2')
    assert tampered != image.manifest
    manifests = f"/v2/{image.repository}/manifests/"
    rule = cache.relay.add(Rule(match=manifests, methods=("GET",), body=tampered, times=2))
    with cache.client() as c:
        assert_bad_gateway(get_manifest(c, image.repository, image.digest))  # a digest the bytes are not
        assert_bad_gateway(get_manifest(c, image.repository, image.tag))  # a tag whose HEAD named another digest
    assert rule.applied == 2
    assert keep_until(str(cache.registry.root / "portside.db"), image.repository) == {}, "nothing was stored"
    with cache.client() as c:
        pull(c, image)


def test_a_manifest_that_does_not_parse_is_a_bad_gateway(cache: Cache, image: Image) -> None:
    garbage = b'{"schemaVersion": 2, "mediaType": "' + OCI_MANIFEST.encode() + b'", "layers": "not a list"}'
    digest = sha256(garbage)
    named = {"Docker-Content-Digest": digest, "Content-Type": OCI_MANIFEST, "Content-Length": str(len(garbage))}
    manifests = f"/v2/{image.repository}/manifests/"
    cache.relay.add(Rule(match=manifests + image.tag, methods=("HEAD",), status=200, headers=named, times=1))
    cache.relay.add(Rule(match=manifests + digest, methods=("GET",), status=200, headers=named, body=garbage))
    with cache.client() as c:
        assert_bad_gateway(get_manifest(c, image.repository, image.tag))
        assert_bad_gateway(get_manifest(c, image.repository, digest))
        assert_bad_gateway(get_manifest(c, image.repository, digest))
    assert keep_until(str(cache.registry.root / "portside.db"), image.repository) == {}, "nothing was stored"
    cache.relay.clear()
    with cache.client() as c:
        pull(c, image)
