"""Azure specifics beyond the driver contract: uploads as uncommitted blocks resumed by other instances,
listed while in progress, discarded on delete; SAS redirect URLs."""

from __future__ import annotations

import os
from collections.abc import AsyncIterator

import httpx
import pytest

from portside.storage import PathNotFound
from portside.storage.drivers.azure import AzureDriver, AzureParameters
from tests.object_storage import azure_parameters

MiB = 1024 * 1024


@pytest.fixture
async def instances(azurite_url: str) -> AsyncIterator[list[AzureDriver]]:
    parameters = azure_parameters(azurite_url, chunksize=MiB)
    drivers = [AzureDriver(AzureParameters.model_validate(parameters)) for _ in range(3)]
    for d in drivers:
        await d.connect()
    yield drivers
    for d in drivers:
        await d.close()


async def test_upload_resumed_by_other_instances(instances: list[AzureDriver]) -> None:
    data = os.urandom(3 * MiB + 4321)
    pieces = [data[:700_000], data[700_000 : 2 * MiB + 5], data[2 * MiB + 5 :]]
    offset = 0
    for i, piece in enumerate(pieces):
        writer = await instances[i].writer("/uploads/u1/data", append=True)
        assert writer.size == offset
        await writer.write(piece)
        offset += len(piece)
        if i < 2:
            await writer.close()
    await writer.commit()
    assert await instances[0].get_content("/uploads/u1/data") == data


async def test_in_progress_uploads_are_listed_and_discarded(instances: list[AzureDriver]) -> None:
    driver = instances[0]
    writer = await driver.writer("/uploads/u2/data")
    await writer.write(os.urandom(MiB + 10))
    await writer.close()
    assert "/uploads/u2" in await driver.list("/uploads")
    with pytest.raises(PathNotFound):
        await driver.get_content("/uploads/u2/data")
    await driver.delete("/uploads/u2")
    with pytest.raises(PathNotFound):
        await driver.list("/uploads/u2")
    assert (await driver.writer("/uploads/u2/data", append=True)).size == 0


async def test_redirect_urls_carry_a_sas(instances: list[AzureDriver]) -> None:
    driver = instances[1]
    await driver.put_content("/blob", b"shared access")
    url = await driver.redirect_url("/blob")
    assert url is not None
    assert "sig=" in url
    async with httpx.AsyncClient() as client:
        assert (await client.get(url)).content == b"shared access"
