"""State seen through separate connections, which a multi-worker Portside spreads over its workers."""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import pytest

from .oci import (
    Server,
    assert_blob_content,
    assert_error,
    assert_manifest_content,
    describe,
    location,
    push_image,
    random_blob,
    start_upload,
)

ROUNDS = 8


@pytest.fixture
def fresh(registry: Server) -> Iterator[httpx.Client]:
    """A client that opens a new connection for every request."""
    limits = httpx.Limits(max_keepalive_connections=0)
    with httpx.Client(base_url=registry.url, timeout=60.0, limits=limits) as c:
        yield c


def test_chunked_upload_across_connections(fresh: httpx.Client, repo: str) -> None:
    """OCI "Pushing a blob in chunks": the session behind `<location>` holds for every request made to it."""
    blob = random_blob(6000)
    url = location(start_upload(fresh, repo))
    for start in range(0, blob.size, 1000):
        status = fresh.get(url)
        assert status.status_code == 204, describe(status)
        assert status.headers.get("range") == f"0-{max(start - 1, 0)}"
        resp = fresh.patch(
            url, content=blob.data[start : start + 1000], headers={"Content-Range": f"{start}-{start + 999}"}
        )
        assert resp.status_code == 202, describe(resp)
        url = location(resp)
    done = fresh.put(url, params={"digest": blob.digest})
    assert done.status_code == 201, describe(done)
    for _ in range(ROUNDS):
        assert_blob_content(fresh.get(f"/v2/{repo}/blobs/{blob.digest}"), blob)


def test_tag_changes_are_seen_on_every_connection(fresh: httpx.Client, repo: str) -> None:
    """A pushed, moved or deleted tag reads the same on every later request."""
    first = push_image(fresh, repo, "t").manifest
    for _ in range(ROUNDS):
        assert_manifest_content(fresh.get(f"/v2/{repo}/manifests/t"), first)
    second = push_image(fresh, repo, "t").manifest
    for _ in range(ROUNDS):
        assert_manifest_content(fresh.get(f"/v2/{repo}/manifests/t"), second)
    assert fresh.delete(f"/v2/{repo}/manifests/t").status_code == 202
    for _ in range(ROUNDS):
        assert_error(fresh.get(f"/v2/{repo}/manifests/t"), 404, "MANIFEST_UNKNOWN")
        assert fresh.get(f"/v2/{repo}/tags/list").json()["tags"] == []


def test_deleted_blob_is_gone_on_every_connection(fresh: httpx.Client, repo: str) -> None:
    """OCI "Deleting Blobs": once deleted (202), the blob is 404 on every later request."""
    image = push_image(fresh, repo)
    layer = image.layers[0]
    assert fresh.delete(f"/v2/{repo}/blobs/{layer.digest}").status_code == 202
    for _ in range(ROUNDS):
        assert_error(fresh.head(f"/v2/{repo}/blobs/{layer.digest}"), 404)
        assert_error(fresh.get(f"/v2/{repo}/blobs/{layer.digest}"), 404, "BLOB_UNKNOWN")
