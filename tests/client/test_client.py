"""The registry client library (`portside.client`) on its own, against real Portside servers.

Its contract (src/portside/client/__init__.py, auth.py, transport.py; docs/operations.md "Credentials"): Docker's
token flow, a token kept until it expires and fetched again on a 401; Basic auth; GET and HEAD retried after a
connection failure, a 429 or a 502/503/504, waiting what `Retry-After` asks or a growing backoff; the library's
errors (`BlobUnknown`, `ManifestUnknown`, `UpstreamUnavailable`, `UpstreamError`) for what the registry answered.
"""

from __future__ import annotations

import asyncio
import json
import os
import uuid

import pytest

from portside.client import RegistryClient, UpstreamError, UpstreamUnavailable
from portside.digest import Digest
from portside.registry.errors import BlobUnknown, ManifestUnknown
from tests.client.conftest import Basic
from tests.proxy.conftest import TOKEN_SECONDS, TokenUpstream
from tests.proxy.relay import Relay, Rule
from tests.proxy.support import OCI_CONFIG, OCI_MANIFEST

LAYER = "application/vnd.oci.image.layer.v1.tar"


def repo_name() -> str:
    return f"lib/c{uuid.uuid4().hex[:10]}"


async def push(client: RegistryClient, name: str, tag: str = "v1") -> tuple[Digest, bytes, bytes]:
    """A layer, a config and a manifest pushed with the library; (manifest digest, manifest, layer)."""
    repo = client.repository(name)
    layer = os.urandom(70_000)
    config = json.dumps({"architecture": "amd64", "os": "linux"}).encode()
    for blob in (layer, config):
        await repo.blobs.put(blob, Digest.of(blob))
    manifest = json.dumps(
        {
            "schemaVersion": 2,
            "mediaType": OCI_MANIFEST,
            "config": {"mediaType": OCI_CONFIG, "digest": str(Digest.of(config)), "size": len(config)},
            "layers": [{"mediaType": LAYER, "digest": str(Digest.of(layer)), "size": len(layer)}],
        }
    ).encode()
    await repo.manifests.put(manifest, OCI_MANIFEST, tag=tag)
    return Digest.of(manifest), manifest, layer


def basic_client(server: Basic, **options: float) -> RegistryClient:
    return RegistryClient(server.relay.url, username=server.username, password=server.password, **options)  # type: ignore[arg-type]


def token_client(token_server: tuple[TokenUpstream, Relay], **options: float) -> RegistryClient:
    up, relay = token_server
    return RegistryClient(relay.url, username=up.owner[0], password=up.owner[1], **options)  # type: ignore[arg-type]


def tokens(token_server: tuple[TokenUpstream, Relay]) -> int:
    return token_server[0].token_relay.count("GET", "/token")


async def test_the_token_flow_pushes_and_pulls(token_server: tuple[TokenUpstream, Relay]) -> None:
    name = repo_name()
    async with token_client(token_server) as client:
        digest, manifest, layer = await push(client, name)
        repo = client.repository(name)
        content = await repo.manifests.get_by_tag("v1")
        assert content.digest == digest
        assert content.payload == manifest
        assert (await repo.manifests.head("v1")).digest == digest
        assert await repo.blobs.get(Digest.of(layer)) == layer
        assert (await repo.tags.page()).items == ["v1"]
        assert await repo.exists()


async def test_a_token_is_kept_until_it_expires(token_server: tuple[TokenUpstream, Relay]) -> None:
    name = repo_name()
    async with token_client(token_server) as client:
        await push(client, name)
    async with token_client(token_server) as client:
        repo = client.repository(name)
        before = tokens(token_server)
        for _ in range(3):
            await repo.manifests.head("v1")
        assert tokens(token_server) == before + 1, "one token for one scope"
        await asyncio.sleep(TOKEN_SECONDS - 10 + 0.5)  # past the lifetime less the client's 10 s margin
        await repo.manifests.head("v1")
        assert tokens(token_server) == before + 2, "an expired token is fetched again"


async def test_a_401_with_a_token_in_hand_fetches_a_new_one(token_server: tuple[TokenUpstream, Relay]) -> None:
    relay = token_server[1]
    name = repo_name()
    async with token_client(token_server) as client:
        await push(client, name)
        repo = client.repository(name)
        await repo.manifests.head("v1")
        before = tokens(token_server)
        relay.add(Rule(match=f"/v2/{name}/manifests/v1", strip_auth=True, times=1))  # the registry refuses it
        assert (await repo.manifests.get_by_tag("v1")).payload
        assert tokens(token_server) == before + 1


async def test_wrong_credentials_are_an_error(token_server: tuple[TokenUpstream, Relay], basic_server: Basic) -> None:
    async with RegistryClient(token_server[1].url, username="owner", password="wrong") as client:
        with pytest.raises(UpstreamError) as caught:
            await client.repository(repo_name()).manifests.head("v1")
    assert caught.value.status == 401
    async with RegistryClient(basic_server.relay.url, username="alice", password="wrong") as client:
        with pytest.raises(UpstreamError) as caught:
            await client.repository(repo_name()).manifests.head("v1")
    assert caught.value.status == 401


async def test_basic_auth(basic_server: Basic) -> None:
    name = repo_name()
    async with basic_client(basic_server) as client:
        digest, _, layer = await push(client, name)
        repo = client.repository(name)
        basic_server.relay.reset_counts()
        assert (await repo.manifests.get(digest)).digest == digest
        assert await repo.blobs.get(Digest.of(layer)) == layer
    assert sum(basic_server.relay.challenged.values()) == 0, "Basic is sent up front once the registry asked for it"


async def test_ranges(basic_server: Basic) -> None:
    name = repo_name()
    async with basic_client(basic_server) as client:
        _, _, layer = await push(client, name)
        content = await client.repository(name).blobs.open(Digest.of(layer))
        assert content.descriptor.size == len(layer)
        for offset in (0, 1, 65_536, len(layer) - 1):
            async with await content.reader(offset) as reader:
                got = bytearray()
                while chunk := await reader.read(16_384):
                    got += chunk
            assert bytes(got) == layer[offset:]


async def test_what_is_missing_is_the_librarys_unknown_error(basic_server: Basic) -> None:
    name = repo_name()
    missing = Digest.of(b"never pushed")
    async with basic_client(basic_server) as client:
        await push(client, name)
        repo = client.repository(name)
        with pytest.raises(BlobUnknown):
            await repo.blobs.stat(missing)  # a HEAD: the 404 has no body
        with pytest.raises(BlobUnknown):
            await repo.blobs.get(missing)
        with pytest.raises(BlobUnknown):
            await repo.blobs.open(missing)
        with pytest.raises(ManifestUnknown):
            await repo.manifests.head("no-such-tag")
        with pytest.raises(ManifestUnknown):
            await repo.manifests.get_by_tag("no-such-tag")
        assert not await repo.manifests.exists(missing)
        assert await repo.exists()
        assert not await client.repository(repo_name()).exists()


async def test_a_blob_404_without_a_body_is_blob_unknown(basic_server: Basic) -> None:
    name = repo_name()
    blob = f"/v2/{name}/blobs/"
    basic_server.relay.add(Rule(match=blob, methods=("GET", "HEAD"), status=404))
    async with basic_client(basic_server) as client:
        repo = client.repository(name)
        with pytest.raises(BlobUnknown):
            await repo.blobs.stat(Digest.of(b"x"))
        with pytest.raises(BlobUnknown):
            await repo.blobs.get(Digest.of(b"x"))


async def test_a_429_is_retried_after_its_retry_after(basic_server: Basic) -> None:
    name = repo_name()
    async with basic_client(basic_server) as client:
        _, _, layer = await push(client, name)
        path = f"/v2/{name}/blobs/{Digest.of(layer)}"
        basic_server.relay.add(Rule(match=path, methods=("HEAD",), status=429, headers={"Retry-After": "1"}, times=2))
        assert (await client.repository(name).blobs.stat(Digest.of(layer))).size == len(layer)
    times = basic_server.relay.times("HEAD", path)
    assert len(times) == 3
    assert times[1] - times[0] >= 0.95
    assert times[2] - times[1] >= 0.95


async def test_5xx_and_broken_connections_are_retried_with_backoff(basic_server: Basic) -> None:
    name = repo_name()
    async with basic_client(basic_server, backoff=0.05, retries=3) as client:
        digest, manifest, _ = await push(client, name)
        path = f"/v2/{name}/manifests/{digest}"
        basic_server.relay.add(Rule(match=path, methods=("GET",), status=503, times=1))
        basic_server.relay.add(Rule(match=path, methods=("GET",), status=502, times=1))
        basic_server.relay.add(Rule(match=path, methods=("GET",), drop=True, times=1))
        assert (await client.repository(name).manifests.get(digest)).payload == manifest
    assert basic_server.relay.count("GET", path) == 4


async def test_retries_end_in_upstream_unavailable(basic_server: Basic) -> None:
    name = repo_name()
    path = f"/v2/{name}/manifests/v1"
    basic_server.relay.add(Rule(match=path, status=429, headers={"Retry-After": "0"}))
    async with basic_client(basic_server, retries=2, backoff=0.01) as client:
        with pytest.raises(UpstreamUnavailable) as caught:
            await client.repository(name).manifests.head("v1")
    assert caught.value.reason == "throttled"
    assert caught.value.status == 429
    assert basic_server.relay.count("HEAD", path) == 3, "the first try and two retries"
    basic_server.relay.clear()
    basic_server.relay.add(Rule(match=path, status=429, headers={"Retry-After": "3600"}))
    async with basic_client(basic_server) as client:
        with pytest.raises(UpstreamUnavailable) as caught:
            await client.repository(name).manifests.head("v1")
    assert caught.value.retry_after == 3600
    assert basic_server.relay.count("HEAD", path) == 4, "a wait longer than max_wait is not waited for"
