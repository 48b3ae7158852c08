"""Small HTTP helpers for tests that need content in a registry: push blobs and manifests over the API."""

from __future__ import annotations

import hashlib
import json
import os
import uuid
from typing import Any

import httpx

OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
OCI_INDEX = "application/vnd.oci.image.index.v1+json"
OCI_CONFIG = "application/vnd.oci.image.config.v1+json"
LAYER = "application/vnd.oci.image.layer.v1.tar+gzip"


def sha256(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


def unique_repo(prefix: str = "it") -> str:
    return f"{prefix}/{uuid.uuid4().hex[:12]}"


def push_blob(client: httpx.Client, repo: str, data: bytes) -> str:
    digest = sha256(data)
    r = client.post(f"/v2/{repo}/blobs/uploads/", params={"digest": digest}, content=data)
    assert r.status_code == 201, r.text
    return digest


def push_image(client: httpx.Client, repo: str, tag: str | None = None, layers: int = 1) -> tuple[str, bytes]:
    """Push a config, `layers` random layers and an OCI manifest; returns (manifest digest, manifest bytes)."""
    config = json.dumps({"architecture": "amd64", "os": "linux", "nonce": uuid.uuid4().hex}).encode()
    layer_blobs = [os.urandom(1024 + i) for i in range(layers)]
    manifest: dict[str, Any] = {
        "schemaVersion": 2,
        "mediaType": OCI_MANIFEST,
        "config": {"mediaType": OCI_CONFIG, "digest": push_blob(client, repo, config), "size": len(config)},
        "layers": [{"mediaType": LAYER, "digest": push_blob(client, repo, b), "size": len(b)} for b in layer_blobs],
    }
    body = json.dumps(manifest).encode()
    digest = sha256(body)
    r = client.put(f"/v2/{repo}/manifests/{tag or digest}", content=body, headers={"Content-Type": OCI_MANIFEST})
    assert r.status_code == 201, r.text
    return digest, body
