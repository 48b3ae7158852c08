"""Assembling the registry from configuration: storage driver, metadata store, options, namespace (and what
`portside import` reads and writes)."""

from __future__ import annotations

import asyncio
import logging
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from portside.config import Config
from portside.config.schema import split_addr
from portside.manifest.descriptor import Platform
from portside.metadata.engine import migrate as run_migrations
from portside.metadata.engine import open_database
from portside.metadata.gc import Policy
from portside.metadata.imports import ImportStore
from portside.metadata.store import MetadataStore
from portside.metrics import Metrics
from portside.registry import LocalNamespace, Namespace, RegistryOptions
from portside.registry.cache import LINK_TTL_SECONDS, BlobDescriptorCache, NoCache, RedisCache
from portside.storage import factory
from portside.storage import middleware as storage_middleware
from portside.storage.distribution import DistributionTree
from portside.storage.driver import StorageDriver
from portside.storage.instrumented import InstrumentedDriver

log = logging.getLogger("portside.import")


def registry_options(config: Config) -> RegistryOptions:
    rules = config.validation.manifests
    return RegistryOptions(
        delete_enabled=config.storage.delete.enabled,
        validation_enabled=config.validation.active,
        url_allow=tuple(re.compile(p) for p in rules.urls.allow),
        url_deny=tuple(re.compile(p) for p in rules.urls.deny),
        index_platforms=rules.indexes.platforms,
        index_platform_list=tuple(Platform(p.architecture, p.os) for p in rules.indexes.platformlist),
        catalog_max_entries=config.catalog.maxentries,
    )


def gc_policy(config: Config) -> Policy:
    gc = config.gc
    return Policy(review_after=gc.reviewafter, untagged=gc.manifests.untagged, referrers=gc.manifests.referrers)


def open_store(config: Config, metrics: Metrics | None = None) -> MetadataStore:
    database = config.database
    db = open_database(
        config.database_dsn(),
        busy_timeout_ms=int(database.busytimeout * 1000),
        observe=metrics.query if metrics is not None and metrics.enabled else None,
        pool_size=database.pool.maxidle,
        max_overflow=database.pool.maxopen - database.pool.maxidle,
        pool_recycle=int(database.pool.maxlifetime),
        connect_timeout=database.connecttimeout,
    )
    return MetadataStore(db, gc_policy(config), online=config.gc.online)


async def prepare_database(config: Config) -> None:
    """Create or upgrade the metadata schema, once, before workers start."""
    store = open_store(config)
    try:
        await run_migrations(store.db)
    finally:
        await store.close()


async def open_namespace(config: Config, *, migrate: bool = False, metrics: Metrics | None = None) -> LocalNamespace:
    driver = factory.create(config.storage.driver, dict(config.storage.parameters))
    for middleware in config.middleware.storage:
        driver = storage_middleware.wrap(driver, middleware.name, middleware.options)
    await driver.connect()
    if metrics is not None and metrics.enabled:
        driver = InstrumentedDriver(driver, metrics.storage)
    store = open_store(config, metrics)
    if migrate:
        await run_migrations(store.db)
    return LocalNamespace(driver, store, registry_options(config), cache=open_cache(config))


def serving_namespace(config: Config, local: LocalNamespace, metrics: Metrics | None = None) -> Namespace:
    """What the HTTP layer serves: the local namespace, or a pull-through cache over it (`proxy:`)."""
    upstreams = config.proxy.upstreams
    if not upstreams:
        return local
    from portside.proxy.namespace import ProxyNamespace, upstreams_from

    spool = Path(config.proxy.spooldirectory) if config.proxy.spooldirectory else None
    return ProxyNamespace(local, upstreams_from(upstreams), config.proxy.local, spool, metrics)


def open_cache(config: Config) -> BlobDescriptorCache:
    if config.storage.cache.blobdescriptor == "redis":
        # An answer cached for longer than the review delay could outlive a link collection decided later.
        ttl = min(LINK_TTL_SECONDS, max(1.0, config.gc.reviewafter / 2))
        return RedisCache(redis_client(config), ttl=ttl)
    return NoCache()


def redis_client(config: Config) -> Any:
    import redis.asyncio

    settings = config.redis
    host, port = split_addr(settings.addr)
    return redis.asyncio.Redis(
        host=host or "127.0.0.1",
        port=port,
        db=settings.db,
        username=settings.username or None,
        password=settings.password or None,
        ssl=settings.tls.enabled,
        socket_connect_timeout=settings.dialtimeout,
        socket_timeout=max(settings.readtimeout, settings.writetimeout),
        max_connections=settings.pool.maxactive,
        health_check_interval=30,
    )


# ---------------------------------------------------------------------------------------------- importing


@dataclass
class Opened:
    """A configuration's storage driver and import store, opened for an import."""

    driver: StorageDriver
    store: ImportStore
    options: RegistryOptions

    async def close(self) -> None:
        await self.store.db.dispose()
        await self.driver.close()


async def open_for_import(config: Config) -> Opened:
    """The configured storage (without middleware: only its bytes are read) and metadata store, its schema
    brought up to date."""
    from portside.metadata.engine import migrate

    driver = factory.create(config.storage.driver, dict(config.storage.parameters))
    await driver.connect()
    database = open_store(config).db
    try:
        await migrate(database)
    except BaseException:
        await database.dispose()
        await driver.close()
        raise
    return Opened(driver, ImportStore(database), registry_options(config))


async def _needs_import(config: Config) -> bool:
    """The metadata store is asked first: once it knows a repository, storage is not even opened."""
    database = open_store(config).db
    try:
        if await ImportStore(database).any_repository():
            return False
    finally:
        await database.dispose()
    driver = factory.create(config.storage.driver, dict(config.storage.parameters))
    await driver.connect()
    try:
        return await DistributionTree(driver).present()
    finally:
        await driver.close()


def warn_if_not_imported(config: Config) -> None:
    """At start-up: storage holding a distribution tree while the metadata store knows no repository is an
    existing registry's store that was never imported; say how to adopt it. Never stops the start."""
    try:
        needed = asyncio.run(_needs_import(config))
    except Exception:
        log.debug("could not look for a distribution tree to import", exc_info=True)
        return
    if needed:
        log.warning(
            "the storage holds a Docker Distribution repositories tree, but the metadata store knows no "
            "repository: run `portside import` to adopt its repositories, manifests and tags "
            "(docs/operations.md, Migrating from Docker Distribution)"
        )
