"""Upload sessions through the whole stack in one process: resumed chunks, a hash state rebuilt from the
stored bytes (as another worker or instance must), digests of other algorithms, and the one-request paths."""

from __future__ import annotations

import hashlib
import os

from yarl import URL

from tests.inprocess.conftest import App

MiB = 1024 * 1024


def sha256(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


def sha512(data: bytes) -> str:
    return "sha512:" + hashlib.sha512(data).hexdigest()


async def _open(app: App, repo: str) -> str:
    started = await app.client.post(f"/v2/{repo}/blobs/uploads/")
    assert started.status == 202
    assert started.headers["Range"] == "0-0"
    return _local(started.headers["Location"])


def _local(location: str) -> str:
    """The path of an absolute `Location` (the test client takes paths)."""
    return URL(location).path_qs


async def _patch(app: App, location: str, chunk: bytes, start: int) -> str:
    answer = await app.client.patch(
        location, data=chunk, headers={"Content-Range": f"{start}-{start + len(chunk) - 1}"}
    )
    assert answer.status == 202, await answer.text()
    assert answer.headers["Range"] == f"0-{start + len(chunk) - 1}"
    return _local(answer.headers["Location"])


async def _blob(app: App, repo: str, digest: str) -> bytes:
    answer = await app.client.get(f"/v2/{repo}/blobs/{digest}")
    assert answer.status == 200
    return await answer.read()


async def test_chunks_resume_and_the_blob_is_the_bytes_sent(app: App) -> None:
    data = os.urandom(3 * MiB + 17)
    location = await _open(app, "in/chunks")
    offset = 0
    for size in (MiB + 5, 7, 2 * MiB + 5):
        location = await _patch(app, location, data[offset : offset + size], offset)
        offset += size
    status = await app.client.get(location)
    assert status.status == 204
    assert status.headers["Range"] == f"0-{len(data) - 1}"
    done = await app.client.put(location, params={"digest": sha256(data)})
    assert done.status == 201
    assert await _blob(app, "in/chunks", sha256(data)) == data


async def test_a_session_whose_hash_state_this_process_lacks_is_hashed_again(app: App) -> None:
    """Another worker received the first chunk: this one has no hash state for it and rebuilds it."""
    data = os.urandom(2 * MiB + 3)
    location = await _open(app, "in/rehash")
    location = await _patch(app, location, data[:MiB], 0)
    app.namespace.hash_states = type(app.namespace.hash_states)()  # as in a process that never saw the session
    location = await _patch(app, location, data[MiB:], MiB)
    app.namespace.hash_states = type(app.namespace.hash_states)()
    done = await app.client.put(location, params={"digest": sha256(data)})
    assert done.status == 201, await done.text()
    assert await _blob(app, "in/rehash", sha256(data)) == data


async def test_a_rebuilt_hash_state_still_catches_a_wrong_digest(app: App) -> None:
    data = os.urandom(MiB + 1)
    location = await _open(app, "in/wrong")
    location = await _patch(app, location, data, 0)
    app.namespace.hash_states = type(app.namespace.hash_states)()
    refused = await app.client.put(location, params={"digest": sha256(data + b"x")})
    assert refused.status == 400
    assert (await refused.json())["errors"][0]["code"] == "DIGEST_INVALID"
    assert (await app.client.get(location)).status == 404, "a session whose bytes cannot be the blob is gone"
    assert (await app.client.head(f"/v2/in/wrong/blobs/{sha256(data)}")).status == 404


async def test_a_digest_of_another_algorithm_is_verified(app: App) -> None:
    """The session hashed with sha256 as the bytes came; a sha512 digest at the end means hashing them again."""
    data = os.urandom(MiB + 99)
    location = await _open(app, "in/sha512")
    location = await _patch(app, location, data, 0)
    done = await app.client.put(location, params={"digest": sha512(data)})
    assert done.status == 201, await done.text()
    assert done.headers["Docker-Content-Digest"] == sha512(data)
    assert await _blob(app, "in/sha512", sha512(data)) == data


async def test_whole_blobs_in_one_request(app: App) -> None:
    small, large = os.urandom(100), os.urandom(3 * MiB)
    for repo, data in (("in/small", small), ("in/large", large)):
        pushed = await app.client.post(f"/v2/{repo}/blobs/uploads/", params={"digest": sha256(data)}, data=data)
        assert pushed.status == 201
        assert pushed.headers["Location"].endswith(f"/v2/{repo}/blobs/{sha256(data)}")
        assert await _blob(app, repo, sha256(data)) == data
    # The PUT that ends an empty session may carry the whole blob.
    location = await _open(app, "in/put")
    done = await app.client.put(location, params={"digest": sha256(small)}, data=small)
    assert done.status == 201
    assert await _blob(app, "in/put", sha256(small)) == small
    assert await app.namespace.uploads_in_progress() == 0


async def test_a_whole_blob_that_is_not_its_digest_links_nothing(app: App) -> None:
    for data in (os.urandom(100), os.urandom(2 * MiB)):
        refused = await app.client.post(
            "/v2/in/mismatch/blobs/uploads/", params={"digest": sha256(data + b"!")}, data=data
        )
        assert refused.status == 400
        assert (await refused.json())["errors"][0]["code"] == "DIGEST_INVALID"
        assert (await app.client.head(f"/v2/in/mismatch/blobs/{sha256(data + b'!')}")).status == 404
    assert await app.namespace.uploads_in_progress() == 0
    assert [p for p in await app.namespace.content.upload_ids()] == []
