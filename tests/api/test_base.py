"""The API version check, unknown routes and methods, and headers every response carries."""

from __future__ import annotations

import httpx
import pytest

from .oci import (
    API_VERSION,
    API_VERSION_HEADER,
    assert_api_version,
    assert_error,
    describe,
    location,
    random_blob,
    random_digest,
    start_upload,
)


def test_get_base_answers_200_with_api_version(client: httpx.Client) -> None:
    """OCI "Determining Support": GET /v2/ is 200; Docker API: `Docker-Distribution-API-Version:
    registry/2.0`."""
    resp = client.get("/v2/")
    assert resp.status_code == 200, describe(resp)
    assert resp.headers.get(API_VERSION_HEADER) == API_VERSION
    assert resp.json() == {}


def test_head_base_answers_200_without_body(client: httpx.Client) -> None:
    """Behaviour doc "Base": HEAD /v2/ is 200; a HEAD answer carries no body."""
    resp = client.head("/v2/")
    assert resp.status_code == 200, describe(resp)
    assert resp.headers.get(API_VERSION_HEADER) == API_VERSION
    assert resp.content == b""


@pytest.mark.parametrize(
    "path",
    [
        "/v2/conf/abc/nothing",
        "/v2/conf/abc/tags",
        "/v2/conf/abc/tags/list/more",
        "/v2/conf/abc/referrers",
        "/v2/_catalog/more",
    ],
)
def test_unknown_route_is_404_unsupported(client: httpx.Client, path: str) -> None:
    """Behaviour doc "Base": a path under /v2/ that matches no route is 404 UNSUPPORTED."""
    assert_error(client.get(path), 404, "UNSUPPORTED")


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("POST", "/v2/"),
        ("DELETE", "/v2/"),
        ("POST", "/v2/_catalog"),
        ("POST", "/v2/{repo}/tags/list"),
        ("DELETE", "/v2/{repo}/tags/list"),
        ("POST", "/v2/{repo}/manifests/latest"),
        ("PATCH", "/v2/{repo}/manifests/latest"),
        ("PUT", "/v2/{repo}/blobs/{digest}"),
        ("POST", "/v2/{repo}/blobs/{digest}"),
        ("PATCH", "/v2/{repo}/blobs/{digest}"),
        ("PUT", "/v2/{repo}/blobs/uploads/"),
        ("POST", "/v2/{repo}/referrers/{digest}"),
        ("DELETE", "/v2/{repo}/referrers/{digest}"),
    ],
)
def test_unserved_method_is_405_unsupported_with_allow(client: httpx.Client, repo: str, method: str, path: str) -> None:
    """Behaviour doc "Base": a known path with a method it does not serve is 405 UNSUPPORTED with `Allow`."""
    resp = client.request(method, path.format(repo=repo, digest=random_digest()), content=b"")
    assert_error(resp, 405, "UNSUPPORTED")
    allow = {m.strip().upper() for m in resp.headers.get("allow", "").split(",") if m.strip()}
    assert allow, describe(resp)
    assert method not in allow, describe(resp)


def test_every_response_carries_api_version(client: httpx.Client, repo: str) -> None:
    """Behaviour doc: every response carries `Docker-Distribution-API-Version: registry/2.0`."""
    blob = random_blob(16)
    responses = [client.get("/v2/"), client.get(f"/v2/{repo}/tags/list")]
    started = start_upload(client, repo)
    responses.append(started)
    upload = location(started)
    responses.append(client.get(upload))
    responses.append(client.patch(upload, content=blob.data))
    responses.append(client.put(upload, params={"digest": blob.digest}))
    responses.append(client.get(f"/v2/{repo}/blobs/{blob.digest}"))
    responses.append(client.head(f"/v2/{repo}/blobs/{blob.digest}"))
    responses.append(client.get(f"/v2/{repo}/blobs/{random_digest()}"))
    responses.append(client.get(f"/v2/{repo}/manifests/nope"))
    responses.append(client.get("/v2/Bad/Name/tags/list"))
    responses.append(client.get(f"/v2/{repo}/nothing"))
    responses.append(client.post("/v2/", content=b""))
    responses.append(client.get(f"/v2/{repo}/referrers/{random_digest()}"))
    responses.append(client.get("/v2/_catalog?n=1"))
    for resp in responses:
        assert_api_version(resp)
