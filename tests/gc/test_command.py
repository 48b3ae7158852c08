"""`portside garbage-collect` and `portside fsck` as library calls (registry/sweep.py, registry/fsck.py), on SQLite
with the filesystem and PostgreSQL with S3: a dry run removes nothing and says exactly what a run removes; a run
leaves exactly what remains referenced; fsck finds a removed blob file and a corrupted one."""

from __future__ import annotations

import os
import uuid
from typing import Any

from portside.digest import Digest
from portside.metadata.gc import Policy
from portside.registry.fsck import Fsck
from portside.registry.sweep import Sweep, SweepOptions
from portside.service import gc_policy
from portside.storage import paths
from portside.storage.driver import FileInfo
from tests.gc.conftest import Store

OFFLINE = {"gc": {"disabled": True, "reviewafter": "1h"}}


async def _content(store: Store) -> dict[str, Any]:
    """Tagged images, untagged ones, a deleted one, an index, referrers of a deleted subject, a lone upload."""
    shared = b"shared base layer"
    kept = await store.image("app/web", tag="v1", shared=shared)
    untagged = await store.image("app/web", shared=shared)
    deleted = await store.image("app/api", tag="v1", shared=shared)
    children = [await store.image("app/multi"), await store.image("app/multi")]
    index = await store.index("app/multi", children, tag="latest")
    subject = await store.image("app/signed", tag="v1")
    signature = await store.referrer("app/signed", subject)
    lone = await store.blob("app/lone")
    await store.repo("app/api").manifests.delete(deleted.digest)
    await store.repo("app/signed").manifests.delete(subject.digest)
    return {
        "kept": kept,
        "untagged": untagged,
        "deleted": deleted,
        "index": index,
        "children": children,
        "signature": signature,
        "lone": lone,
        "shared": kept.layers[-1].digest,
    }


async def _sweep(store: Store, **options: bool) -> Any:
    return await Sweep(store.collector, gc_policy(store.config), SweepOptions(**options)).run()


async def _stored_files(store: Store) -> list[str]:
    return sorted([str(digest) async for digest, _ in store.namespace.content.blobs()])


async def test_a_dry_run_removes_nothing_and_predicts_the_run(open_store: Any) -> None:
    store: Store = await open_store(OFFLINE)
    await _content(store)
    await store.age(7200)
    for untagged in (False, True):
        counts, files = await store.namespace.store.counts(), await _stored_files(store)
        predicted = await _sweep(store, dry_run=True, delete_untagged=untagged)
        assert await store.namespace.store.counts() == counts
        assert await _stored_files(store) == files
        done = await _sweep(store, delete_untagged=untagged)
        for field in ("manifests", "links", "blobs", "bytes", "repositories"):
            assert getattr(done, field) == getattr(predicted, field), field
        assert done.blobs > 0
        again = await _sweep(store, dry_run=True, delete_untagged=untagged)
        assert (again.manifests, again.links, again.blobs, again.repositories) == (0, 0, 0, 0), "nothing left"


async def test_a_run_keeps_exactly_what_stays_referenced(open_store: Any) -> None:
    store: Store = await open_store(OFFLINE)
    made = await _content(store)
    await store.age(7200)
    totals = await _sweep(store, delete_untagged=True)
    assert totals.manifests == 2, "the untagged image and the referrer of the deleted subject"
    assert await store.has_manifest("app/web", made["kept"].digest)
    assert not await store.has_manifest("app/web", made["untagged"].digest)
    assert await store.has_manifest("app/multi", made["index"].digest)
    assert all([await store.has_manifest("app/multi", c.digest) for c in made["children"]])
    assert not await store.has_manifest("app/signed", made["signature"].digest)
    assert sorted(await store.catalog()) == ["app/multi", "app/web"]
    wanted: set[str] = set()
    for manifest in (made["kept"], made["index"], *made["children"]):
        wanted |= {d.digest for d in (manifest.config, *manifest.layers) if d is not None}
    assert set(await _stored_files(store)) == wanted, "the stored bytes are exactly what the remaining manifests use"
    assert made["shared"] in wanted


async def test_what_is_younger_than_the_review_delay_stays(open_store: Any) -> None:
    store: Store = await open_store(OFFLINE)
    made = await _content(store)
    totals = await _sweep(store, delete_untagged=True)
    assert (totals.manifests, totals.blobs) == (0, 0)
    assert await store.stored(made["lone"])


async def test_sweep_storage_removes_old_bytes_no_record_knows(open_store: Any) -> None:
    store: Store = await open_store(OFFLINE)
    await store.image("app/web", tag="v1")
    debris = os.urandom(80)
    digest = Digest.of(debris)
    await store.namespace.content.put_blob(digest, debris)  # bytes written, the record never made (a crash)
    kept = await _sweep(store, sweep_storage=True)
    assert kept.blobs == 0
    assert await store.stored(digest), "younger than the review delay: perhaps a push in progress"
    swept = await Sweep(store.collector, Policy(review_after=0), SweepOptions(sweep_storage=True)).run()
    assert (swept.blobs, swept.bytes) == (1, len(debris))
    assert not await store.stored(digest)
    assert len(await _stored_files(store)) == 2


async def _leftovers(store: Store) -> list[str]:
    found: list[FileInfo] = []
    async for _ in store.namespace.content.blobs(found):
        pass
    return [info.path for info in found]


async def test_sweep_storage_removes_the_temporary_files_a_crash_left(open_store: Any) -> None:
    """A crash between writing a blob's file and renaming it to `data` leaves the filesystem driver's
    `data.<uuid>.tmp` beside it: the storage sweep removes it once older than the review delay, and leaves the
    blob alone. Object stores write whole objects and have no such files: one of that name is not theirs."""
    store: Store = await open_store(OFFLINE)
    image = await store.image("app/web", tag="v1")
    assert image.config is not None
    debris = os.urandom(64)
    name = f"data.{uuid.uuid4().hex}.tmp"
    await store.namespace.content.driver.put_content(f"{paths.blob_dir(Digest(image.config.digest))}/{name}", debris)
    files = await _stored_files(store)
    young = await _sweep(store, sweep_storage=True)
    assert young.leftovers == 0
    if not store.namespace.content.driver.is_temporary(name):
        swept = await Sweep(store.collector, Policy(review_after=0), SweepOptions(sweep_storage=True)).run()
        assert (swept.leftovers, swept.blobs) == (0, 0)
        assert await _leftovers(store) == [], "not a temporary file of this driver: never reported"
        assert await _stored_files(store) == files
        return
    assert len(await _leftovers(store)) == 1, "younger than the review delay: perhaps a write in progress"
    predicted = await Sweep(
        store.collector, Policy(review_after=0), SweepOptions(sweep_storage=True, dry_run=True)
    ).run()
    assert (predicted.leftovers, predicted.bytes) == (1, len(debris))
    assert len(await _leftovers(store)) == 1, "a dry run removes nothing"
    swept = await Sweep(store.collector, Policy(review_after=0), SweepOptions(sweep_storage=True)).run()
    assert (swept.leftovers, swept.blobs, swept.bytes) == (1, 0, len(debris))
    assert await _leftovers(store) == []
    assert await _stored_files(store) == files, "the blob beside it stays"
    assert await store.namespace.content.blob(Digest(image.config.digest))


async def test_fsck_finds_a_removed_and_a_corrupted_blob(open_store: Any) -> None:
    store: Store = await open_store(OFFLINE)
    image = await store.image("app/web", tag="v1")
    check = await Fsck(store.collector, 3600).run(verify_digests=True)
    assert check.healthy, check.problems
    assert (check.blobs, check.verified) == (2, 2)
    config, layer = image.config, image.layers[0]
    assert config is not None
    await store.namespace.content.delete_blob(config.digest)
    await store.namespace.content.put_blob(layer.digest, b"x" * layer.size)  # same size, other bytes
    quick = await Fsck(store.collector, 3600).run()
    assert [(p.kind, p.subject) for p in quick.problems] == [("missing", config.digest)]
    thorough = await Fsck(store.collector, 3600).run(verify_digests=True)
    assert sorted((p.kind, p.subject) for p in thorough.problems) == sorted(
        [("missing", config.digest), ("digest", layer.digest)]
    )
    assert not thorough.healthy


async def test_fsck_reports_unknown_bytes_and_removes_them_only_when_asked(open_store: Any) -> None:
    store: Store = await open_store(OFFLINE)
    await store.image("app/web", tag="v1")
    debris = os.urandom(16)
    await store.namespace.content.put_blob(Digest.of(debris), debris)
    report = await Fsck(store.collector, 0).run()
    assert report.healthy
    assert report.unknown == [(Digest.of(debris), 16)]
    assert await store.stored(Digest.of(debris)), "fsck deletes nothing unless asked"
    cleaned = await Fsck(store.collector, 0).run(remove_unknown=True)
    assert cleaned.removed_unknown == 1
    assert not await store.stored(Digest.of(debris))
