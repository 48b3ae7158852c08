"""The driver factory: drivers register themselves with their parameter model; every driver it makes checks
paths in one place (storage/checked.py)."""

from __future__ import annotations

import pytest

from portside.config import ConfigError, load_config
from portside.storage import InvalidPath, factory
from portside.storage.checked import CheckedDriver
from portside.storage.drivers.inmemory import InMemoryDriver, InMemoryParameters


def test_a_name_cannot_be_registered_twice() -> None:
    with pytest.raises(ValueError, match="already registered"):
        factory.register("inmemory", InMemoryDriver, InMemoryParameters)


def test_the_built_in_drivers_are_registered_with_their_models() -> None:
    assert factory.names() == ["azure", "filesystem", "gcs", "inmemory", "s3"]
    assert "bucket" in factory.parameters_model("s3").model_fields
    with pytest.raises(ValueError, match="unknown storage driver 'tape'"):
        factory.parameters_model("tape")


def test_configuration_takes_a_driver_s_keys_and_defaults_from_its_model() -> None:
    config = load_config(None, {"REGISTRY_STORAGE_S3_BUCKET": "b", "REGISTRY_STORAGE_S3_CHUNKSIZE": "6291456"})
    assert config.storage.driver == "s3"
    assert config.storage.parameters["chunksize"] == 6291456
    assert config.storage.parameters["multipartcopychunksize"] == 32 * 1024 * 1024
    with pytest.raises(ConfigError, match="greater than or equal to 5242880"):
        load_config(None, {"REGISTRY_STORAGE_S3_BUCKET": "b", "REGISTRY_STORAGE_S3_CHUNKSIZE": "1024"})


async def test_every_made_driver_refuses_paths_that_could_leave_its_root() -> None:
    driver = factory.create("inmemory", {})
    assert isinstance(driver, CheckedDriver)
    for path in ("relative", "/a/../b", "/a/./b", "/a//b", "/a/b/", "/a\nb", "/a/%2e%2e"):
        with pytest.raises(InvalidPath):
            await driver.put_content(path, b"x")
        with pytest.raises(InvalidPath):
            await driver.stat(path)
        with pytest.raises(InvalidPath):
            driver.local_path(path)
    with pytest.raises(InvalidPath):
        await driver.move("/ok", "/../escape")
