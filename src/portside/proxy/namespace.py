"""The cache's namespace: each repository name routed to its upstream by prefix (or to every name, with one
upstream and no prefix); names no upstream takes are local repositories when `proxy.local` allows them, and
read-only otherwise."""

from __future__ import annotations

import hashlib
import tempfile
import time
from collections import OrderedDict
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from portside.client import RegistryClient, Timeouts
from portside.digest import Digest
from portside.metadata.records import utcnow
from portside.metrics import Metrics
from portside.proxy.flights import Flights
from portside.proxy.readonly import ReadOnlyRepository
from portside.proxy.repository import ProxyRepository
from portside.registry.events import EventSink
from portside.registry.interfaces import Page, Repository
from portside.registry.namespace import LocalNamespace
from portside.registry.options import RegistryOptions

DOCKER_HUB_HOSTS = ("registry-1.docker.io", "index.docker.io", "registry.hub.docker.com")


@dataclass
class Upstream:
    prefix: str
    client: RegistryClient
    ttl: float
    failing_since: float | None = None
    """When (time.monotonic()) this process last found the upstream failing, with no answer since: what is
    served from the cache meanwhile, blobs and manifests by digest too, carries the stale Warning."""

    def answered(self) -> None:
        self.failing_since = None

    def failed(self) -> None:
        if self.failing_since is None:
            self.failing_since = time.monotonic()

    @property
    def failing(self) -> bool:
        return self.failing_since is not None

    @property
    def is_docker_hub(self) -> bool:
        return any(host in self.client.url for host in DOCKER_HUB_HOSTS)

    def remote_name(self, name: str) -> str | None:
        """The upstream's name for local `name`, or None when this upstream does not take it."""
        if self.prefix:
            if not name.startswith(self.prefix + "/"):
                return None
            name = name[len(self.prefix) + 1 :]
        if self.is_docker_hub and "/" not in name:
            name = f"library/{name}"  # Docker Hub's official images, as `docker pull alpine` names them
        return name


class Keeper:
    """Moves a cached item's `keep_until` forward when it is served, at most once per twentieth of the TTL
    per item and process, so a busy cache does not write on every pull."""

    def __init__(self, namespace: LocalNamespace, capacity: int = 100_000) -> None:
        self._registry = namespace.store.registry
        self._kept: OrderedDict[tuple[str, str, bool], float] = OrderedDict()
        self._capacity = capacity

    def until(self, ttl: float) -> datetime:
        return utcnow() + timedelta(seconds=ttl)

    async def keep(self, name: str, digest: Digest, manifest: bool, ttl: float) -> None:
        key = (name, str(digest), manifest)
        now = time.monotonic()
        last = self._kept.get(key)
        if last is not None and now - last < max(1.0, ttl / 20):
            return
        await self._registry.cache_until(name, str(digest), self.until(ttl), manifest)
        self._kept[key] = now
        self._kept.move_to_end(key)
        while len(self._kept) > self._capacity:
            self._kept.popitem(last=False)


def default_spool(namespace: LocalNamespace) -> Path:
    """A spool directory on local disk that every worker of this store on this host shares."""
    origin = namespace.driver.local_path("/docker") or repr(namespace.store.db.engine.url)
    return Path(tempfile.gettempdir()) / f"portside-spool-{hashlib.sha256(origin.encode()).hexdigest()[:16]}"


class ProxyNamespace:
    def __init__(
        self,
        local: LocalNamespace,
        upstreams: list[Upstream],
        allow_local: bool = False,
        spool: Path | None = None,
        metrics: Metrics | None = None,
    ) -> None:
        self.local = local
        self.upstreams = upstreams
        self.allow_local = allow_local
        self.metrics = metrics or Metrics()
        self.flights = Flights(spool or default_spool(local), self.metrics.proxy_join)
        self.keeper = Keeper(local)

    @property
    def options(self) -> RegistryOptions:
        return self.local.options

    def _upstream(self, name: str) -> tuple[Upstream, str] | None:
        for upstream in self.upstreams:
            remote = upstream.remote_name(name)
            if remote is not None:
                return upstream, remote
        return None

    def is_cache(self, name: str) -> bool:
        return self._upstream(name) is not None

    def repository(self, name: str, events: EventSink | None = None) -> Repository:
        local = self.local.repository(name, events)
        routed = self._upstream(name)
        if routed is not None:
            upstream, remote = routed
            return ProxyRepository(self, upstream, local, upstream.client.repository(remote))
        if self.allow_local:
            return local
        return ReadOnlyRepository(local)

    def check_name(self, name: str) -> None:
        self.local.check_name(name)

    async def catalog(self, last: str | None = None, limit: int | None = None) -> Page:
        return await self.local.catalog(last, limit)

    async def repositories_with_blob(self, digest: Digest, limit: int = 100) -> list[str]:
        return await self.local.repositories_with_blob(digest, limit)

    async def expire(self, batch: int = 500) -> int:
        """Delete cached manifests no pull kept past now; garbage collection then takes what they held."""
        removed = 0
        while expired := await self.local.store.registry.expired_cache(utcnow(), batch):
            for name, digest in expired:
                removed += await self.local.store.registry.delete_manifest(name, digest)
            if len(expired) < batch:
                break
        return removed

    async def close(self) -> None:
        await self.flights.close()
        for upstream in self.upstreams:
            await upstream.client.close()
        await self.local.close()


def upstreams_from(remotes: list[Any]) -> list[Upstream]:
    """Upstreams from the `proxy` section's remotes (config.schema.ProxyRemote)."""
    return [
        Upstream(
            prefix=remote.prefix,
            client=RegistryClient(
                remote.url,
                username=remote.username,
                password=remote.password,
                verify_tls=not remote.skipverify,
                timeouts=Timeouts(connect=min(10.0, remote.timeout), read=remote.timeout),
                retries=remote.retries,
            ),
            ttl=remote.ttl,
        )
        for remote in remotes
    ]
