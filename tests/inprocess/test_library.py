"""The library's stateful parts in one process: tag paging against the per-worker list cache, and the schema
registry extended with a manifest type of one's own."""

from __future__ import annotations

import json
from typing import Any

import pytest
from yarl import URL

from portside.digest import Digest
from portside.manifest.descriptor import Descriptor, parse_descriptor
from portside.manifest.schema import Fields, SchemaRegistry, default_registry
from portside.registry import LocalNamespace, ManifestBlobUnknown, NameUnknown
from tests.inprocess.conftest import App

CONFIG = b'{"architecture": "amd64", "os": "linux"}'
OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"


async def _image(app: App, repo: str) -> str:
    blobs = app.namespace.repository(repo).blobs
    config = await blobs.put(CONFIG, Digest.of(CONFIG))
    body = json.dumps(
        {
            "schemaVersion": 2,
            "mediaType": OCI_MANIFEST,
            "config": {"mediaType": "application/vnd.oci.image.config.v1+json", "digest": config.digest, "size": 41},
            "layers": [],
        }
    ).encode()
    answer = await app.client.put(f"/v2/{repo}/manifests/first", data=body, headers={"Content-Type": OCI_MANIFEST})
    assert answer.status == 201, await answer.text()
    return answer.headers["Docker-Content-Digest"]


async def _pages(app: App, repo: str, n: int) -> list[list[str]]:
    """Every page of the tag list, following the Link headers."""
    pages: list[list[str]] = []
    url: str | None = f"/v2/{repo}/tags/list?n={n}"
    while url is not None:
        answer = await app.client.get(url)
        assert answer.status == 200
        pages.append((await answer.json())["tags"])
        link = answer.headers.get("Link")
        url = URL(link.split(";", 1)[0].strip("<> ")).path_qs if link else None
    return pages


async def test_tag_pages_follow_changes_made_between_them(app: App) -> None:
    digest = Digest.parse(await _image(app, "lib/tags"))
    tags = app.namespace.repository("lib/tags").tags
    for name in ("b", "a", "d", "c", "e"):
        await tags.tag(name, digest)
    assert await _pages(app, "lib/tags", 2) == [["a", "b"], ["c", "d"], ["e", "first"]]
    await tags.tag("bb", digest)
    await tags.untag("e")
    # The worker's cached list was for an older tag-list version: the next listing reads the new one.
    assert await _pages(app, "lib/tags", 3) == [["a", "b", "bb"], ["c", "d", "first"]]
    assert (await tags.page("c", 1)).items == ["d"]
    assert (await tags.page("c", 1)).more
    assert not (await tags.page("d", 10)).more
    assert sorted(await tags.lookup(digest)) == ["a", "b", "bb", "c", "d", "first"]


async def test_tags_of_a_repository_that_does_not_exist(app: App) -> None:
    with pytest.raises(NameUnknown):
        await app.namespace.repository("lib/none").tags.page()
    answer = await app.client.get("/v2/lib/none/tags/list")
    assert answer.status == 404
    assert (await answer.json())["errors"][0]["code"] == "NAME_UNKNOWN"


class SbomSchema:
    """A made-up manifest type: a list of the blobs it describes."""

    media_type = "application/vnd.example.sbom.v1+json"

    def parse(self, data: dict[str, Any]) -> Fields:
        return Fields(layers=tuple(parse_descriptor(d, "parts") for d in data.get("parts", [])))


async def test_a_registered_schema_is_parsed_and_its_references_checked(app: App) -> None:
    schemas: SchemaRegistry = default_registry()
    schemas.register(SbomSchema())
    namespace = LocalNamespace(app.namespace.driver, app.namespace.store, app.namespace.options, schemas=schemas)
    repo = namespace.repository("lib/sbom")
    part = await repo.blobs.put(b"part", Digest.of(b"part"))
    descriptor = Descriptor(media_type="application/octet-stream", digest=part.digest, size=4).to_json()
    body = json.dumps({"schemaVersion": 2, "mediaType": SbomSchema.media_type, "parts": [descriptor]}).encode()
    manifest = await repo.manifests.put(body, SbomSchema.media_type, tag="sbom")
    assert manifest.media_type == SbomSchema.media_type
    stored = await repo.manifests.get_by_tag("sbom")
    assert (stored.media_type, stored.payload) == (SbomSchema.media_type, body)
    missing = {**descriptor, "digest": str(Digest.of(b"absent"))}
    orphan = json.dumps({"schemaVersion": 2, "mediaType": SbomSchema.media_type, "parts": [missing]}).encode()
    with pytest.raises(ManifestBlobUnknown):
        await repo.manifests.put(orphan, SbomSchema.media_type)
    # The default registry of the running app does not know the type.
    refused = await app.client.put(
        "/v2/lib/sbom/manifests/x", data=body, headers={"Content-Type": SbomSchema.media_type}
    )
    assert refused.status == 400
    assert (await refused.json())["errors"][0]["code"] == "MANIFEST_INVALID"
