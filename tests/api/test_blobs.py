"""Pulling, range-reading and deleting blobs: GET/HEAD/DELETE /v2/<name>/blobs/<digest>."""

from __future__ import annotations

import httpx
import pytest

from .oci import (
    EMPTY_BLOB_SHA256,
    Blob,
    assert_blob_content,
    assert_error,
    describe,
    push_blob,
    random_blob,
    random_digest,
    repo_name,
)

SIZE = 100


@pytest.fixture
def stored(client: httpx.Client, repo: str) -> Blob:
    """A 100-byte blob pushed to `repo`."""
    return push_blob(client, repo, random_blob(SIZE))


def test_get_blob_returns_exact_bytes_and_headers(client: httpx.Client, repo: str, stored: Blob) -> None:
    """OCI "Pulling blobs": 200, the raw bytes and `Docker-Content-Digest`; behaviour doc "Blobs" headers."""
    resp = client.get(f"/v2/{repo}/blobs/{stored.digest}")
    assert_blob_content(resp, stored)
    assert resp.headers.get("content-type") == "application/octet-stream"
    assert resp.headers.get("etag") == f'"{stored.digest}"'
    assert resp.headers.get("accept-ranges") == "bytes"
    assert resp.headers.get("cache-control") == "max-age=31536000"


def test_head_blob_has_headers_and_no_body(client: httpx.Client, repo: str, stored: Blob) -> None:
    """OCI "Checking if content exists": 200 with `Docker-Content-Digest`, `Content-Length`, no body."""
    resp = client.head(f"/v2/{repo}/blobs/{stored.digest}")
    assert resp.status_code == 200, describe(resp)
    assert resp.content == b""
    assert resp.headers.get("docker-content-digest") == stored.digest
    assert resp.headers.get("content-length") == str(SIZE)
    assert resp.headers.get("etag") == f'"{stored.digest}"'
    assert resp.headers.get("accept-ranges") == "bytes"


def test_unknown_blob_in_existing_repository_is_404_blob_unknown(client: httpx.Client, repo: str, stored: Blob) -> None:
    """OCI "Pulling blobs": an absent blob MUST be 404; behaviour doc: code BLOB_UNKNOWN."""
    digest = random_digest()
    assert_error(client.get(f"/v2/{repo}/blobs/{digest}"), 404, "BLOB_UNKNOWN")
    assert_error(client.head(f"/v2/{repo}/blobs/{digest}"), 404)


def test_blob_in_unknown_repository_is_404_name_unknown(client: httpx.Client, repo: str) -> None:
    """Behaviour doc "Names and references": reads of a repository
    that does not exist are 404 NAME_UNKNOWN."""
    digest = random_digest()
    assert_error(client.get(f"/v2/{repo}/blobs/{digest}"), 404, "NAME_UNKNOWN")
    assert_error(client.head(f"/v2/{repo}/blobs/{digest}"), 404)


def test_blob_of_another_repository_is_not_served(client: httpx.Client, repo: str, stored: Blob) -> None:
    """OCI "Pulling blobs": a blob that does not exist *in the repository* MUST be 404."""
    other = repo_name()
    push_blob(client, other, random_blob(8))
    assert_error(client.get(f"/v2/{other}/blobs/{stored.digest}"), 404, "BLOB_UNKNOWN")
    assert_error(client.head(f"/v2/{other}/blobs/{stored.digest}"), 404)


@pytest.mark.parametrize(
    ("range_value", "first", "last"),
    [
        ("bytes=0-9", 0, 9),
        ("bytes=0-0", 0, 0),
        ("bytes=10-", 10, SIZE - 1),
        ("bytes=99-99", 99, 99),
        ("bytes=-5", SIZE - 5, SIZE - 1),
        ("bytes=-500", 0, SIZE - 1),
        ("bytes=90-1000", 90, SIZE - 1),
    ],
)
def test_range_request_returns_206_partial_content(
    client: httpx.Client, repo: str, stored: Blob, range_value: str, first: int, last: int
) -> None:
    """RFC 9110 14.1 / behaviour doc "Blobs": one range gives 206 and `Content-Range: bytes a-b/size`."""
    resp = client.get(f"/v2/{repo}/blobs/{stored.digest}", headers={"Range": range_value})
    assert resp.status_code == 206, describe(resp)
    assert resp.headers.get("content-range") == f"bytes {first}-{last}/{SIZE}"
    assert resp.content == stored.data[first : last + 1]
    assert resp.headers.get("content-length") == str(last - first + 1)


@pytest.mark.parametrize(
    "range_value",
    [
        "bytes=100-",
        "bytes=100-150",
        "bytes=5000-6000",
        "bytes=-0",
        "bytes=abc",
        "bytes=5-2",
        "bytes=-",
        "bytes=1-x",
        "bytes=",
        "0-5",
    ],
)
def test_unsatisfiable_or_malformed_range_is_416(
    client: httpx.Client, repo: str, stored: Blob, range_value: str
) -> None:
    """Behaviour doc "Blobs": a range starting at or past the end, or a malformed one, is 416 with an
    error body and `Content-Range: bytes */size` (its code: see test_error_codes)."""
    resp = client.get(f"/v2/{repo}/blobs/{stored.digest}", headers={"Range": range_value})
    assert_error(resp, 416)
    assert resp.headers.get("content-range") == f"bytes */{SIZE}"


def test_several_ranges_return_the_whole_blob(client: httpx.Client, repo: str, stored: Blob) -> None:
    """Behaviour doc "Blobs": several ranges in one header give the whole blob with 200."""
    resp = client.get(f"/v2/{repo}/blobs/{stored.digest}", headers={"Range": "bytes=0-1,5-6"})
    assert_blob_content(resp, stored)


@pytest.mark.parametrize("range_value", ["items=0-5", "Items=0-", "pages=1-2", "x-unit=-3"])
def test_range_in_a_unit_not_understood_is_ignored(
    client: httpx.Client, repo: str, stored: Blob, range_value: str
) -> None:
    """RFC 9110 14.2: a server MUST ignore a `Range` whose range unit it does not understand; the answer is
    200 with the whole blob, as without the header (behaviour doc "Blobs")."""
    resp = client.get(f"/v2/{repo}/blobs/{stored.digest}", headers={"Range": range_value})
    assert_blob_content(resp, stored)
    assert "content-range" not in resp.headers


def test_range_on_zero_byte_blob_is_416(client: httpx.Client, repo: str) -> None:
    """RFC 9110 15.5.17: no range of an empty representation is satisfiable; behaviour doc: `bytes */0`."""
    empty = push_blob(client, repo, Blob(b""))
    assert empty.digest == EMPTY_BLOB_SHA256
    resp = client.get(f"/v2/{repo}/blobs/{empty.digest}", headers={"Range": "bytes=0-"})
    assert_error(resp, 416)
    assert resp.headers.get("content-range") == "bytes */0"


def test_delete_blob_then_404(client: httpx.Client, repo: str, stored: Blob) -> None:
    """OCI "Deleting Blobs": success MUST be 202; then the blob is gone (404 BLOB_UNKNOWN)."""
    url = f"/v2/{repo}/blobs/{stored.digest}"
    resp = client.delete(url)
    assert resp.status_code == 202, describe(resp)
    assert resp.headers.get("docker-content-digest") == stored.digest
    assert_error(client.get(url), 404, "BLOB_UNKNOWN")
    assert_error(client.head(url), 404)


def test_delete_absent_blob_is_404(client: httpx.Client, repo: str, stored: Blob) -> None:
    """OCI "Deleting Blobs": if the blob is not found, a 404 MUST be returned (twice deleted included)."""
    assert_error(client.delete(f"/v2/{repo}/blobs/{random_digest()}"), 404, "BLOB_UNKNOWN")
    url = f"/v2/{repo}/blobs/{stored.digest}"
    assert client.delete(url).status_code == 202
    assert_error(client.delete(url), 404, "BLOB_UNKNOWN")


def test_delete_blob_unlinks_it_from_one_repository_only(client: httpx.Client, repo: str, stored: Blob) -> None:
    """Behaviour doc "Blobs": DELETE unlinks the blob from that repository; others keep it."""
    other = repo_name()
    push_blob(client, other, stored)
    assert client.delete(f"/v2/{repo}/blobs/{stored.digest}").status_code == 202
    assert_error(client.get(f"/v2/{repo}/blobs/{stored.digest}"), 404, "BLOB_UNKNOWN")
    assert_blob_content(client.get(f"/v2/{other}/blobs/{stored.digest}"), stored)


def test_blob_can_be_pushed_again_after_delete(client: httpx.Client, repo: str, stored: Blob) -> None:
    """OCI "Content Management": deleting content leaves the repository able to receive it again."""
    assert client.delete(f"/v2/{repo}/blobs/{stored.digest}").status_code == 202
    push_blob(client, repo, stored)
    assert_blob_content(client.get(f"/v2/{repo}/blobs/{stored.digest}"), stored)
