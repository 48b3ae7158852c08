"""The invariant that the database enforces whatever the timing: no manifest is ever recorded whose blobs are
gone, a blob HEAD that says 200 keeps the blob for the review delay, and bytes a push relies on are never
removed. Pushes and collections run side by side, many times over, on SQLite and on PostgreSQL."""

from __future__ import annotations

import asyncio
import json
import os
from typing import Any

from portside.digest import Digest
from portside.registry import BlobUnknown, ManifestBlobUnknown, NameUnknown
from tests.gc.conftest import OCI_CONFIG, OCI_MANIFEST, Store

NOW = {"gc": {"reviewafter": "0s"}}


def manifest_for(config: Digest, size: int) -> bytes:
    body = {
        "schemaVersion": 2,
        "mediaType": OCI_MANIFEST,
        "config": {"mediaType": OCI_CONFIG, "digest": config, "size": size},
    }
    return json.dumps({**body, "layers": []}).encode()


async def collect_until(store: Store, done: asyncio.Event) -> int:
    passes = 0
    while not done.is_set():
        await store.drain()
        passes += 1
        await asyncio.sleep(0)
    return passes


async def test_a_manifest_push_racing_a_collection_keeps_its_blobs_or_fails_cleanly(open_store: Any) -> None:
    """With no review delay, a blob uploaded without a manifest is garbage at once: the push of the manifest
    that needs it races its collection. Either wins; a recorded manifest always has its blob."""
    store: Store = await open_store(NOW)
    pushed: list[tuple[str, Digest]] = []
    refused = 0
    done = asyncio.Event()

    async def pusher(n: int) -> None:
        nonlocal refused
        for i in range(40):
            repo = f"race/{n}"
            data = os.urandom(32)
            config = await store.blob(repo, data)
            try:
                await store.repo(repo).manifests.put(manifest_for(config, len(data)), OCI_MANIFEST, tag=f"t{i}")
            except ManifestBlobUnknown:
                refused += 1
                continue
            pushed.append((repo, config))

    collecting = asyncio.create_task(collect_until(store, done))
    await asyncio.gather(*(pusher(n) for n in range(3)))
    done.set()
    await collecting
    await store.drain()
    assert pushed, "no push succeeded at all"
    for repo, config in pushed:
        assert await store.linked(repo, config), f"{repo} has a manifest whose config it does not link"
        assert await store.stored(config), f"{repo} has a manifest whose config bytes are gone"
        assert await store.repo(repo).blobs.get(config)


async def test_a_blob_head_that_says_200_keeps_the_blob_for_the_manifest_push_that_follows(open_store: Any) -> None:
    """The link is older than the review delay and unreferenced (garbage) when the client checks it; the check
    races the collection. Either the HEAD says 404, or it says 200 and the manifest push after it succeeds."""
    store: Store = await open_store({"gc": {"reviewafter": "1h"}})
    answers = {"404": 0, "200": 0}

    async def check_then_push(repo: str, config: Digest, body: bytes) -> None:
        try:
            await store.repo(repo).blobs.open(config, "HEAD")
        except (BlobUnknown, NameUnknown):
            answers["404"] += 1
            return
        answers["200"] += 1
        await store.repo(repo).manifests.put(body, OCI_MANIFEST, tag="v1")  # must not fail: the HEAD said 200

    for i in range(25):
        repo = f"headed/{i}"
        data = os.urandom(32)
        config = await store.blob(repo, data)
        await store.age(7200)
        body = manifest_for(config, len(data))
        await asyncio.gather(store.drain(), check_then_push(repo, config, body))
        await store.drain()
        if await store.has_manifest(repo, Digest.of(body)):
            assert await store.stored(config)
    assert answers["200"] + answers["404"] == 25


async def test_bytes_pushed_again_while_they_are_collected_survive(open_store: Any) -> None:
    """Blobs no repository links are being collected while other repositories upload the same bytes: each
    digest's lock orders the two, so a recorded blob always has its bytes."""
    store: Store = await open_store(NOW)
    for round in range(3):
        blobs = [f"same bytes {round}.{i}".encode() for i in range(60)]
        digests = [await store.blob(f"first/{round}", data) for data in blobs]
        for digest in digests:
            await store.repo(f"first/{round}").blobs.delete(digest)
        again = [store.blob(f"second/{round}/{i}", data) for i, data in enumerate(blobs)]
        await asyncio.gather(store.drain(), store.drain(), *again)
        for i, (digest, data) in enumerate(zip(digests, blobs, strict=True)):
            if await store.linked(f"second/{round}/{i}", digest):
                assert await store.stored(digest), f"blob {round}.{i} is recorded but its bytes were removed"
                assert await store.repo(f"second/{round}/{i}").blobs.get(digest) == data
