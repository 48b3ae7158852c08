"""Byte storage: the driver interface, the path layout and the drivers."""

from portside.storage.driver import (
    DriverError,
    FileInfo,
    FileReader,
    FileWriter,
    InvalidOffset,
    InvalidPath,
    PathNotFound,
    StorageDriver,
    StorageError,
)

__all__ = [
    "DriverError",
    "FileInfo",
    "FileReader",
    "FileWriter",
    "InvalidOffset",
    "InvalidPath",
    "PathNotFound",
    "StorageDriver",
    "StorageError",
]
