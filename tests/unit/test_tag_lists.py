"""Tag listings through the per-worker list cache stay exact when another process changes the tags."""

from __future__ import annotations

from pathlib import Path

from portside.digest import Digest
from portside.metadata.engine import migrate, open_database
from portside.metadata.records import NewManifest
from portside.metadata.store import MetadataStore
from portside.registry import LocalNamespace
from portside.registry.taglists import TagListCache
from portside.storage.drivers.inmemory import InMemoryDriver

LAYER = "sha256:" + "b" * 64


def _manifest(n: int) -> NewManifest:
    return NewManifest(
        digest=f"sha256:{n:064x}",
        media_type="application/vnd.oci.image.manifest.v1+json",
        payload=b'{"n": %d}' % n,
        blob_refs=(LAYER,),
    )


async def _namespace(path: Path, queries: list[str] | None = None) -> LocalNamespace:
    """A namespace on the database file; `queries` collects the verb of every statement it runs."""
    observe = None if queries is None else (lambda verb, seconds: queries.append(verb))
    store = MetadataStore(open_database(f"sqlite:///{path}", observe=observe))
    await store.migrate()
    return LocalNamespace(InMemoryDriver(), store)


async def test_a_listing_sees_changes_made_by_another_process(tmp_path: Path) -> None:
    # Two namespaces on one database file stand for two worker processes, each with its own list cache.
    db = tmp_path / "shared.db"
    queries: list[str] = []
    reader, writer = await _namespace(db, queries), await _namespace(db)
    try:
        store = writer.store
        await store.registry.link_blob("r", LAYER, 1)
        for n, tag in enumerate(["b", "a", "c"]):
            assert await store.registry.put_manifest("r", _manifest(n), tag=tag) == []
        tags = reader.repository("r").tags
        queries.clear()
        assert (await tags.page()).items == ["a", "b", "c"]
        first = len(queries)
        queries.clear()
        assert (await tags.page()).items == ["a", "b", "c"]
        # Served from the kept list: one query (the repository's tag-list version), not the list again.
        assert queries == ["select"], f"a second listing ran {queries}, the first {first} queries"
        assert first > 1
        assert await store.registry.put_manifest("r", _manifest(9), tag="aa") == []
        assert (await tags.page()).items == ["a", "aa", "b", "c"]
        assert await store.registry.delete_tag("r", "b")
        assert (await tags.page()).items == ["a", "aa", "c"]
        assert await store.registry.delete_manifest("r", _manifest(2).digest)  # tag "c" goes with it
        assert (await tags.page()).items == ["a", "aa"]
        page = await tags.page(last="a", limit=1)
        assert page.items == ["aa"]
        assert not page.more
        assert (await tags.page(limit=1)).more
        await reader.repository("r").tags.tag("z", Digest(_manifest(0).digest))
        assert (await writer.repository("r").tags.page()).items == ["a", "aa", "z"]
    finally:
        await reader.close()
        await writer.close()


def test_the_cache_is_bounded_by_names_held() -> None:
    cache = TagListCache(max_names=5)
    cache.put("one", 1, ["a", "b", "c"])
    cache.put("two", 1, ["a", "b"])
    assert cache.get("one", 1) == ["a", "b", "c"]
    cache.put("three", 1, ["x"])  # six names: the least recently used list goes
    assert cache.get("two", 1) is None
    assert cache.get("one", 1) == ["a", "b", "c"]
    assert cache.get("one", 2) is None  # another version is another list
    cache.put("huge", 1, list("abcdefg"))  # longer than the whole bound: not kept
    assert cache.get("huge", 1) is None


async def test_migrated_database_starts_every_repository_at_version_zero(tmp_path: Path) -> None:
    db = open_database(f"sqlite:///{tmp_path}/fresh.db")
    await migrate(db)
    store = MetadataStore(db)
    try:
        await store.registry.link_blob("fresh", LAYER, 1)
        assert await store.registry.tags_version("fresh") == 0
    finally:
        await store.close()
