"""The storage driver contract: what every driver must do, run against each of them.

A new driver joins by adding its test parameters to `DRIVERS` and its entry in `REDIRECTS`; one that needs a
service takes it from a session fixture (moto, Azurite, the GCS emulator), and a service that cannot start fails
the run, it is never skipped. Nothing here knows about images: these are the file-system-like semantics the
registry library relies on.
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import AsyncIterator, Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from portside.storage import InvalidOffset, InvalidPath, PathNotFound, StorageDriver, factory


def _s3(request: pytest.FixtureRequest, tmp: Path) -> dict[str, object]:
    from tests.object_storage import create_bucket, s3_parameters

    endpoint = request.getfixturevalue("s3_endpoint")
    # Small parts, so a few MiB already exercise multipart uploads and multipart copies.
    return s3_parameters(
        endpoint,
        create_bucket(endpoint),
        rootdirectory="/registry",
        chunksize=5 * 1024 * 1024,
        multipartcopythresholdsize=6 * 1024 * 1024,
        multipartcopychunksize=5 * 1024 * 1024,
    )


def _azure(request: pytest.FixtureRequest, tmp: Path) -> dict[str, object]:
    from tests.object_storage import azure_parameters

    # Small blocks, so a few MiB already span several.
    return azure_parameters(request.getfixturevalue("azurite_url"), rootdirectory="registry", chunksize=1024 * 1024)


def _gcs(request: pytest.FixtureRequest, tmp: Path) -> dict[str, object]:
    from tests.object_storage import create_gcs_bucket

    endpoint = request.getfixturevalue("gcs_endpoint")
    # Small parts, so a few MiB already compose several.
    return {
        "bucket": create_gcs_bucket(endpoint),
        "endpoint": endpoint,
        "rootdirectory": "registry",
        "chunksize": 256 * 1024,
    }


# Each driver's parameters; the driver is made by the factory, as the registry makes it (path checks included).
DRIVERS: dict[str, Callable[[pytest.FixtureRequest, Path], dict[str, object]]] = {
    "gcs": _gcs,
    "azure": _azure,
    "filesystem": lambda request, tmp: {"rootdirectory": str(tmp / "root")},
    "inmemory": lambda request, tmp: {},
    "s3": _s3,
}


def test_every_registered_driver_is_under_contract() -> None:
    assert factory.names() == sorted(DRIVERS)


# Whether each driver, as configured above, hands clients a URL to fetch blobs from (docs/architecture.md,
# "Object storage": S3 a presigned URL, Azure a SAS URL, GCS a V4 signed URL only with a service account key,
# which the emulator's anonymous credentials are not).
REDIRECTS = {"gcs": False, "azure": True, "filesystem": False, "inmemory": False, "s3": True}


@pytest.fixture(params=sorted(DRIVERS))
async def driver(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[StorageDriver]:
    d = factory.create(request.param, DRIVERS[request.param](request, tmp_path))
    await d.connect()
    yield d
    await d.close()


async def read_all(driver: StorageDriver, path: str, offset: int = 0, step: int = 7) -> bytes:
    out = bytearray()
    async with await driver.reader(path, offset) as reader:
        while chunk := await reader.read(step):
            out += chunk
    return bytes(out)


async def test_put_and_get_content(driver: StorageDriver) -> None:
    await driver.put_content("/a/b/c", b"hello")
    assert await driver.get_content("/a/b/c") == b"hello"
    await driver.put_content("/a/b/c", b"replaced, and longer")
    assert await driver.get_content("/a/b/c") == b"replaced, and longer"
    await driver.put_content("/empty", b"")
    assert await driver.get_content("/empty") == b""


async def test_staged_content_appears_only_once_placed(driver: StorageDriver) -> None:
    """A driver that stages small files (the file system) shows nothing at the path until `place`, then the
    file alone; a file placed over an existing one replaces it; `discard` leaves nothing. Drivers that
    cannot stage say so with None, having written nothing, and the library stores with `put_content`."""
    staged = driver.stage_content("/staged/a/data", b"small")
    if staged is None:
        with pytest.raises(PathNotFound):
            await driver.list("/staged")
        return
    with pytest.raises(PathNotFound):
        await driver.get_content("/staged/a/data")
    await asyncio.to_thread(staged.place)
    assert await driver.get_content("/staged/a/data") == b"small"
    replacing = driver.stage_content("/staged/a/data", b"replaced")
    assert replacing is not None
    await asyncio.to_thread(replacing.place)
    assert await driver.get_content("/staged/a/data") == b"replaced"
    assert await driver.list("/staged/a") == ["/staged/a/data"]
    dropped = driver.stage_content("/staged/b/data", b"never placed")
    assert dropped is not None
    dropped.discard()
    with pytest.raises(PathNotFound):
        await driver.get_content("/staged/b/data")
    assert await driver.list("/staged/b") == []


async def test_get_missing_raises_path_not_found(driver: StorageDriver) -> None:
    with pytest.raises(PathNotFound):
        await driver.get_content("/nope")
    with pytest.raises(PathNotFound):
        await driver.reader("/nope")
    with pytest.raises(PathNotFound):
        await driver.stat("/nope")


@pytest.mark.parametrize(
    "path", ["", "relative", "/a/../b", "/..", "/a//b", "/a/./b", "/a/", "/a b", "/a\x00b", "/a/\n", "//etc/passwd"]
)
async def test_invalid_paths_are_refused(driver: StorageDriver, path: str) -> None:
    with pytest.raises(InvalidPath):
        await driver.put_content(path, b"x")
    with pytest.raises(InvalidPath):
        await driver.get_content(path)
    with pytest.raises(InvalidPath):
        await driver.writer(path)
    with pytest.raises(InvalidPath):
        await driver.delete(path)


async def test_writer_appends_commits_and_reports_size(driver: StorageDriver) -> None:
    writer = await driver.writer("/up/data")
    assert writer.size == 0
    for part in (b"abc", bytearray(b"def"), memoryview(b"ghij")):
        await writer.write(part)
    assert writer.size == 10
    await writer.commit()
    assert await driver.get_content("/up/data") == b"abcdefghij"
    assert (await driver.stat("/up/data")).size == 10


async def test_closed_writer_resumes_with_append(driver: StorageDriver) -> None:
    writer = await driver.writer("/up/data")
    await writer.write(b"first-")
    await writer.close()
    resumed = await driver.writer("/up/data", append=True)
    assert resumed.size == 6
    await resumed.write(b"second")
    assert resumed.size == 12
    await resumed.commit()
    assert await driver.get_content("/up/data") == b"first-second"


async def test_writer_without_append_starts_empty(driver: StorageDriver) -> None:
    await driver.put_content("/up/data", b"old content")
    writer = await driver.writer("/up/data")
    assert writer.size == 0
    await writer.write(b"new")
    await writer.commit()
    assert await driver.get_content("/up/data") == b"new"


async def test_append_to_missing_file_creates_it(driver: StorageDriver) -> None:
    writer = await driver.writer("/fresh/data", append=True)
    assert writer.size == 0
    await writer.commit()
    assert await driver.get_content("/fresh/data") == b""


async def test_cancelled_writer_leaves_nothing(driver: StorageDriver) -> None:
    writer = await driver.writer("/up/data")
    await writer.write(b"doomed")
    await writer.cancel()
    with pytest.raises(PathNotFound):
        await driver.get_content("/up/data")


async def test_large_content_streams_through_writer_and_reader(driver: StorageDriver) -> None:
    payload = os.urandom(3 * 1024 * 1024 + 17)
    writer = await driver.writer("/big/data")
    for i in range(0, len(payload), 65536):
        await writer.write(payload[i : i + 65536])
    await writer.commit()
    assert await read_all(driver, "/big/data", step=1 << 20) == payload
    assert await read_all(driver, "/big/data", offset=1_000_001, step=300_000) == payload[1_000_001:]


async def test_reader_offsets(driver: StorageDriver) -> None:
    await driver.put_content("/r", b"0123456789")
    assert await read_all(driver, "/r") == b"0123456789"
    assert await read_all(driver, "/r", offset=4) == b"456789"
    assert await read_all(driver, "/r", offset=10) == b""
    with pytest.raises(InvalidOffset):
        await driver.reader("/r", 11)
    with pytest.raises(InvalidOffset):
        await driver.reader("/r", -1)


async def test_stat_files_and_directories(driver: StorageDriver) -> None:
    before = datetime.now(UTC) - timedelta(seconds=5)
    await driver.put_content("/dir/sub/file", b"12345")
    info = await driver.stat("/dir/sub/file")
    assert (info.path, info.size, info.is_dir) == ("/dir/sub/file", 5, False)
    assert before <= info.modified <= datetime.now(UTC) + timedelta(seconds=5)
    assert (await driver.stat("/dir")).is_dir
    assert (await driver.stat("/dir/sub")).is_dir


async def test_list_gives_sorted_direct_children(driver: StorageDriver) -> None:
    for path in ("/l/b/x", "/l/a", "/l/c/d/e", "/other"):
        await driver.put_content(path, b"1")
    assert await driver.list("/l") == ["/l/a", "/l/b", "/l/c"]
    assert await driver.list("/l/c") == ["/l/c/d"]
    assert await driver.list("/") == ["/l", "/other"]
    with pytest.raises(PathNotFound):
        await driver.list("/missing")


async def test_move(driver: StorageDriver) -> None:
    await driver.put_content("/src/f", b"moving")
    await driver.move("/src/f", "/deep/new/place/f")
    assert await driver.get_content("/deep/new/place/f") == b"moving"
    with pytest.raises(PathNotFound):
        await driver.get_content("/src/f")
    await driver.put_content("/src/g", b"replacement")
    await driver.move("/src/g", "/deep/new/place/f")
    assert await driver.get_content("/deep/new/place/f") == b"replacement"
    with pytest.raises(PathNotFound):
        await driver.move("/src/none", "/x")


async def test_delete_files_and_trees(driver: StorageDriver) -> None:
    for path in ("/t/a", "/t/sub/b", "/t/sub/deeper/c", "/tt/keep"):
        await driver.put_content(path, b"1")
    await driver.delete("/t/a")
    with pytest.raises(PathNotFound):
        await driver.get_content("/t/a")
    await driver.delete("/t")
    for path in ("/t/sub/b", "/t/sub/deeper/c"):
        with pytest.raises(PathNotFound):
            await driver.get_content(path)
    assert await driver.get_content("/tt/keep") == b"1", "a sibling sharing the prefix must survive"
    with pytest.raises(PathNotFound):
        await driver.delete("/t")


async def test_walk_is_depth_first_and_lexical(driver: StorageDriver) -> None:
    for path in ("/w/b/2", "/w/a", "/w/b/1", "/w/c/x/y"):
        await driver.put_content(path, b"1")
    seen = [(info.path, info.is_dir) async for info in driver.walk("/w")]
    assert seen == [
        ("/w/a", False),
        ("/w/b", True),
        ("/w/b/1", False),
        ("/w/b/2", False),
        ("/w/c", True),
        ("/w/c/x", True),
        ("/w/c/x/y", False),
    ]


async def test_walk_files_gives_every_file_below_with_its_size(driver: StorageDriver) -> None:
    """What garbage collection's storage sweep and fsck walk: files only, at any depth, sizes included."""
    for path, size in (("/f/a/1/data", 3), ("/f/a/2/data", 5), ("/f/b/9/data", 0), ("/f/top", 1), ("/other", 2)):
        await driver.put_content(path, b"x" * size)
    writer = await driver.writer("/f/c/upload/data")  # an upload in progress is not a file yet
    await writer.write(b"partial")
    await writer.close()
    found = {info.path: info.size async for info in driver.walk_files("/f")}
    assert {p: s for p, s in found.items() if "upload" not in p} == {
        "/f/a/1/data": 3,
        "/f/a/2/data": 5,
        "/f/b/9/data": 0,
        "/f/top": 1,
    }
    infos = [info async for info in driver.walk_files("/f/a")]
    assert all(not info.is_dir and info.modified.tzinfo is not None for info in infos)
    assert [info async for info in driver.walk_files("/nothing/here")] == []


async def test_delete_files_removes_many_and_counts_the_missing_as_removed(driver: StorageDriver) -> None:
    paths = [f"/d/{i:02d}/{i:064x}/data" for i in range(30)]
    for path in paths:
        await driver.put_content(path, b"bytes")
    await driver.put_content("/d/keep", b"kept")
    failures = await driver.delete_files([*paths, "/d/99/never/data"])
    assert failures == {}
    for path in paths:
        with pytest.raises(PathNotFound):
            await driver.get_content(path)
    assert await driver.get_content("/d/keep") == b"kept"
    assert [info.path async for info in driver.walk_files("/d")] == ["/d/keep"]


async def test_concurrent_writers_to_different_paths(driver: StorageDriver) -> None:
    async def write(i: int) -> None:
        writer = await driver.writer(f"/c/{i}/data")
        for _ in range(20):
            await writer.write(bytes([i]) * 1000)
        await writer.commit()

    await asyncio.gather(*(write(i) for i in range(8)))
    for i in range(8):
        assert await driver.get_content(f"/c/{i}/data") == bytes([i]) * 20000


async def test_redirect_url_serves_the_content_or_is_none(
    driver: StorageDriver, request: pytest.FixtureRequest
) -> None:
    """A driver that redirects gives a URL a plain HTTP client fetches the exact bytes from (and a HEAD URL
    that answers with their size); one that does not gives None, and Portside serves the bytes itself."""
    import httpx

    content = os.urandom(1000)
    await driver.put_content("/blob", content)
    url = await driver.redirect_url("/blob")
    head_url = await driver.redirect_url("/blob", method="HEAD")
    if not REDIRECTS[request.node.callspec.params["driver"]]:
        assert (url, head_url) == (None, None)
        return
    assert url is not None
    assert head_url is not None
    assert url.startswith(("http://", "https://")), url
    async with httpx.AsyncClient(timeout=30) as client:
        r = await client.get(url)
        assert r.status_code == 200, r.text
        assert r.content == content
        r = await client.head(head_url)
        assert r.status_code == 200, r.text
        assert int(r.headers["Content-Length"]) == len(content)
