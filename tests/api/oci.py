"""Building blobs and manifests, pushing them to Portside, and checking its answers against the specs."""

from __future__ import annotations

import hashlib
import json
import os
import re
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol
from urllib.parse import parse_qs, urljoin, urlsplit
from uuid import uuid4

import httpx

API_VERSION_HEADER = "Docker-Distribution-API-Version"
API_VERSION = "registry/2.0"

OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
OCI_INDEX = "application/vnd.oci.image.index.v1+json"
OCI_CONFIG = "application/vnd.oci.image.config.v1+json"
OCI_LAYER = "application/vnd.oci.image.layer.v1.tar+gzip"
OCI_EMPTY = "application/vnd.oci.empty.v1+json"
DOCKER_MANIFEST = "application/vnd.docker.distribution.manifest.v2+json"
DOCKER_LIST = "application/vnd.docker.distribution.manifest.list.v2+json"
DOCKER_CONFIG = "application/vnd.docker.container.image.v1+json"
DOCKER_LAYER = "application/vnd.docker.image.rootfs.diff.tar.gzip"
DOCKER_SCHEMA1 = "application/vnd.docker.distribution.manifest.v1+json"
DOCKER_SCHEMA1_SIGNED = "application/vnd.docker.distribution.manifest.v1+prettyjws"

EMPTY_JSON = b"{}"
EMPTY_JSON_DIGEST = "sha256:44136fa355b3678a1146ad16f7e8649e94fb4fc21fe77e8310c060f61caaff8a"
EMPTY_BLOB_SHA256 = "sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"

# OCI distribution-spec v1.1 "Error Codes": the `code` field MUST be one of these.
OCI_ERROR_CODES = frozenset(
    {
        "BLOB_UNKNOWN",
        "BLOB_UPLOAD_INVALID",
        "BLOB_UPLOAD_UNKNOWN",
        "DIGEST_INVALID",
        "MANIFEST_BLOB_UNKNOWN",
        "MANIFEST_INVALID",
        "MANIFEST_UNKNOWN",
        "NAME_INVALID",
        "NAME_UNKNOWN",
        "SIZE_INVALID",
        "UNAUTHORIZED",
        "DENIED",
        "UNSUPPORTED",
        "TOOMANYREQUESTS",
    }
)
# Docker Registry HTTP API V2 "Errors" adds these legacy codes.
DOCUMENTED_ERROR_CODES = OCI_ERROR_CODES | {
    "MANIFEST_UNVERIFIED",
    "PAGINATION_NUMBER_INVALID",
    "RANGE_INVALID",
    "TAG_INVALID",
}

_CODE_SHAPE = re.compile(r"^[A-Z_]+$")
_LINK_NEXT = re.compile(r'^<([^>]*)>;\s*rel="next"$')


# ---------------------------------------------------------------------------
# Names and digests


def repo_name(prefix: str = "conf") -> str:
    """A repository name no other test uses."""
    return f"{prefix}/{uuid4().hex[:12]}"


def sha256(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


def sha512(data: bytes) -> str:
    return "sha512:" + hashlib.sha512(data).hexdigest()


def digest_of(data: bytes, algorithm: str = "sha256") -> str:
    return sha512(data) if algorithm == "sha512" else sha256(data)


def random_digest() -> str:
    """A well-formed sha256 digest of content nobody pushed."""
    return sha256(os.urandom(32))


# ---------------------------------------------------------------------------
# Content


@dataclass(frozen=True)
class Blob:
    data: bytes
    media_type: str = OCI_LAYER
    algorithm: str = "sha256"

    @property
    def digest(self) -> str:
        return digest_of(self.data, self.algorithm)

    @property
    def size(self) -> int:
        return len(self.data)

    def descriptor(self, **extra: Any) -> dict[str, Any]:
        return {"mediaType": self.media_type, "digest": self.digest, "size": self.size, **extra}


def random_blob(size: int = 256, media_type: str = OCI_LAYER, algorithm: str = "sha256") -> Blob:
    return Blob(os.urandom(size), media_type, algorithm)


def config_blob(media_type: str = OCI_CONFIG) -> Blob:
    """An image configuration unique to the caller."""
    config = {
        "architecture": "amd64",
        "os": "linux",
        "rootfs": {"type": "layers", "diff_ids": []},
        "config": {"Labels": {"nonce": uuid4().hex}},
    }
    return Blob(json.dumps(config).encode(), media_type)


EMPTY_CONFIG = Blob(EMPTY_JSON, OCI_EMPTY)


@dataclass(frozen=True)
class Manifest:
    body: bytes
    media_type: str

    @property
    def digest(self) -> str:
        return sha256(self.body)

    @property
    def size(self) -> int:
        return len(self.body)

    @property
    def json(self) -> Any:
        return json.loads(self.body)

    def descriptor(self, **extra: Any) -> dict[str, Any]:
        return {"mediaType": self.media_type, "digest": self.digest, "size": self.size, **extra}


def encode(obj: Any) -> bytes:
    return json.dumps(obj, indent=2).encode()


def image_manifest(
    config: Blob,
    layers: Sequence[Blob] = (),
    *,
    media_type: str = OCI_MANIFEST,
    artifact_type: str | None = None,
    subject: Manifest | None = None,
    annotations: Mapping[str, str] | None = None,
    with_media_type: bool = True,
) -> Manifest:
    """An OCI image manifest (image-spec manifest.md) or a Docker schema2 manifest."""
    obj: dict[str, Any] = {"schemaVersion": 2}
    if with_media_type:
        obj["mediaType"] = media_type
    if artifact_type is not None:
        obj["artifactType"] = artifact_type
    obj["config"] = config.descriptor()
    obj["layers"] = [layer.descriptor() for layer in layers]
    if subject is not None:
        obj["subject"] = subject.descriptor()
    if annotations:
        obj["annotations"] = dict(annotations)
    return Manifest(encode(obj), media_type)


def index_manifest(
    manifests: Sequence[Manifest],
    *,
    media_type: str = OCI_INDEX,
    platforms: Sequence[tuple[str, str]] | None = None,
    artifact_type: str | None = None,
    subject: Manifest | None = None,
    annotations: Mapping[str, str] | None = None,
) -> Manifest:
    """An OCI image index (image-spec image-index.md) or a Docker manifest list."""
    entries = []
    for i, child in enumerate(manifests):
        entry = child.descriptor()
        if platforms is not None:
            os_name, arch = platforms[i]
            entry["platform"] = {"architecture": arch, "os": os_name}
        entries.append(entry)
    obj: dict[str, Any] = {"schemaVersion": 2, "mediaType": media_type}
    if artifact_type is not None:
        obj["artifactType"] = artifact_type
    obj["manifests"] = entries
    if subject is not None:
        obj["subject"] = subject.descriptor()
    if annotations:
        obj["annotations"] = dict(annotations)
    return Manifest(encode(obj), media_type)


@dataclass
class Image:
    manifest: Manifest
    config: Blob
    layers: list[Blob] = field(default_factory=list)

    @property
    def digest(self) -> str:
        return self.manifest.digest


# ---------------------------------------------------------------------------
# HTTP


class Server(Protocol):
    """What the tests need of a running registry."""

    @property
    def url(self) -> str: ...


def describe(resp: httpx.Response) -> str:
    """One line about a response, for assertion messages."""
    req = resp.request
    body = b"" if req.method == "HEAD" else resp.content[:600]
    interesting = {
        k: v
        for k, v in resp.headers.items()
        if k.lower() in {"location", "range", "content-range", "content-type", "docker-content-digest", "link", "allow"}
    }
    return f"{req.method} {req.url} -> {resp.status_code} {interesting} {body!r}"


def location(resp: httpx.Response) -> str:
    """The `Location` header resolved against the request URL (it may be absolute or relative)."""
    value = resp.headers.get("location")
    assert value, f"no Location header: {describe(resp)}"
    return urljoin(str(resp.request.url), value)


def location_path(resp: httpx.Response) -> str:
    """Path and query of `Location`, which OCI allows to be absolute or relative."""
    parts = urlsplit(location(resp))
    return parts.path + (f"?{parts.query}" if parts.query else "")


def raw_request(
    client: httpx.Client,
    method: str,
    target: str,
    *,
    headers: Mapping[str, str] | None = None,
    content: bytes | None = None,
) -> httpx.Response:
    """Send `target` as the request target byte for byte (no dot-segment or percent normalisation)."""
    request = client.build_request(method, "/", headers=headers, content=content)
    request.extensions["target"] = target.encode("ascii")
    return client.send(request)


def request_without_accept(client: httpx.Client, method: str, url: str) -> httpx.Response:
    """A request with no `Accept` header at all (the client would otherwise send `*/*`)."""
    request = client.build_request(method, url)
    del request.headers["Accept"]
    return client.send(request)


def start_upload(client: httpx.Client, repo: str) -> httpx.Response:
    resp = client.post(f"/v2/{repo}/blobs/uploads/", content=b"")
    assert resp.status_code == 202, describe(resp)
    return resp


def push_blob(client: httpx.Client, repo: str, blob: Blob) -> Blob:
    """POST then PUT, the upload flow every registry implements."""
    started = start_upload(client, repo)
    done = client.put(
        location(started),
        params={"digest": blob.digest},
        content=blob.data,
        headers={"Content-Type": "application/octet-stream"},
    )
    assert done.status_code == 201, describe(done)
    return blob


def put_manifest(
    client: httpx.Client,
    repo: str,
    reference: str,
    manifest: Manifest,
    content_type: str | None = None,
) -> httpx.Response:
    return client.put(
        f"/v2/{repo}/manifests/{reference}",
        content=manifest.body,
        headers={"Content-Type": content_type or manifest.media_type},
    )


def push_manifest(client: httpx.Client, repo: str, reference: str, manifest: Manifest) -> httpx.Response:
    resp = put_manifest(client, repo, reference, manifest)
    assert resp.status_code == 201, describe(resp)
    return resp


def push_image(
    client: httpx.Client,
    repo: str,
    reference: str | None = None,
    *,
    docker: bool = False,
    layers: int = 1,
    config: Blob | None = None,
    artifact_type: str | None = None,
    subject: Manifest | None = None,
    annotations: Mapping[str, str] | None = None,
) -> Image:
    """Push a config, layers and the manifest naming them; `reference` defaults to the manifest digest."""
    layer_type = DOCKER_LAYER if docker else OCI_LAYER
    config = config or config_blob(DOCKER_CONFIG if docker else OCI_CONFIG)
    blobs = [random_blob(128 + i, layer_type) for i in range(layers)]
    for blob in [config, *blobs]:
        push_blob(client, repo, blob)
    manifest = image_manifest(
        config,
        blobs,
        media_type=DOCKER_MANIFEST if docker else OCI_MANIFEST,
        artifact_type=artifact_type,
        subject=subject,
        annotations=annotations,
    )
    push_manifest(client, repo, reference or manifest.digest, manifest)
    return Image(manifest, config, blobs)


def next_link(resp: httpx.Response) -> str | None:
    """The target of a `Link: <url>; rel="next"` header (RFC 5988), resolved against the request."""
    value = resp.headers.get("link")
    if value is None:
        return None
    match = _LINK_NEXT.match(value.strip())
    assert match, f'Link header is not of the form <url>; rel="next": {value!r}'
    return urljoin(str(resp.request.url), match.group(1))


def link_query(link: str) -> tuple[str, dict[str, str]]:
    """Path and single-valued query parameters of a link."""
    parts = urlsplit(link)
    query = {k: v[-1] for k, v in parse_qs(parts.query, keep_blank_values=True).items()}
    return parts.path, query


def follow_pages(client: httpx.Client, url: str, key: str, limit: int = 2000) -> Iterator[list[str]]:
    """Yield `body[key]` of each page, following `Link` headers until there is none."""
    next_url: str | None = url
    for _ in range(limit):
        if next_url is None:
            return
        resp = client.get(next_url)
        assert resp.status_code == 200, describe(resp)
        yield resp.json()[key]
        next_url = next_link(resp)
    raise AssertionError(f"more than {limit} pages from {url}")


# ---------------------------------------------------------------------------
# Assertions


def assert_api_version(resp: httpx.Response) -> None:
    assert resp.headers.get(API_VERSION_HEADER) == API_VERSION, describe(resp)


def assert_error(resp: httpx.Response, status: int, *codes: str) -> list[dict[str, Any]]:
    """A 4xx with an OCI error body: `{"errors": [{"code", "message", "detail"}, ...]}`.

    OCI "Error Codes": each `code` is upper case and underscores, and one of the documented codes;
    `message`, when present, is a string. Every code must be one of `codes` when those are given.
    """
    assert resp.status_code == status, describe(resp)
    if resp.request.method == "HEAD":
        assert resp.content == b"", describe(resp)
        return []
    content_type = resp.headers.get("content-type", "")
    assert content_type.split(";")[0].strip() == "application/json", describe(resp)
    try:
        body = resp.json()
    except ValueError:
        raise AssertionError(f"error body is not JSON: {describe(resp)}") from None
    assert isinstance(body, dict), describe(resp)
    errors = body.get("errors")
    assert isinstance(errors, list), describe(resp)
    assert errors, describe(resp)
    for error in errors:
        assert isinstance(error, dict), describe(resp)
        code = error.get("code")
        assert isinstance(code, str), describe(resp)
        assert _CODE_SHAPE.match(code), describe(resp)
        assert code in DOCUMENTED_ERROR_CODES, describe(resp)
        if "message" in error:
            assert isinstance(error["message"], str), describe(resp)
        if codes:
            assert code in codes, f"expected {codes}: {describe(resp)}"
    return errors


def assert_error_shape_if_json(resp: httpx.Response) -> None:
    """Any 4xx: when the body is JSON it has the OCI error shape (OCI "Error Codes")."""
    if resp.request.method == "HEAD" or not resp.content:
        return
    if resp.headers.get("content-type", "").split(";")[0].strip() != "application/json":
        return
    assert_error(resp, resp.status_code)


def assert_blob_content(resp: httpx.Response, blob: Blob) -> None:
    """OCI "Pulling blobs": 200, the exact bytes, and a `Docker-Content-Digest` matching them."""
    assert resp.status_code == 200, describe(resp)
    assert resp.content == blob.data
    assert resp.headers.get("docker-content-digest") == blob.digest
    assert resp.headers.get("content-length") == str(blob.size)


def assert_manifest_content(resp: httpx.Response, manifest: Manifest) -> None:
    """OCI "Pulling manifests": 200, the bytes as pushed, their type and digest."""
    assert resp.status_code == 200, describe(resp)
    assert resp.content == manifest.body
    assert resp.headers.get("content-type", "").split(";")[0].strip() == manifest.media_type
    assert resp.headers.get("docker-content-digest") == manifest.digest
    assert resp.headers.get("content-length") == str(manifest.size)
