"""`validation` (Docker Distribution's configuration.md, "validation"), over HTTP.

- `validation.manifests.urls`: layers that clients fetch from elsewhere carry `urls`. "If `allow` is unset,
  pushing a manifest containing URLs fails" in Distribution; Portside accepts them when neither `allow` nor
  `deny` is set, as the OCI conformance suite expects. With `allow`, every URL must match one of its
  expressions; none may match `deny`. Such a layer need not be in the repository. A Docker foreign layer
  without `urls` is refused.
- `validation.manifests.indexes.platforms`: `all` (the default) requires every image of an index to be in the
  repository, `none` none of them, `list` only those whose platform is in `platformlist`.
- `validation.disabled: true` "disables the other options in the validation section": any URL is accepted and
  index images are not required.

A refused manifest is 400 (`MANIFEST_INVALID` for a URL, `MANIFEST_BLOB_UNKNOWN` for a missing image) and
nothing is stored.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from tests.conftest import Registry, deep_merge, default_config, free_port

from .oci import (
    DOCKER_CONFIG,
    DOCKER_LAYER,
    DOCKER_MANIFEST,
    OCI_CONFIG,
    OCI_MANIFEST,
    Blob,
    Manifest,
    assert_error,
    config_blob,
    describe,
    encode,
    index_manifest,
    push_blob,
    push_image,
    put_manifest,
    random_blob,
    repo_name,
)

FOREIGN = "application/vnd.docker.image.rootfs.foreign.diff.tar.gzip"
NONDISTRIBUTABLE = "application/vnd.oci.image.layer.nondistributable.v1.tar+gzip"
ALLOWED = "https://layers.example.com/base/layer.tar.gz"
DENIED = "https://layers.example.com/private/layer.tar.gz"
ELSEWHERE = "https://elsewhere.example.org/layer.tar.gz"
LINUX_AMD64 = {"os": "linux", "architecture": "amd64"}
URL_RULES = {"allow": [r"^https://layers\.example\.com/"], "deny": [r"^https://layers\.example\.com/private/"]}


@pytest.fixture(scope="module")
def servers(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Registry]]:
    """One server per validation setting (a worker each), and one with the defaults."""
    settings: dict[str, dict[str, Any]] = {
        "default": {},
        "urls": {"manifests": {"urls": URL_RULES}},
        "list": {
            "manifests": {"indexes": {"platforms": "list", "platformlist": [{"os": "linux", "architecture": "amd64"}]}}
        },
        "none": {"manifests": {"indexes": {"platforms": "none"}}},
        "disabled": {"disabled": True, "manifests": {"urls": URL_RULES}},
    }
    started: dict[str, Registry] = {}
    try:
        for name, validation in settings.items():
            workdir = tmp_path_factory.mktemp(f"validation-{name}")
            config = deep_merge(default_config(workdir, free_port()), {"validation": validation} if validation else {})
            started[name] = Registry(workdir=workdir, config=config, workers=1)
            started[name].start()
        yield started
    finally:
        for reg in started.values():
            reg.stop()


def client_for(servers: dict[str, Registry], name: str) -> httpx.Client:
    return httpx.Client(base_url=servers[name].url, timeout=60.0)


def url_layer_manifest(
    c: httpx.Client, repo: str, urls: list[str] | None, media_type: str = FOREIGN, docker: bool = True
) -> tuple[Manifest, Blob]:
    """A manifest whose config is in the repository and whose one layer is not: it carries `urls` (when
    given) and has the foreign or non-distributable media type."""
    config = push_blob(c, repo, config_blob(DOCKER_CONFIG if docker else OCI_CONFIG))
    layer = random_blob(300, media_type)
    descriptor = layer.descriptor(**({"urls": urls} if urls is not None else {}))
    body: dict[str, Any] = {"schemaVersion": 2, "config": config.descriptor(), "layers": [descriptor]}
    body["mediaType"] = DOCKER_MANIFEST if docker else OCI_MANIFEST
    return Manifest(encode(body), body["mediaType"]), layer


def assert_refused(c: httpx.Client, repo: str, manifest: Manifest, status: int, code: str) -> None:
    r = put_manifest(c, repo, "v1", manifest)
    assert_error(r, status, code)
    assert c.get(f"/v2/{repo}/manifests/{manifest.digest}").status_code == 404, "a refused manifest was stored"
    assert c.get(f"/v2/{repo}/manifests/v1").status_code == 404, "a refused manifest was tagged"


def assert_accepted(c: httpx.Client, repo: str, manifest: Manifest) -> None:
    r = put_manifest(c, repo, "v1", manifest)
    assert r.status_code == 201, describe(r)
    got = c.get(f"/v2/{repo}/manifests/v1", headers={"Accept": manifest.media_type})
    assert got.status_code == 200, describe(got)
    assert got.content == manifest.body


# ---------------------------------------------------------------------------
# URLs


@pytest.mark.parametrize("media_type", [FOREIGN, NONDISTRIBUTABLE])
def test_layer_urls_are_accepted_without_rules(servers: dict[str, Registry], media_type: str) -> None:
    """Defaults: with no `allow` or `deny`, a layer fetched from its URLs is accepted without being in the
    repository, as the OCI conformance suite expects (Distribution refuses it; docs/http-behaviour.md)."""
    with client_for(servers, "default") as c:
        repo = repo_name("val")
        manifest, layer = url_layer_manifest(c, repo, [ALLOWED], media_type, docker=media_type == FOREIGN)
        assert_accepted(c, repo, manifest)
        assert c.head(f"/v2/{repo}/blobs/{layer.digest}").status_code == 404


@pytest.mark.parametrize("setting", ["default", "urls", "disabled"])
def test_foreign_layer_without_urls_is_refused(servers: dict[str, Registry], setting: str) -> None:
    """A Docker foreign layer is fetched from its URLs: without any it is refused, whatever the URL rules."""
    with client_for(servers, setting) as c:
        repo = repo_name("val")
        manifest, _ = url_layer_manifest(c, repo, None)
        r = put_manifest(c, repo, "v1", manifest)
        assert_error(r, 400, "MANIFEST_INVALID")
        assert c.get(f"/v2/{repo}/manifests/{manifest.digest}").status_code == 404


@pytest.mark.parametrize("media_type", [FOREIGN, NONDISTRIBUTABLE])
def test_allowed_urls_are_accepted_without_the_layer(servers: dict[str, Registry], media_type: str) -> None:
    """With `allow`, a layer whose every URL matches and none is denied is accepted, and it need not be in the
    repository (clients fetch it from the URL)."""
    with client_for(servers, "urls") as c:
        repo = repo_name("val")
        manifest, layer = url_layer_manifest(
            c, repo, [ALLOWED, ALLOWED + "?mirror=2"], media_type, docker=media_type == FOREIGN
        )
        assert_accepted(c, repo, manifest)
        assert c.head(f"/v2/{repo}/blobs/{layer.digest}").status_code == 404


@pytest.mark.parametrize(
    ("urls", "why"),
    [
        ([ELSEWHERE], "matches no allow expression"),
        ([DENIED], "matches a deny expression"),
        ([ALLOWED, ELSEWHERE], "one of two URLs matches no allow expression"),
        ([ALLOWED, DENIED], "one of two URLs is denied"),
    ],
)
def test_urls_outside_the_rules_are_refused(servers: dict[str, Registry], urls: list[str], why: str) -> None:
    """Every URL must match `allow` and none may match `deny`: otherwise 400 MANIFEST_INVALID."""
    with client_for(servers, "urls") as c:
        repo = repo_name("val")
        manifest, _ = url_layer_manifest(c, repo, urls)
        assert_refused(c, repo, manifest, 400, "MANIFEST_INVALID")


def test_disabled_validation_accepts_any_url(servers: dict[str, Registry]) -> None:
    """`validation.disabled: true` disables the URL rules: URLs that `allow` does not match, or that `deny`
    does, are accepted."""
    with client_for(servers, "disabled") as c:
        for urls in ([ELSEWHERE], [DENIED]):
            repo = repo_name("val")
            manifest, _ = url_layer_manifest(c, repo, urls)
            assert_accepted(c, repo, manifest)


@pytest.mark.parametrize("setting", ["default", "urls", "list", "none", "disabled"])
def test_layers_without_urls_must_be_in_the_repository(servers: dict[str, Registry], setting: str) -> None:
    """Whatever the validation settings, an ordinary layer or config that is not in the repository refuses the
    manifest (400 MANIFEST_BLOB_UNKNOWN): the settings only concern URLs and index images."""
    with client_for(servers, setting) as c:
        repo = repo_name("val")
        config = push_blob(c, repo, config_blob(DOCKER_CONFIG))
        missing = random_blob(200, DOCKER_LAYER)
        body = {
            "schemaVersion": 2,
            "mediaType": DOCKER_MANIFEST,
            "config": config.descriptor(),
            "layers": [missing.descriptor()],
        }
        assert_refused(c, repo, Manifest(encode(body), DOCKER_MANIFEST), 400, "MANIFEST_BLOB_UNKNOWN")
        unpushed_config = config_blob(DOCKER_CONFIG)
        layer = push_blob(c, repo, random_blob(200, DOCKER_LAYER))
        body = {**body, "config": unpushed_config.descriptor(), "layers": [layer.descriptor()]}
        assert_refused(c, repo, Manifest(encode(body), DOCKER_MANIFEST), 400, "MANIFEST_BLOB_UNKNOWN")


# ---------------------------------------------------------------------------
# Index images


def index_with(c: httpx.Client, repo: str, present: list[str], absent: list[str]) -> Manifest:
    """An index over images for `present` platforms (pushed) and `absent` ones (never pushed)."""
    children: list[Manifest] = []
    platforms: list[tuple[str, str]] = []
    for arch in present:
        children.append(push_image(c, repo).manifest)
        platforms.append(("linux", arch))
    for arch in absent:
        children.append(
            Manifest(encode({"schemaVersion": 2, "nonce": arch + repo}), "application/vnd.oci.image.manifest.v1+json")
        )
        platforms.append(("linux", arch))
    return index_manifest(children, platforms=platforms)


@pytest.mark.parametrize("setting", ["default", "urls"])
def test_index_images_must_all_be_there_by_default(servers: dict[str, Registry], setting: str) -> None:
    """`platforms: all` (the default): an index with an image that is not in the repository is refused."""
    with client_for(servers, setting) as c:
        repo = repo_name("val")
        assert_refused(c, repo, index_with(c, repo, ["amd64"], ["arm64"]), 400, "MANIFEST_BLOB_UNKNOWN")
        assert_accepted(c, repo, index_with(c, repo, ["amd64", "arm64"], []))


@pytest.mark.parametrize("setting", ["none", "disabled"])
def test_index_images_are_not_required(servers: dict[str, Registry], setting: str) -> None:
    """`platforms: none`, or validation disabled: an index is accepted with none of its images there."""
    with client_for(servers, setting) as c:
        repo = repo_name("val")
        assert_accepted(c, repo, index_with(c, repo, [], ["amd64", "arm64"]))


def test_index_images_of_listed_platforms_must_be_there(servers: dict[str, Registry]) -> None:
    """`platforms: list` with `platformlist: [linux/amd64]`: only the linux/amd64 image must be in the
    repository; an index missing any other platform's image is accepted."""
    with client_for(servers, "list") as c:
        repo = repo_name("val")
        assert_refused(c, repo, index_with(c, repo, ["arm64"], ["amd64"]), 400, "MANIFEST_BLOB_UNKNOWN")
        other = repo_name("val")
        assert_accepted(c, other, index_with(c, other, ["amd64"], ["arm64", "s390x"]))
