"""S3 specifics beyond the driver contract: multipart uploads resumed by other instances, parts of at least
5 MiB except the last, multipart copies, and purging finding orphaned multipart uploads."""

from __future__ import annotations

import os
from collections.abc import AsyncIterator

import pytest

from portside.storage import PathNotFound
from portside.storage.drivers.s3 import S3Driver, S3Parameters
from tests.object_storage import create_bucket, s3_parameters

MiB = 1024 * 1024


@pytest.fixture
async def bucket(s3_endpoint: str) -> str:
    return create_bucket(s3_endpoint)


@pytest.fixture
async def instances(s3_endpoint: str, bucket: str) -> AsyncIterator[list[S3Driver]]:
    """Three drivers on one bucket, as three Portside instances would have."""
    parameters = s3_parameters(s3_endpoint, bucket, chunksize=5 * MiB, multipartcopythresholdsize=6 * MiB)
    drivers = [S3Driver(S3Parameters.model_validate(parameters)) for _ in range(3)]
    for d in drivers:
        await d.connect()
    yield drivers
    for d in drivers:
        await d.close()


async def test_upload_resumed_by_other_instances(instances: list[S3Driver]) -> None:
    data = os.urandom(13 * MiB + 12345)
    pieces = [data[: 3 * MiB], data[3 * MiB : 9 * MiB + 7], data[9 * MiB + 7 :]]
    offset = 0
    for i, piece in enumerate(pieces):
        writer = await instances[i % 3].writer("/uploads/u1/data", append=True)
        assert writer.size == offset
        await writer.write(piece)
        offset += len(piece)
        if i < len(pieces) - 1:
            await writer.close()
    await writer.commit()
    assert await instances[0].get_content("/uploads/u1/data") == data
    key = instances[0].key("/uploads/u1/data")
    head = await instances[0].client.head_object(Bucket=instances[0].bucket, Key=key, PartNumber=1)
    assert head["PartsCount"] == 3
    assert head["ContentLength"] == 5 * MiB, "every part but the last is a full chunk"


async def test_in_progress_uploads_are_listed_and_deleted(instances: list[S3Driver]) -> None:
    driver = instances[0]
    writer = await driver.writer("/uploads/u2/data")
    await writer.write(os.urandom(6 * MiB))
    await writer.close()
    assert "/uploads/u2" in await driver.list("/uploads")
    assert (await driver.stat("/uploads/u2")).is_dir
    found = await driver.client.list_multipart_uploads(Bucket=driver.bucket)
    assert len(found.get("Uploads", [])) == 1
    await driver.delete("/uploads/u2")
    found = await driver.client.list_multipart_uploads(Bucket=driver.bucket)
    assert found.get("Uploads", []) == []
    with pytest.raises(PathNotFound):
        await driver.list("/uploads/u2")


async def test_large_moves_use_a_multipart_copy(s3_endpoint: str, bucket: str) -> None:
    """A move above `multipartcopythresholdsize` is a multipart copy in `multipartcopychunksize` parts (the
    object ends up with the parts and the `<md5>-<parts>` ETag only a multipart upload gives); one at or below
    the threshold is a single copy."""
    driver = S3Driver(
        S3Parameters.model_validate(
            s3_parameters(s3_endpoint, bucket, multipartcopythresholdsize=6 * MiB, multipartcopychunksize=5 * MiB)
        )
    )
    await driver.connect()
    try:
        data = os.urandom(11 * MiB)
        await driver.put_content("/a/big", data)
        await driver.move("/a/big", "/b/big")
        assert await driver.get_content("/b/big") == data
        with pytest.raises(PathNotFound):
            await driver.get_content("/a/big")
        head = await driver.client.head_object(Bucket=bucket, Key=driver.key("/b/big"), PartNumber=1)
        assert head["PartsCount"] == 3, head
        assert head["ContentLength"] == 5 * MiB, "the first part is one copy chunk"
        whole = await driver.client.head_object(Bucket=bucket, Key=driver.key("/b/big"))
        assert whole["ETag"].strip('"').endswith("-3"), whole["ETag"]

        small = os.urandom(6 * MiB)
        await driver.put_content("/a/small", small)
        await driver.move("/a/small", "/b/small")
        assert await driver.get_content("/b/small") == small
        head = await driver.client.head_object(Bucket=bucket, Key=driver.key("/b/small"))
        assert "-" not in head["ETag"], f"a move at the threshold was a multipart copy: {head['ETag']}"
    finally:
        await driver.close()


async def test_redirect_urls_are_presigned(instances: list[S3Driver]) -> None:
    import httpx

    driver = instances[2]
    await driver.put_content("/blob", b"signed bytes")
    url = await driver.redirect_url("/blob")
    assert url is not None
    assert "Signature" in url or "X-Amz-Signature" in url
    async with httpx.AsyncClient() as client:
        assert (await client.get(url)).content == b"signed bytes"
