"""Server-level behaviour: the debug server, configured headers, URL prefix and relative URLs, the inmemory
driver, and health checks."""

from __future__ import annotations

import asyncio
import base64
import hashlib
import json
import os
import socket
import time
import uuid
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa
from sqlalchemy.engine import make_url

from portside.health import check
from portside.metadata.engine import migrate, open_database
from portside.metadata.store import MetadataStore
from portside.registry import LocalNamespace
from portside.storage import StorageError
from portside.storage.drivers.inmemory import InMemoryDriver
from tests.conftest import RegistryFactory
from tests.helpers import push_blob, push_image, unique_repo


def _port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_debug_server_serves_health_apart_from_the_registry(registry_factory: RegistryFactory) -> None:
    debug = f"127.0.0.1:{_port()}"
    reg = registry_factory({"http": {"debug": {"addr": debug}}}, workers=2)
    r = httpx.get(f"http://{debug}/debug/health")
    assert (r.status_code, r.json()) == (200, {})
    assert httpx.get(f"{reg.url}/debug/health").status_code == 404
    assert httpx.get(f"http://{debug}/v2/").status_code == 404


def test_configured_headers_prefix_and_relative_urls(registry_factory: RegistryFactory) -> None:
    reg = registry_factory(
        {
            "http": {
                "prefix": "/mirror/",
                "relativeurls": True,
                "headers": {"X-Content-Type-Options": ["nosniff"], "X-Extra": ["a", "b"]},
            }
        }
    )
    with httpx.Client(base_url=f"{reg.url}/mirror", timeout=30) as c:
        r = c.get("/v2/")
        assert r.status_code == 200
        assert r.headers["X-Content-Type-Options"] == "nosniff"
        assert r.headers.get_list("X-Extra") == ["a", "b"]
        repo = unique_repo()
        r = c.post(f"/v2/{repo}/blobs/uploads/")
        assert r.headers["Location"].startswith(f"/mirror/v2/{repo}/blobs/uploads/")
    assert httpx.get(f"{reg.url}/v2/").status_code == 404


def test_absolute_urls_follow_http_host_and_forwarded_headers(registry_factory: RegistryFactory) -> None:
    reg = registry_factory()
    repo = unique_repo()
    r = httpx.post(
        f"{reg.url}/v2/{repo}/blobs/uploads/",
        headers={"X-Forwarded-Proto": "https", "X-Forwarded-Host": "registry.example"},
    )
    assert r.headers["Location"].startswith(f"https://registry.example/v2/{repo}/blobs/uploads/")
    other = registry_factory({"http": {"host": "https://cdn.example:8443"}})
    r = httpx.post(f"{other.url}/v2/{repo}/blobs/uploads/")
    assert r.headers["Location"].startswith(f"https://cdn.example:8443/v2/{repo}/blobs/uploads/")


def test_unknown_registry_variables_are_ignored_with_a_warning(registry_factory: RegistryFactory) -> None:
    """README: "environment variables that name no key are ignored with a warning": the registry starts and
    serves, its log warns about each such variable by name, and a known one next to them still applies."""
    unknown = ["REGISTRY_NO_SUCH_SECTION", "REGISTRY_HTTP_NO_SUCH_KEY", "REGISTRY_AUTH_FILE"]
    reg = registry_factory(env={name: "ignored" for name in unknown} | {"REGISTRY_HTTP_RELATIVEURLS": "true"})
    r = httpx.post(f"{reg.url}/v2/{unique_repo('env')}/blobs/uploads/", timeout=10)
    assert r.status_code == 202, r.text
    assert r.headers["Location"].startswith("/v2/"), "REGISTRY_HTTP_RELATIVEURLS=true was not applied"
    log = reg.log_path.read_text(errors="replace").splitlines()
    for name in unknown:
        warned = [line for line in log if name in line]
        assert warned, f"no warning names {name}:\n{reg.log_tail()}"
        assert any("warn" in line.lower() or "ignor" in line.lower() for line in warned), warned


def test_inmemory_storage_serves_a_whole_push_and_pull(registry_factory: RegistryFactory) -> None:
    reg = registry_factory({"storage": {"inmemory": {}, "filesystem": None}}, workers=1)
    with httpx.Client(base_url=reg.url, timeout=30) as c:
        repo = unique_repo("mem")
        _, body = push_image(c, repo, tag="v1")
        assert c.get(f"/v2/{repo}/manifests/v1").content == body
        blob = push_blob(c, repo, b"in memory")
        assert c.get(f"/v2/{repo}/blobs/{blob}").content == b"in memory"
        assert c.get(f"/v2/{repo}/blobs/{blob}", headers={"Range": "bytes=3-"}).content == b"memory"
        assert c.get("/v2/_catalog").json()["repositories"] == [repo]


class BrokenDriver(InMemoryDriver):
    async def put_content(self, path: str, content: bytes) -> None:
        raise StorageError("disk on fire")


async def test_health_reports_each_failing_check(tmp_path: Path) -> None:
    store = MetadataStore(open_database("sqlite://"))
    await migrate(store.db)
    assert await check(LocalNamespace(InMemoryDriver(), store)) == {}
    failures = await check(LocalNamespace(BrokenDriver(), store))
    assert failures == {"storagedriver_inmemory": "StorageError: disk on fire"}
    await store.close()
    unopenable = MetadataStore(open_database(f"sqlite:///{tmp_path}"))  # a directory is no database
    assert set(await check(LocalNamespace(InMemoryDriver(), unopenable))) == {"database"}
    await unopenable.close()
    await asyncio.sleep(0.2)  # the driver's connection thread reports its failed open after the await returns


def test_postgresql_metadata_serves_a_whole_push_and_pull(registry_factory: RegistryFactory) -> None:
    """The same registry on PostgreSQL: each run gets a database of its own."""
    import asyncio

    from tests.metadata.conftest import _admin, postgres_admin_dsn

    name = f"portside_it_{uuid.uuid4().hex[:10]}"
    asyncio.run(_admin(f'CREATE DATABASE "{name}"'))
    dsn = make_url(postgres_admin_dsn()).set(database=name).render_as_string(hide_password=False)
    try:
        reg = registry_factory({"database": {"dsn": dsn, "pool": {"maxidle": 2, "maxopen": 4}}}, workers=2)
        with httpx.Client(base_url=reg.url, timeout=30) as c:
            repo = unique_repo("pg")
            digest, body = push_image(c, repo, tag="v1", layers=2)
            assert c.get(f"/v2/{repo}/manifests/v1").content == body
            assert c.get(f"/v2/{repo}/tags/list").json() == {"name": repo, "tags": ["v1"]}
            assert repo in c.get("/v2/_catalog").json()["repositories"]
            assert c.delete(f"/v2/{repo}/manifests/{digest}").status_code == 202
            assert c.get(f"/v2/{repo}/manifests/v1").status_code == 404
        reg.stop()
    finally:
        asyncio.run(_admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))


def test_redirect_middleware_and_redirect_disable(registry_factory: RegistryFactory) -> None:
    middleware = {"storage": [{"name": "redirect", "options": {"baseurl": "https://cdn.example.com/"}}]}
    reg = registry_factory({"middleware": middleware})
    repo = unique_repo("cdn")
    with httpx.Client(base_url=reg.url, timeout=30) as c:
        digest = push_blob(c, repo, b"served by the cdn")
        r = c.get(f"/v2/{repo}/blobs/{digest}")
        assert r.status_code == 307
        encoded = digest.split(":")[1]
        assert r.headers["Location"] == (
            f"https://cdn.example.com/docker/registry/v2/blobs/sha256/{encoded[:2]}/{encoded}/data"
        )
        assert r.headers["Docker-Content-Digest"] == digest
    plain = registry_factory({"middleware": middleware, "storage": {"redirect": {"disable": True}}})
    with httpx.Client(base_url=plain.url, timeout=30) as c:
        digest = push_blob(c, repo, b"served directly")
        assert c.get(f"/v2/{repo}/blobs/{digest}").content == b"served directly"


def test_cloudfront_middleware_redirects_to_signed_urls(registry_factory: RegistryFactory, tmp_path: Path) -> None:
    """`middleware.storage: cloudfront`: blob GETs and HEADs answer 307 to `baseurl` + the blob's path with a
    canned-policy signature (`Expires`, `Signature`, `Key-Pair-Id`) that the key pair's public key verifies,
    valid for `duration`; manifests are still served by the registry."""
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    pem = tmp_path / "cloudfront.pem"
    pem.write_bytes(
        key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    )
    options = {"baseurl": "https://d111111abcdef8.cloudfront.net", "privatekey": str(pem), "keypairid": "APKAPORT"}
    reg = registry_factory(
        {"middleware": {"storage": [{"name": "cloudfront", "options": {**options, "duration": "90s"}}]}}
    )
    repo = unique_repo("cloudfront")
    with httpx.Client(base_url=reg.url, timeout=30) as c:
        digest = push_blob(c, repo, b"served by cloudfront")
        _, body = push_image(c, repo, tag="v1")
        encoded = digest.split(":")[1]
        resource = f"{options['baseurl']}/docker/registry/v2/blobs/sha256/{encoded[:2]}/{encoded}/data"
        for method in ("GET", "HEAD"):
            before = int(time.time())
            r = c.request(method, f"/v2/{repo}/blobs/{digest}")
            assert r.status_code == 307, r.text
            assert r.headers["Docker-Content-Digest"] == digest
            location = urlsplit(r.headers["Location"])
            assert f"{location.scheme}://{location.netloc}{location.path}" == resource
            query = {k: v[0] for k, v in parse_qs(location.query).items()}
            assert set(query) == {"Expires", "Signature", "Key-Pair-Id"}, query
            assert query["Key-Pair-Id"] == "APKAPORT"
            expires = int(query["Expires"])
            assert before + 90 <= expires <= int(time.time()) + 90, f"Expires {expires}: not now + duration (90s)"
            policy = json.dumps(
                {"Statement": [{"Resource": resource, "Condition": {"DateLessThan": {"AWS:EpochTime": expires}}}]},
                separators=(",", ":"),
            ).encode()
            signature = base64.b64decode(query["Signature"].translate(str.maketrans("-_~", "+=/")))
            key.public_key().verify(signature, policy, padding.PKCS1v15(), hashes.SHA1())
        assert c.get(f"/v2/{repo}/manifests/v1").content == body


@pytest.mark.parametrize("backend", ["s3", "azure", "gcs"])
def test_object_storage_serves_a_whole_push_and_pull(
    registry_factory: RegistryFactory, request: pytest.FixtureRequest, backend: str
) -> None:
    """Two workers on object storage: chunks reach either worker, uploads verify, reads redirect or stream."""
    from tests.object_storage import azure_parameters, create_bucket, create_gcs_bucket, s3_parameters

    if backend == "s3":
        endpoint = request.getfixturevalue("s3_endpoint")
        storage: dict[str, object] = {"s3": s3_parameters(endpoint, create_bucket(endpoint), chunksize=5 * 1024 * 1024)}
    elif backend == "azure":
        storage = {"azure": azure_parameters(request.getfixturevalue("azurite_url"), chunksize=1024 * 1024)}
    else:
        endpoint = request.getfixturevalue("gcs_endpoint")
        storage = {"gcs": {"bucket": create_gcs_bucket(endpoint), "endpoint": endpoint, "chunksize": 256 * 1024}}
    reg = registry_factory({"storage": {"filesystem": None, **storage}}, workers=2)
    data = os.urandom(3 * 1024 * 1024 + 77)
    digest = "sha256:" + hashlib.sha256(data).hexdigest()
    repo = unique_repo(backend)
    limits = httpx.Limits(max_keepalive_connections=0)  # a new connection per request: both workers serve
    with httpx.Client(base_url=reg.url, timeout=60, follow_redirects=True, limits=limits) as c:
        location = c.post(f"/v2/{repo}/blobs/uploads/").headers["Location"]
        for start in range(0, len(data), 1024 * 1024):
            chunk = data[start : start + 1024 * 1024]
            r = c.patch(location, content=chunk, headers={"Content-Range": f"{start}-{start + len(chunk) - 1}"})
            assert r.status_code == 202, r.text
            location = r.headers["Location"]
        assert c.put(location, params={"digest": digest}).status_code == 201
        assert c.get(f"/v2/{repo}/blobs/{digest}").content == data
        ranged = c.get(f"/v2/{repo}/blobs/{digest}", headers={"Range": "bytes=1000-1999"})
        assert ranged.content == data[1000:2000]
        _, body = push_image(c, repo, tag="v1", layers=2)
        assert c.get(f"/v2/{repo}/manifests/v1").content == body
        assert c.delete(f"/v2/{repo}/blobs/{digest}").status_code == 202
        assert c.head(f"/v2/{repo}/blobs/{digest}").status_code == 404
