"""Read-only mode.

docs/operations.md, Read-only mode: with `storage.maintenance.readonly.enabled: true`, every write (`POST`, `PUT`,
`PATCH`, `DELETE` on the registry API) is refused with 405 `UNSUPPORTED` ("registry is in read-only mode") and
an `Allow` header listing the read methods; reads go on; upload purging pauses. The content is pushed with
the server in normal mode, then the server restarts read-only on the same data.
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass
from typing import Any

import httpx
import pytest

from tests.conftest import Registry, RegistryFactory, deep_merge
from tests.operations.support import (
    OCI_MANIFEST,
    OCTET_STREAM,
    Client,
    Image,
    image_manifest,
    new_config,
    push_image,
    sha256,
    unique_repo,
    wait_until,
)

WRITES = {"POST", "PUT", "PATCH", "DELETE"}


@dataclass
class ReadOnly:
    registry: Registry
    repo: str
    image: Image
    upload: str  # an upload session opened before the restart


@pytest.fixture(scope="module")
def readonly(module_registry_factory: RegistryFactory) -> ReadOnly:
    reg = module_registry_factory({})
    c = Client(reg.url)
    repo = unique_repo("ro")
    image = push_image(c, repo, tag="v1", layers=2)
    start = c.request("POST", f"/v2/{repo}/blobs/uploads/")
    assert start.status == 202
    patch = c.request(
        "PATCH", start.response.headers["Location"], content=b"partial", headers={"Content-Type": OCTET_STREAM}
    )
    assert patch.status == 202
    c.close()
    reg.stop()
    reg.config = deep_merge(reg.config, {"storage": {"maintenance": {"readonly": {"enabled": True}}}})
    reg.start()
    return ReadOnly(reg, repo, image, patch.response.headers["Location"])


def _writes(ro: ReadOnly) -> dict[str, tuple[str, str, dict[str, Any], set[str]]]:
    """name: (method, url, request arguments, read methods the Allow header must list)."""
    repo, image = ro.repo, ro.image
    new = os.urandom(500)
    manifest = image_manifest(new_config(), [image.layers[0]])
    layer = sha256(image.layers[0])
    uploads = f"/v2/{repo}/blobs/uploads/"
    return {
        "start an upload": ("POST", uploads, {}, set()),
        "monolithic upload": ("POST", uploads, {"params": {"digest": sha256(new)}, "content": new}, set()),
        "mount": ("POST", f"/v2/{unique_repo('ro')}/blobs/uploads/", {"params": {"mount": layer, "from": repo}}, set()),
        "upload chunk": ("PATCH", ro.upload, {"content": b"more", "headers": {"Content-Type": OCTET_STREAM}}, {"GET"}),
        "finish upload": ("PUT", ro.upload, {"params": {"digest": sha256(b"partial")}}, {"GET"}),
        "cancel upload": ("DELETE", ro.upload, {}, {"GET"}),
        "push manifest by tag": (
            "PUT",
            f"/v2/{repo}/manifests/v2",
            {"content": manifest, "headers": {"Content-Type": OCI_MANIFEST}},
            {"GET", "HEAD"},
        ),
        "push the existing manifest again": (
            "PUT",
            f"/v2/{repo}/manifests/v1",
            {"content": image.manifest, "headers": {"Content-Type": OCI_MANIFEST}},
            {"GET", "HEAD"},
        ),
        "delete manifest": ("DELETE", f"/v2/{repo}/manifests/{image.digest}", {}, {"GET", "HEAD"}),
        "delete tag": ("DELETE", f"/v2/{repo}/manifests/v1", {}, {"GET", "HEAD"}),
        "delete blob": ("DELETE", f"/v2/{repo}/blobs/{layer}", {}, {"GET", "HEAD"}),
    }


WRITE_NAMES = [
    "start an upload",
    "monolithic upload",
    "mount",
    "upload chunk",
    "finish upload",
    "cancel upload",
    "push manifest by tag",
    "push the existing manifest again",
    "delete manifest",
    "delete tag",
    "delete blob",
]


@pytest.mark.parametrize("name", WRITE_NAMES)
def test_every_write_is_refused(readonly: ReadOnly, name: str) -> None:
    """405 `UNSUPPORTED` with a JSON error body and an `Allow` header listing only read methods."""
    method, url, kwargs, reads = _writes(readonly)[name]
    with httpx.Client(base_url=readonly.registry.url, timeout=30) as c:
        r = c.request(method, url, **kwargs)
    assert r.status_code == 405, f"{method} {url}: {r.status_code} {r.text[:300]}"
    assert r.headers.get("Content-Type", "").split(";")[0] == "application/json"
    errors = r.json()["errors"]
    assert errors[0]["code"] == "UNSUPPORTED", errors
    assert "read-only" in errors[0]["message"].lower(), errors
    assert "Allow" in r.headers, "405 without an Allow header"
    allowed = {m.strip().upper() for m in r.headers["Allow"].split(",") if m.strip()}
    assert not allowed & WRITES, f"Allow lists write methods: {r.headers['Allow']}"
    assert reads <= allowed, f"Allow: {r.headers['Allow']}, expected at least {sorted(reads)}"
    assert r.headers.get("X-Request-Id"), "every response carries X-Request-Id"


def test_reads_go_on(readonly: ReadOnly) -> None:
    """Manifests by tag and digest (GET and HEAD), blobs, tags, catalog, referrers and upload status."""
    repo, image = readonly.repo, readonly.image
    with httpx.Client(base_url=readonly.registry.url, timeout=30) as c:
        assert c.get("/v2/").status_code == 200
        for ref in ("v1", image.digest):
            r = c.get(f"/v2/{repo}/manifests/{ref}", headers={"Accept": OCI_MANIFEST})
            assert r.status_code == 200, ref
            assert r.content == image.manifest, ref
            assert c.head(f"/v2/{repo}/manifests/{ref}", headers={"Accept": OCI_MANIFEST}).status_code == 200
        for blob in (image.config, *image.layers):
            r = c.get(f"/v2/{repo}/blobs/{sha256(blob)}")
            assert r.status_code == 200
            assert r.content == blob
            assert c.head(f"/v2/{repo}/blobs/{sha256(blob)}").status_code == 200
        tags = c.get(f"/v2/{repo}/tags/list")
        assert tags.status_code == 200
        assert "v1" in tags.json()["tags"]
        assert repo in c.get("/v2/_catalog").json()["repositories"]
        assert c.get(f"/v2/{repo}/referrers/{image.digest}").status_code == 200
        assert c.get(readonly.upload).status_code == 204


def test_upload_purging_pauses(registry_factory: RegistryFactory) -> None:
    """With `uploadpurging` at 1s age and interval, an open upload session survives read-only mode, and is
    purged once the registry runs writable again with the same settings."""
    purging = {"enabled": True, "age": "1s", "interval": "1s", "dryrun": False}
    reg = registry_factory({}, workers=2)
    with httpx.Client(base_url=reg.url, timeout=30) as c:
        start = c.post(f"/v2/{unique_repo('purge')}/blobs/uploads/")
        assert start.status_code == 202
        location = start.headers["Location"]
        reg.stop()
        reg.config = deep_merge(
            reg.config, {"storage": {"maintenance": {"readonly": {"enabled": True}, "uploadpurging": purging}}}
        )
        reg.start()
        time.sleep(2.5)  # two purge intervals past the age
        r = c.get(location)
        assert r.status_code == 204, f"the open upload session was purged in read-only mode: {r.status_code}"
        reg.stop()
        reg.config = deep_merge(reg.config, {"storage": {"maintenance": {"readonly": {"enabled": False}}}})
        reg.start()
        wait_until(lambda: c.get(location).status_code == 404, timeout=15, what="the writable registry to purge")
