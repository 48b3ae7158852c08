"""Pushing blobs: POST/PATCH/PUT/GET/DELETE on /v2/<name>/blobs/uploads/ and cross-repository mounts."""

from __future__ import annotations

import hashlib
import os
import threading
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor

import httpx
import pytest

from .oci import (
    EMPTY_BLOB_SHA256,
    Blob,
    Server,
    assert_blob_content,
    assert_error,
    describe,
    location,
    location_path,
    push_blob,
    random_blob,
    random_digest,
    repo_name,
    start_upload,
)

OCTET = {"Content-Type": "application/octet-stream"}


def patch(client: httpx.Client, url: str, data: bytes, content_range: str | None = None) -> httpx.Response:
    headers = dict(OCTET)
    if content_range is not None:
        headers["Content-Range"] = content_range
    return client.patch(url, content=data, headers=headers)


def assert_upload_progress(resp: httpx.Response, status: int, end: int) -> None:
    """OCI "Pushing a blob in chunks": `Location` and `Range: 0-<end-of-range>`; Docker API:
    `Docker-Upload-UUID`."""
    assert resp.status_code == status, describe(resp)
    assert resp.headers.get("range") == f"0-{end}", describe(resp)
    assert resp.headers.get("location"), describe(resp)
    uuid = resp.headers.get("docker-upload-uuid")
    assert uuid, describe(resp)
    assert uuid in resp.headers["location"], describe(resp)


def assert_blob_created(resp: httpx.Response, repo: str, blob: Blob) -> None:
    """OCI: a completed upload is 201 with a pullable `Location`;
    behaviour doc: `/v2/<name>/blobs/<digest>`."""
    assert resp.status_code == 201, describe(resp)
    assert location_path(resp) == f"/v2/{repo}/blobs/{blob.digest}", describe(resp)
    assert resp.headers.get("docker-content-digest") == blob.digest, describe(resp)


def pull(client: httpx.Client, repo: str, blob: Blob) -> None:
    assert_blob_content(client.get(f"/v2/{repo}/blobs/{blob.digest}"), blob)


# ---------------------------------------------------------------------------
# Starting a session


def test_post_starts_a_session(client: httpx.Client, repo: str) -> None:
    """OCI "POST then PUT": 202 with a `Location` naming the session; behaviour doc headers."""
    resp = client.post(f"/v2/{repo}/blobs/uploads/", content=b"")
    assert resp.status_code == 202, describe(resp)
    uuid = resp.headers.get("docker-upload-uuid")
    assert uuid, describe(resp)
    assert location_path(resp) == f"/v2/{repo}/blobs/uploads/{uuid}", describe(resp)
    assert resp.headers.get("range") == "0-0"
    assert resp.headers.get("content-length") == "0"


def test_each_post_gets_its_own_session(client: httpx.Client, repo: str) -> None:
    """OCI "POST then PUT": the location MUST contain a UUID identifying a unique upload session."""
    first = start_upload(client, repo)
    second = start_upload(client, repo)
    assert first.headers["docker-upload-uuid"] != second.headers["docker-upload-uuid"]
    assert location(first) != location(second)


def test_post_then_put_creates_the_blob(client: httpx.Client, repo: str) -> None:
    """OCI "POST then PUT": PUT <location>?digest= with the bytes is 201 and `Location` is pullable."""
    blob = random_blob(1000)
    started = start_upload(client, repo)
    done = client.put(location(started), params={"digest": blob.digest}, content=blob.data, headers=OCTET)
    assert_blob_created(done, repo, blob)
    assert_blob_content(client.get(location(done)), blob)


def test_monolithic_post_with_digest_creates_the_blob(client: httpx.Client, repo: str) -> None:
    """OCI "Single POST": 201 with `Location`; behaviour doc: also `Docker-Content-Digest`."""
    blob = random_blob(777)
    resp = client.post(f"/v2/{repo}/blobs/uploads/", params={"digest": blob.digest}, content=blob.data, headers=OCTET)
    assert_blob_created(resp, repo, blob)
    assert_blob_content(client.get(location(resp)), blob)


def test_uploading_an_existing_blob_again_succeeds(client: httpx.Client, repo: str) -> None:
    """OCI "Layer Upload De-duplication": uploading content the registry already has is accepted."""
    blob = push_blob(client, repo, random_blob(128))
    url = location(start_upload(client, repo))
    assert_blob_created(client.put(url, params={"digest": blob.digest}, content=blob.data), repo, blob)
    resp = client.post(f"/v2/{repo}/blobs/uploads/", params={"digest": blob.digest}, content=blob.data)
    assert_blob_created(resp, repo, blob)
    pull(client, repo, blob)


def test_monolithic_post_with_wrong_digest_is_400_digest_invalid(client: httpx.Client, repo: str) -> None:
    """OCI "Single POST": the digest MUST match the blob;
    behaviour doc: 400 DIGEST_INVALID, nothing stored."""
    blob = random_blob(64)
    wrong = random_digest()
    resp = client.post(f"/v2/{repo}/blobs/uploads/", params={"digest": wrong}, content=blob.data, headers=OCTET)
    assert_error(resp, 400, "DIGEST_INVALID")
    push_blob(client, repo, random_blob(4))
    assert_error(client.head(f"/v2/{repo}/blobs/{wrong}"), 404)
    assert_error(client.head(f"/v2/{repo}/blobs/{blob.digest}"), 404)


@pytest.mark.parametrize("digest", ["sha256:abc", "md5:" + "0" * 32, "sha256:" + "A" * 64, "nodigest"])
def test_monolithic_post_with_malformed_digest_is_400(client: httpx.Client, repo: str, digest: str) -> None:
    """Behaviour doc "Names and references": a malformed or unsupported digest in a query is 400
    DIGEST_INVALID."""
    resp = client.post(f"/v2/{repo}/blobs/uploads/", params={"digest": digest}, content=b"abc", headers=OCTET)
    assert_error(resp, 400, "DIGEST_INVALID")


# ---------------------------------------------------------------------------
# Chunks


def test_streamed_patch_without_content_range(client: httpx.Client, repo: str) -> None:
    """OCI "Pushing a blob in chunks": PATCH is 202 with `Range: 0-<end>`; a PUT without body closes it."""
    blob = random_blob(3000)
    url = location(start_upload(client, repo))
    resp = patch(client, url, blob.data)
    assert_upload_progress(resp, 202, blob.size - 1)
    assert resp.headers.get("content-length") == "0"
    done = client.put(location(resp), params={"digest": blob.digest})
    assert_blob_created(done, repo, blob)
    pull(client, repo, blob)


def test_several_chunks_with_content_range(client: httpx.Client, repo: str) -> None:
    """OCI "Pushing a blob in chunks": each chunk is 202 and `Range` ends at the chunk's last byte."""
    blob = random_blob(3000)
    url = location(start_upload(client, repo))
    for start in range(0, blob.size, 1000):
        end = start + 999
        resp = patch(client, url, blob.data[start : end + 1], f"{start}-{end}")
        assert_upload_progress(resp, 202, end)
        url = location(resp)
    assert_blob_created(client.put(url, params={"digest": blob.digest}), repo, blob)
    pull(client, repo, blob)


def test_last_chunk_in_the_put(client: httpx.Client, repo: str) -> None:
    """OCI "Pushing a blob in chunks": the final chunk MAY be uploaded in the closing PUT."""
    blob = random_blob(2500)
    url = location(start_upload(client, repo))
    resp = patch(client, url, blob.data[:1000], "0-999")
    assert_upload_progress(resp, 202, 999)
    resp = patch(client, location(resp), blob.data[1000:2000], "1000-1999")
    assert_upload_progress(resp, 202, 1999)
    done = client.put(
        location(resp),
        params={"digest": blob.digest},
        content=blob.data[2000:],
        headers={**OCTET, "Content-Range": f"2000-{blob.size - 1}"},
    )
    assert_blob_created(done, repo, blob)
    pull(client, repo, blob)


def test_last_chunk_in_the_put_without_content_range(client: httpx.Client, repo: str) -> None:
    """OCI "Pushing a blob in chunks": the closing PUT may carry the remaining bytes."""
    blob = random_blob(2000)
    resp = patch(client, location(start_upload(client, repo)), blob.data[:1500])
    assert_upload_progress(resp, 202, 1499)
    done = client.put(location(resp), params={"digest": blob.digest}, content=blob.data[1500:], headers=OCTET)
    assert_blob_created(done, repo, blob)
    pull(client, repo, blob)


@pytest.mark.parametrize("prefix", ["bytes ", "bytes="])
def test_content_range_with_bytes_prefix_is_accepted(client: httpx.Client, repo: str, prefix: str) -> None:
    """Behaviour doc "Uploads": `Content-Range` is also accepted with a `bytes ` or `bytes=` prefix."""
    blob = random_blob(200)
    url = location(start_upload(client, repo))
    resp = patch(client, url, blob.data[:100], f"{prefix}0-99")
    assert_upload_progress(resp, 202, 99)
    resp = patch(client, location(resp), blob.data[100:], f"{prefix}100-199")
    assert_upload_progress(resp, 202, 199)
    assert_blob_created(client.put(location(resp), params={"digest": blob.digest}), repo, blob)


@pytest.mark.parametrize("suffix", ["/200", "/*"])
def test_content_range_with_total_suffix_is_accepted(client: httpx.Client, repo: str, suffix: str) -> None:
    """Behaviour doc "Uploads": `Content-Range` also takes RFC 9110's `/<total>` or `/*` suffix."""
    blob = random_blob(200)
    url = location(start_upload(client, repo))
    resp = patch(client, url, blob.data[:100], f"bytes 0-99{suffix}")
    assert_upload_progress(resp, 202, 99)
    resp = patch(client, location(resp), blob.data[100:], f"100-199{suffix}")
    assert_upload_progress(resp, 202, 199)
    assert_blob_created(client.put(location(resp), params={"digest": blob.digest}), repo, blob)


def test_first_chunk_not_starting_at_zero_is_416(client: httpx.Client, repo: str) -> None:
    """OCI: the first chunk's range MUST begin with 0; out of order MUST be 416 with an error body."""
    url = location(start_upload(client, repo))
    resp = patch(client, url, b"x" * 10, "10-19")
    assert_error(resp, 416)
    assert resp.headers.get("location"), describe(resp)


def test_out_of_order_chunk_is_416_and_session_survives(client: httpx.Client, repo: str) -> None:
    """OCI: an out-of-order chunk MUST be 416; behaviour doc: with the current `Range` and `Location`.

    Docker API "Upload Progress": after a 416 the client resumes from the last valid range.
    """
    blob = random_blob(30)
    url = location(start_upload(client, repo))
    resp = patch(client, url, blob.data[:10], "0-9")
    assert_upload_progress(resp, 202, 9)
    url = location(resp)
    for bad in ["20-29", "0-9", "5-14"]:
        first, last = (int(x) for x in bad.split("-"))
        skipped = patch(client, url, blob.data[first : last + 1], bad)
        assert_error(skipped, 416)
        assert skipped.headers.get("range") == "0-9", describe(skipped)
        assert skipped.headers.get("location"), describe(skipped)
    status = client.get(url)
    assert_upload_progress(status, 204, 9)
    resp = patch(client, location(status), blob.data[10:], "10-29")
    assert_upload_progress(resp, 202, 29)
    assert_blob_created(client.put(location(resp), params={"digest": blob.digest}), repo, blob)
    pull(client, repo, blob)


def test_out_of_order_last_chunk_in_put_is_416(client: httpx.Client, repo: str) -> None:
    """OCI: chunks MUST be in order and out of order MUST be 416; the closing PUT's chunk is one of them."""
    blob = random_blob(30)
    resp = patch(client, location(start_upload(client, repo)), blob.data[:10], "0-9")
    assert_upload_progress(resp, 202, 9)
    done = client.put(
        location(resp),
        params={"digest": blob.digest},
        content=blob.data[20:],
        headers={**OCTET, "Content-Range": "20-29"},
    )
    assert_error(done, 416)
    assert_error(client.head(f"/v2/{repo}/blobs/{blob.digest}"), 404)


@pytest.mark.parametrize("content_range", ["garbage", "5", "0-", "-9", "a-b", "0 - 9", "0-9/x", "bytes 0-9/"])
def test_malformed_content_range_is_400(client: httpx.Client, repo: str, content_range: str) -> None:
    """OCI: `Content-Range` MUST match `^[0-9]+-[0-9]+$`; behaviour doc: otherwise 400 BLOB_UPLOAD_INVALID."""
    url = location(start_upload(client, repo))
    assert_error(patch(client, url, b"x" * 10, content_range), 400, "BLOB_UPLOAD_INVALID")


def test_content_range_disagreeing_with_length_is_400(client: httpx.Client, repo: str) -> None:
    """Behaviour doc "Uploads": a `Content-Range` whose length disagrees with `Content-Length` is 400."""
    url = location(start_upload(client, repo))
    assert_error(patch(client, url, b"x" * 10, "0-19"), 400, "BLOB_UPLOAD_INVALID")
    assert_error(patch(client, url, b"x" * 10, "0-4"), 400, "BLOB_UPLOAD_INVALID")


# ---------------------------------------------------------------------------
# Status, cancel, completion errors


def test_get_status_of_new_session(client: httpx.Client, repo: str) -> None:
    """OCI: GET <location> of an active upload MUST be 204 with `Location` and `Range` (`0-0` when empty)."""
    started = start_upload(client, repo)
    resp = client.get(location(started))
    assert_upload_progress(resp, 204, 0)
    assert resp.headers["docker-upload-uuid"] == started.headers["docker-upload-uuid"]
    assert resp.content == b""


def test_get_status_after_chunks(client: httpx.Client, repo: str) -> None:
    """OCI: the status `<end-of-range>` is the position of the last uploaded byte."""
    url = location(start_upload(client, repo))
    resp = patch(client, url, os.urandom(1234))
    assert_upload_progress(resp, 202, 1233)
    resp = patch(client, location(resp), os.urandom(766), "1234-1999")
    assert_upload_progress(resp, 202, 1999)
    assert_upload_progress(client.get(location(resp)), 204, 1999)


def test_delete_upload_cancels_the_session(client: httpx.Client, repo: str) -> None:
    """OCI "Cancel a blob upload": DELETE <location> SHOULD be 204; then the session is 404
    BLOB_UPLOAD_UNKNOWN."""
    blob = random_blob(100)
    url = location(start_upload(client, repo))
    assert patch(client, url, blob.data[:50]).status_code == 202
    resp = client.delete(url)
    assert resp.status_code == 204, describe(resp)
    assert_error(client.get(url), 404, "BLOB_UPLOAD_UNKNOWN")
    assert_error(patch(client, url, blob.data[50:]), 404, "BLOB_UPLOAD_UNKNOWN")
    assert_error(client.put(url, params={"digest": blob.digest}), 404, "BLOB_UPLOAD_UNKNOWN")
    assert_error(client.delete(url), 404, "BLOB_UPLOAD_UNKNOWN")


def test_finished_session_is_unknown(client: httpx.Client, repo: str) -> None:
    """Behaviour doc "Uploads": a finished upload is 404 BLOB_UPLOAD_UNKNOWN."""
    blob = random_blob(10)
    url = location(start_upload(client, repo))
    assert client.put(url, params={"digest": blob.digest}, content=blob.data).status_code == 201
    assert_error(client.get(url), 404, "BLOB_UPLOAD_UNKNOWN")
    assert_error(patch(client, url, b"more"), 404, "BLOB_UPLOAD_UNKNOWN")
    assert_error(client.put(url, params={"digest": blob.digest}), 404, "BLOB_UPLOAD_UNKNOWN")
    assert_error(client.delete(url), 404, "BLOB_UPLOAD_UNKNOWN")


def test_put_with_wrong_digest_is_400_and_cancels(client: httpx.Client, repo: str) -> None:
    """Docker API "Completed Upload": rejected content is reported; behaviour doc: 400 DIGEST_INVALID,
    cancelled."""
    blob = random_blob(100)
    wrong = random_digest()
    url = location(start_upload(client, repo))
    assert_error(client.put(url, params={"digest": wrong}, content=blob.data), 400, "DIGEST_INVALID")
    assert_error(client.get(url), 404, "BLOB_UPLOAD_UNKNOWN")
    push_blob(client, repo, random_blob(4))
    assert_error(client.head(f"/v2/{repo}/blobs/{wrong}"), 404)
    assert_error(client.head(f"/v2/{repo}/blobs/{blob.digest}"), 404)


def test_put_after_chunks_with_wrong_digest_is_400(client: httpx.Client, repo: str) -> None:
    """OCI: the closing PUT's digest is of the whole blob; a digest of only the last chunk does not match."""
    blob = random_blob(100)
    resp = patch(client, location(start_upload(client, repo)), blob.data[:60], "0-59")
    last = Blob(blob.data[60:])
    done = client.put(location(resp), params={"digest": last.digest}, content=last.data, headers=OCTET)
    assert_error(done, 400, "DIGEST_INVALID")


def test_put_without_digest_is_400(client: httpx.Client, repo: str) -> None:
    """OCI: the closing PUT MUST include the digest; behaviour doc: missing `digest` is 400 DIGEST_INVALID."""
    url = location(start_upload(client, repo))
    assert_error(client.put(url, content=b"abc", headers=OCTET), 400, "DIGEST_INVALID")


@pytest.mark.parametrize("digest", ["sha256:1234", "sha256:" + "G" * 64, "foo:bar", "sha512:" + "a" * 64])
def test_put_with_malformed_digest_is_400(client: httpx.Client, repo: str, digest: str) -> None:
    """Behaviour doc "Names and references": malformed digests in a query are 400 DIGEST_INVALID."""
    url = location(start_upload(client, repo))
    assert_error(client.put(url, params={"digest": digest}, content=b"abc"), 400, "DIGEST_INVALID")


@pytest.mark.parametrize("method", ["GET", "PATCH", "PUT", "DELETE"])
def test_unknown_upload_id_is_404(client: httpx.Client, repo: str, method: str) -> None:
    """Docker API: an unknown upload is 404; behaviour doc: BLOB_UPLOAD_UNKNOWN."""
    start_upload(client, repo)
    url = f"/v2/{repo}/blobs/uploads/{os.urandom(16).hex()}"
    resp = client.request(method, url, params={"digest": random_digest()} if method == "PUT" else None, content=b"x")
    assert_error(resp, 404, "BLOB_UPLOAD_UNKNOWN")


@pytest.mark.parametrize("method", ["GET", "PATCH", "PUT", "DELETE"])
def test_upload_id_under_another_repository_is_404(client: httpx.Client, repo: str, method: str) -> None:
    """Behaviour doc "Uploads": another repository's upload is 404 BLOB_UPLOAD_UNKNOWN; it stays intact."""
    blob = random_blob(20)
    other = repo_name()
    push_blob(client, other, random_blob(4))
    url = location(start_upload(client, repo))
    assert patch(client, url, blob.data[:10]).status_code == 202
    foreign = url.replace(f"/v2/{repo}/", f"/v2/{other}/")
    assert foreign != url
    resp = client.request(method, foreign, params={"digest": blob.digest} if method == "PUT" else None, content=b"x")
    assert_error(resp, 404, "BLOB_UPLOAD_UNKNOWN")
    assert_upload_progress(client.get(url), 204, 9)
    done = client.put(url, params={"digest": blob.digest}, content=blob.data[10:])
    assert_blob_created(done, repo, blob)
    assert_error(client.head(f"/v2/{other}/blobs/{blob.digest}"), 404)


# ---------------------------------------------------------------------------
# Mounts


def test_mount_from_repository_holding_the_blob(client: httpx.Client, repo: str) -> None:
    """OCI "Mounting a blob": a successful mount MUST be 201 with `Location`; the blob is then pullable."""
    source = repo_name()
    blob = push_blob(client, source, random_blob(300))
    resp = client.post(f"/v2/{repo}/blobs/uploads/", params={"mount": blob.digest, "from": source}, content=b"")
    assert_blob_created(resp, repo, blob)
    pull(client, repo, blob)


def test_mount_without_from(client: httpx.Client, repo: str) -> None:
    """OCI: the registry MAY treat `from` as optional; behaviour
    doc: 201 when any repository holds the blob."""
    blob = push_blob(client, repo_name(), random_blob(300))
    resp = client.post(f"/v2/{repo}/blobs/uploads/", params={"mount": blob.digest}, content=b"")
    assert_blob_created(resp, repo, blob)
    pull(client, repo, blob)


def test_mount_of_unknown_blob_falls_back_to_an_upload(client: httpx.Client, repo: str) -> None:
    """OCI "Mounting a blob": unable to mount SHOULD be 202, an upload session the client MAY use."""
    source = repo_name()
    push_blob(client, source, random_blob(4))
    blob = random_blob(50)
    resp = client.post(f"/v2/{repo}/blobs/uploads/", params={"mount": blob.digest, "from": source}, content=b"")
    assert_upload_progress(resp, 202, 0)
    done = client.put(location(resp), params={"digest": blob.digest}, content=blob.data, headers=OCTET)
    assert_blob_created(done, repo, blob)
    pull(client, repo, blob)


def test_mount_from_repository_lacking_the_blob_is_not_a_mount(client: httpx.Client, repo: str) -> None:
    """Behaviour doc "Uploads": 201 only when `<other>` holds the blob; otherwise 202 and a new session."""
    blob = push_blob(client, repo_name(), random_blob(64))
    bystander = repo_name()
    push_blob(client, bystander, random_blob(4))
    resp = client.post(f"/v2/{repo}/blobs/uploads/", params={"mount": blob.digest, "from": bystander}, content=b"")
    assert_upload_progress(resp, 202, 0)
    assert_error(client.head(f"/v2/{repo}/blobs/{blob.digest}"), 404)


def test_mount_from_repository_whose_blob_was_deleted_is_not_a_mount(client: httpx.Client, repo: str) -> None:
    """Behaviour doc "Uploads": a blob deleted from `<other>` is no longer held there, so 202."""
    source = repo_name()
    blob = push_blob(client, source, random_blob(64))
    push_blob(client, source, random_blob(4))
    assert client.delete(f"/v2/{source}/blobs/{blob.digest}").status_code == 202
    resp = client.post(f"/v2/{repo}/blobs/uploads/", params={"mount": blob.digest, "from": source}, content=b"")
    assert_upload_progress(resp, 202, 0)


def test_mount_with_malformed_digest_is_400(client: httpx.Client, repo: str) -> None:
    """Behaviour doc "Uploads": a malformed `mount` digest is 400 DIGEST_INVALID."""
    resp = client.post(f"/v2/{repo}/blobs/uploads/", params={"mount": "sha256:nothex", "from": repo_name()})
    assert_error(resp, 400, "DIGEST_INVALID")


def test_mount_with_malformed_from_is_400(client: httpx.Client, repo: str) -> None:
    """Behaviour doc "Uploads": a malformed `from` name is 400 NAME_INVALID."""
    resp = client.post(f"/v2/{repo}/blobs/uploads/", params={"mount": random_digest(), "from": "Not/Valid"})
    assert_error(resp, 400, "NAME_INVALID")


# ---------------------------------------------------------------------------
# Sizes, algorithms, concurrency


def test_sha512_blob_end_to_end(client: httpx.Client, repo: str) -> None:
    """Image-spec "Digests": sha512 is a registered algorithm;
    behaviour doc: sha256 and sha512 are supported."""
    blob = random_blob(4096, algorithm="sha512")
    assert blob.digest.startswith("sha512:")
    url = location(start_upload(client, repo))
    resp = patch(client, url, blob.data[:2048], "0-2047")
    assert_upload_progress(resp, 202, 2047)
    done = client.put(location(resp), params={"digest": blob.digest}, content=blob.data[2048:], headers=OCTET)
    assert_blob_created(done, repo, blob)
    pull(client, repo, blob)
    head = client.head(f"/v2/{repo}/blobs/{blob.digest}")
    assert head.status_code == 200, describe(head)
    assert head.headers.get("docker-content-digest") == blob.digest
    single = random_blob(100, algorithm="sha512")
    resp = client.post(
        f"/v2/{repo}/blobs/uploads/", params={"digest": single.digest}, content=single.data, headers=OCTET
    )
    assert_blob_created(resp, repo, single)
    pull(client, repo, single)
    other = repo_name()
    mounted = client.post(f"/v2/{other}/blobs/uploads/", params={"mount": blob.digest, "from": repo})
    assert_blob_created(mounted, other, blob)
    assert client.delete(f"/v2/{repo}/blobs/{blob.digest}").status_code == 202


def test_zero_byte_blob(client: httpx.Client, repo: str) -> None:
    """An empty blob is content like any other: 201 on PUT, 200 with `Content-Length: 0` on GET/HEAD."""
    blob = Blob(b"")
    assert blob.digest == EMPTY_BLOB_SHA256
    url = location(start_upload(client, repo))
    assert_blob_created(client.put(url, params={"digest": blob.digest}), repo, blob)
    pull(client, repo, blob)
    head = client.head(f"/v2/{repo}/blobs/{blob.digest}")
    assert head.status_code == 200, describe(head)
    assert head.headers.get("content-length") == "0"
    other = repo_name()
    resp = client.post(f"/v2/{other}/blobs/uploads/", params={"digest": blob.digest}, content=b"", headers=OCTET)
    assert_blob_created(resp, other, blob)


def test_twenty_mib_blob_streamed_in_one_patch(client: httpx.Client, repo: str) -> None:
    """OCI "Pushing a blob in chunks": a chunk of any length; the stream is sent without `Content-Length`."""
    chunk = os.urandom(1 << 20)
    total = 20 << 20
    hasher = hashlib.sha256()
    for _ in range(20):
        hasher.update(chunk)
    digest = "sha256:" + hasher.hexdigest()

    def body() -> Iterator[bytes]:
        for _ in range(20):
            yield chunk

    url = location(start_upload(client, repo))
    resp = client.patch(url, content=body(), headers=OCTET)
    assert_upload_progress(resp, 202, total - 1)
    done = client.put(location(resp), params={"digest": digest})
    assert done.status_code == 201, describe(done)
    assert done.headers.get("docker-content-digest") == digest
    head = client.head(f"/v2/{repo}/blobs/{digest}")
    assert head.headers.get("content-length") == str(total)
    pulled = hashlib.sha256()
    with client.stream("GET", f"/v2/{repo}/blobs/{digest}") as stream:
        assert stream.status_code == 200
        for part in stream.iter_bytes():
            pulled.update(part)
    assert "sha256:" + pulled.hexdigest() == digest


def test_two_concurrent_uploads_of_the_same_blob_both_succeed(registry: Server, repo: str) -> None:
    """OCI "Layer Upload De-duplication": simultaneous uploads of one layer both proceed and succeed."""
    blob = random_blob(512 * 1024)
    barrier = threading.Barrier(2)

    def upload(target: str) -> httpx.Response:
        with httpx.Client(base_url=registry.url, timeout=60.0) as c:
            url = location(start_upload(c, target))
            resp = patch(c, url, blob.data)
            assert resp.status_code == 202, describe(resp)
            barrier.wait(timeout=30)
            return c.put(location(resp), params={"digest": blob.digest})

    other = repo_name()
    for targets in ([repo, repo], [repo_name(), other]):
        with ThreadPoolExecutor(max_workers=2) as pool:
            results = list(pool.map(upload, targets))
        for target, resp in zip(targets, results, strict=True):
            assert_blob_created(resp, target, blob)
            with httpx.Client(base_url=registry.url, timeout=60.0) as c:
                pull(c, target, blob)


def test_location_of_new_session_is_absolute_on_the_request_host(client: httpx.Client, repo: str) -> None:
    """Behaviour doc "URLs" and "Uploads": POST answers `Location: <base>/v2/<name>/blobs/uploads/<uuid>`,
    `<base>` being the scheme and host the request came to."""
    started = start_upload(client, repo)
    uuid = started.headers.get("docker-upload-uuid")
    expected = f"{client.base_url}/v2/{repo}/blobs/uploads/{uuid}"
    assert started.headers.get("location") == expected, describe(started)
