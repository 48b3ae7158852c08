"""Driver factory: a driver name from the `storage:` config section maps to a constructor.

New drivers register themselves here with `register("name", constructor)`; the constructor takes the
driver's parameters from config as keyword arguments.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from portside.storage.driver import StorageDriver
from portside.storage.drivers.filesystem import FilesystemDriver
from portside.storage.drivers.inmemory import InMemoryDriver

DriverFactory = Callable[..., StorageDriver]

_FACTORIES: dict[str, DriverFactory] = {}


def register(name: str, factory: DriverFactory) -> None:
    _FACTORIES[name] = factory


def names() -> list[str]:
    return sorted(_FACTORIES)


def create(name: str, parameters: dict[str, Any]) -> StorageDriver:
    try:
        factory = _FACTORIES[name]
    except KeyError:
        raise ValueError(f"unknown storage driver {name!r} (known: {', '.join(names())})") from None
    return factory(**parameters)


def _s3(**parameters: Any) -> StorageDriver:
    from portside.storage.drivers.s3 import S3Driver

    return S3Driver(**parameters)


def _azure(**parameters: Any) -> StorageDriver:
    from portside.storage.drivers.azure import AzureDriver

    return AzureDriver(**parameters)


def _gcs(**parameters: Any) -> StorageDriver:
    from portside.storage.drivers.gcs import GCSDriver

    return GCSDriver(**parameters)


register("filesystem", FilesystemDriver)
register("gcs", _gcs)
register("azure", _azure)
register("inmemory", InMemoryDriver)
register("s3", _s3)
