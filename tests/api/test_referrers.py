"""The referrers API: GET /v2/<name>/referrers/<digest> (OCI distribution-spec v1.1 "Listing Referrers")."""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from .oci import (
    EMPTY_CONFIG,
    OCI_INDEX,
    OCI_MANIFEST,
    Manifest,
    assert_error,
    config_blob,
    describe,
    image_manifest,
    index_manifest,
    next_link,
    push_blob,
    push_image,
    push_manifest,
    random_blob,
    random_digest,
    repo_name,
)

SBOM = "application/vnd.example.sbom.v1+json"
SIGNATURE_CONFIG = "application/vnd.example.signature.config.v1+json"
BUNDLE = "application/vnd.example.bundle.v1"


def referrers(client: httpx.Client, repo: str, digest: str, artifact_type: str | None = None) -> list[dict[str, Any]]:
    """Every descriptor of the referrers list, following `Link` pages; checks each page's shape."""
    params = {"artifactType": artifact_type} if artifact_type is not None else None
    resp = client.get(f"/v2/{repo}/referrers/{digest}", params=params)
    found: list[dict[str, Any]] = []
    while True:
        assert resp.status_code == 200, describe(resp)
        assert resp.headers.get("content-type", "").split(";")[0] == OCI_INDEX
        body = resp.json()
        assert body.get("schemaVersion") == 2, body
        assert body.get("mediaType") == OCI_INDEX, body
        assert isinstance(body.get("manifests"), list), body
        if artifact_type is not None:
            assert resp.headers.get("oci-filters-applied") == "artifactType", describe(resp)
        found.extend(body["manifests"])
        link = next_link(resp)
        if link is None:
            return found
        resp = client.get(link)


def by_digest(descriptors: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    table = {d["digest"]: d for d in descriptors}
    assert len(table) == len(descriptors), f"duplicate descriptors: {descriptors}"
    return table


def test_no_referrers_in_unknown_repository_is_empty_index(client: httpx.Client, repo: str) -> None:
    """OCI: a registry supporting referrers MUST NOT answer 404; no referrers is an empty `manifests` list."""
    assert referrers(client, repo, random_digest()) == []


def test_no_referrers_in_existing_repository_is_empty_index(client: httpx.Client, repo: str) -> None:
    """OCI "Listing Referrers": no match MUST give an image index with an empty manifest list."""
    image = push_image(client, repo, "base")
    assert referrers(client, repo, image.digest) == []
    assert referrers(client, repo, random_digest()) == []


@pytest.fixture
def family(client: httpx.Client, repo: str) -> dict[str, Manifest]:
    """An image with four referrers: an artifact, a plain
    image, an index without and one with artifactType."""
    subject = push_image(client, repo, "subject").manifest
    push_blob(client, repo, EMPTY_CONFIG)
    sbom = image_manifest(
        EMPTY_CONFIG,
        [push_blob(client, repo, random_blob(40, "application/spdx+json"))],
        artifact_type=SBOM,
        subject=subject,
        annotations={"org.opencontainers.image.created": "2024-01-01T00:00:00Z", "org.example.sbom": "json"},
    )
    signature_config = push_blob(client, repo, config_blob(SIGNATURE_CONFIG))
    signature = image_manifest(
        signature_config,
        [push_blob(client, repo, random_blob(40))],
        subject=subject,
        annotations={"org.example.signer": "alice"},
    )
    child = push_image(client, repo).manifest
    plain_index = index_manifest([child], subject=subject, annotations={"org.example.kind": "bundle"})
    typed_index = index_manifest([child], subject=subject, artifact_type=BUNDLE)
    unrelated = push_image(client, repo, "other").manifest
    made = {"sbom": sbom, "signature": signature, "plain_index": plain_index, "typed_index": typed_index}
    for manifest in made.values():
        push_manifest(client, repo, manifest.digest, manifest)
    return {"subject": subject, "unrelated": unrelated, **made}


def test_referrers_are_listed_with_artifact_type_and_annotations(
    client: httpx.Client, repo: str, family: dict[str, Manifest]
) -> None:
    """OCI "Listing Referrers": descriptors carry `artifactType` (else the config `mediaType` for a manifest,
    omitted for an index) and all annotations of each manifest whose `subject` is the digest."""
    listed = by_digest(referrers(client, repo, family["subject"].digest))
    expected = {
        "sbom": SBOM,
        "signature": SIGNATURE_CONFIG,
        "plain_index": None,
        "typed_index": BUNDLE,
    }
    assert set(listed) == {family[key].digest for key in expected}
    for key, artifact_type in expected.items():
        manifest = family[key]
        descriptor = listed[manifest.digest]
        assert descriptor["mediaType"] == manifest.media_type
        assert descriptor["size"] == manifest.size
        if artifact_type is None:
            assert "artifactType" not in descriptor, descriptor
        else:
            assert descriptor.get("artifactType") == artifact_type, descriptor
        copied = descriptor.get("annotations") or {}
        for name, value in (manifest.json.get("annotations") or {}).items():
            assert copied.get(name) == value, descriptor


@pytest.mark.parametrize(
    ("artifact_type", "keys"),
    [
        (SBOM, ["sbom"]),
        (SIGNATURE_CONFIG, ["signature"]),
        (BUNDLE, ["typed_index"]),
        ("application/none", []),
    ],
)
def test_artifact_type_filter(
    client: httpx.Client, repo: str, family: dict[str, Manifest], artifact_type: str, keys: list[str]
) -> None:
    """OCI "Listing Referrers": a filter that is applied MUST be announced with `OCI-Filters-Applied:
    artifactType`."""
    listed = referrers(client, repo, family["subject"].digest, artifact_type)
    assert {d["digest"] for d in listed} == {family[key].digest for key in keys}
    for descriptor in listed:
        assert descriptor.get("artifactType") == artifact_type


def test_referrers_are_scoped_to_the_repository(client: httpx.Client, repo: str, family: dict[str, Manifest]) -> None:
    """OCI "Listing Referrers": only manifests in the same `<name>` namespace are listed."""
    elsewhere = repo_name()
    push_blob(client, elsewhere, EMPTY_CONFIG)
    outsider = image_manifest(EMPTY_CONFIG, [], artifact_type=SBOM, subject=family["subject"])
    push_manifest(client, elsewhere, outsider.digest, outsider)
    assert outsider.digest not in {d["digest"] for d in referrers(client, repo, family["subject"].digest)}
    assert [d["digest"] for d in referrers(client, elsewhere, family["subject"].digest)] == [outsider.digest]


def test_deleted_referrer_disappears(client: httpx.Client, repo: str, family: dict[str, Manifest]) -> None:
    """OCI "Listing Referrers": the list holds manifests that exist; a deleted one is no longer listed."""
    sbom = family["sbom"]
    resp = client.delete(f"/v2/{repo}/manifests/{sbom.digest}")
    assert resp.status_code == 202, describe(resp)
    listed = {d["digest"] for d in referrers(client, repo, family["subject"].digest)}
    assert sbom.digest not in listed
    assert family["signature"].digest in listed
    assert referrers(client, repo, family["subject"].digest, SBOM) == []


def test_untagging_a_referrer_keeps_it_listed(client: httpx.Client, repo: str, family: dict[str, Manifest]) -> None:
    """OCI "Listing Referrers": every manifest with the `subject` is listed, tagged or not."""
    sbom = family["sbom"]
    push_manifest(client, repo, "sbom", sbom)
    assert client.delete(f"/v2/{repo}/manifests/sbom").status_code == 202
    assert sbom.digest in {d["digest"] for d in referrers(client, repo, family["subject"].digest)}


def test_referrer_pushed_before_its_subject(client: httpx.Client, repo: str) -> None:
    """OCI "Push": a `subject` that does not exist yet MUST be accepted and the referrer listed."""
    config = config_blob()
    subject = image_manifest(config, [])
    push_blob(client, repo, EMPTY_CONFIG)
    referrer = image_manifest(EMPTY_CONFIG, [], artifact_type=SBOM, subject=subject)
    resp = client.put(
        f"/v2/{repo}/manifests/{referrer.digest}",
        content=referrer.body,
        headers={"Content-Type": OCI_MANIFEST},
    )
    assert resp.status_code == 201, describe(resp)
    assert resp.headers.get("oci-subject") == subject.digest
    assert [d["digest"] for d in referrers(client, repo, subject.digest)] == [referrer.digest]
    push_blob(client, repo, config)
    push_manifest(client, repo, "late", subject)
    assert [d["digest"] for d in referrers(client, repo, subject.digest)] == [referrer.digest]


@pytest.mark.parametrize(
    "digest",
    [
        "sha256:abc",
        "sha256:" + "A" * 64,
        "md5:" + "0" * 32,
        "sha512:" + "0" * 64,
        "notadigest",
        "sha256:" + "0" * 65,
    ],
)
def test_malformed_digest_is_400(client: httpx.Client, repo: str, digest: str) -> None:
    """OCI "Listing Referrers": a `<digest>` with invalid
    syntax MUST be 400; behaviour doc: DIGEST_INVALID."""
    push_image(client, repo, "x")
    assert_error(client.get(f"/v2/{repo}/referrers/{digest}"), 400, "DIGEST_INVALID")
