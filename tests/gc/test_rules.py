"""Each rule of what is garbage (docs/operations.md, Garbage collection), checked through online collection's
passes on SQLite with the filesystem and on PostgreSQL with S3."""

from __future__ import annotations

import json
from typing import Any

from tests.gc.conftest import Store

HOUR = 3600.0
LATER = {"gc": {"reviewafter": "1h"}}


async def test_an_unreferenced_link_goes_after_the_review_delay_and_its_bytes_with_it(open_store: Any) -> None:
    store: Store = await open_store(LATER)
    blob = await store.blob("lonely/repo")
    await store.drain()
    assert await store.linked("lonely/repo", blob), "a push in progress uploads its blobs before its manifest"
    assert await store.stored(blob)
    await store.age(2 * HOUR)
    await store.drain()
    assert not await store.linked("lonely/repo", blob)
    assert not await store.stored(blob)
    assert await store.catalog() == [], "an empty repository leaves the catalog"


async def test_what_a_manifest_references_stays(open_store: Any) -> None:
    store: Store = await open_store(LATER)
    image = await store.image("kept/repo", tag="v1")
    await store.age(2 * HOUR)
    await store.drain()
    assert await store.has_manifest("kept/repo", image.digest)
    for descriptor in (image.config, *image.layers):
        assert descriptor is not None
        assert await store.linked("kept/repo", descriptor.digest)
        assert await store.stored(descriptor.digest)


async def test_bytes_stay_while_any_repository_links_them(open_store: Any) -> None:
    store: Store = await open_store(LATER)
    shared = b"a layer two images share"
    first = await store.image("team/one", tag="v1", shared=shared)
    second = await store.image("team/two", tag="v1", shared=shared)
    shared_digest = first.layers[-1].digest
    assert second.layers[-1].digest == shared_digest
    await store.repo("team/one").manifests.delete(first.digest)
    await store.age(2 * HOUR)
    await store.drain()
    assert not await store.linked("team/one", shared_digest)
    assert await store.stored(shared_digest), "team/two still links it"
    assert first.config is not None
    assert not await store.stored(first.config.digest)
    await store.repo("team/two").manifests.delete(second.digest)
    await store.age(2 * HOUR)
    await store.drain()
    assert not await store.stored(shared_digest)
    assert await store.catalog() == []


async def test_untagged_manifests_stay_unless_asked_for(open_store: Any) -> None:
    keeping: Store = await open_store(LATER)
    untagged = await keeping.image("by/digest")
    await keeping.age(2 * HOUR)
    await keeping.drain()
    assert await keeping.has_manifest("by/digest", untagged.digest), "pulls by digest keep working"


async def test_untagged_manifests_go_when_asked_for_unless_a_kept_index_holds_them(open_store: Any) -> None:
    store: Store = await open_store({"gc": {"reviewafter": "1h", "manifests": {"untagged": True}}})
    loose = await store.image("multi/arch")
    held = [await store.image("multi/arch"), await store.image("multi/arch")]
    tagged_index = await store.index("multi/arch", held, tag="latest")
    orphan_child = await store.image("multi/arch")
    untagged_index = await store.index("multi/arch", [orphan_child])
    await store.drain()
    assert await store.has_manifest("multi/arch", loose.digest), "pushed less than the review delay ago"
    await store.age(2 * HOUR)
    await store.drain()
    assert not await store.has_manifest("multi/arch", loose.digest)
    assert await store.has_manifest("multi/arch", tagged_index.digest)
    assert all([await store.has_manifest("multi/arch", m.digest) for m in held]), "children of a kept index stay"
    assert not await store.has_manifest("multi/arch", untagged_index.digest)
    # The index's child was kept while the index was there; its own review comes the delay after.
    await store.age(2 * HOUR)
    await store.drain()
    assert not await store.has_manifest("multi/arch", orphan_child.digest)
    assert loose.config is not None
    assert not await store.stored(loose.config.digest)


async def test_a_tag_moved_away_leaves_the_manifest_to_the_untagged_rule(open_store: Any) -> None:
    store: Store = await open_store({"gc": {"reviewafter": "1h", "manifests": {"untagged": True}}})
    old = await store.image("moving/tag", tag="latest")
    new = await store.image("moving/tag", tag="latest")
    await store.age(2 * HOUR)
    await store.drain()
    assert not await store.has_manifest("moving/tag", old.digest)
    assert await store.has_manifest("moving/tag", new.digest)


async def test_referrers_follow_their_subject(open_store: Any) -> None:
    store: Store = await open_store(LATER)
    subject = await store.image("signed/app", tag="v1")
    signature = await store.referrer("signed/app", subject)
    tagged_signature = await store.referrer("signed/app", subject, tag="sig")
    await store.age(2 * HOUR)
    await store.drain()
    assert await store.has_manifest("signed/app", signature.digest), "kept while its subject is"
    await store.repo("signed/app").manifests.delete(subject.digest)
    await store.age(2 * HOUR)
    await store.drain()
    assert not await store.has_manifest("signed/app", signature.digest)
    assert await store.has_manifest("signed/app", tagged_signature.digest), "a tag keeps a manifest"
    # What the referrer held is reviewed the delay after it went.
    assert signature.config is not None
    assert await store.stored(signature.config.digest)
    await store.age(2 * HOUR)
    await store.drain()
    assert not await store.stored(signature.config.digest)


async def test_referrers_of_a_deleted_subject_stay_when_the_rule_is_off(open_store: Any) -> None:
    store: Store = await open_store({"gc": {"reviewafter": "1h", "manifests": {"referrers": False}}})
    subject = await store.image("signed/app", tag="v1")
    signature = await store.referrer("signed/app", subject)
    await store.repo("signed/app").manifests.delete(subject.digest)
    await store.age(2 * HOUR)
    await store.drain()
    assert await store.has_manifest("signed/app", signature.digest)


async def test_a_blob_head_keeps_an_unreferenced_link_for_the_review_delay(open_store: Any) -> None:
    store: Store = await open_store(LATER)
    blob = await store.blob("checked/repo")
    await store.age(2 * HOUR)
    # The client checks the blob before pushing a manifest that needs it: the answer must stay true.
    content = await store.repo("checked/repo").blobs.open(blob, "HEAD")
    assert content.descriptor.digest == blob
    await store.drain()
    assert await store.linked("checked/repo", blob)
    image_needs_it = json.dumps(
        {
            "schemaVersion": 2,
            "mediaType": "application/vnd.oci.image.manifest.v1+json",
            "config": {"mediaType": "application/vnd.oci.image.config.v1+json", "digest": blob, "size": 64},
            "layers": [],
        }
    ).encode()
    await store.repo("checked/repo").manifests.put(image_needs_it, "application/vnd.oci.image.manifest.v1+json")
    await store.age(2 * HOUR)
    await store.drain()
    assert await store.stored(blob), "now a manifest keeps it"


async def test_collected_manifests_are_announced_as_deletes(open_store: Any) -> None:
    hook = {"name": "audit", "url": "http://127.0.0.1:9/unreachable", "timeout": "1s"}
    store: Store = await open_store({"gc": {"reviewafter": "1h"}, "notifications": {"endpoints": [hook]}})
    subject = await store.image("announced/app", tag="v1")
    signature = await store.referrer("announced/app", subject)
    await store.repo("announced/app").manifests.delete(subject.digest)
    await store.age(2 * HOUR)
    await store.drain()
    events = [json.loads(d.event) for d in await store.namespace.store.outbox.deliveries()]
    deletes = [e["target"] for e in events if e["action"] == "delete"]
    assert {"repository": "announced/app", "digest": signature.digest} in deletes
