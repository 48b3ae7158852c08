"""Garbage collection against the library, on the metadata stores and drivers it must work on: SQLite with the
filesystem, PostgreSQL with S3 (moto). Content is pushed through the library as the HTTP layer pushes it, and
the collector's passes are run directly, so each rule is checked without waiting for a background job."""

from __future__ import annotations

import json
import os
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy.engine import make_url

from portside.config import Config
from portside.digest import Digest
from portside.jobs.gc import collector_for
from portside.manifest.schema import Manifest
from portside.metadata.tables import gc_blob_reviews, gc_link_reviews, gc_manifest_reviews, gc_repository_reviews
from portside.registry import LocalNamespace
from portside.registry.gc import Collector
from portside.service import open_namespace
from tests.conftest import deep_merge
from tests.metadata.conftest import _admin, postgres_admin_dsn
from tests.object_storage import create_bucket, s3_parameters

OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
OCI_INDEX = "application/vnd.oci.image.index.v1+json"
OCI_CONFIG = "application/vnd.oci.image.config.v1+json"
LAYER = "application/vnd.oci.image.layer.v1.tar+gzip"


@dataclass
class Store:
    """A registry's library over one backend, and how to make more of it with other settings."""

    config: Config
    namespace: LocalNamespace
    collector: Collector

    async def drain(self) -> None:
        """Run collection passes until no review is due."""
        while await self.collector.review_manifests() + await self.collector.review_blobs():
            pass

    def repo(self, name: str) -> Any:
        return self.namespace.repository(name)

    async def blob(self, name: str, data: bytes | None = None) -> Digest:
        data = os.urandom(64) if data is None else data
        return (await self.repo(name).blobs.put(data, Digest.of(data))).digest

    async def image(self, name: str, tag: str | None = None, shared: bytes | None = None, **extra: Any) -> Manifest:
        """Push a config and a layer (and a layer shared with other images), then a manifest referencing them."""
        config = json.dumps({"os": "linux", "nonce": uuid.uuid4().hex}).encode()
        layers = [os.urandom(100)] + ([shared] if shared is not None else [])
        body: dict[str, Any] = {
            "schemaVersion": 2,
            "mediaType": OCI_MANIFEST,
            "config": {"mediaType": OCI_CONFIG, "digest": await self.blob(name, config), "size": len(config)},
            "layers": [{"mediaType": LAYER, "digest": await self.blob(name, b), "size": len(b)} for b in layers],
            **extra,
        }
        return await self.repo(name).manifests.put(json.dumps(body).encode(), OCI_MANIFEST, tag=tag)

    async def index(self, name: str, children: list[Manifest], tag: str | None = None) -> Manifest:
        body = {
            "schemaVersion": 2,
            "mediaType": OCI_INDEX,
            "manifests": [{"mediaType": OCI_MANIFEST, "digest": c.digest, "size": len(c.payload)} for c in children],
        }
        return await self.repo(name).manifests.put(json.dumps(body).encode(), OCI_INDEX, tag=tag)

    async def referrer(self, name: str, subject: Manifest, tag: str | None = None) -> Manifest:
        subject_descriptor = {"mediaType": OCI_MANIFEST, "digest": subject.digest, "size": len(subject.payload)}
        return await self.image(name, tag=tag, subject=subject_descriptor, artifactType="application/vnd.example.sig")

    async def stored(self, digest: str) -> bool:
        """Whether storage holds the blob's bytes."""
        try:
            await self.namespace.content.blob_info(Digest(digest))
        except Exception:
            return False
        return True

    async def linked(self, name: str, digest: str) -> bool:
        return await self.namespace.store.registry.blob_in_repository(name, digest) is not None

    async def has_manifest(self, name: str, digest: str) -> bool:
        return await self.namespace.store.registry.manifest(name, digest) is not None

    async def catalog(self) -> list[str]:
        return (await self.namespace.catalog()).items

    async def age(self, seconds: float) -> None:
        """Make every link and manifest look as if it was made (and last relied on) `seconds` ago, and every
        queued review due: as if that time had passed."""
        from datetime import timedelta

        from sqlalchemy import update

        from portside.metadata.records import utcnow
        from portside.metadata.tables import manifests, repository_blobs

        then = utcnow() - timedelta(seconds=seconds)
        statements = [
            update(repository_blobs).values(created_at=then, touched_at=None),
            update(manifests).values(created_at=then),
            *(update(queue).values(review_after=then) for queue in REVIEW_QUEUES),
        ]

        def work(conn: Any) -> None:
            for statement in statements:
                conn.execute(statement)

        await self.namespace.store.db.write(work)


REVIEW_QUEUES = (gc_blob_reviews, gc_link_reviews, gc_manifest_reviews, gc_repository_reviews)
BACKENDS = ["sqlite-filesystem", "postgresql-s3"]


@pytest.fixture(params=BACKENDS)
async def backend(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[dict[str, Any]]:
    """The storage and database sections of one backend."""
    if request.param == "sqlite-filesystem":
        yield {
            "storage": {"filesystem": {"rootdirectory": str(tmp_path / "data")}},
            "database": {"dsn": f"sqlite:///{tmp_path}/metadata.db"},
        }
        return
    endpoint = request.getfixturevalue("s3_endpoint")
    name = f"portside_gc_{uuid.uuid4().hex[:12]}"
    await _admin(f'CREATE DATABASE "{name}"')
    try:
        dsn = make_url(postgres_admin_dsn()).set(database=name).render_as_string(hide_password=False)
        yield {"storage": {"s3": s3_parameters(endpoint, create_bucket(endpoint))}, "database": {"dsn": dsn}}
    finally:
        await _admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture
async def open_store(backend: dict[str, Any]) -> AsyncIterator[Any]:
    """`await open_store({"gc": {...}})`: the library on this test's backend with these settings."""
    opened: list[Store] = []

    async def make(overrides: dict[str, Any] | None = None) -> Store:
        base = deep_merge(backend, {"storage": {"delete": {"enabled": True}}, "log": {"level": "error"}})
        config = Config.model_validate(deep_merge(base, overrides or {}))
        namespace = await open_namespace(config, migrate=True)
        store = Store(config, namespace, collector_for(config, namespace))
        opened.append(store)
        return store

    yield make
    for store in opened:
        await store.namespace.close()
