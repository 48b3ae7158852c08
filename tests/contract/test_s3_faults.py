"""The S3 driver never reports a failed S3 call as success, and lists past S3's 1,000 entries a page.

Against moto, with a fault-injecting proxy in front of it for the refusals.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest

from portside.storage import DriverError, PathNotFound, StorageDriver, factory
from tests.contract.faults import FaultProxy
from tests.object_storage import create_bucket, s3_parameters


def _refuse_object_deletes(method: str, path: str) -> tuple[int, str] | None:
    return (403, "AccessDenied") if method == "DELETE" and "uploadId=" not in path else None


async def _driver(endpoint: str, bucket: str) -> StorageDriver:
    driver = factory.create("s3", s3_parameters(endpoint, bucket, chunksize=5 * 1024 * 1024))
    await driver.connect()
    return driver


async def test_a_refused_delete_is_an_error_and_the_object_stays(s3_endpoint: str) -> None:
    bucket = create_bucket(s3_endpoint)
    direct = await _driver(s3_endpoint, bucket)
    with FaultProxy(s3_endpoint, _refuse_object_deletes) as proxy:
        refused = await _driver(proxy.url, bucket)
        try:
            await direct.put_content("/blobs/a/data", b"still here")
            with pytest.raises(DriverError) as raised:
                await refused.delete("/blobs/a/data")
            assert "AccessDenied" in str(raised.value)
            assert "s3" in str(raised.value)
            assert proxy.refused
        finally:
            await refused.close()
    assert await direct.get_content("/blobs/a/data") == b"still here"
    await direct.delete("/blobs/a/data")
    with pytest.raises(PathNotFound):
        await direct.get_content("/blobs/a/data")
    await direct.close()


async def test_a_refused_abort_of_an_upload_is_an_error(s3_endpoint: str) -> None:
    bucket = create_bucket(s3_endpoint)

    def refuse_aborts(method: str, path: str) -> tuple[int, str] | None:
        return (403, "AccessDenied") if method == "DELETE" and "uploadId=" in path else None

    with FaultProxy(s3_endpoint, refuse_aborts) as proxy:
        driver = await _driver(proxy.url, bucket)
        try:
            writer = await driver.writer("/uploads/u/data")
            await writer.write(b"x" * (5 * 1024 * 1024 + 1))
            await writer.close()  # one part uploaded: a multipart upload is in progress
            with pytest.raises(DriverError):
                await driver.delete("/uploads/u")
            assert "/uploads/u" in await driver.list("/uploads")
        finally:
            await driver.close()


@pytest.fixture
async def many_uploads(s3_endpoint: str) -> AsyncIterator[tuple[StorageDriver, set[str]]]:
    """More multipart uploads in progress than S3 lists in one answer, one per upload directory, seen through
    a proxy that pages listings as S3 does."""
    bucket = create_bucket(s3_endpoint)
    direct = await _driver(s3_endpoint, bucket)
    client = direct.inner.client  # type: ignore[attr-defined]
    ids = {f"u{i:04d}" for i in range(1005)}
    limit = asyncio.Semaphore(16)

    async def start(upload: str) -> None:
        async with limit:
            await client.create_multipart_upload(Bucket=bucket, Key=f"uploads/{upload}/data")

    await asyncio.gather(*(start(upload) for upload in ids))
    await direct.close()
    with FaultProxy(s3_endpoint, upload_page=1000) as proxy:
        driver = await _driver(proxy.url, bucket)
        yield driver, ids
        await driver.close()


async def test_listing_sees_every_upload_in_progress(many_uploads: tuple[StorageDriver, set[str]]) -> None:
    driver, ids = many_uploads
    listed = await driver.list("/uploads")
    assert {path.rsplit("/", 1)[-1] for path in listed} == ids


async def test_deleting_a_directory_aborts_every_upload_below_it(many_uploads: tuple[StorageDriver, set[str]]) -> None:
    driver, _ = many_uploads
    await driver.delete("/uploads")
    with pytest.raises(PathNotFound):
        await driver.list("/uploads")
