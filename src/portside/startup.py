"""Checks before any worker starts, run by `portside serve` in its preparation process.

Each looks for one thing that would otherwise fail later, request by request (a directory that cannot be
written, storage without credentials, an htpasswd file nobody can log in with), and says what is wrong in one
line naming the key and the path, so the start fails at once instead of serving errors.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os

from portside.auth.htpasswd import HtpasswdError, parse_htpasswd
from portside.config import Config
from portside.config.describe import database_location, sqlite_path, storage_location
from portside.service import open_store
from portside.storage import factory, paths
from portside.storage.content import ContentStore
from portside.storage.driver import PathNotFound

log = logging.getLogger("portside")
PROBE_SECONDS = 30.0


class StartupError(Exception):
    """What keeps the registry from starting, in one line."""


def _directory(path: str, key: str) -> None:
    try:
        os.makedirs(path, exist_ok=True)
    except OSError as exc:
        raise StartupError(f"{key}: cannot create {path}: {exc.strerror}") from None


def check_local_paths(config: Config) -> None:
    """The filesystem driver's root and a SQLite database's directory exist (made if need be) and can be
    written: SQLite creates its lock, WAL and shared-memory files beside the database."""
    if config.storage.driver == "filesystem":
        _directory(storage_location(config), "storage.filesystem.rootdirectory")
    path = sqlite_path(config)
    if path is None:
        return
    key = "database.dsn" if config.database.dsn else "the metadata database (beside the storage root by default)"
    _directory(os.path.dirname(path) or ".", key)
    for target, flags in ((f"{path}.writelock", os.O_RDWR | os.O_CREAT), (path, os.O_RDWR)):
        if target == path and not os.path.exists(path):
            continue
        try:
            os.close(os.open(target, flags, 0o644))
        except OSError as exc:
            raise StartupError(f"{key}: cannot write {target}: {exc.strerror}") from None


async def probe_storage(config: Config, seconds: float = PROBE_SECONDS) -> None:
    """A small write, read back and delete under the storage root, through the driver the workers use: wrong
    credentials, a missing bucket or a read-only directory show here with the driver's reason. In read-only
    mode (`storage.maintenance.readonly`) storage is only read: a listing of the root."""
    where = f"storage.{config.storage.driver} ({storage_location(config)})"
    read_only = config.storage.maintenance.readonly.enabled
    driver = factory.create(config.storage.driver, dict(config.storage.parameters))
    try:
        async with asyncio.timeout(seconds):
            await driver.connect()
            if read_only:
                with contextlib.suppress(PathNotFound):
                    await driver.list(paths.ROOT)
            else:
                await ContentStore(driver).probe(f"start-{os.getpid()}")
    except TimeoutError:
        raise StartupError(
            f"{where}: no answer to a small {'read' if read_only else 'write'} within {seconds:.0f} s"
        ) from None
    except Exception as exc:
        reason = " ".join(str(exc).split()) or type(exc).__name__
        raise StartupError(f"{where} cannot be {'read' if read_only else 'written'}: {reason}") from None
    finally:
        await driver.close()


def warn_if_metadata_is_local(config: Config) -> None:
    """Object storage with the default SQLite file: the records of what the bucket holds are on this disk."""
    path = sqlite_path(config)
    if path is not None and not config.database.dsn and config.storage.driver not in ("filesystem", "inmemory"):
        log.warning(
            "metadata is in SQLite on local disk at %s while blobs are in %s: losing this disk loses the "
            "records of the bucket, and other instances cannot share them; set database.dsn (PostgreSQL)",
            path,
            storage_location(config),
        )


async def _records_without_bytes(config: Config) -> bool:
    """Whether the metadata store records blobs while storage holds none."""
    store = open_store(config)
    try:
        if not await store.registry.any_blob():
            return False
    finally:
        await store.close()
    driver = factory.create(config.storage.driver, dict(config.storage.parameters))
    await driver.connect()
    try:
        async for _ in ContentStore(driver).blobs():
            return False
        return True
    finally:
        await driver.close()


def check_blobs_present(config: Config) -> None:
    """At start-up, a store that records blobs over storage that holds none (a database restored without its
    storage, a changed root) is logged as an error naming both. Serving goes on: a push stores such a blob
    again; the others answer 404 until the storage is back."""
    try:
        missing = asyncio.run(_records_without_bytes(config))
    except Exception:
        log.debug("could not compare the metadata store with storage", exc_info=True)
        return
    if missing:
        log.error(
            "the metadata store (%s) records blobs, but the storage (%s) holds none: was the database restored "
            "without its storage, or the storage root changed? Pulls of those blobs fail until the storage is "
            "back; pushes store them again",
            database_location(config),
            storage_location(config),
        )


def check_htpasswd(config: Config) -> None:
    """An htpasswd file with no usable entry would start a registry nobody can log in to."""
    files = []
    if config.auth is not None and config.auth.htpasswd is not None:
        files.append(("auth.htpasswd.path", config.auth.htpasswd.path))
    if config.tokenserver is not None:
        files.append(("tokenserver.htpasswd", config.tokenserver.htpasswd))
    for key, path in files:
        try:
            users = parse_htpasswd(path)
        except HtpasswdError as exc:
            raise StartupError(f"{key}: {exc}") from None
        if not users:
            raise StartupError(
                f"{key} {path} has no valid user:bcrypt-hash entry, so nobody could log in "
                f"(add one with `htpasswd -Bb {path} USER PASSWORD`)"
            )
