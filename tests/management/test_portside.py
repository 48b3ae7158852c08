"""Portside's management API (`/portside/v1/`, docs/http-behaviour.md "Management API"): repositories with
sizes and last pushes, detailed tags, a manifest's layers, config, platforms and referrers, storage totals."""

from __future__ import annotations

import os
import re
from urllib.parse import parse_qs, urlsplit

import httpx

from tests.management.content import OCI_INDEX, OCI_MANIFEST, SBOM, SIGNATURE, Pusher, push_demo
from tests.management.test_gitlab import MILLIS, assert_error, links


def test_version(client: httpx.Client) -> None:
    body = client.get("/portside/v1/").json()
    assert body["name"] == "Portside"
    assert re.match(r"^\d+\.\d+", body["version"])
    assert body["delete_enabled"] is True
    assert body["read_only"] is False


def test_storage_totals_count_shared_blobs_once(client: httpx.Client, pusher: Pusher, prefix: str) -> None:
    """Stored bytes grow by each blob once; linked bytes by each blob once per repository holding it."""
    before = client.get("/portside/v1/storage").json()
    shared = os.urandom(30_000)
    a = pusher.image(f"{prefix}/a", "v1", [shared, os.urandom(1_000)])
    b = pusher.image(f"{prefix}/b", "v1", [shared, os.urandom(2_000)])
    after = client.get("/portside/v1/storage").json()
    unique = {**a.blobs, **b.blobs}
    assert after["blobs"]["count"] - before["blobs"]["count"] == len(unique)
    assert after["blobs"]["size_bytes"] - before["blobs"]["size_bytes"] == sum(unique.values())
    assert after["linked_bytes"] - before["linked_bytes"] == sum(a.blobs.values()) + sum(b.blobs.values())
    assert after["deduplicated_bytes"] - before["deduplicated_bytes"] == len(shared)
    assert after["repositories"] - before["repositories"] == 2
    assert after["tags"] - before["tags"] == 2
    assert after["manifests"]["count"] - before["manifests"]["count"] == 2
    assert after["manifests"]["size_bytes"] - before["manifests"]["size_bytes"] == a.size + b.size
    sizes = [r["size_bytes"] for r in after["largest_repositories"]]
    assert sizes == sorted(sizes, reverse=True)


def test_repositories_with_sizes_filter_and_paging(client: httpx.Client, pusher: Pusher, prefix: str) -> None:
    shared = os.urandom(20_000)
    images = {name: pusher.image(f"{prefix}/{name}", "v1", [shared, os.urandom(500)]) for name in ("ant", "bee", "cat")}
    pusher.image(f"{prefix}/bee", "v2", [shared])
    body = client.get("/portside/v1/repositories/", params={"name": prefix}).json()["repositories"]
    assert [r["name"] for r in body] == [f"{prefix}/ant", f"{prefix}/bee", f"{prefix}/cat"]
    for entry in body:
        assert set(entry) == {"name", "created_at", "last_push_at", "tag_count", "manifest_count", "size_bytes"}
        assert MILLIS.match(entry["created_at"])
        assert MILLIS.match(entry["last_push_at"])
    ant, bee, _ = body
    assert ant["size_bytes"] == sum(images["ant"].blobs.values())
    assert (ant["tag_count"], ant["manifest_count"]) == (1, 1)
    assert (bee["tag_count"], bee["manifest_count"]) == (2, 2)
    assert bee["size_bytes"] < 2 * ant["size_bytes"]  # the shared layer once

    upper = client.get("/portside/v1/repositories/", params={"name": f"{prefix}/BEE".lower()}).json()
    assert [r["name"] for r in upper["repositories"]] == [f"{prefix}/bee"]
    first = client.get("/portside/v1/repositories/", params={"name": prefix, "n": "2"})
    assert [r["name"] for r in first.json()["repositories"]] == [f"{prefix}/ant", f"{prefix}/bee"]
    assert parse_qs(urlsplit(links(first)["next"]).query) == {"n": ["2"], "last": [f"{prefix}/bee"], "name": [prefix]}
    second = client.get(links(first)["next"])
    assert [r["name"] for r in second.json()["repositories"]] == [f"{prefix}/cat"]
    assert "Link" not in second.headers
    assert_error(client.get("/portside/v1/repositories/", params={"n": "x"}), 400, "INVALID_QUERY_PARAMETER_TYPE")
    assert_error(client.get("/portside/v1/repositories/", params={"name": "A*"}), 400, "INVALID_QUERY_PARAMETER_VALUE")


def test_repository(client: httpx.Client, pusher: Pusher, prefix: str) -> None:
    image = pusher.image(f"{prefix}/one", "v1", [os.urandom(100)])
    body = client.get(f"/portside/v1/repositories/{prefix}/one/").json()
    assert body["name"] == f"{prefix}/one"
    assert body["size_bytes"] == sum(image.blobs.values())
    assert body["last_push_at"] >= body["created_at"]
    assert_error(client.get(f"/portside/v1/repositories/{prefix}/none/"), 404, "NAME_UNKNOWN")


def test_tags_with_platforms_and_referrers(client: httpx.Client, pusher: Pusher, prefix: str) -> None:
    demo = push_demo(pusher, prefix)
    r = client.get(f"/portside/v1/repositories/{demo.web}/tags/", params={"platforms": "true", "referrers": "true"})
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["name"] == demo.web
    tags = {t["name"]: t for t in body["tags"]}
    assert list(tags) == sorted(tags)
    assert tags["latest"]["platforms"] == ["linux/amd64", "linux/arm64"]
    assert tags["1.0.0"]["platforms"] == ["linux/amd64"]
    assert tags["latest"]["media_type"] == OCI_INDEX
    assert "config_digest" not in tags["latest"]
    index_blobs = {**demo.amd64.blobs, **demo.arm64.blobs}
    assert tags["latest"]["size_bytes"] == demo.latest.size + demo.amd64.size + demo.arm64.size + sum(
        index_blobs.values()
    )
    referrers = sorted(tags["latest"]["referrers"], key=lambda x: x["artifact_type"])
    assert [(x["artifact_type"], x["digest"]) for x in referrers] == [
        (SBOM, demo.sbom.digest),
        (SIGNATURE, demo.signature.digest),
    ]
    assert referrers[0]["size_bytes"] == demo.sbom.size
    assert referrers[0]["media_type"] == OCI_MANIFEST
    without = client.get(f"/portside/v1/repositories/{demo.web}/tags/").json()["tags"]
    assert next(t for t in without if t["name"] == "1.0.0")["platforms"] == []  # configs read only when asked
    assert_error(client.get(f"/portside/v1/repositories/{prefix}/none/tags/"), 404, "NAME_UNKNOWN")


def test_manifest_of_an_index_has_its_platforms_and_referrer_tree(
    client: httpx.Client, pusher: Pusher, prefix: str
) -> None:
    demo = push_demo(pusher, prefix)
    r = client.get(f"/portside/v1/repositories/{demo.web}/manifests/latest")
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["digest"] == demo.latest.digest
    assert body["media_type"] == OCI_INDEX
    assert body["tags"] == ["2.0.0", "latest"]
    assert body["size_bytes"] == demo.latest.size
    index_blobs = {**demo.amd64.blobs, **demo.arm64.blobs}
    assert body["total_size_bytes"] == demo.latest.size + demo.amd64.size + demo.arm64.size + sum(index_blobs.values())
    assert body["config"] is None
    assert body["layers"] == []
    assert [(m["digest"], m["platform"]) for m in body["manifests"]] == [
        (demo.amd64.digest, {"os": "linux", "architecture": "amd64"}),
        (demo.arm64.digest, {"os": "linux", "architecture": "arm64"}),
    ]
    groups = {g["artifact_type"]: g["manifests"] for g in body["referrers"]}
    assert list(groups) == sorted([SBOM, SIGNATURE])
    assert [m["digest"] for m in groups[SIGNATURE]] == [demo.signature.digest]
    (sbom,) = groups[SBOM]
    assert sbom["digest"] == demo.sbom.digest
    assert sbom["annotations"] == {"org.opencontainers.image.created": "2026-11-03T08:30:00Z"}
    assert sbom["referrers"] == [
        {
            "artifact_type": SIGNATURE,
            "manifests": [
                {
                    **_descriptor(demo.sbom_signature.digest, SIGNATURE, demo.sbom_signature.size),
                    "annotations": {"org.opencontainers.image.created": "2026-11-03T08:30:00Z"},
                    "referrers": [],
                }
            ],
        }
    ]
    by_digest = client.get(f"/portside/v1/repositories/{demo.web}/manifests/{demo.latest.digest}").json()
    assert by_digest == body


def _descriptor(digest: str, artifact_type: str, size: int) -> dict[str, object]:
    return {"media_type": OCI_MANIFEST, "digest": digest, "size_bytes": size, "artifact_type": artifact_type}


def test_manifest_of_an_image_has_its_config_layers_and_history(
    client: httpx.Client, pusher: Pusher, prefix: str
) -> None:
    layers = [os.urandom(1_000), os.urandom(2_000)]
    image = pusher.image(f"{prefix}/img", "v1", layers, labels={"team": "shop"})
    body = client.get(f"/portside/v1/repositories/{prefix}/img/manifests/v1").json()
    assert body["media_type"] == OCI_MANIFEST
    assert body["total_size_bytes"] == image.size + sum(image.blobs.values())
    assert [(x["digest"], x["size_bytes"]) for x in body["layers"]] == [(f"sha256:{_hex(x)}", len(x)) for x in layers]
    config = body["config"]
    assert config["digest"] == image.config
    assert config["platform"] == "linux/amd64"
    assert config["entrypoint"] == ["/usr/local/bin/serve"]
    assert config["cmd"] == ["--port", "8080"]
    assert config["working_dir"] == "/srv"
    assert config["user"] == "1000:1000"
    assert config["labels"] == {"team": "shop"}
    assert config["exposed_ports"] == ["8080/tcp"]
    assert "APP_MODE=production" in config["env"]
    assert config["created"] == "2026-11-02T10:00:00Z"
    assert config["layers"] == 2
    assert [h["created_by"] for h in config["history"]] == [
        "ADD layer-0.tar.gz /",
        "ADD layer-1.tar.gz /",
        'CMD ["--port" "8080"]',
    ]
    assert [h["empty_layer"] for h in config["history"]] == [False, False, True]
    assert body["referrers"] == []


def _hex(data: bytes) -> str:
    import hashlib

    return hashlib.sha256(data).hexdigest()


def test_manifest_errors(client: httpx.Client, pusher: Pusher, prefix: str) -> None:
    pusher.image(f"{prefix}/img", "v1", [os.urandom(10)])
    assert_error(client.get(f"/portside/v1/repositories/{prefix}/img/manifests/v2"), 404, "MANIFEST_UNKNOWN")
    missing = "sha256:" + "0" * 64
    assert_error(client.get(f"/portside/v1/repositories/{prefix}/img/manifests/{missing}"), 404, "MANIFEST_UNKNOWN")
    assert_error(client.get(f"/portside/v1/repositories/{prefix}/img/manifests/sha256:zz"), 400, "DIGEST_INVALID")
