"""A store written by the Go reference registry through real clients, imported, and pulled back from Portside.

docs/operations.md, Migrating from Docker Distribution: "`portside import` adopts such a store in place: it
reads the tree under the configured storage [...] without copying a blob. Everything imported behaves as if
it had been pushed to Portside: the same rows, the same references, the referrers API, tag listings and
pulls byte for byte." and "The import never writes into distribution's tree".

skopeo pushes OCI images, an OCI index (`--all`) and a Docker schema 2 image (`--format v2s2`); oras-py
pushes an artifact whose `subject` is one of the images; a Docker manifest list over the schema 2 image is
pushed over HTTP (no client at hand writes one from a layout). The same runs on a filesystem store and on
S3 (moto).
"""

from __future__ import annotations

import json
import uuid
from pathlib import Path
from typing import Any

import httpx
import oras.oci
import oras.provider
import pytest

from tests.conftest import RegistryFactory
from tests.importer.conftest import GoFactory
from tests.importer.support import (
    bucket_snapshot,
    build_layout,
    catalog,
    closure,
    copy,
    dir_contents,
    portside_config,
    raw_manifest,
    run_import,
    sha256,
    sqlite_rows,
    tag_list,
    tree_snapshot,
    write_config,
)
from tests.object_storage import create_bucket, s3_parameters

pytestmark = [pytest.mark.clients, pytest.mark.slow]

OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
DOCKER_MANIFEST = "application/vnd.docker.distribution.manifest.v2+json"
DOCKER_LIST = "application/vnd.docker.distribution.manifest.list.v2+json"


class Store:
    """One storage for both registries, and a way to see everything in it."""

    def __init__(self, request: pytest.FixtureRequest, tmp_path: Path) -> None:
        self.kind = request.param
        if self.kind == "filesystem":
            self.root = tmp_path / "store"
            self.storage: dict[str, Any] = {"filesystem": {"rootdirectory": str(self.root)}}
            self.go_storage = self.storage
        else:
            endpoint = request.getfixturevalue("s3_endpoint")
            self.endpoint, self.bucket = endpoint, create_bucket(endpoint)
            self.storage = {"s3": s3_parameters(endpoint, self.bucket)}
            go = {k: v for k, v in self.storage["s3"].items() if k != "forcepathstyle"}
            self.go_storage = {"s3": {**go, "v4auth": True}}

    def snapshot(self) -> dict[str, Any]:
        if self.kind == "filesystem":
            return tree_snapshot(self.root)
        return bucket_snapshot(self.endpoint, self.bucket)

    def layer_links(self) -> int:
        return sum(1 for key in self.snapshot() if "/_layers/" in key and key.endswith("/link"))


@pytest.fixture(params=["filesystem", "s3"])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Store:
    return Store(request, tmp_path)


def push_everything(host: str, url: str, work: Path) -> dict[str, Any]:
    """Push through the clients; returns the digest of `apps/img:v1` and the artifact's file."""
    layout = build_layout(work / "oci", uuid.uuid4().hex)
    copy(f"oci:{layout.path}:amd64", f"docker://{host}/apps/img:v1")
    copy(f"oci:{layout.path}:arm64", f"docker://{host}/apps/img:arm64")
    copy(f"oci:{layout.path}:amd64", f"docker://{host}/apps/img:v2s2", "--format", "v2s2")
    copy(f"oci:{layout.path}:multi", f"docker://{host}/multi:latest", "--all")

    v2s2 = raw_manifest(url, "apps/img", "v2s2").content
    assert json.loads(v2s2)["mediaType"] == DOCKER_MANIFEST
    manifest_list = {
        "schemaVersion": 2,
        "mediaType": DOCKER_LIST,
        "manifests": [
            {
                "mediaType": DOCKER_MANIFEST,
                "digest": sha256(v2s2),
                "size": len(v2s2),
                "platform": {"architecture": "amd64", "os": "linux"},
            }
        ],
    }
    r = httpx.put(
        f"{url}/v2/apps/img/manifests/list", content=json.dumps(manifest_list), headers={"Content-Type": DOCKER_LIST}
    )
    assert r.status_code == 201, r.text

    artifact = work / "signature.txt"
    artifact.write_bytes(f"signed {uuid.uuid4().hex}\n".encode())
    v1 = raw_manifest(url, "apps/img", "v1").content
    client = oras.provider.Registry(hostname=host, insecure=True)
    response = client.push(
        target=f"{host}/apps/img:sig-v1",
        files=[f"{artifact}:text/plain"],
        disable_path_validation=True,
        manifest_annotations={"org.example.signed": "yes"},
        subject=oras.oci.Subject(OCI_MANIFEST, sha256(v1), len(v1)),
        quiet=True,
    )
    assert response.status_code == 201, response.text
    return {"v1": sha256(v1), "artifact": artifact}


def test_pushed_by_real_clients_pulls_back_byte_for_byte(
    store: Store, go_registry: GoFactory, registry_factory: RegistryFactory, tmp_path: Path
) -> None:
    go = go_registry(store.go_storage)
    pushed = push_everything(go.host, go.url, tmp_path)
    repositories = catalog(go.url)
    assert repositories == ["apps/img", "multi"]
    tags = {repo: tag_list(go.url, repo) for repo in repositories}
    assert tags == {"apps/img": ["arm64", "list", "sig-v1", "v1", "v2s2"], "multi": ["latest"]}

    config = portside_config(tmp_path, store.storage)
    config_path = write_config(tmp_path, config)
    before = store.snapshot()
    first = run_import(config_path)
    assert store.snapshot() == before, "the import wrote into distribution's tree"
    summary = first.summary
    assert first.skipped == set(), first.events
    assert (summary["repositories"], summary["manifests"], summary["tags"]) == (2, 8, 6), summary
    assert summary["blobs"] == store.layer_links(), summary

    portside = registry_factory(replace=config)
    assert catalog(portside.url) == repositories
    for repo, names in tags.items():
        assert tag_list(portside.url, repo) == names
        for tag in names:
            ours, theirs = raw_manifest(portside.url, repo, tag), raw_manifest(go.url, repo, tag)
            assert ours.status_code == 200, (repo, tag, ours.text)
            assert ours.content == theirs.content, (repo, tag)
            assert ours.headers["Docker-Content-Digest"] == theirs.headers["Docker-Content-Digest"]
            assert ours.headers["Content-Type"] == theirs.headers["Content-Type"], (repo, tag)
            assert closure(portside.url, repo, tag) == closure(go.url, repo, tag), (repo, tag)

    # The index covers both OCI images, the list the schema 2 image and so every layer of apps/img.
    for repo, tag in [("apps/img", "list"), ("multi", "latest")]:
        out = tmp_path / f"pulled-{repo.replace('/', '-')}-{tag}"
        copy(f"docker://{portside.host}/{repo}:{tag}", f"dir:{out}", "--all")
        pulled = dir_contents(out)
        expected = closure(go.url, repo, tag)
        top = raw_manifest(go.url, repo, tag).content
        assert pulled.pop("manifest.json") == top, (repo, tag)
        pulled.setdefault(sha256(top), top)
        assert pulled == expected, (repo, tag, sorted(set(pulled) ^ set(expected)))

    referrers = httpx.get(f"{portside.url}/v2/apps/img/referrers/{pushed['v1']}", timeout=30)
    assert referrers.status_code == 200, referrers.text
    artifact_manifest = raw_manifest(go.url, "apps/img", "sig-v1").content
    body = json.loads(artifact_manifest)
    [entry] = referrers.json()["manifests"]
    assert entry["digest"] == sha256(artifact_manifest)
    assert entry["size"] == len(artifact_manifest)
    assert entry["artifactType"] == (body.get("artifactType") or body["config"]["mediaType"])
    assert entry["annotations"] == body["annotations"]

    client = oras.provider.Registry(hostname=portside.host, insecure=True)
    files = client.pull(target=f"{portside.host}/apps/img:sig-v1", outdir=str(tmp_path / "oras-out"))
    assert [Path(f).read_bytes() for f in files] == [pushed["artifact"].read_bytes()]

    rows, before = sqlite_rows(tmp_path / "portside.db"), store.snapshot()
    second = run_import(config_path)
    assert (second.summary["manifests"], second.summary["tags"], second.summary["blobs"]) == (0, 0, 0)
    assert second.summary["already"] == {"manifests": 8, "tags": 6, "blobs": summary["blobs"]}
    assert sqlite_rows(tmp_path / "portside.db") == rows, "a second import of an unchanged store wrote something"
    assert store.snapshot() == before
