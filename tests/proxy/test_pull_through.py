"""Distribution's `proxy:` section against the Go registry (htpasswd auth) as the upstream.

docs/operations.md, "A pull-through cache": `remoteurl`, `username`, `password`, `ttl` (168h by default) and the
`REGISTRY_PROXY_*` overrides; a manifest by tag is revalidated with a HEAD and served from the cache while the
tag names it; manifests by digest and blobs are served from the cache once fetched; pushes and deletes of cached
names answer 405 `UNSUPPORTED`.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
import yaml

from portside.config.loader import load_config
from portside.config.schema import Config
from tests.helpers import OCI_INDEX
from tests.proxy.conftest import Cache
from tests.proxy.support import (
    OCI_MANIFEST,
    Image,
    get_manifest,
    pull,
    push_blob,
    push_image,
    push_manifest,
    sha256,
    unique,
)


@pytest.fixture
def image(cache: Cache) -> Iterator[Image]:
    with cache.upstream.client() as up:
        yield push_image(up, f"lib/{unique()}", "v1", (3000, 5000))


def test_a_pull_by_tag_is_fetched_once_then_revalidated_with_a_head(cache: Cache, image: Image) -> None:
    with cache.client() as c:
        pull(c, image)
        assert cache.relay.count("GET", f"/v2/{image.repository}/blobs/") == len(image.blobs)
        cache.relay.reset_counts()
        pull(c, image)
    repo = image.repository
    assert cache.relay.count("HEAD", f"/v2/{repo}/manifests/{image.tag}") == 1
    assert cache.relay.count("GET", f"/v2/{repo}/manifests/") == 0, "an unchanged tag is served from the cache"
    assert cache.relay.count("GET", f"/v2/{repo}/blobs/") == 0, "blobs are served from the cache"


def test_manifests_by_digest_and_blobs_are_not_asked_upstream_again(cache: Cache, image: Image) -> None:
    with cache.client() as c:
        pull(c, image, reference=image.digest)
        cache.relay.reset_counts()
        pull(c, image, reference=image.digest)
        head = c.head(f"/v2/{image.repository}/blobs/{image.layer_digest}")
        assert head.status_code == 200
        assert head.headers["Content-Length"] == str(len(image.layers[0]))
    assert sum(n for (_, path), n in cache.relay.counts.items() if image.repository in path) == 0


def test_a_tag_moved_upstream_is_followed(cache: Cache, image: Image) -> None:
    with cache.client() as c:
        pull(c, image)
        with cache.upstream.client() as up:
            moved = push_manifest(up, image.repository, image.tag, image.config, image.layers[:1])
        assert moved.digest != image.digest
        pull(c, moved)
        # the old manifest stays in the cache by digest
        r = get_manifest(c, image.repository, image.digest)
        assert r.status_code == 200
        assert r.content == image.manifest


def test_unknown_names_are_the_upstreams_404(cache: Cache, image: Image) -> None:
    with cache.client() as c:
        r = get_manifest(c, image.repository, "no-such-tag")
        assert r.status_code == 404, r.text
        assert r.json()["errors"][0]["code"] == "MANIFEST_UNKNOWN"
        r = c.get(f"/v2/{image.repository}/blobs/{sha256(b'never pushed')}")
        assert r.status_code == 404, r.text
        assert r.json()["errors"][0]["code"] == "BLOB_UNKNOWN"
        r = get_manifest(c, f"lib/{unique()}", "v1")
        assert r.status_code == 404, r.text
        assert r.json()["errors"][0]["code"] in ("NAME_UNKNOWN", "MANIFEST_UNKNOWN")


def assert_unsupported(r: httpx.Response) -> None:
    assert r.status_code == 405, (r.request.method, r.request.url, r.status_code, r.text)
    assert r.json()["errors"][0]["code"] == "UNSUPPORTED"


def test_pushes_and_deletes_are_refused(cache: Cache, image: Image) -> None:
    repo = image.repository
    with cache.client() as c:
        pull(c, image)
        assert_unsupported(c.post(f"/v2/{repo}/blobs/uploads/"))
        assert_unsupported(c.post(f"/v2/{repo}/blobs/uploads/", params={"digest": sha256(b"x")}, content=b"x"))
        assert_unsupported(
            c.post(f"/v2/{repo}/blobs/uploads/", params={"mount": image.layer_digest, "from": "other/repo"})
        )
        headers = {"Content-Type": OCI_MANIFEST}
        assert_unsupported(c.put(f"/v2/{repo}/manifests/v2", content=image.manifest, headers=headers))
        assert_unsupported(c.delete(f"/v2/{repo}/manifests/{image.digest}"))
        assert_unsupported(c.delete(f"/v2/{repo}/blobs/{image.layer_digest}"))
        pull(c, image)  # nothing was taken away


def test_the_ttl_defaults_to_a_week() -> None:
    config = Config.model_validate({"proxy": {"remoteurl": "http://127.0.0.1:1"}})
    assert config.proxy.ttl == 168 * 3600
    assert [u.ttl for u in config.proxy.upstreams] == [168 * 3600]
    config = Config.model_validate({"proxy": {"remoteurl": "http://127.0.0.1:1", "ttl": "2h"}})
    assert [u.ttl for u in config.proxy.upstreams] == [7200]


def test_registry_proxy_environment_overrides(tmp_path: Path) -> None:
    """As Distribution reads them: each `REGISTRY_PROXY_*` variable sets its key over the file's."""
    path = tmp_path / "config.yml"
    path.write_text(yaml.safe_dump({"version": 0.1, "proxy": {"remoteurl": "http://file.invalid", "ttl": "1h"}}))
    environ = {
        "REGISTRY_PROXY_REMOTEURL": "http://127.0.0.1:5999",
        "REGISTRY_PROXY_USERNAME": "bot",
        "REGISTRY_PROXY_PASSWORD": "secret",
        "REGISTRY_PROXY_TTL": "30m",
    }
    [upstream] = load_config(path, environ).proxy.upstreams
    assert (upstream.url, upstream.username, upstream.password, upstream.ttl) == (
        "http://127.0.0.1:5999",
        "bot",
        "secret",
        1800,
    )
    [upstream] = load_config(path, {}).proxy.upstreams
    assert (upstream.url, upstream.ttl) == ("http://file.invalid", 3600)


def test_ranges_of_cold_and_cached_blobs(cache: Cache) -> None:
    with cache.upstream.client() as up:
        image = push_image(up, f"lib/{unique()}", "v1", (200_000,))
    url = f"/v2/{image.repository}/blobs/{image.layer_digest}"
    layer = image.layers[0]
    with cache.client() as c:
        for _ in ("cold", "cached"):
            r = c.get(url, headers={"Range": "bytes=1000-"})
            assert r.status_code == 206, r.text
            assert r.headers["Content-Range"] == f"bytes 1000-{len(layer) - 1}/{len(layer)}"
            assert r.content == layer[1000:]
        r = c.get(url, headers={"Range": "bytes=10-19"})
        assert r.status_code == 206
        assert r.content == layer[10:20]
    assert cache.relay.count("GET", url) == 1


def test_a_blob_another_cached_repository_holds_is_not_fetched_again(cache: Cache) -> None:
    with cache.upstream.client() as up:
        first = push_image(up, f"lib/{unique()}", "v1", (30_000,))
        shared = first.layers[0]
        second_repo = f"lib/{unique()}"
        for blob in (first.config, shared):
            push_blob(up, second_repo, blob)
        second = push_manifest(up, second_repo, "v1", first.config, [shared])
    with cache.client() as c:
        pull(c, first)
        pull(c, second)
    layer = f"/blobs/{first.layer_digest}"
    assert cache.relay.count("GET", f"/v2/{first.repository}{layer}") == 1
    assert cache.relay.count("GET", f"/v2/{second.repository}{layer}") == 0, "linked from the first repository"


def test_tag_lists_are_the_upstreams(cache: Cache, image: Image) -> None:
    with cache.upstream.client() as up:
        push_manifest(up, image.repository, "v2", image.config, image.layers)
    with cache.client() as c:
        r = c.get(f"/v2/{image.repository}/tags/list")
    assert r.status_code == 200, r.text
    assert sorted(r.json()["tags"]) == ["v1", "v2"]


def test_an_index_and_its_manifests(cache: Cache) -> None:
    """A multi-platform image: the index by tag, then each manifest it names by digest, then their blobs."""
    repo = f"lib/{unique()}"
    with cache.upstream.client() as up:
        children = [push_image(up, repo, f"arch{i}") for i in range(2)]
        index = json.dumps(
            {
                "schemaVersion": 2,
                "mediaType": OCI_INDEX,
                "manifests": [
                    {
                        "mediaType": OCI_MANIFEST,
                        "digest": child.digest,
                        "size": len(child.manifest),
                        "platform": {"architecture": arch, "os": "linux"},
                    }
                    for child, arch in zip(children, ("amd64", "arm64"), strict=True)
                ],
            }
        ).encode()
        r = up.put(f"/v2/{repo}/manifests/multi", content=index, headers={"Content-Type": OCI_INDEX})
        assert r.status_code == 201, r.text
    with cache.client() as c:
        r = c.get(f"/v2/{repo}/manifests/multi", headers={"Accept": f"{OCI_INDEX}, {OCI_MANIFEST}"})
        assert r.status_code == 200, r.text
        assert r.content == index
        assert r.headers["Content-Type"] == OCI_INDEX
        for child in children:
            pull(c, child, reference=child.digest)
        cache.relay.reset_counts()
        r = c.get(f"/v2/{repo}/manifests/multi", headers={"Accept": f"{OCI_INDEX}, {OCI_MANIFEST}"})
        assert r.content == index
        for child in children:
            pull(c, child, reference=child.digest)
    assert cache.relay.count("GET", repo) == 0
    assert cache.relay.count("HEAD", f"/v2/{repo}/manifests/multi") == 1
