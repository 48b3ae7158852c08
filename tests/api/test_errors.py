"""Bad names, tags and digests on every route, and a sweep of hostile requests that must never get a 5xx,
each against SQLite and PostgreSQL metadata (what one database takes, the other may refuse)."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit
from uuid import uuid4

import httpx
import pytest

from tests.conftest import Registry

from .oci import (
    OCI_MANIFEST,
    Image,
    assert_error,
    assert_error_shape_if_json,
    describe,
    encode,
    location,
    push_blob,
    push_image,
    push_manifest,
    random_blob,
    random_digest,
    raw_request,
    start_upload,
)


@pytest.fixture(scope="module", params=["sqlite", "postgresql"])
def backend(request: pytest.FixtureRequest) -> Registry:
    """The shared SQLite server, then one on PostgreSQL."""
    name = "registry" if request.param == "sqlite" else "postgres_registry"
    reg: Registry = request.getfixturevalue(name)
    return reg


@pytest.fixture
def client(backend: Registry) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=backend.url, timeout=60.0) as c:
        yield c


@dataclass
class Seeded:
    """A repository holding an image, a blob, and an open upload session."""

    repo: str
    image: Image
    blob: str
    upload: str

    def fill(self, template: str) -> str:
        return template.format(
            repo=self.repo,
            blob=self.blob,
            manifest=self.image.digest,
            digest=random_digest(),
            upload=self.upload,
            upload_path=self.upload.split("?", 1)[0],
            uuid=uuid4().hex,
        )


@pytest.fixture
def seeded(client: httpx.Client, repo: str) -> Seeded:
    image = push_image(client, repo, "latest")
    blob = push_blob(client, repo, random_blob(100))
    parts = urlsplit(location(start_upload(client, repo)))
    upload = parts.path + (f"?{parts.query}" if parts.query else "")
    return Seeded(repo, image, blob.digest, upload)


def with_query(target: str, query: str) -> str:
    return target + ("&" if "?" in target else "?") + query


# ---------------------------------------------------------------------------
# Repository names

NAME_ROUTES = [
    ("GET", "/v2/{name}/tags/list"),
    ("GET", "/v2/{name}/manifests/latest"),
    ("HEAD", "/v2/{name}/manifests/latest"),
    ("PUT", "/v2/{name}/manifests/latest"),
    ("DELETE", "/v2/{name}/manifests/{digest}"),
    ("GET", "/v2/{name}/blobs/{digest}"),
    ("HEAD", "/v2/{name}/blobs/{digest}"),
    ("DELETE", "/v2/{name}/blobs/{digest}"),
    ("POST", "/v2/{name}/blobs/uploads/"),
    ("GET", "/v2/{name}/blobs/uploads/{uuid}"),
    ("PATCH", "/v2/{name}/blobs/uploads/{uuid}"),
    ("PUT", "/v2/{name}/blobs/uploads/{uuid}?digest={digest}"),
    ("DELETE", "/v2/{name}/blobs/uploads/{uuid}"),
    ("GET", "/v2/{name}/referrers/{digest}"),
]

BAD_NAMES = {
    "upper-case": "Conf/abc",
    "upper-case-inner": "conf/aBc",
    "dot-dot": "conf/../abc",
    "dot-dot-encoded": "conf/%2e%2e/abc",
    "dot-dot-encoded-upper": "conf/%2E%2E/abc",
    "dot": "conf/./abc",
    "empty-component": "conf//abc",
    "trailing-slash": "conf/abc/",
    "leading-slash": "/conf/abc",
    "leading-dash": "-conf/abc",
    "trailing-dash": "conf-/abc",
    "leading-underscore": "_conf/abc",
    "leading-dot": ".conf/abc",
    "double-dot-separator": "conf/a..b",
    "triple-underscore": "conf/a___b",
    "dot-dash": "conf/a.-b",
    "256-chars": "a" * 256,
    "over-255-chars-in-components": "/".join(["a" * 63] * 4) + "/a",
    "space": "conf/a%20b",
    "non-ascii": "conf/caf%C3%A9",
    "nul": "conf/a%00b",
    "colon": "conf/a:b",
    "at-sign": "conf/a@b",
    "tilde": "conf/a~b",
}


def name_route_request(client: httpx.Client, method: str, template: str, name: str) -> httpx.Response:
    target = template.format(name=name, digest=random_digest(), uuid=uuid4().hex)
    body = None
    if method == "PUT" and "/manifests/" in target:
        body = encode({"schemaVersion": 2, "mediaType": OCI_MANIFEST, "config": random_blob(2).descriptor()})
    elif method in {"PUT", "PATCH", "POST"}:
        body = b""
    return raw_request(client, method, target, content=body)


@pytest.mark.parametrize("name", list(BAD_NAMES.values()), ids=list(BAD_NAMES))
@pytest.mark.parametrize(("method", "template"), NAME_ROUTES, ids=[f"{m}-{t}" for m, t in NAME_ROUTES])
def test_invalid_name_is_400_name_invalid(client: httpx.Client, method: str, template: str, name: str) -> None:
    """OCI: `<name>` MUST match the path-component grammar; behaviour doc: else (or over 255) 400
    NAME_INVALID."""
    assert_error(name_route_request(client, method, template, name), 400, "NAME_INVALID")


def test_longest_name_is_accepted(client: httpx.Client) -> None:
    """Behaviour doc "Names and references": names of up to 255 characters are valid."""
    head = f"conf/{uuid4().hex}/"
    name = head + "/".join(["b" * 50] * 5)[: 255 - len(head)]
    assert len(name) == 255
    blob = push_blob(client, name, random_blob(8))
    assert client.head(f"/v2/{name}/blobs/{blob.digest}").status_code == 200
    assert client.get(f"/v2/{name}/tags/list").status_code == 200


@pytest.mark.parametrize(
    "suffix",
    [
        "a__b",
        "a--b",
        "a-b.c_d",
        "0",
        "x/y/z/w",
        "tags",
        "manifests",
        "blobs",
        "blobs/uploads",
        "referrers",
        "v2",
    ],
)
def test_unusual_but_valid_names_work(client: httpx.Client, suffix: str) -> None:
    """OCI name grammar allows `__`, `-+`, `.` separators
    and any number of components, route words included."""
    name = f"conf/{uuid4().hex[:12]}/{suffix}"
    image = push_image(client, name, "t")
    resp = client.get(f"/v2/{name}/manifests/t")
    assert resp.status_code == 200, describe(resp)
    assert resp.content == image.manifest.body
    tags = client.get(f"/v2/{name}/tags/list")
    assert tags.status_code == 200, describe(tags)
    assert tags.json() == {"name": name, "tags": ["t"]}
    blob = image.layers[0]
    assert client.get(f"/v2/{name}/blobs/{blob.digest}").content == blob.data
    referrers = client.get(f"/v2/{name}/referrers/{image.digest}")
    assert referrers.status_code == 200, describe(referrers)


# ---------------------------------------------------------------------------
# Tags

BAD_TAGS = {
    "leading-dash": "-tag",
    "leading-dot": ".tag",
    "129-chars": "t" * 129,
    "space": "ta%20g",
    "bang": "tag!",
    "plus": "tag+1",
    "at-sign": "tag@x",
    "tilde": "tag~",
    "non-ascii": "t%C3%A9",
    "nul": "tag%00",
}


@pytest.mark.parametrize("tag", list(BAD_TAGS.values()), ids=list(BAD_TAGS))
@pytest.mark.parametrize("method", ["PUT", "DELETE"])
def test_invalid_tag_is_400_tag_invalid(client: httpx.Client, seeded: Seeded, method: str, tag: str) -> None:
    """OCI: a tag MUST match `[a-zA-Z0-9_][a-zA-Z0-9._-]{0,127}`; behaviour doc: pushing or deleting any
    other tag is 400 TAG_INVALID."""
    body = seeded.image.manifest.body if method == "PUT" else None
    headers = {"Content-Type": OCI_MANIFEST} if method == "PUT" else None
    resp = raw_request(client, method, f"/v2/{seeded.repo}/manifests/{tag}", headers=headers, content=body)
    assert_error(resp, 400, "TAG_INVALID")


@pytest.mark.parametrize("tag", [*BAD_TAGS.values(), ".INVALID_MANIFEST_NAME"], ids=[*BAD_TAGS, "conformance"])
@pytest.mark.parametrize("method", ["GET", "HEAD"])
def test_reading_an_invalid_tag_is_404_manifest_unknown(
    client: httpx.Client, seeded: Seeded, method: str, tag: str
) -> None:
    """The OCI conformance suite reads `.INVALID_MANIFEST_NAME` and expects 404 MANIFEST_UNKNOWN: no
    manifest can have a reference that is neither a tag nor a digest (behaviour doc "Names and
    references"); in a repository that does not exist it is NAME_UNKNOWN, as for any tag."""
    resp = raw_request(client, method, f"/v2/{seeded.repo}/manifests/{tag}")
    assert_error(resp, 404, "MANIFEST_UNKNOWN")
    unknown = raw_request(client, method, f"/v2/{seeded.repo}-absent/manifests/{tag}")
    assert_error(unknown, 404, "NAME_UNKNOWN")


@pytest.mark.parametrize("tag", ["t" * 128, "_x", "X.Y-Z_", "0", "UPPER", "a..b", "a--__..b"])
def test_unusual_but_valid_tags_work(client: httpx.Client, seeded: Seeded, tag: str) -> None:
    """OCI tag grammar `[a-zA-Z0-9_][a-zA-Z0-9._-]{0,127}`: up to 128 characters, upper case allowed."""
    push_manifest(client, seeded.repo, tag, seeded.image.manifest)
    resp = client.get(f"/v2/{seeded.repo}/manifests/{tag}")
    assert resp.status_code == 200, describe(resp)
    assert tag in client.get(f"/v2/{seeded.repo}/tags/list").json()["tags"]


# ---------------------------------------------------------------------------
# Digests

BAD_DIGESTS = {
    "short-hex": "sha256:abc",
    "upper-case-hex": "sha256:" + "A" * 64,
    "long-hex": "sha256:" + "a" * 65,
    "not-hex": "sha256:" + "g" * 64,
    "md5": "md5:" + "0" * 32,
    "sha384": "sha384:" + "0" * 96,
    "sha512-too-short": "sha512:" + "0" * 64,
    "empty-hex": "sha256:",
    "empty-algorithm": ":" + "0" * 64,
    "upper-case-algorithm": "SHA256:" + "0" * 64,
    "unregistered-encoding": "sha256+b64u:LCa0a2j_xo_5m0U8HTBBNBNCLXBkg7-g-YpeiGJm564",
}

DIGEST_ROUTES = [
    ("GET", "/v2/{repo}/blobs/{bad}"),
    ("HEAD", "/v2/{repo}/blobs/{bad}"),
    ("DELETE", "/v2/{repo}/blobs/{bad}"),
    ("GET", "/v2/{repo}/manifests/{bad}"),
    ("HEAD", "/v2/{repo}/manifests/{bad}"),
    ("PUT", "/v2/{repo}/manifests/{bad}"),
    ("DELETE", "/v2/{repo}/manifests/{bad}"),
    ("GET", "/v2/{repo}/referrers/{bad}"),
    ("POST", "/v2/{repo}/blobs/uploads/?digest={bad}"),
    ("POST", "/v2/{repo}/blobs/uploads/?mount={bad}&from={repo}"),
    ("PUT", "{upload}&digest={bad}"),
]


@pytest.mark.parametrize("bad", list(BAD_DIGESTS.values()), ids=list(BAD_DIGESTS))
@pytest.mark.parametrize(("method", "template"), DIGEST_ROUTES, ids=[f"{m}-{t}" for m, t in DIGEST_ROUTES])
def test_invalid_digest_is_400_digest_invalid(
    client: httpx.Client, seeded: Seeded, method: str, template: str, bad: str
) -> None:
    """Image-spec "Digests" grammar and registered algorithms; behaviour doc: malformed or unsupported
    digests in a path or query are 400 DIGEST_INVALID."""
    upload = seeded.upload if "?" in seeded.upload else seeded.upload + "?"
    target = template.format(repo=seeded.repo, bad=bad, upload=upload).replace("?&", "?")
    body: bytes | None = None
    headers: dict[str, str] = {}
    if method == "PUT" and "/manifests/" in target:
        body, headers = seeded.image.manifest.body, {"Content-Type": OCI_MANIFEST}
    elif method in {"PUT", "POST"}:
        body, headers = b"abc", {"Content-Type": "application/octet-stream"}
    assert_error(raw_request(client, method, target, headers=headers, content=body), 400, "DIGEST_INVALID")


@pytest.mark.parametrize(
    ("method", "path"),
    [("GET", "blobs"), ("HEAD", "blobs"), ("DELETE", "blobs"), ("GET", "referrers")],
)
def test_digest_without_algorithm_is_400(client: httpx.Client, seeded: Seeded, method: str, path: str) -> None:
    """Behaviour doc "Names and references": where only a digest fits, a bare word is 400 DIGEST_INVALID."""
    resp = client.request(method, f"/v2/{seeded.repo}/{path}/notadigest")
    assert_error(resp, 400, "DIGEST_INVALID")


# ---------------------------------------------------------------------------
# No 5xx, whatever comes in

DEEP_ARRAY = b"[" * 100_000
DEEP_OBJECT = b'{"a":' * 50_000
MANIFEST_CT = {"Content-Type": OCI_MANIFEST}


def manifest_with(**fields: object) -> bytes:
    obj: dict[str, object] = {"schemaVersion": 2, "mediaType": OCI_MANIFEST}
    obj.update(fields)
    return encode(obj)


@dataclass(frozen=True)
class Probe:
    method: str
    target: str
    headers: tuple[tuple[str, str], ...] = ()
    body: bytes | None = None
    under_v2: bool = True


LONG = "a" * 3000
PROBES: dict[str, Probe] = {
    "name-bad-percent": Probe("GET", "/v2/%ff/tags/list"),
    "name-lone-percent": Probe("GET", "/v2/a%/tags/list"),
    "name-bad-escape": Probe("GET", "/v2/%zz/manifests/latest"),
    "name-long": Probe("GET", f"/v2/{LONG}/tags/list"),
    "name-traversal": Probe("GET", "/v2/%2e%2e/%2e%2e/%2e%2e/etc/passwd/tags/list"),
    "path-traversal": Probe("GET", "/v2/../../../etc/passwd", under_v2=False),
    "tag-long": Probe("GET", f"/v2/{{repo}}/manifests/{LONG}"),
    "tag-nul": Probe("GET", "/v2/{repo}/manifests/%00"),
    "tag-dot-dot": Probe("DELETE", "/v2/{repo}/manifests/%2e%2e"),
    "digest-bad-percent": Probe("GET", "/v2/{repo}/manifests/sha256:%ff"),
    "digest-huge": Probe("GET", "/v2/{repo}/blobs/sha256:" + "0" * 5000),
    "digest-colons": Probe("GET", "/v2/{repo}/blobs/sha256:sha256:" + "0" * 64),
    "tags-n-negative": Probe("GET", "/v2/{repo}/tags/list?n=-1"),
    "tags-n-empty": Probe("GET", "/v2/{repo}/tags/list?n="),
    "tags-n-nul": Probe("GET", "/v2/{repo}/tags/list?n=%00"),
    "tags-n-huge-negative": Probe("GET", "/v2/{repo}/tags/list?n=-99999999999999999999999999"),
    "tags-n-repeated": Probe("GET", "/v2/{repo}/tags/list?n=1&n=2"),
    "tags-n-bad-utf8": Probe("GET", "/v2/{repo}/tags/list?n=%c3%28"),
    "tags-last-bad-percent": Probe("GET", "/v2/{repo}/tags/list?last=%ff&n=1"),
    "tags-last-long": Probe("GET", f"/v2/{{repo}}/tags/list?last={LONG}"),
    "catalog-n-empty": Probe("GET", "/v2/_catalog?n="),
    "catalog-last-nul": Probe("GET", "/v2/_catalog?last=%00"),
    "catalog-huge-n": Probe("GET", "/v2/_catalog?last=%ff&n=99999999999999999999999999999999"),
    "catalog-n-huge-negative": Probe("GET", "/v2/_catalog?n=-99999999999999999999999"),
    "referrers-filter-nul": Probe("GET", "/v2/{repo}/referrers/{digest}?artifactType=%00"),
    "referrers-filter-long": Probe("GET", f"/v2/{{repo}}/referrers/{{digest}}?artifactType={LONG}"),
    "mount-garbage": Probe("POST", "/v2/{repo}/blobs/uploads/?mount=%00&from=%ff", body=b""),
    "mount-long-from": Probe("POST", f"/v2/{{repo}}/blobs/uploads/?mount={{digest}}&from={LONG}", body=b""),
    "post-digest-bad-percent": Probe("POST", "/v2/{repo}/blobs/uploads/?digest=%ff", body=b"abc"),
    "post-digest-repeated": Probe("POST", "/v2/{repo}/blobs/uploads/?digest={digest}&digest={blob}", body=b"abc"),
    "upload-id-dot-dot": Probe("GET", "/v2/{repo}/blobs/uploads/%2e%2e"),
    "upload-id-traversal": Probe("PATCH", "/v2/{repo}/blobs/uploads/..%2f..%2f..%2fetc", body=b"abc"),
    "upload-id-long": Probe("PATCH", f"/v2/{{repo}}/blobs/uploads/{LONG}", body=b"abc"),
    "range-huge-start": Probe("GET", "/v2/{repo}/blobs/{blob}", (("Range", "bytes=99999999999999999999999999-"),)),
    "range-huge-end": Probe("GET", "/v2/{repo}/blobs/{blob}", (("Range", "bytes=0-99999999999999999999999999"),)),
    "range-huge-suffix": Probe("GET", "/v2/{repo}/blobs/{blob}", (("Range", "bytes=-99999999999999999999999999"),)),
    "range-double-dash": Probe("GET", "/v2/{repo}/blobs/{blob}", (("Range", "bytes=--1"),)),
    "range-many": Probe("GET", "/v2/{repo}/blobs/{blob}", (("Range", "bytes=" + ",".join(["0-1"] * 500)),)),
    "content-range-huge": Probe("PATCH", "{upload}", (("Content-Range", "0-99999999999999999999999"),), b"0123456789"),
    "content-range-huge-start": Probe(
        "PATCH", "{upload}", (("Content-Range", "99999999999999999999-99999999999999999999"),), b"0"
    ),
    "content-range-negative": Probe("PATCH", "{upload}", (("Content-Range", "-5-4"),), b"0123456789"),
    "put-upload-bad-content-range": Probe(
        "PUT", "{upload}&digest={digest}", (("Content-Range", "x-y"),), b"0123456789"
    ),
    "manifest-deep-array": Probe("PUT", "/v2/{repo}/manifests/deep", tuple(MANIFEST_CT.items()), DEEP_ARRAY),
    "manifest-deep-object": Probe("PUT", "/v2/{repo}/manifests/deep", tuple(MANIFEST_CT.items()), DEEP_OBJECT),
    "manifest-binary": Probe("PUT", "/v2/{repo}/manifests/bin", tuple(MANIFEST_CT.items()), bytes(range(256)) * 4),
    "manifest-infinite-size": Probe(
        "PUT",
        "/v2/{repo}/manifests/inf",
        tuple(MANIFEST_CT.items()),
        manifest_with(config={"mediaType": "a/b", "size": 1e400, "digest": random_digest()}, layers=[]),
    ),
    "manifest-huge-size": Probe(
        "PUT",
        "/v2/{repo}/manifests/huge",
        tuple(MANIFEST_CT.items()),
        manifest_with(config={"mediaType": "a/b", "size": 10**30, "digest": random_digest()}, layers=[]),
    ),
    "manifest-nan": Probe("PUT", "/v2/{repo}/manifests/nan", tuple(MANIFEST_CT.items()), b'{"schemaVersion": NaN}'),
    "manifest-annotations-not-strings": Probe(
        "PUT",
        "/v2/{repo}/manifests/ann",
        tuple(MANIFEST_CT.items()),
        manifest_with(config={"mediaType": "a/b", "size": 1, "digest": random_digest()}, annotations={"a": [1]}),
    ),
    "manifest-bad-subject": Probe(
        "PUT",
        "/v2/{repo}/manifests/subj",
        tuple(MANIFEST_CT.items()),
        manifest_with(
            config={"mediaType": "a/b", "size": 1, "digest": random_digest()},
            layers=[],
            subject={"mediaType": OCI_MANIFEST, "digest": "sha256:nope", "size": "x"},
        ),
    ),
    "manifest-many-missing-layers": Probe(
        "PUT",
        "/v2/{repo}/manifests/many",
        tuple(MANIFEST_CT.items()),
        manifest_with(
            config={"mediaType": "a/b", "size": 1, "digest": random_digest()},
            layers=[random_blob(1).descriptor() for _ in range(2000)],
        ),
    ),
    "manifest-index-junk-children": Probe(
        "PUT",
        "/v2/{repo}/manifests/junk",
        (("Content-Type", "application/vnd.oci.image.index.v1+json"),),
        encode({"schemaVersion": 2, "manifests": [1, "x", None, [], {"digest": 5}]}),
    ),
    "manifest-content-type-junk": Probe("PUT", "/v2/{repo}/manifests/ct", (("Content-Type", ";;;,,,/"),), b"{}"),
    "accept-junk": Probe("GET", "/v2/{repo}/manifests/latest", (("Accept", ";;;,,,q=x/"),)),
    "accept-bad-q": Probe("GET", "/v2/{repo}/manifests/latest", (("Accept", f"{OCI_MANIFEST};q=abc"),)),
    "if-none-match-junk": Probe("GET", "/v2/{repo}/manifests/latest", (("If-None-Match", '"""'),)),
}


@pytest.mark.parametrize("probe", list(PROBES.values()), ids=list(PROBES))
def test_hostile_request_never_gets_5xx(client: httpx.Client, seeded: Seeded, probe: Probe) -> None:
    """No input is a server error: the answer is below 500; behaviour doc: every error body is the JSON
    `{"errors": [...]}` of OCI "Error Codes"."""
    target = seeded.fill(probe.target)
    if target.startswith(seeded.upload) and "?" not in seeded.upload:
        target = target.replace(seeded.upload + "&", seeded.upload + "?", 1)
    resp = raw_request(client, probe.method, target, headers=dict(probe.headers), content=probe.body)
    assert resp.status_code < 500, describe(resp)
    if resp.status_code >= 400:
        assert_error_shape_if_json(resp)
        if probe.method != "HEAD" and probe.under_v2:
            assert resp.headers.get("content-type", "").startswith("application/json"), describe(resp)
    assert client.get("/v2/").status_code == 200


# ---------------------------------------------------------------------------
# Line breaks and control characters

LINE_BREAKS: dict[str, tuple[str, str, int, str]] = {
    "name-lf": ("GET", "/v2/conf/a%0Ab/tags/list", 400, "NAME_INVALID"),
    "name-trailing-lf": ("GET", "/v2/{repo}%0A/manifests/latest", 400, "NAME_INVALID"),
    "name-trailing-crlf": ("HEAD", "/v2/{repo}%0D%0A/blobs/{blob}", 400, "NAME_INVALID"),
    "tag-trailing-lf": ("GET", "/v2/{repo}/manifests/latest%0A", 404, "MANIFEST_UNKNOWN"),
    "tag-trailing-crlf-put": ("PUT", "/v2/{repo}/manifests/latest%0D%0A", 400, "TAG_INVALID"),
    "blob-digest-trailing-lf": ("GET", "/v2/{repo}/blobs/{blob}%0A", 400, "DIGEST_INVALID"),
    "manifest-digest-trailing-crlf": ("GET", "/v2/{repo}/manifests/{manifest}%0D%0A", 400, "DIGEST_INVALID"),
    "referrers-digest-trailing-lf": ("GET", "/v2/{repo}/referrers/{manifest}%0A", 400, "DIGEST_INVALID"),
    "upload-id-trailing-lf": ("GET", "{upload_path}%0A", 404, "BLOB_UPLOAD_UNKNOWN"),
    "route-lf": ("GET", "/v2/%0A", 404, "UNSUPPORTED"),
    "route-inner-crlf": ("GET", "/v2/{repo}/%0D%0A/list", 404, "UNSUPPORTED"),
    "mount-trailing-lf": ("POST", "/v2/{repo}/blobs/uploads/?mount={blob}%0A&from={repo}", 400, "DIGEST_INVALID"),
    "mount-from-trailing-lf": ("POST", "/v2/{repo}/blobs/uploads/?mount={blob}&from={repo}%0A", 400, "NAME_INVALID"),
    "post-digest-trailing-lf": ("POST", "/v2/{repo}/blobs/uploads/?digest={blob}%0A", 400, "DIGEST_INVALID"),
    "put-digest-trailing-lf": ("PUT", "{upload_path}?digest={blob}%0A", 400, "DIGEST_INVALID"),
}


@pytest.mark.parametrize(("method", "template", "status", "code"), LINE_BREAKS.values(), ids=list(LINE_BREAKS))
def test_line_breaks_anywhere_get_the_error_body(
    client: httpx.Client, seeded: Seeded, method: str, template: str, status: int, code: str
) -> None:
    """OCI "Error Codes": every `/v2/` error carries the JSON error body, a line break in a name, reference,
    digest or query parameter included; a trailing one never passes as valid (names, tags and digests are
    matched whole)."""
    body: bytes | None = None
    headers: dict[str, str] = {}
    if method == "PUT" and "/manifests/" in template:
        body, headers = seeded.image.manifest.body, {"Content-Type": OCI_MANIFEST}
    elif method in {"PUT", "POST"}:
        body, headers = b"", {"Content-Type": "application/octet-stream"}
    resp = raw_request(client, method, seeded.fill(template), headers=headers, content=body)
    assert_error(resp, status, code)
    assert resp.headers.get("x-request-id"), describe(resp)
    assert resp.headers.get("docker-distribution-api-version") == "registry/2.0", describe(resp)


def test_line_breaks_get_an_access_log_line(registry_factory: Any) -> None:
    """docs/operations.md "Logs": each request gets one access log line, a path with a line break too."""
    from tests.operations.support import access_lines, wait_until

    reg = registry_factory({"log": {"level": "info", "formatter": "json", "accesslog": {"disabled": False}}})
    with httpx.Client(base_url=reg.url, timeout=30) as c:
        for target in ("/v2/conf/a%0Ab/tags/list", "/v2/%0D%0A"):
            resp = raw_request(c, "GET", target)
            assert resp.status_code in (400, 404), describe(resp)
            rid = resp.headers["x-request-id"]
            (line,) = wait_until(lambda rid=rid: access_lines(reg, rid), 30, f"the access line of {target}")
            assert line["status"] == resp.status_code


CONTROL_CHARACTERS = {"nul": "%00", "lf": "%0A", "cr": "%0D", "esc": "%1B", "del": "%7F", "c1-nel": "%C2%85"}


@pytest.mark.parametrize("char", CONTROL_CHARACTERS.values(), ids=list(CONTROL_CHARACTERS))
@pytest.mark.parametrize("target", ["/v2/_catalog?last=a{char}b", "/v2/{repo}/tags/list?n=1&last=a{char}"])
def test_control_characters_in_last_are_400(client: httpx.Client, seeded: Seeded, target: str, char: str) -> None:
    """Behaviour doc "Listing": a `last` with a control character is refused, 400
    PAGINATION_NUMBER_INVALID, before the metadata store (PostgreSQL cannot store a NUL)."""
    resp = raw_request(client, "GET", seeded.fill(target.replace("{char}", char)))
    assert_error(resp, 400, "PAGINATION_NUMBER_INVALID")


@pytest.mark.parametrize("char", CONTROL_CHARACTERS.values(), ids=list(CONTROL_CHARACTERS))
def test_referrers_filter_with_control_characters_matches_nothing(
    client: httpx.Client, seeded: Seeded, char: str
) -> None:
    """Behaviour doc "Referrers": an `artifactType` that is no media type (a control character in it) can be
    no manifest's, so the answer is the empty index, filter applied, without asking the store; OCI: the
    referrers API never answers 404."""
    resp = raw_request(client, "GET", seeded.fill(f"/v2/{{repo}}/referrers/{{manifest}}?artifactType=a/b{char}"))
    assert resp.status_code == 200, describe(resp)
    assert resp.json()["manifests"] == []
    assert resp.headers.get("oci-filters-applied") == "artifactType"
