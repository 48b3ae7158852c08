"""Content for the management API and UI tests, pushed over `/v2/` as a client would: images with configs that
have history, labels and platforms, indexes, and referrers (signatures, SBOMs, a signature of an SBOM)."""

from __future__ import annotations

import hashlib
import json
import os
from dataclasses import dataclass, field
from typing import Any

import httpx

OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
OCI_INDEX = "application/vnd.oci.image.index.v1+json"
OCI_CONFIG = "application/vnd.oci.image.config.v1+json"
OCI_EMPTY = "application/vnd.oci.empty.v1+json"
LAYER = "application/vnd.oci.image.layer.v1.tar+gzip"
SIGNATURE = "application/vnd.dev.cosign.artifact.sig.v1+json"
SBOM = "application/spdx+json"
EMPTY_JSON = b"{}"


def sha256(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


@dataclass
class Pushed:
    digest: str
    body: bytes
    media_type: str
    config: str | None = None
    blobs: dict[str, int] = field(default_factory=dict)
    """Digest -> size of every blob the manifest references (config and layers)."""

    @property
    def size(self) -> int:
        return len(self.body)

    def descriptor(self, platform: tuple[str, str] | None = None) -> dict[str, Any]:
        out: dict[str, Any] = {"mediaType": self.media_type, "digest": self.digest, "size": self.size}
        if platform is not None:
            out["platform"] = {"os": platform[0], "architecture": platform[1]}
        return out


@dataclass
class Pusher:
    client: httpx.Client
    headers: dict[str, str] = field(default_factory=dict)

    def blob(self, repo: str, data: bytes) -> str:
        digest = sha256(data)
        r = self.client.post(
            f"/v2/{repo}/blobs/uploads/", params={"digest": digest}, content=data, headers=self.headers
        )
        assert r.status_code == 201, f"push blob to {repo}: {r.status_code} {r.text}"
        return digest

    def manifest(self, repo: str, reference: str | None, body: bytes, media_type: str) -> str:
        digest = sha256(body)
        r = self.client.put(
            f"/v2/{repo}/manifests/{reference or digest}",
            content=body,
            headers={**self.headers, "Content-Type": media_type},
        )
        assert r.status_code == 201, f"put manifest {repo}:{reference}: {r.status_code} {r.text}"
        return digest

    def image(
        self,
        repo: str,
        tag: str | None,
        layers: list[bytes],
        platform: tuple[str, str] = ("linux", "amd64"),
        labels: dict[str, str] | None = None,
        created: str = "2026-11-02T10:00:00Z",
    ) -> Pushed:
        config = {
            "created": created,
            "architecture": platform[1],
            "os": platform[0],
            "config": {
                "Entrypoint": ["/usr/local/bin/serve"],
                "Cmd": ["--port", "8080"],
                "Env": ["PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin", "APP_MODE=production"],
                "WorkingDir": "/srv",
                "User": "1000:1000",
                "ExposedPorts": {"8080/tcp": {}},
                "Labels": labels or {"org.opencontainers.image.source": "https://example.com/shop"},
            },
            "rootfs": {"type": "layers", "diff_ids": [sha256(layer) for layer in layers]},
            "history": [
                {"created": created, "created_by": f"ADD layer-{i}.tar.gz /", "comment": "buildkit"}
                for i in range(len(layers))
            ]
            + [{"created": created, "created_by": 'CMD ["--port" "8080"]', "empty_layer": True}],
            "nonce": os.urandom(8).hex(),
        }
        config_bytes = json.dumps(config).encode()
        blobs = {self.blob(repo, config_bytes): len(config_bytes)}
        layer_descriptors = []
        for layer in layers:
            blobs[self.blob(repo, layer)] = len(layer)
            layer_descriptors.append({"mediaType": LAYER, "digest": sha256(layer), "size": len(layer)})
        manifest = {
            "schemaVersion": 2,
            "mediaType": OCI_MANIFEST,
            "config": {"mediaType": OCI_CONFIG, "digest": sha256(config_bytes), "size": len(config_bytes)},
            "layers": layer_descriptors,
        }
        body = json.dumps(manifest).encode()
        return Pushed(self.manifest(repo, tag, body, OCI_MANIFEST), body, OCI_MANIFEST, sha256(config_bytes), blobs)

    def index(self, repo: str, tag: str | None, children: list[tuple[Pushed, tuple[str, str]]]) -> Pushed:
        body = json.dumps(
            {
                "schemaVersion": 2,
                "mediaType": OCI_INDEX,
                "manifests": [child.descriptor(platform) for child, platform in children],
            }
        ).encode()
        blobs: dict[str, int] = {}
        for child, _ in children:
            blobs.update(child.blobs)
        return Pushed(self.manifest(repo, tag, body, OCI_INDEX), body, OCI_INDEX, None, blobs)

    def referrer(self, repo: str, subject: Pushed, artifact_type: str, payload: bytes) -> Pushed:
        self.blob(repo, EMPTY_JSON)
        layer = self.blob(repo, payload)
        body = json.dumps(
            {
                "schemaVersion": 2,
                "mediaType": OCI_MANIFEST,
                "artifactType": artifact_type,
                "config": {"mediaType": OCI_EMPTY, "digest": sha256(EMPTY_JSON), "size": len(EMPTY_JSON)},
                "layers": [{"mediaType": artifact_type, "digest": layer, "size": len(payload)}],
                "subject": subject.descriptor(),
                "annotations": {"org.opencontainers.image.created": "2026-11-03T08:30:00Z"},
            }
        ).encode()
        blobs = {sha256(EMPTY_JSON): len(EMPTY_JSON), layer: len(payload)}
        return Pushed(self.manifest(repo, None, body, OCI_MANIFEST), body, OCI_MANIFEST, sha256(EMPTY_JSON), blobs)


@dataclass
class Demo:
    """A small shop: `<prefix>/web` (a two-platform index with a signature and an SBOM, the SBOM signed, and
    older tags), `<prefix>/api` sharing the web's base layer, and `<prefix>/tools/cli`."""

    web: str
    api: str
    cli: str
    latest: Pushed
    amd64: Pushed
    arm64: Pushed
    signature: Pushed
    sbom: Pushed
    sbom_signature: Pushed
    older: list[str]
    base_layer: bytes


def push_demo(pusher: Pusher, prefix: str) -> Demo:
    base = os.urandom(48 * 1024)
    web, api, cli = f"{prefix}/web", f"{prefix}/api", f"{prefix}/tools/cli"
    older = []
    for version in ("1.0.0", "1.1.0", "1.2.0"):
        pusher.image(web, version, [base, os.urandom(20 * 1024)])
        older.append(version)
    amd64 = pusher.image(web, None, [base, os.urandom(30 * 1024)], ("linux", "amd64"))
    arm64 = pusher.image(web, None, [base, os.urandom(28 * 1024)], ("linux", "arm64"))
    latest = pusher.index(web, "2.0.0", [(amd64, ("linux", "amd64")), (arm64, ("linux", "arm64"))])
    pusher.manifest(web, "latest", latest.body, OCI_INDEX)
    signature = pusher.referrer(web, latest, SIGNATURE, b'{"critical": {"type": "cosign container image signature"}}')
    sbom = pusher.referrer(web, latest, SBOM, json.dumps({"spdxVersion": "SPDX-2.3", "name": "web"}).encode())
    sbom_signature = pusher.referrer(web, sbom, SIGNATURE, b'{"critical": {"type": "signature of the sbom"}}')
    pusher.image(api, "3.4.1", [base, os.urandom(12 * 1024)])
    pusher.image(api, "latest", [base, os.urandom(12 * 1024)])
    pusher.image(cli, "0.9.0", [os.urandom(8 * 1024)])
    return Demo(web, api, cli, latest, amd64, arm64, signature, sbom, sbom_signature, older, base)
