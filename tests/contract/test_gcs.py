"""GCS specifics beyond the driver contract: uploads as part objects resumed by other instances, composed
in rounds when there are more than 32 parts, listed while in progress, removed on delete."""

from __future__ import annotations

import os
from collections.abc import AsyncIterator

import pytest

from portside.storage import PathNotFound
from portside.storage.drivers.gcs import GCSDriver, GCSParameters
from tests.object_storage import create_gcs_bucket


@pytest.fixture
async def instances(gcs_endpoint: str) -> AsyncIterator[list[GCSDriver]]:
    bucket = create_gcs_bucket(gcs_endpoint)
    parameters = GCSParameters(bucket=bucket, endpoint=gcs_endpoint, chunksize=256 * 1024)
    drivers = [GCSDriver(parameters) for _ in range(3)]
    for d in drivers:
        await d.connect()
    yield drivers
    for d in drivers:
        await d.close()


async def test_upload_with_many_parts_resumed_by_other_instances(instances: list[GCSDriver]) -> None:
    data = os.urandom(40 * 256 * 1024 + 99)  # 41 parts: composed in two rounds
    cut = [0, 3_000_000, 7_000_000, len(data)]
    for i in range(3):
        writer = await instances[i].writer("/uploads/u1/data", append=True)
        assert writer.size == cut[i]
        await writer.write(data[cut[i] : cut[i + 1]])
        if i < 2:
            await writer.close()
            assert "/uploads/u1" in await instances[0].list("/uploads")
    await writer.commit()
    assert await instances[0].get_content("/uploads/u1/data") == data
    assert await instances[0].list("/uploads/u1") == ["/uploads/u1/data"], "no part objects are left behind"


async def test_unfinished_upload_is_deleted_with_its_parts(instances: list[GCSDriver]) -> None:
    driver = instances[0]
    writer = await driver.writer("/uploads/u2/data")
    await writer.write(os.urandom(600 * 1024))
    await writer.close()
    assert await driver.list("/uploads/u2") == ["/uploads/u2/data"]
    await driver.delete("/uploads/u2")
    with pytest.raises(PathNotFound):
        await driver.list("/uploads/u2")
    assert (await driver.writer("/uploads/u2/data", append=True)).size == 0
