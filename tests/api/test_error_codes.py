"""Error codes in JSON bodies.

OCI "Error Codes" lists 14 codes; the Docker Registry HTTP API V2, which Portside implements too, adds codes
for conditions OCI has none for: RANGE_INVALID (416, a range that does not fit the content or upload) and
PAGINATION_NUMBER_INVALID (400, a bad `n`). Where the two specifications overlap the codes agree; where only
Docker's defines the condition, Portside answers with Docker's code (docs/http-behaviour.md, "Errors")."""

from __future__ import annotations

from collections.abc import Callable

import httpx
import pytest

from .oci import (
    DOCUMENTED_ERROR_CODES,
    assert_error,
    describe,
    location,
    push_blob,
    push_image,
    random_blob,
    start_upload,
)


def blob_range_past_end(client: httpx.Client, repo: str) -> httpx.Response:
    blob = push_blob(client, repo, random_blob(100))
    return client.get(f"/v2/{repo}/blobs/{blob.digest}", headers={"Range": "bytes=100-"})


def blob_range_malformed(client: httpx.Client, repo: str) -> httpx.Response:
    blob = push_blob(client, repo, random_blob(100))
    return client.get(f"/v2/{repo}/blobs/{blob.digest}", headers={"Range": "bytes=abc"})


def chunk_out_of_order(client: httpx.Client, repo: str) -> httpx.Response:
    url = location(start_upload(client, repo))
    return client.patch(url, content=b"x" * 10, headers={"Content-Range": "10-19"})


def tags_n_invalid(client: httpx.Client, repo: str) -> httpx.Response:
    push_image(client, repo, "t")
    return client.get(f"/v2/{repo}/tags/list", params={"n": "-1"})


def catalog_n_invalid(client: httpx.Client, repo: str) -> httpx.Response:
    return client.get("/v2/_catalog", params={"n": "abc"})


SITUATIONS: dict[str, tuple[Callable[[httpx.Client, str], httpx.Response], int, str]] = {
    "blob-range-past-end": (blob_range_past_end, 416, "RANGE_INVALID"),
    "blob-range-malformed": (blob_range_malformed, 416, "RANGE_INVALID"),
    "chunk-out-of-order": (chunk_out_of_order, 416, "RANGE_INVALID"),
    "tags-n-invalid": (tags_n_invalid, 400, "PAGINATION_NUMBER_INVALID"),
    "catalog-n-invalid": (catalog_n_invalid, 400, "PAGINATION_NUMBER_INVALID"),
}


@pytest.mark.parametrize("situation", list(SITUATIONS))
def test_docker_codes_for_conditions_only_the_docker_api_defines(
    client: httpx.Client, repo: str, situation: str
) -> None:
    """Docker Registry API "Errors": RANGE_INVALID is 416 for a range that cannot be applied,
    PAGINATION_NUMBER_INVALID is 400 for an `n` that is not a non-negative integer; the body is the JSON
    error envelope with exactly that code."""
    make, status, code = SITUATIONS[situation]
    resp = make(client, repo)
    assert resp.status_code == status, describe(resp)
    errors = assert_error(resp, status, code)
    assert all(error["code"] in DOCUMENTED_ERROR_CODES for error in errors), describe(resp)
