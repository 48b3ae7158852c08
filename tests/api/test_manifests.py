"""Pushing, pulling and deleting manifests of every accepted type: /v2/<name>/manifests/<reference>."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import httpx
import pytest

from .oci import (
    DOCKER_CONFIG,
    DOCKER_LAYER,
    DOCKER_LIST,
    DOCKER_MANIFEST,
    DOCKER_SCHEMA1,
    DOCKER_SCHEMA1_SIGNED,
    EMPTY_CONFIG,
    EMPTY_JSON_DIGEST,
    OCI_CONFIG,
    OCI_INDEX,
    OCI_LAYER,
    OCI_MANIFEST,
    Blob,
    Manifest,
    assert_error,
    assert_manifest_content,
    config_blob,
    describe,
    encode,
    image_manifest,
    index_manifest,
    location,
    location_path,
    push_blob,
    push_image,
    push_manifest,
    put_manifest,
    random_blob,
    random_digest,
    repo_name,
    request_without_accept,
    sha512,
)

ARTIFACT_TYPE = "application/vnd.example.artifact.v1"
FOUR_MIB = 4 * 1024 * 1024


def docker_manifest(client: httpx.Client, repo: str) -> Manifest:
    config = push_blob(client, repo, config_blob(DOCKER_CONFIG))
    layer = push_blob(client, repo, random_blob(300, DOCKER_LAYER))
    return image_manifest(config, [layer], media_type=DOCKER_MANIFEST)


def docker_list(client: httpx.Client, repo: str) -> Manifest:
    children = [push_image(client, repo, docker=True).manifest for _ in range(2)]
    return index_manifest(children, media_type=DOCKER_LIST, platforms=[("linux", "arm64"), ("linux", "amd64")])


def oci_manifest(client: httpx.Client, repo: str) -> Manifest:
    config = push_blob(client, repo, config_blob())
    layers = [push_blob(client, repo, random_blob(200 + i)) for i in range(2)]
    return image_manifest(config, layers, annotations={"org.example.kind": "image"})


def oci_index(client: httpx.Client, repo: str) -> Manifest:
    children = [push_image(client, repo).manifest for _ in range(2)]
    return index_manifest(children, platforms=[("linux", "arm64"), ("linux", "amd64")])


def oci_artifact(client: httpx.Client, repo: str) -> Manifest:
    """Image-spec "Guidelines for Artifact Usage": `artifactType` and the empty config descriptor."""
    config = push_blob(client, repo, EMPTY_CONFIG)
    assert config.digest == EMPTY_JSON_DIGEST
    data = push_blob(client, repo, random_blob(100, "application/vnd.example.data.v1"))
    return image_manifest(config, [data], artifact_type=ARTIFACT_TYPE)


BUILDERS: dict[str, Callable[[httpx.Client, str], Manifest]] = {
    "docker-manifest": docker_manifest,
    "docker-list": docker_list,
    "oci-manifest": oci_manifest,
    "oci-index": oci_index,
    "oci-artifact": oci_artifact,
}


@pytest.fixture(params=sorted(BUILDERS))
def built(request: pytest.FixtureRequest, client: httpx.Client, repo: str) -> Manifest:
    """A manifest of each accepted type whose blobs and children are in `repo`, not yet pushed."""
    return BUILDERS[request.param](client, repo)


def assert_manifest_created(resp: httpx.Response, repo: str, manifest: Manifest) -> None:
    """OCI "Pushing Manifests": 201, a pullable `Location`, `Docker-Content-Digest` of the body."""
    assert resp.status_code == 201, describe(resp)
    assert resp.headers.get("docker-content-digest") == manifest.digest, describe(resp)
    assert location_path(resp) == f"/v2/{repo}/manifests/{manifest.digest}", describe(resp)
    assert resp.headers.get("content-length") == "0", describe(resp)


def tags_of(client: httpx.Client, repo: str) -> list[str]:
    resp = client.get(f"/v2/{repo}/tags/list")
    assert resp.status_code == 200, describe(resp)
    tags = resp.json()["tags"]
    assert isinstance(tags, list), describe(resp)
    return tags


# ---------------------------------------------------------------------------
# Every type


def test_push_by_tag_and_pull(client: httpx.Client, repo: str, built: Manifest) -> None:
    """OCI "Pushing Manifests" and "Pulling manifests": byte-exact round trip, type and digest as pushed."""
    resp = put_manifest(client, repo, "v1", built)
    assert_manifest_created(resp, repo, built)
    accept = {"Accept": built.media_type}
    for ref in ["v1", built.digest]:
        got = client.get(f"/v2/{repo}/manifests/{ref}", headers=accept)
        assert_manifest_content(got, built)
        assert got.headers.get("etag") == f'"{built.digest}"'
        head = client.head(f"/v2/{repo}/manifests/{ref}", headers=accept)
        assert head.status_code == 200, describe(head)
        assert head.content == b""
        assert head.headers.get("docker-content-digest") == built.digest
        assert head.headers.get("content-length") == str(built.size)
        assert head.headers.get("content-type", "").split(";")[0] == built.media_type
    assert_manifest_content(client.get(location(resp), headers=accept), built)


def test_pull_without_accept_returns_stored_type(client: httpx.Client, repo: str, built: Manifest) -> None:
    """Behaviour doc "Manifests": with no `Accept` the stored type is returned."""
    push_manifest(client, repo, "latest", built)
    for ref in ["latest", built.digest]:
        assert_manifest_content(request_without_accept(client, "GET", f"/v2/{repo}/manifests/{ref}"), built)
        head = request_without_accept(client, "HEAD", f"/v2/{repo}/manifests/{ref}")
        assert head.status_code == 200, describe(head)
        assert head.headers.get("content-type", "").split(";")[0] == built.media_type


def test_push_by_digest(client: httpx.Client, repo: str, built: Manifest) -> None:
    """OCI "Pushing Manifests": `<reference>` MAY be a digest;
    `Docker-Content-Digest` MUST equal it; no tag."""
    resp = put_manifest(client, repo, built.digest, built)
    assert_manifest_created(resp, repo, built)
    assert_manifest_content(client.get(f"/v2/{repo}/manifests/{built.digest}"), built)
    assert tags_of(client, repo) == []


def test_delete_by_digest(client: httpx.Client, repo: str, built: Manifest) -> None:
    """OCI "Deleting Manifests": 202; then the digest and every tag pointing at it are 404."""
    push_manifest(client, repo, "a", built)
    push_manifest(client, repo, "b", built)
    resp = client.delete(f"/v2/{repo}/manifests/{built.digest}")
    assert resp.status_code == 202, describe(resp)
    for ref in [built.digest, "a", "b"]:
        assert_error(client.get(f"/v2/{repo}/manifests/{ref}"), 404, "MANIFEST_UNKNOWN")
        assert_error(client.head(f"/v2/{repo}/manifests/{ref}"), 404)
    assert tags_of(client, repo) == []


# ---------------------------------------------------------------------------
# Storage exactness and media types


def test_bytes_are_stored_exactly(client: httpx.Client, repo: str) -> None:
    """OCI "Pushing Manifests": the registry MUST store the manifest in the exact byte representation."""
    config = push_blob(client, repo, config_blob())
    layer = push_blob(client, repo, random_blob(64))
    layer_json = f'{{"size":{layer.size} ,"digest":"{layer.digest}",\n"mediaType":"{OCI_LAYER}"}}'
    config_json = f'{{"digest":"{config.digest}","mediaType":"{OCI_CONFIG}","size":{config.size}}}'
    body = (
        '\r\n  {  "layers" :[\t' + layer_json + "  ],\n"
        '\t"annotations": {"z": "caf\\u00e9", "a": "caf\u00e9", "m": "\\/"},\n'
        '"config":' + config_json + ',   "schemaVersion":2,\n'
        f'  "mediaType": "{OCI_MANIFEST}"   }}\n\n'
    )
    manifest = Manifest(body.encode(), OCI_MANIFEST)
    assert_manifest_created(put_manifest(client, repo, "odd", manifest), repo, manifest)
    assert_manifest_content(client.get(f"/v2/{repo}/manifests/odd"), manifest)
    assert_manifest_content(client.get(f"/v2/{repo}/manifests/{manifest.digest}"), manifest)


def test_content_type_returned_as_pushed_when_body_has_no_media_type(client: httpx.Client, repo: str) -> None:
    """OCI "Pulling manifests": `Content-Type` should match the one used on push (`mediaType` is optional)."""
    config = push_blob(client, repo, config_blob())
    manifest = image_manifest(config, [], with_media_type=False)
    assert "mediaType" not in manifest.json
    push_manifest(client, repo, "plain", manifest)
    assert_manifest_content(client.get(f"/v2/{repo}/manifests/plain"), manifest)


def test_content_type_parameters_are_ignored(client: httpx.Client, repo: str) -> None:
    """OCI "Pushing Manifests": the registry SHOULD ignore parameters on `Content-Type`."""
    manifest = oci_manifest(client, repo)
    resp = put_manifest(client, repo, "params", manifest, f"{OCI_MANIFEST}; charset=utf-8")
    assert_manifest_created(resp, repo, manifest)
    assert_manifest_content(client.get(f"/v2/{repo}/manifests/params"), manifest)


def test_media_type_from_body_when_content_type_is_absent(client: httpx.Client, repo: str) -> None:
    """Behaviour doc "Manifests": the media type comes from
    `Content-Type`, else from the body's `mediaType`."""
    for manifest in [oci_manifest(client, repo), docker_manifest(client, repo), oci_index(client, repo)]:
        resp = client.put(f"/v2/{repo}/manifests/{manifest.digest}", content=manifest.body)
        assert_manifest_created(resp, repo, manifest)
        assert_manifest_content(client.get(f"/v2/{repo}/manifests/{manifest.digest}"), manifest)


def test_media_type_from_shape_when_nothing_declares_it(client: httpx.Client, repo: str) -> None:
    """Behaviour doc "Manifests": with neither `Content-Type` nor `mediaType`, the body's shape decides."""
    image = push_image(client, repo)
    plain_manifest = image_manifest(image.config, image.layers, with_media_type=False)
    plain_index = Manifest(encode({"schemaVersion": 2, "manifests": [image.manifest.descriptor()]}), OCI_INDEX)
    for manifest in [plain_manifest, plain_index]:
        resp = client.put(f"/v2/{repo}/manifests/{manifest.digest}", content=manifest.body)
        assert_manifest_created(resp, repo, manifest)
        assert_manifest_content(client.get(f"/v2/{repo}/manifests/{manifest.digest}"), manifest)


def test_manifest_with_sha512_layer_and_sha512_reference(client: httpx.Client, repo: str) -> None:
    """OCI "Pushing Manifests": `Docker-Content-Digest` MUST
    equal the client-provided digest (sha512 here)."""
    config = push_blob(client, repo, config_blob())
    layer = push_blob(client, repo, random_blob(64, algorithm="sha512"))
    manifest = image_manifest(config, [layer])
    ref = sha512(manifest.body)
    resp = put_manifest(client, repo, ref, manifest)
    assert resp.status_code == 201, describe(resp)
    assert resp.headers.get("docker-content-digest") == ref
    got = client.get(location(resp))
    assert got.status_code == 200, describe(got)
    assert got.content == manifest.body
    got = client.get(f"/v2/{repo}/manifests/{ref}")
    assert got.status_code == 200, describe(got)
    assert got.content == manifest.body


def test_four_mib_manifest_is_accepted(client: httpx.Client, repo: str) -> None:
    """OCI "Pushing Manifests": registries SHOULD accept manifests of at least 4 MiB (behaviour doc: 413
    above)."""
    manifest = padded_manifest(client, repo, FOUR_MIB)
    assert_manifest_created(put_manifest(client, repo, "big", manifest), repo, manifest)
    assert_manifest_content(client.get(f"/v2/{repo}/manifests/big"), manifest)


def test_manifest_over_four_mib_is_413(client: httpx.Client, repo: str) -> None:
    """OCI: an over-limit manifest SHOULD get 413; behaviour doc: over 4 MiB is 413 MANIFEST_INVALID."""
    manifest = padded_manifest(client, repo, FOUR_MIB + 1)
    assert_error(put_manifest(client, repo, "toobig", manifest), 413, "MANIFEST_INVALID")
    assert_error(client.get(f"/v2/{repo}/manifests/toobig"), 404, "MANIFEST_UNKNOWN")


def padded_manifest(client: httpx.Client, repo: str, size: int) -> Manifest:
    config = push_blob(client, repo, config_blob())
    base = image_manifest(config, [], annotations={"pad": ""})
    manifest = image_manifest(config, [], annotations={"pad": "x" * (size - base.size)})
    assert manifest.size == size
    return manifest


# ---------------------------------------------------------------------------
# Tags and deletes


def test_tag_overwrite_moves_the_tag(client: httpx.Client, repo: str) -> None:
    """A tag is a pointer to one manifest: pushing another manifest to the tag moves it."""
    first = push_image(client, repo, "t").manifest
    second = push_image(client, repo, "t").manifest
    assert_manifest_content(client.get(f"/v2/{repo}/manifests/t"), second)
    assert_manifest_content(client.get(f"/v2/{repo}/manifests/{first.digest}"), first)
    assert tags_of(client, repo) == ["t"]


def test_pushing_the_same_manifest_twice_is_idempotent(client: httpx.Client, repo: str) -> None:
    """OCI "Pushing Manifests": each successful upload is 201, also for content already stored."""
    manifest = oci_manifest(client, repo)
    assert_manifest_created(put_manifest(client, repo, "x", manifest), repo, manifest)
    assert_manifest_created(put_manifest(client, repo, "x", manifest), repo, manifest)
    assert_manifest_created(put_manifest(client, repo, manifest.digest, manifest), repo, manifest)
    assert tags_of(client, repo) == ["x"]


def test_delete_by_tag_removes_only_the_tag(client: httpx.Client, repo: str) -> None:
    """OCI "Deleting tags": 202, then the tag is 404; behaviour doc: only the tag goes."""
    image = push_image(client, repo, "a")
    push_manifest(client, repo, "b", image.manifest)
    resp = client.delete(f"/v2/{repo}/manifests/a")
    assert resp.status_code == 202, describe(resp)
    assert_error(client.get(f"/v2/{repo}/manifests/a"), 404, "MANIFEST_UNKNOWN")
    assert_manifest_content(client.get(f"/v2/{repo}/manifests/b"), image.manifest)
    assert_manifest_content(client.get(f"/v2/{repo}/manifests/{image.digest}"), image.manifest)
    assert tags_of(client, repo) == ["b"]
    assert_error(client.delete(f"/v2/{repo}/manifests/a"), 404, "MANIFEST_UNKNOWN")


def test_delete_twice_and_unknown_are_404(client: httpx.Client, repo: str) -> None:
    """Docker API "Deleting an Image": already deleted or absent is 404; behaviour doc: MANIFEST_UNKNOWN."""
    image = push_image(client, repo, "tag")
    url = f"/v2/{repo}/manifests/{image.digest}"
    assert client.delete(url).status_code == 202
    assert_error(client.delete(url), 404, "MANIFEST_UNKNOWN")
    assert_error(client.delete(f"/v2/{repo}/manifests/{random_digest()}"), 404, "MANIFEST_UNKNOWN")
    assert_error(client.delete(f"/v2/{repo}/manifests/never"), 404, "MANIFEST_UNKNOWN")


def test_delete_in_unknown_repository_is_404(client: httpx.Client, repo: str) -> None:
    """OCI "Deleting Manifests": if the repository does not exist, the response MUST be 404."""
    assert_error(client.delete(f"/v2/{repo}/manifests/{random_digest()}"), 404, "NAME_UNKNOWN", "MANIFEST_UNKNOWN")


def test_manifest_can_be_pushed_again_after_delete(client: httpx.Client, repo: str) -> None:
    """Deleted content can be pushed again and is served again."""
    image = push_image(client, repo, "again")
    assert client.delete(f"/v2/{repo}/manifests/{image.digest}").status_code == 202
    push_manifest(client, repo, "again", image.manifest)
    assert_manifest_content(client.get(f"/v2/{repo}/manifests/again"), image.manifest)


def test_tags_do_not_come_back_after_delete_by_digest(client: httpx.Client, repo: str) -> None:
    """OCI "Deleting Manifests": the tags pointing at a deleted manifest are gone, also after a re-push."""
    image = push_image(client, repo, "gone")
    assert client.delete(f"/v2/{repo}/manifests/{image.digest}").status_code == 202
    push_manifest(client, repo, image.digest, image.manifest)
    assert_manifest_content(client.get(f"/v2/{repo}/manifests/{image.digest}"), image.manifest)
    assert_error(client.get(f"/v2/{repo}/manifests/gone"), 404, "MANIFEST_UNKNOWN")
    assert tags_of(client, repo) == []


def test_deleted_blob_no_longer_satisfies_a_manifest(client: httpx.Client, repo: str) -> None:
    """OCI "Push": a descriptor naming a blob no longer in the repository gives MANIFEST_BLOB_UNKNOWN."""
    config = push_blob(client, repo, config_blob())
    layer = push_blob(client, repo, random_blob(64))
    assert client.delete(f"/v2/{repo}/blobs/{layer.digest}").status_code == 202
    manifest = image_manifest(config, [layer])
    errors = assert_error(put_manifest(client, repo, "late", manifest), 400, "MANIFEST_BLOB_UNKNOWN")
    assert missing_digests(errors) == {layer.digest}


def test_unknown_manifest_is_404(client: httpx.Client, repo: str) -> None:
    """OCI "Pulling manifests": 404 if the manifest does not exist; behaviour doc: MANIFEST_UNKNOWN."""
    push_image(client, repo, "present")
    for ref in ["absent", random_digest()]:
        assert_error(client.get(f"/v2/{repo}/manifests/{ref}"), 404, "MANIFEST_UNKNOWN")
        assert_error(client.head(f"/v2/{repo}/manifests/{ref}"), 404)


def test_blob_digest_is_not_a_manifest(client: httpx.Client, repo: str) -> None:
    """OCI "Pulling manifests": 404 when no manifest has the digest, even if a blob does."""
    blob = push_blob(client, repo, random_blob(64))
    assert_error(client.get(f"/v2/{repo}/manifests/{blob.digest}"), 404, "MANIFEST_UNKNOWN")
    assert_error(client.head(f"/v2/{repo}/manifests/{blob.digest}"), 404)
    assert_error(client.delete(f"/v2/{repo}/manifests/{blob.digest}"), 404, "MANIFEST_UNKNOWN")
    assert client.head(f"/v2/{repo}/blobs/{blob.digest}").status_code == 200


def test_manifest_in_unknown_repository_is_404_name_unknown(client: httpx.Client, repo: str) -> None:
    """OCI: pulling a nonexistent repository MUST be 404; behaviour doc: NAME_UNKNOWN."""
    for ref in ["latest", random_digest()]:
        assert_error(client.get(f"/v2/{repo}/manifests/{ref}"), 404, "NAME_UNKNOWN")
        assert_error(client.head(f"/v2/{repo}/manifests/{ref}"), 404)


def test_if_none_match_gives_304(client: httpx.Client, repo: str) -> None:
    """Behaviour doc "Manifests": `If-None-Match` with the manifest's ETag answers 304."""
    image = push_image(client, repo, "cached")
    etag = f'"{image.digest}"'
    for ref in ["cached", image.digest]:
        resp = client.get(f"/v2/{repo}/manifests/{ref}", headers={"If-None-Match": etag})
        assert resp.status_code == 304, describe(resp)
        assert resp.content == b""
        head = client.head(f"/v2/{repo}/manifests/{ref}", headers={"If-None-Match": etag})
        assert head.status_code == 304, describe(head)
        other = client.get(f"/v2/{repo}/manifests/{ref}", headers={"If-None-Match": f'"{random_digest()}"'})
        assert_manifest_content(other, image.manifest)


# ---------------------------------------------------------------------------
# Rejections


def test_put_by_mismatching_digest_is_400_digest_invalid(client: httpx.Client, repo: str) -> None:
    """Behaviour doc "Manifests": a digest `<reference>` differing from the body's digest is 400
    DIGEST_INVALID."""
    manifest = oci_manifest(client, repo)
    wrong = random_digest()
    assert_error(put_manifest(client, repo, wrong, manifest), 400, "DIGEST_INVALID")
    assert_error(client.get(f"/v2/{repo}/manifests/{wrong}"), 404, "MANIFEST_UNKNOWN")
    assert_error(client.get(f"/v2/{repo}/manifests/{manifest.digest}"), 404, "MANIFEST_UNKNOWN")


def missing_digests(errors: list[dict[str, Any]]) -> set[Any]:
    digests = set()
    for error in errors:
        detail = error.get("detail")
        assert isinstance(detail, dict), errors
        digests.add(detail.get("digest"))
    return digests


@pytest.mark.parametrize("docker", [False, True])
def test_missing_layers_and_config_are_manifest_blob_unknown(client: httpx.Client, repo: str, docker: bool) -> None:
    """OCI "Push": rejected for absent blobs MUST give MANIFEST_BLOB_UNKNOWN;
    behaviour doc: one per digest."""
    present = push_blob(client, repo, random_blob(10, DOCKER_LAYER if docker else OCI_LAYER))
    config = config_blob(DOCKER_CONFIG if docker else OCI_CONFIG)
    absent = random_blob(20, DOCKER_LAYER if docker else OCI_LAYER)
    manifest = image_manifest(config, [present, absent], media_type=DOCKER_MANIFEST if docker else OCI_MANIFEST)
    errors = assert_error(put_manifest(client, repo, "broken", manifest), 400, "MANIFEST_BLOB_UNKNOWN")
    assert missing_digests(errors) == {config.digest, absent.digest}
    assert len(errors) == 2
    assert_error(client.get(f"/v2/{repo}/manifests/broken"), 404, "MANIFEST_UNKNOWN")


def test_empty_config_must_be_pushed_too(client: httpx.Client, repo: str) -> None:
    """Behaviour doc "Manifests": a referenced config not in the repository is MANIFEST_BLOB_UNKNOWN,
    the empty descriptor of image-spec included."""
    data = push_blob(client, repo, random_blob(16, "application/vnd.example.data.v1"))
    manifest = image_manifest(EMPTY_CONFIG, [data], artifact_type=ARTIFACT_TYPE)
    errors = assert_error(put_manifest(client, repo, "art", manifest), 400, "MANIFEST_BLOB_UNKNOWN")
    assert missing_digests(errors) == {EMPTY_JSON_DIGEST}


def test_blobs_of_another_repository_do_not_count(client: httpx.Client, repo: str) -> None:
    """OCI "Push": descriptors must name blobs that exist *in the repository*."""
    image = push_image(client, repo_name())
    push_blob(client, repo, random_blob(4))
    errors = assert_error(put_manifest(client, repo, "x", image.manifest), 400, "MANIFEST_BLOB_UNKNOWN")
    assert missing_digests(errors) == {image.config.digest, *(layer.digest for layer in image.layers)}


@pytest.mark.parametrize("media_type", [OCI_INDEX, DOCKER_LIST])
def test_index_with_missing_child_is_manifest_blob_unknown(client: httpx.Client, repo: str, media_type: str) -> None:
    """OCI "Push": an index naming an absent manifest gives MANIFEST_BLOB_UNKNOWN."""
    docker = media_type == DOCKER_LIST
    present = push_image(client, repo, docker=docker).manifest
    absent = image_manifest(config_blob(), [], media_type=DOCKER_MANIFEST if docker else OCI_MANIFEST)
    index = index_manifest([present, absent], media_type=media_type, platforms=[("linux", "amd64")] * 2)
    errors = assert_error(put_manifest(client, repo, "idx", index), 400, "MANIFEST_BLOB_UNKNOWN")
    assert missing_digests(errors) == {absent.digest}


def test_index_child_that_is_a_blob_is_manifest_blob_unknown(client: httpx.Client, repo: str) -> None:
    """Behaviour doc "Manifests": an index child that is not a manifest in the repository is
    MANIFEST_BLOB_UNKNOWN."""
    present = push_image(client, repo).manifest
    blob = push_blob(client, repo, Blob(encode({"schemaVersion": 2, "layers": []}), OCI_MANIFEST))
    fake = Manifest(blob.data, OCI_MANIFEST)
    errors = assert_error(
        put_manifest(client, repo, "idx", index_manifest([present, fake])), 400, "MANIFEST_BLOB_UNKNOWN"
    )
    assert missing_digests(errors) == {blob.digest}


def test_index_child_in_another_repository_is_manifest_blob_unknown(client: httpx.Client, repo: str) -> None:
    """OCI "Push": referenced manifests must exist in the repository the index is pushed to."""
    child = push_image(client, repo_name()).manifest
    push_blob(client, repo, random_blob(4))
    errors = assert_error(put_manifest(client, repo, "idx", index_manifest([child])), 400, "MANIFEST_BLOB_UNKNOWN")
    assert missing_digests(errors) == {child.digest}


def invalid_bodies(config: Blob, layer: Blob) -> dict[str, tuple[bytes, str]]:
    """Bodies that no manifest schema accepts, with the Content-Type to send."""
    good = json.loads(image_manifest(config, [layer]).body)

    def variant(**changes: object) -> bytes:
        obj = dict(good)
        for key, value in changes.items():
            if value is None:
                obj.pop(key, None)
            else:
                obj[key] = value
        return encode(obj)

    bad_layer = dict(good["layers"][0])
    return {
        "not-json": (b"this is not json", OCI_MANIFEST),
        "empty": (b"", OCI_MANIFEST),
        "truncated": (encode(good)[:-5], OCI_MANIFEST),
        "array": (b"[]", OCI_MANIFEST),
        "string": (b'"manifest"', OCI_MANIFEST),
        "null": (b"null", OCI_MANIFEST),
        "invalid-utf8": (b'{"x": "\xff\xfe",' + encode(good)[1:], OCI_MANIFEST),
        "schema-version-3": (variant(schemaVersion=3), OCI_MANIFEST),
        "schema-version-string": (variant(schemaVersion="2"), OCI_MANIFEST),
        "schema-version-missing": (variant(schemaVersion=None), OCI_MANIFEST),
        "media-type-is-index": (variant(mediaType=OCI_INDEX), OCI_MANIFEST),
        "media-type-is-docker": (variant(mediaType=DOCKER_MANIFEST), OCI_MANIFEST),
        "config-missing": (variant(config=None), OCI_MANIFEST),
        "config-not-object": (variant(config="sha256:abc"), OCI_MANIFEST),
        "layers-not-list": (variant(layers={"a": 1}), OCI_MANIFEST),
        "layer-bad-digest": (variant(layers=[{**bad_layer, "digest": "sha256:zzz"}]), OCI_MANIFEST),
        "layer-negative-size": (variant(layers=[{**bad_layer, "size": -1}]), OCI_MANIFEST),
        "layer-size-string": (variant(layers=[{**bad_layer, "size": "10"}]), OCI_MANIFEST),
        "layer-no-media-type": (
            variant(layers=[{k: v for k, v in bad_layer.items() if k != "mediaType"}]),
            OCI_MANIFEST,
        ),
        "index-manifests-not-list": (
            encode({"schemaVersion": 2, "mediaType": OCI_INDEX, "manifests": "none"}),
            OCI_INDEX,
        ),
        "index-as-manifest": (
            encode({"schemaVersion": 2, "mediaType": OCI_INDEX, "manifests": []}),
            OCI_MANIFEST,
        ),
        "unknown-media-type": (variant(mediaType=None), "application/vnd.example.unknown+json"),
        "unregistered-content-type-oci-body": (encode(good), "text/x-nonsense"),
        "unknown-content-type-docker-body": (variant(mediaType=DOCKER_MANIFEST), "application/vnd.example+json"),
    }


INVALID_CASES = [
    "not-json",
    "empty",
    "truncated",
    "array",
    "string",
    "null",
    "invalid-utf8",
    "schema-version-3",
    "schema-version-string",
    "schema-version-missing",
    "media-type-is-index",
    "media-type-is-docker",
    "config-missing",
    "config-not-object",
    "layers-not-list",
    "layer-bad-digest",
    "layer-negative-size",
    "layer-size-string",
    "layer-no-media-type",
    "index-manifests-not-list",
    "index-as-manifest",
    "unknown-media-type",
    "unregistered-content-type-oci-body",
    "unknown-content-type-docker-body",
]


@pytest.mark.parametrize("case", INVALID_CASES)
def test_invalid_manifest_is_400_manifest_invalid(client: httpx.Client, repo: str, case: str) -> None:
    """Behaviour doc "Manifests": not JSON, wrong schemaVersion, `mediaType` differing from `Content-Type`,
    malformed descriptors and unknown media types are 400 MANIFEST_INVALID (image-spec manifest.md rules)."""
    config = push_blob(client, repo, config_blob())
    layer = push_blob(client, repo, random_blob(32))
    body, content_type = invalid_bodies(config, layer)[case]
    resp = client.put(f"/v2/{repo}/manifests/bad", content=body, headers={"Content-Type": content_type})
    assert_error(resp, 400, "MANIFEST_INVALID")
    assert_error(client.get(f"/v2/{repo}/manifests/bad"), 404, "MANIFEST_UNKNOWN")


def schema1_body(repo: str, layer: Blob) -> bytes:
    return encode(
        {
            "schemaVersion": 1,
            "name": repo,
            "tag": "old",
            "architecture": "amd64",
            "fsLayers": [{"blobSum": layer.digest}],
            "history": [{"v1Compatibility": json.dumps({"id": "a" * 64})}],
        }
    )


@pytest.mark.parametrize("content_type", [DOCKER_SCHEMA1, DOCKER_SCHEMA1_SIGNED, None])
def test_schema1_is_refused(client: httpx.Client, repo: str, content_type: str | None) -> None:
    """Behaviour doc "Manifests": Docker schema1 is refused with 400 MANIFEST_INVALID."""
    layer = push_blob(client, repo, random_blob(32))
    headers = {"Content-Type": content_type} if content_type else {}
    resp = client.put(f"/v2/{repo}/manifests/old", content=schema1_body(repo, layer), headers=headers)
    assert_error(resp, 400, "MANIFEST_INVALID")


# ---------------------------------------------------------------------------
# Content negotiation


@pytest.mark.parametrize(
    "accept",
    [
        [OCI_MANIFEST],
        [f"{DOCKER_MANIFEST}, {OCI_MANIFEST}"],
        [DOCKER_MANIFEST, OCI_MANIFEST],
        [f"{OCI_INDEX}, {OCI_MANIFEST};q=0.5"],
        ["*/*"],
        ["application/*"],
    ],
)
def test_accept_including_the_stored_type_is_served(client: httpx.Client, repo: str, accept: list[str]) -> None:
    """OCI "Pulling manifests": content negotiation follows RFC 7231 (lists, repeated fields, wildcards)."""
    image = push_image(client, repo, "neg")
    headers = [("Accept", value) for value in accept]
    assert_manifest_content(client.get(f"/v2/{repo}/manifests/neg", headers=headers), image.manifest)


@pytest.mark.parametrize(
    ("stored", "accept"),
    [
        ("oci-manifest", DOCKER_MANIFEST),
        ("oci-manifest", f"{DOCKER_MANIFEST}, {DOCKER_LIST}"),
        ("oci-index", OCI_MANIFEST),
        ("oci-index", DOCKER_LIST),
        ("oci-artifact", OCI_INDEX),
    ],
)
def test_accept_excluding_a_stored_oci_type_is_404(client: httpx.Client, repo: str, stored: str, accept: str) -> None:
    """Behaviour doc "Manifests": an `Accept` that excludes the stored OCI type gives 404 MANIFEST_UNKNOWN."""
    manifest = BUILDERS[stored](client, repo)
    push_manifest(client, repo, "neg", manifest)
    for ref in ["neg", manifest.digest]:
        assert_error(client.get(f"/v2/{repo}/manifests/{ref}", headers={"Accept": accept}), 404, "MANIFEST_UNKNOWN")
        assert_error(client.head(f"/v2/{repo}/manifests/{ref}", headers={"Accept": accept}), 404)


def test_docker_list_to_schema2_only_client_gives_linux_amd64(client: httpx.Client, repo: str) -> None:
    """Behaviour doc "Manifests": a list asked for by a schema2-only client answers its linux/amd64 entry."""
    arm = push_image(client, repo, docker=True).manifest
    amd = push_image(client, repo, docker=True).manifest
    listing = index_manifest([arm, amd], media_type=DOCKER_LIST, platforms=[("linux", "arm64"), ("linux", "amd64")])
    push_manifest(client, repo, "multi", listing)
    resp = client.get(f"/v2/{repo}/manifests/multi", headers={"Accept": DOCKER_MANIFEST})
    assert_manifest_content(resp, amd)
    both = client.get(f"/v2/{repo}/manifests/multi", headers={"Accept": f"{DOCKER_MANIFEST}, {DOCKER_LIST}"})
    assert_manifest_content(both, listing)


# ---------------------------------------------------------------------------
# Subject


def test_subject_may_name_an_absent_manifest(client: httpx.Client, repo: str) -> None:
    """OCI "Push": a manifest whose `subject` does not exist
    yet MUST be accepted; `OCI-Subject` MUST be set."""
    subject = image_manifest(config_blob(), [])
    push_blob(client, repo, EMPTY_CONFIG)
    referrer = image_manifest(EMPTY_CONFIG, [], artifact_type=ARTIFACT_TYPE, subject=subject)
    resp = put_manifest(client, repo, referrer.digest, referrer)
    assert_manifest_created(resp, repo, referrer)
    assert resp.headers.get("oci-subject") == subject.digest
    assert_manifest_content(client.get(f"/v2/{repo}/manifests/{referrer.digest}"), referrer)


def test_index_with_subject_gets_oci_subject(client: httpx.Client, repo: str) -> None:
    """OCI "Pushing Manifests with Subject": the registry MUST answer `OCI-Subject: <subject digest>`."""
    child = push_image(client, repo).manifest
    subject = image_manifest(config_blob(), [])
    index = index_manifest([child], subject=subject, artifact_type=ARTIFACT_TYPE)
    resp = put_manifest(client, repo, "with-subject", index)
    assert_manifest_created(resp, repo, index)
    assert resp.headers.get("oci-subject") == subject.digest


def test_manifest_without_subject_has_no_oci_subject(client: httpx.Client, repo: str) -> None:
    """Behaviour doc "Manifests": `OCI-Subject` is sent when the manifest has a `subject`."""
    manifest = oci_manifest(client, repo)
    resp = put_manifest(client, repo, "plain", manifest)
    assert_manifest_created(resp, repo, manifest)
    assert "oci-subject" not in resp.headers


NON_DISTRIBUTABLE = "application/vnd.oci.image.layer.nondistributable.v1.tar+gzip"
DOCKER_FOREIGN = "application/vnd.docker.image.rootfs.foreign.diff.tar.gzip"


def url_layer_manifest(client: httpx.Client, repo: str, url: str, docker: bool = False) -> Manifest:
    """An image whose one layer is fetched from `url` (never pushed here), as non-distributable layers are."""
    config = push_blob(client, repo, config_blob(DOCKER_CONFIG if docker else OCI_CONFIG))
    layer = random_blob(64, DOCKER_FOREIGN if docker else NON_DISTRIBUTABLE)
    body = json.loads(image_manifest(config, [], media_type=DOCKER_MANIFEST if docker else OCI_MANIFEST).body)
    body["layers"] = [layer.descriptor(urls=[url])]
    return Manifest(encode(body), DOCKER_MANIFEST if docker else OCI_MANIFEST)


@pytest.mark.parametrize("docker", [False, True], ids=["oci-non-distributable", "docker-foreign"])
def test_layers_with_urls_are_accepted_by_default(client: httpx.Client, repo: str, docker: bool) -> None:
    """The OCI conformance suite pushes non-distributable layers with `urls` and expects 201; behaviour doc
    "Manifests": without `validation.manifests.urls` rules such layers are accepted (their bytes are not
    required in the repository), and the manifest is served as pushed."""
    manifest = url_layer_manifest(client, repo, "https://layers.example.com/base.tar.gz", docker)
    resp = put_manifest(client, repo, "foreign", manifest)
    assert_manifest_created(resp, repo, manifest)
    assert_manifest_content(client.get(f"/v2/{repo}/manifests/foreign"), manifest)


def test_url_rules_restrict_layers_with_urls_when_configured(registry_factory: Any) -> None:
    """distribution's `validation.manifests.urls`: with `allow`, every URL must match one of its
    expressions; with `deny`, none may match one of its; refused: 400 MANIFEST_INVALID."""
    allow = {"allow": [r"^https://allowed\.example\.com/"], "deny": [r"/private/"]}
    deny_only = {"deny": [r"^http://"]}
    for rules, accepted, refused in (
        (
            allow,
            ["https://allowed.example.com/a.tar"],
            ["https://other.example.com/a.tar", "https://allowed.example.com/private/a.tar"],
        ),
        (deny_only, ["https://anywhere.example.com/a.tar"], ["http://anywhere.example.com/a.tar"]),
    ):
        reg = registry_factory({"validation": {"manifests": {"urls": rules}}})
        with httpx.Client(base_url=reg.url, timeout=30) as c:
            name = repo_name("urls")
            for url in accepted:
                resp = put_manifest(c, name, "ok", url_layer_manifest(c, name, url))
                assert resp.status_code == 201, f"{rules} {url}: {describe(resp)}"
            for url in refused:
                resp = put_manifest(c, name, "refused", url_layer_manifest(c, name, url))
                assert_error(resp, 400, "MANIFEST_INVALID")
            assert_error(c.get(f"/v2/{name}/manifests/refused"), 404, "MANIFEST_UNKNOWN")
        reg.stop()
