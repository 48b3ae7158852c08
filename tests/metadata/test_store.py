"""The metadata store's contract, on SQLite and PostgreSQL alike."""

from __future__ import annotations

import asyncio
from datetime import timedelta

import pytest

from portside.metadata.engine import current_revision, migrate, open_database
from portside.metadata.migrations import LATEST
from portside.metadata.records import NewManifest, OutboxEntry, utcnow
from portside.metadata.store import MetadataStore

A, B, C, D = ("sha256:" + ch * 64 for ch in "abcd")


def manifest(digest: str, blobs: tuple[str, ...] = (), children: tuple[str, ...] = (), **extra: object) -> NewManifest:
    return NewManifest(
        digest=digest,
        media_type="application/vnd.oci.image.manifest.v1+json",
        payload=b'{"x": "' + digest.encode() + b'"}',
        blob_refs=blobs,
        manifest_refs=children,
        **extra,  # type: ignore[arg-type]
    )


async def test_migrations_are_idempotent(store: MetadataStore) -> None:
    await migrate(store.db)
    assert await current_revision(store.db) == LATEST == "0008"


async def test_sessions_from_before_the_emptiness_flag_count_as_holding_data(store_dsn: str) -> None:
    """Migration 0004: nothing recorded whether older sessions are empty, so they must not be taken as empty."""
    from portside.metadata.tables import uploads

    db = open_database(store_dsn)
    try:
        await migrate(db, "0003")
        now = utcnow()
        old_row = uploads.insert().values(id="old", repository="r", started_at=now, updated_at=now)
        await db.write(lambda conn: conn.execute(old_row))
        await migrate(db)
        store = MetadataStore(db)
        old = await store.uploads.get("old")
        assert old is not None
        assert old.has_data
        assert not (await store.uploads.create("new", "r")).has_data
        new = await store.uploads.get("new")
        assert new is not None
        assert not new.has_data
    finally:
        await db.dispose()


async def test_catalog_and_tags_sort_by_byte_value(store: MetadataStore) -> None:
    for name in ("a_b", "a/b", "a.b", "a-b", "a", "b"):
        await store.registry.link_blob(name, A, 1)
    assert await store.registry.catalog(None, 10) == ["a", "a-b", "a.b", "a/b", "a_b", "b"]
    assert await store.registry.catalog("a.b", 2) == ["a/b", "a_b"]
    await store.registry.link_blob("t", B, 1)
    assert await store.registry.put_manifest("t", manifest(C, (B,))) == []
    for tag in ("b", "Z", "a", "A", "_x", "1"):
        assert await store.registry.set_tag("t", tag, C)
    assert await store.registry.tags("t", None, None) == ["1", "A", "Z", "_x", "a", "b"]
    assert await store.registry.tags("t", "Z", 2) == ["_x", "a"]


async def test_blob_links_are_per_repository(store: MetadataStore) -> None:
    await store.registry.link_blob("one", A, 5)
    assert await store.registry.blob_in_repository("one", A) is not None
    assert await store.registry.blob_in_repository("two", A) is None
    await store.registry.link_blob("two", A, 5)
    assert await store.registry.repositories_with_blob(A) == ["one", "two"]
    assert await store.registry.unlink_blob("one", A)
    assert not await store.registry.unlink_blob("one", A)
    assert await store.registry.repositories_with_blob(A) == ["two"]
    blob = await store.registry.blob(A)
    assert blob is not None
    assert blob.size == 5


async def test_manifest_with_missing_references_writes_nothing(store: MetadataStore) -> None:
    await store.registry.link_blob("r", A, 1)
    outbox = [OutboxEntry("hook", '{"action": "push"}')]
    assert await store.registry.put_manifest("r", manifest(C, (A, B), (D,)), "v1", outbox) == [B, D]
    assert await store.registry.manifest("r", C) is None
    assert await store.registry.tags("r", None, None) == []
    assert await store.outbox.pending_counts() == {}


async def test_manifest_put_tag_move_and_delete(store: MetadataStore) -> None:
    await store.registry.link_blob("r", A, 1)
    assert await store.registry.put_manifest("r", manifest(C, (A,), annotations={"k": "v"}), "v1") == []
    assert await store.registry.put_manifest("r", manifest(C, (A,)), "v1") == [], "pushing again is harmless"
    tagged = await store.registry.manifest_by_tag("r", "v1")
    assert tagged is not None
    assert tagged.digest == C
    assert tagged.annotations == {"k": "v"}
    assert await store.registry.put_manifest("r", manifest(D, (A,), subject_digest=C, artifact_type="x/y"), "v1") == []
    moved = await store.registry.manifest_by_tag("r", "v1")
    assert moved is not None
    assert moved.digest == D
    assert [m.digest for m in await store.registry.referrers("r", C)] == [D]
    assert await store.registry.referrers("r", C, "x/z") == []
    assert await store.registry.set_tag("r", "v2", D)
    assert not await store.registry.set_tag("r", "v3", B)
    assert await store.registry.tags_of("r", D) == ["v1", "v2"]
    assert await store.registry.delete_manifest("r", D)
    assert await store.registry.tags("r", None, None) == []
    assert await store.registry.referrers("r", C) == []
    assert not await store.registry.delete_manifest("r", D)


async def test_tags_version_moves_exactly_when_the_tag_names_change(store: MetadataStore) -> None:
    assert await store.registry.tags_version("v") is None
    await store.registry.link_blob("v", B, 1)
    base = await store.registry.tags_version("v")
    assert base is not None
    assert await store.registry.put_manifest("v", manifest(C, (B,)), tag="one") == []
    after_put = await store.registry.tags_version("v")
    assert after_put is not None
    assert after_put > base
    assert await store.registry.set_tag("v", "two", C)
    after_tag = await store.registry.tags_version("v")
    assert after_tag is not None
    assert after_tag > after_put
    assert await store.registry.put_manifest("v", manifest(D, (B,))) == []
    assert await store.registry.set_tag("v", "two", D)  # moved: the names are the same
    assert await store.registry.tags_version("v") == after_tag
    assert await store.registry.delete_tag("v", "one")
    after_untag = await store.registry.tags_version("v")
    assert after_untag is not None
    assert after_untag > after_tag
    assert await store.registry.delete_manifest("v", D)  # takes tag "two" with it
    after_cascade = await store.registry.tags_version("v")
    assert after_cascade is not None
    assert after_cascade > after_untag
    assert await store.registry.tags("v", None, None) == []
    await store.registry.link_blob("other", B, 1)
    assert await store.registry.put_manifest("other", manifest(C, (B,)), tag="x") == []
    assert await store.registry.tags_version("v") == after_cascade  # another repository's tags are its own


async def test_index_needs_its_children_in_the_repository(store: MetadataStore) -> None:
    await store.registry.link_blob("r", A, 1)
    assert await store.registry.put_manifest("r", manifest(C, (A,))) == []
    assert await store.registry.put_manifest("other", manifest(D, (), (C,))) == [C]
    assert await store.registry.put_manifest("r", manifest(D, (), (C,)), "list") == []


async def test_concurrent_pushes_of_one_manifest_and_tag(store: MetadataStore) -> None:
    await store.registry.link_blob("r", A, 1)
    results = await asyncio.gather(*(store.registry.put_manifest("r", manifest(C, (A,)), "same") for _ in range(10)))
    assert results == [[]] * 10
    assert await store.registry.tags("r", None, None) == ["same"]


async def test_upload_sessions(store: MetadataStore) -> None:
    record = await store.uploads.create("u1", "r")
    assert (await store.uploads.get("u1")) == record
    await asyncio.sleep(0.01)
    assert not record.has_data
    await store.uploads.mark_data("u1")
    touched = await store.uploads.get("u1")
    assert touched is not None
    assert touched.updated_at > record.updated_at
    assert touched.has_data
    assert [u.id for u in await store.uploads.stale(utcnow() + timedelta(seconds=1))] == ["u1"]
    assert await store.uploads.stale(utcnow() - timedelta(hours=1)) == []
    await store.registry.finish_upload("u1", "r", A, 3, [OutboxEntry("hook", "{}")])
    assert await store.uploads.get("u1") is None
    assert await store.registry.blob_in_repository("r", A) is not None
    assert await store.outbox.pending_counts() == {"hook": 1}
    await store.uploads.create("u2", "r")
    assert await store.uploads.delete("u2")
    assert not await store.uploads.delete("u2")


async def test_outbox_is_written_with_the_change(store: MetadataStore) -> None:
    event = [OutboxEntry("hook", '{"n": 1}'), OutboxEntry("audit", '{"n": 1}')]
    await store.registry.link_blob("r", A, 1, event)
    assert not await store.registry.unlink_blob("missing", A, event), "no change, no event"
    assert not await store.registry.delete_tag("r", "none", event)
    assert await store.outbox.pending_counts() == {"hook": 1, "audit": 1}
    await store.outbox.add([OutboxEntry("hook", '{"n": 2}')])
    assert await store.outbox.pending_counts() == {"hook": 2, "audit": 1}


async def test_one_claimer_per_endpoint_and_in_order(store: MetadataStore) -> None:
    await store.outbox.add([OutboxEntry("hook", f'{{"n": {i}}}') for i in range(5)])
    claims = await asyncio.gather(*(store.outbox.claim("hook", 3, 30) for _ in range(4)))
    winners = [c for c in claims if c]
    assert len(winners) == 1
    assert [d.event for d in winners[0]] == ['{"n": 0}', '{"n": 1}', '{"n": 2}']
    assert await store.outbox.claim("hook", 3, 30) == [], "leased"
    await store.outbox.mark_failed([d.id for d in winners[0]], "HTTP 500", utcnow() + timedelta(hours=1))
    assert await store.outbox.claim("hook", 3, 30) == [], "the head waits for its retry time"
    failed = await store.outbox.deliveries("failed", "hook", failed_after=1)
    assert [(d.attempts, d.last_error) for d in failed] == [(1, "HTTP 500")] * 3
    assert await store.outbox.replay(failed_after=1, endpoint="hook") == 3
    again = await store.outbox.claim("hook", 10, 30)
    assert len(again) == 5
    await store.outbox.mark_delivered([d.id for d in again])
    assert await store.outbox.pending_counts() == {}
    assert len(await store.outbox.deliveries("delivered")) == 5
    assert await store.outbox.prune_delivered(utcnow() + timedelta(seconds=1)) == 5


@pytest.mark.parametrize("endpoints", [("a", "b")])
async def test_due_endpoints(store: MetadataStore, endpoints: tuple[str, ...]) -> None:
    await store.outbox.add([OutboxEntry(e, "{}") for e in endpoints])
    due = await store.outbox.due_endpoints()
    assert set(due) == set(endpoints)
    assert all(when <= utcnow() for when in due.values())


async def test_a_blob_is_recorded_only_after_its_step_succeeds(store: MetadataStore) -> None:
    """The small-blob path hands its fsyncs over as the link's `before` step: the record is written after
    it, and not at all when it fails (the error reaches the caller), on either engine."""
    done: list[str] = []
    digest, other = "sha256:" + "b" * 64, "sha256:" + "c" * 64

    def fail() -> None:
        raise OSError("no space left")

    with pytest.raises(OSError, match="no space left"):
        await store.registry.link_blob("small", digest, 4, before=fail)
    assert await store.registry.blob(digest) is None
    upload = await store.uploads.create("4f6a3c1e-0000-4000-8000-00000000000b", "small")
    await store.registry.finish_upload(upload.id, "small", other, 5, before=lambda: done.append(other))
    assert done == [other]
    assert await store.registry.blob_in_repository("small", other) is not None
    assert await store.uploads.get(upload.id) is None
