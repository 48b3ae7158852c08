"""Several Portside instances behind one name: shared PostgreSQL, S3-compatible storage and Redis, nothing
per instance. What one instance does, the others see at once."""

from __future__ import annotations

import asyncio
import hashlib
import os
import random
import uuid
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from sqlalchemy.engine import make_url

from tests.conftest import Registry, deep_merge, default_config, free_port
from tests.helpers import OCI_MANIFEST, push_image, sha256, unique_repo
from tests.metadata.conftest import _admin, postgres_admin_dsn
from tests.object_storage import create_bucket, s3_parameters

MiB = 1024 * 1024


@pytest.fixture(scope="module")
def trio(tmp_path_factory: pytest.TempPathFactory, s3_endpoint: str) -> Iterator[list[Registry]]:
    """Three instances for the whole module (each test uses repositories of its own)."""
    database = f"portside_trio_{uuid.uuid4().hex[:10]}"
    asyncio.run(_admin(f'CREATE DATABASE "{database}"'))
    redis_url = make_url(os.environ.get("PORTSIDE_TEST_REDIS", "redis://127.0.0.1:6379/0"))
    shared: dict[str, Any] = {
        "storage": {
            "filesystem": None,
            "s3": s3_parameters(s3_endpoint, create_bucket(s3_endpoint), chunksize=5 * MiB),
            "delete": {"enabled": True},
            "cache": {"blobdescriptor": "redis"},
        },
        "database": {"dsn": make_url(postgres_admin_dsn()).set(database=database).render_as_string(False)},
        "redis": {"addr": f"{redis_url.host}:{redis_url.port or 6379}", "db": random.randint(1, 15)},
    }
    try:
        instances = []
        for _ in range(3):
            workdir = tmp_path_factory.mktemp("trio")
            config = deep_merge(default_config(workdir, free_port()), shared)
            instance = Registry(workdir=workdir, config=config, workers=1)
            instances.append(instance)
            instance.start()
        yield instances
        for instance in instances:
            instance.stop()
    finally:
        asyncio.run(_admin(f'DROP DATABASE IF EXISTS "{database}" WITH (FORCE)'))


def test_an_image_pushed_through_one_instance_is_pulled_through_the_others(trio: list[Registry]) -> None:
    a, b, c = trio
    repo = unique_repo("trio")
    with httpx.Client(base_url=a.url, timeout=60) as client:
        digest, body = push_image(client, repo, tag="v1", layers=2)
    manifest = httpx.get(f"{b.url}/v2/{repo}/manifests/v1", headers={"Accept": OCI_MANIFEST}).json()
    for other in (b, c):
        with httpx.Client(base_url=other.url, timeout=60, follow_redirects=True) as client:
            assert client.get(f"/v2/{repo}/manifests/{digest}", headers={"Accept": OCI_MANIFEST}).content == body
            for layer in manifest["layers"]:
                response = client.get(f"/v2/{repo}/blobs/{layer['digest']}")
                assert response.history[0].status_code == 307, "object storage redirects blob reads"
                assert sha256(response.content) == layer["digest"]


def test_a_chunked_upload_moves_from_instance_to_instance(trio: list[Registry]) -> None:
    repo = unique_repo("trio")
    data = os.urandom(15 * MiB + 1234)
    chunks = [data[: 6 * MiB], data[6 * MiB : 12 * MiB], data[12 * MiB :]]
    with httpx.Client(timeout=120) as client:
        location = client.post(f"{trio[0].url}/v2/{repo}/blobs/uploads/").headers["Location"]
        path = httpx.URL(location).raw_path.decode()
        offset = 0
        for i, chunk in enumerate(chunks):
            response = client.patch(
                trio[(i + 1) % 3].url + path,
                content=chunk,
                headers={"Content-Range": f"{offset}-{offset + len(chunk) - 1}"},
            )
            assert response.status_code == 202, response.text
            offset += len(chunk)
            assert response.headers["Range"] == f"0-{offset - 1}"
            path = httpx.URL(response.headers["Location"]).raw_path.decode()
        status = client.get(trio[2].url + path)
        assert status.headers["Range"] == f"0-{len(data) - 1}"
        digest = "sha256:" + hashlib.sha256(data).hexdigest()
        response = client.put(trio[0].url + path, params={"digest": digest})
        assert response.status_code == 201, response.text
        pulled = client.get(f"{trio[2].url}/v2/{repo}/blobs/{digest}", follow_redirects=True)
        assert pulled.content == data
        wrong = client.post(f"{trio[1].url}/v2/{repo}/blobs/uploads/").headers["Location"]
        wrong_path = httpx.URL(wrong).raw_path.decode()
        assert client.patch(trio[2].url + wrong_path, content=b"abc").status_code == 202
        refused = client.put(trio[0].url + wrong_path, params={"digest": digest})
        assert refused.status_code == 400, "a digest checked by reading the bytes back still refuses"
        assert client.get(trio[1].url + wrong_path).status_code == 404


def test_a_tag_moved_on_one_instance_is_seen_on_the_others_at_once(trio: list[Registry]) -> None:
    repo = unique_repo("trio")
    with httpx.Client(timeout=60) as client:
        first, _ = push_image(httpx.Client(base_url=trio[0].url, timeout=60), repo, tag="latest")
        for instance in trio:
            response = client.get(f"{instance.url}/v2/{repo}/manifests/latest", headers={"Accept": OCI_MANIFEST})
            assert response.headers["Docker-Content-Digest"] == first
        second, _ = push_image(httpx.Client(base_url=trio[1].url, timeout=60), repo, tag="latest")
        for instance in trio:
            response = client.get(f"{instance.url}/v2/{repo}/manifests/latest", headers={"Accept": OCI_MANIFEST})
            assert response.headers["Docker-Content-Digest"] == second


def _cache_entries(instance: Registry, repo: str, digest: str) -> list[str]:
    """Keys in the instances' Redis database that speak of `digest` in `repo`."""
    import redis

    addr, db = instance.config["redis"]["addr"], instance.config["redis"]["db"]
    host, port = addr.rsplit(":", 1)
    with redis.Redis(host=host, port=int(port), db=db) as r:
        return [k.decode() for k in r.scan_iter(count=1000) if repo.encode() in k and digest.encode() in k]


def test_a_blob_deleted_on_one_instance_is_gone_on_the_others(trio: list[Registry]) -> None:
    """The Redis blob descriptor cache is shared: reads through every instance leave the blob's link in it,
    and a delete anywhere invalidates it everywhere."""
    repo = unique_repo("trio")
    data = os.urandom(1000)
    digest = sha256(data)
    with httpx.Client(timeout=60) as client:
        assert (
            client.post(f"{trio[0].url}/v2/{repo}/blobs/uploads/", params={"digest": digest}, content=data).status_code
            == 201
        )
        for instance in trio:
            assert client.head(f"{instance.url}/v2/{repo}/blobs/{digest}").status_code == 307
        assert _cache_entries(trio[0], repo, digest), "the link was never cached in Redis"
        assert client.delete(f"{trio[1].url}/v2/{repo}/blobs/{digest}").status_code == 202
        assert _cache_entries(trio[0], repo, digest) == [], "the delete left the cached link in Redis"
        for instance in trio:
            assert client.head(f"{instance.url}/v2/{repo}/blobs/{digest}").status_code == 404


@pytest.mark.clients
@pytest.mark.slow
def test_real_clients_through_one_instance_of_the_trio(trio: list[Registry]) -> None:
    from tests.clients.test_smoke import run_smoke

    result = run_smoke(trio[1].host)
    failures = [line for line in result.stdout.splitlines() if line.startswith(("FAIL", "SKIP"))]
    assert result.returncode == 0, "\n".join([*failures, result.stdout[-3000:], trio[1].log_tail()])
    assert failures == []
