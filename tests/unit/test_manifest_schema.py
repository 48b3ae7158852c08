"""The schema registry: which media type a pushed payload is, and what makes it invalid."""

from __future__ import annotations

import json
from typing import Any

import pytest

from portside.digest import Digest
from portside.manifest import ManifestError, default_registry
from portside.manifest import mediatypes as mt

A = "sha256:" + "a" * 64
B = "sha256:" + "b" * 64
EMPTY = "sha256:44136fa355b3678a1146ad16f7e8649e94fb4fc21fe77e8310c060f61caaff8a"


def desc(media_type: str, digest: str = A, size: int = 2, **extra: Any) -> dict[str, Any]:
    return {"mediaType": media_type, "digest": digest, "size": size, **extra}


def image(**extra: Any) -> dict[str, Any]:
    return {
        "schemaVersion": 2,
        "mediaType": mt.OCI_MANIFEST,
        "config": desc(mt.OCI_CONFIG),
        "layers": [desc("application/vnd.oci.image.layer.v1.tar+gzip", B, 10)],
        **extra,
    }


def parse(body: dict[str, Any] | bytes, content_type: str | None = None) -> Any:
    payload = body if isinstance(body, bytes) else json.dumps(body).encode()
    return default_registry().parse(payload, content_type)


def test_oci_image_manifest() -> None:
    m = parse(image(), mt.OCI_MANIFEST)
    assert m.media_type == mt.OCI_MANIFEST
    assert m.config.digest == A
    assert [layer.digest for layer in m.layers] == [B]
    assert m.referrer_artifact_type == mt.OCI_CONFIG
    assert m.digest == Digest.of(m.payload)


def test_artifact_with_empty_config_and_subject() -> None:
    body = image(
        artifactType="application/vnd.example.sbom.v1",
        config=desc(mt.OCI_EMPTY, EMPTY, 2),
        subject=desc(mt.OCI_MANIFEST, B, 100),
        annotations={"org.example": "yes"},
    )
    m = parse(body, mt.OCI_MANIFEST + "; charset=utf-8")
    assert m.subject.digest == B
    assert m.referrer_artifact_type == "application/vnd.example.sbom.v1"
    assert m.annotations == {"org.example": "yes"}


def test_media_type_from_body_then_from_shape() -> None:
    assert parse(image()).media_type == mt.OCI_MANIFEST
    body = image()
    del body["mediaType"]
    assert parse(body).media_type == mt.OCI_MANIFEST
    index = {
        "schemaVersion": 2,
        "manifests": [desc(mt.OCI_MANIFEST, platform={"architecture": "amd64", "os": "linux"})],
    }
    assert parse(index).media_type == mt.OCI_INDEX
    assert parse(index, "application/json").media_type == mt.OCI_INDEX


def test_docker_types() -> None:
    schema2 = {
        "schemaVersion": 2,
        "mediaType": mt.DOCKER_MANIFEST,
        "config": desc(mt.DOCKER_CONFIG),
        "layers": [desc("application/vnd.docker.image.rootfs.diff.tar.gzip", B)],
    }
    assert parse(schema2, mt.DOCKER_MANIFEST).media_type == mt.DOCKER_MANIFEST
    listing = {"schemaVersion": 2, "mediaType": mt.DOCKER_MANIFEST_LIST, "manifests": [desc(mt.DOCKER_MANIFEST)]}
    m = parse(listing, mt.DOCKER_MANIFEST_LIST)
    assert m.is_index
    assert m.referrer_artifact_type is None


@pytest.mark.parametrize(
    ("body", "content_type", "message"),
    [
        (b"not json", mt.OCI_MANIFEST, "not valid JSON"),
        (b"\xff\xfe", mt.OCI_MANIFEST, "not valid JSON"),
        (b"[1, 2]", mt.OCI_MANIFEST, "JSON object"),
        (b"[" * 100000 + b"]" * 100000, mt.OCI_MANIFEST, "nested too deeply"),
        (image(schemaVersion=1), mt.OCI_MANIFEST, "schema1"),
        (image(schemaVersion="2"), mt.OCI_MANIFEST, "schemaVersion must be 2"),
        (image(schemaVersion=3), mt.OCI_MANIFEST, "schemaVersion must be 2"),
        (image(), mt.OCI_INDEX, "does not match Content-Type"),
        (image(), "text/x-nonsense", "does not match Content-Type"),
        (image(), "application/vnd.example.unknown+json; charset=utf-8", "does not match Content-Type"),
        (image(), mt.DOCKER_SCHEMA1_SIGNED, "schema1"),
        (image(mediaType="application/vnd.example+json"), None, "unsupported manifest media type"),
        ({"schemaVersion": 2}, "application/x-custom", "unsupported manifest media type"),
        ({"schemaVersion": 2}, None, "cannot tell"),
        (image(config=None), mt.OCI_MANIFEST, "config"),
        (image(layers={}), mt.OCI_MANIFEST, "layers must be an array"),
        (image(config=desc("not a media type")), mt.OCI_MANIFEST, "mediaType"),
        (image(config=desc(mt.OCI_CONFIG, "sha256:xyz")), mt.OCI_MANIFEST, "digest"),
        (image(config=desc(mt.OCI_CONFIG, size=-1)), mt.OCI_MANIFEST, "size"),
        (image(config=desc(mt.OCI_CONFIG, size=True)), mt.OCI_MANIFEST, "size"),
        (image(config=desc(mt.OCI_CONFIG, urls="http://x")), mt.OCI_MANIFEST, "urls"),
        (image(annotations={"a": 1}), mt.OCI_MANIFEST, "annotations"),
        (image(artifactType="nope"), mt.OCI_MANIFEST, "artifactType"),
        (image(subject="x"), mt.OCI_MANIFEST, "subject"),
        (
            {"schemaVersion": 2, "mediaType": mt.OCI_INDEX, "manifests": [desc(mt.OCI_MANIFEST, platform={"os": 1})]},
            mt.OCI_INDEX,
            "platform",
        ),
    ],
)
def test_invalid_manifests(body: dict[str, Any] | bytes, content_type: str | None, message: str) -> None:
    with pytest.raises(ManifestError, match=message):
        parse(body, content_type)


def test_digest_algorithm_follows_request() -> None:
    m = default_registry().parse(json.dumps(image()).encode(), mt.OCI_MANIFEST, "sha512")
    assert m.digest.algorithm == "sha512"
