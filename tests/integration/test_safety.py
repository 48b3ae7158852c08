"""Safety under concurrency, crashes and hostile input, against real Portside processes."""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import json
import os
import socket
import sqlite3
import threading
import time
import uuid
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

import httpx
import pytest
from sqlalchemy.engine import make_url

from tests.conftest import Registry, RegistryFactory
from tests.helpers import LAYER, OCI_CONFIG, OCI_MANIFEST, push_blob, push_image, sha256, unique_repo

MiB = 1024 * 1024


def check_consistency(reg: Registry) -> dict[str, int]:
    """Invariants of a stopped registry's store: every recorded blob is on disk with its digest, every
    reference and tag points at something recorded, and SQLite itself is sound."""
    db = sqlite3.connect(reg.root / "portside.db")
    try:
        assert db.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
        assert db.execute("PRAGMA foreign_key_check").fetchall() == []
        blobs = db.execute("SELECT digest, size FROM blobs").fetchall()
        for digest, size in blobs:
            algorithm, encoded = digest.split(":")
            path = reg.root / "docker/registry/v2/blobs" / algorithm / encoded[:2] / encoded / "data"
            data = path.read_bytes()
            assert len(data) == size, digest
            assert hashlib.new(algorithm, data).hexdigest() == encoded, digest
        dangling = db.execute(
            "SELECT r.digest FROM manifest_references r WHERE r.kind = 'blob' "
            "AND NOT EXISTS (SELECT 1 FROM blobs b WHERE b.digest = r.digest)"
        ).fetchall()
        assert dangling == []
        manifests = db.execute("SELECT digest, payload FROM manifests").fetchall()
        for digest, payload in manifests:
            assert sha256(payload) == digest
        return {"blobs": len(blobs), "manifests": len(manifests)}
    finally:
        db.close()


def test_concurrent_pushes_of_the_same_blob_and_tag_all_succeed(registry: Registry) -> None:
    repo = unique_repo("race")
    data = os.urandom(2 * 1024 * 1024)
    digest = sha256(data)

    def monolithic(_: int) -> int:
        with httpx.Client(base_url=registry.url, timeout=60) as c:
            return c.post(f"/v2/{repo}/blobs/uploads/", params={"digest": digest}, content=data).status_code

    def chunked(_: int) -> int:
        with httpx.Client(base_url=registry.url, timeout=60) as c:
            r = c.post(f"/v2/{repo}/blobs/uploads/")
            location = r.headers["Location"]
            half = len(data) // 2
            r = c.patch(location, content=data[:half], headers={"Content-Range": f"0-{half - 1}"})
            assert r.status_code == 202, r.text
            return c.put(r.headers["Location"], params={"digest": digest}, content=data[half:]).status_code

    with ThreadPoolExecutor(8) as pool:
        codes = list(pool.map(monolithic, range(6))) + list(pool.map(chunked, range(6)))
    assert codes == [201] * 12

    with httpx.Client(base_url=registry.url, timeout=60) as c:
        assert c.get(f"/v2/{repo}/blobs/{digest}").content == data
        manifests = [push_image(c, repo, layers=1) for _ in range(6)]

        def tag(i: int) -> int:
            _, body = manifests[i]
            headers = {"Content-Type": OCI_MANIFEST}
            return c.put(f"/v2/{repo}/manifests/shared", content=body, headers=headers).status_code

        with ThreadPoolExecutor(6) as pool:
            assert list(pool.map(tag, range(6))) == [201] * 6
        current = c.get(f"/v2/{repo}/manifests/shared", headers={"Accept": OCI_MANIFEST})
        assert current.status_code == 200
        assert current.headers["Docker-Content-Digest"] in {d for d, _ in manifests}


@dataclass
class CrashSetup:
    """Where a crashed registry keeps its state: the filesystem with SQLite, or S3 (moto) with PostgreSQL."""

    name: str
    overrides: dict[str, Any]

    def check_stopped(self, reg: Registry) -> dict[str, int] | None:
        """The store-level invariants, where the test can read the store directly (SQLite on disk)."""
        return check_consistency(reg) if self.name == "filesystem+sqlite" else None


@pytest.fixture(params=["filesystem+sqlite", "s3+postgresql"])
def crash_setup(request: pytest.FixtureRequest) -> Iterator[CrashSetup]:
    if request.param == "filesystem+sqlite":
        yield CrashSetup(request.param, {})
        return
    from tests.metadata.conftest import _admin, postgres_admin_dsn
    from tests.object_storage import create_bucket, s3_parameters

    endpoint = request.getfixturevalue("s3_endpoint")
    database = f"portside_crash_{uuid.uuid4().hex[:10]}"
    asyncio.run(_admin(f'CREATE DATABASE "{database}"'))
    try:
        dsn = make_url(postgres_admin_dsn()).set(database=database).render_as_string(hide_password=False)
        storage = {"filesystem": None, "s3": s3_parameters(endpoint, create_bucket(endpoint), chunksize=5 * MiB)}
        yield CrashSetup(request.param, {"storage": storage, "database": {"dsn": dsn}})
    finally:
        asyncio.run(_admin(f'DROP DATABASE IF EXISTS "{database}" WITH (FORCE)'))


def _slow_body(data: bytes, sent: list[int], stop_after: int) -> Iterator[bytes]:
    for i in range(0, len(data), 256 * 1024):
        if i >= stop_after:
            time.sleep(30)  # hold the request open until the server dies
        chunk = data[i : i + 256 * 1024]
        sent[0] += len(chunk)
        yield chunk


def test_upload_survives_a_kill_mid_stream_and_resumes(
    crash_setup: CrashSetup, registry_factory: RegistryFactory
) -> None:
    reg = registry_factory(crash_setup.overrides, workers=2)
    repo = unique_repo("crash")
    data = os.urandom(24 * MiB)
    client = httpx.Client(base_url=reg.url, timeout=60)
    location = client.post(f"/v2/{repo}/blobs/uploads/").headers["Location"]
    sent = [0]

    def stream() -> None:
        with contextlib.suppress(httpx.HTTPError):
            httpx.patch(location, content=_slow_body(data, sent, 12 * MiB), timeout=60)

    worker = threading.Thread(target=stream, daemon=True)
    worker.start()
    deadline = time.monotonic() + 30
    while sent[0] < 12 * MiB and time.monotonic() < deadline:
        time.sleep(0.05)
    time.sleep(0.5)
    reg.kill()
    worker.join(5)
    client.close()
    reg.start()
    with httpx.Client(base_url=reg.url, timeout=60, follow_redirects=True) as c:
        status = c.get(location)
        assert status.status_code == 204, status.text
        end = int(status.headers["Range"].split("-")[1])
        stored = end + 1 if end else 0
        assert 0 < stored <= 12 * MiB
        r = c.patch(
            status.headers["Location"],
            content=data[stored:],
            headers={"Content-Range": f"{stored}-{len(data) - 1}"},
        )
        assert r.status_code == 202, r.text
        r = c.put(r.headers["Location"], params={"digest": sha256(data)})
        assert r.status_code == 201, r.text
        assert c.get(f"/v2/{repo}/blobs/{sha256(data)}").content == data
    reg.stop()
    crash_setup.check_stopped(reg)


class Pushers:
    """Clients pushing images in a loop until the server is killed. Only the kill may end one: any other error
    (a refused push, a 500, a timeout) is recorded, before the kill or after it. Every blob and manifest is
    remembered before it is sent, so what the restarted registry serves can be checked against it."""

    def __init__(self, url: str, count: int, label: str) -> None:
        self.url = url
        self.label = label
        self.killing = threading.Event()
        self.pushed = [0] * count
        self.blobs: list[tuple[str, str, bytes]] = []
        self.manifests: list[tuple[str, str, bytes]] = []
        self.acknowledged: list[tuple[str, str]] = []
        self.errors: list[str] = []
        self._lock = threading.Lock()
        self._threads = [threading.Thread(target=self._push, args=(n,), daemon=True) for n in range(count)]

    def _push_image(self, c: httpx.Client, repo: str, tag: str) -> str:
        config = json.dumps({"architecture": "amd64", "os": "linux", "nonce": uuid.uuid4().hex}).encode()
        layers = [os.urandom(1024 + i) for i in range(2)]
        descriptors = []
        for media_type, data in [(OCI_CONFIG, config), *((LAYER, b) for b in layers)]:
            with self._lock:
                self.blobs.append((repo, sha256(data), data))
            descriptors.append({"mediaType": media_type, "digest": push_blob(c, repo, data), "size": len(data)})
        manifest = {"schemaVersion": 2, "mediaType": OCI_MANIFEST, "config": descriptors[0], "layers": descriptors[1:]}
        body = json.dumps(manifest).encode()
        with self._lock:
            self.manifests.append((repo, sha256(body), body))
        r = c.put(f"/v2/{repo}/manifests/{tag}", content=body, headers={"Content-Type": OCI_MANIFEST})
        assert r.status_code == 201, r.text
        return sha256(body)

    def _push(self, n: int) -> None:
        repo = f"crash/p{n}"
        with httpx.Client(base_url=self.url, timeout=30) as c:
            i = 0
            while True:
                try:
                    digest = self._push_image(c, repo, f"{self.label}-t{i}")
                except httpx.TransportError as exc:
                    if not self.killing.is_set():
                        self._error(f"{repo} before the kill: {exc!r}")
                    return
                except Exception as exc:  # a push refused, or answered 500
                    self._error(f"{repo}{' after the kill' if self.killing.is_set() else ''}: {exc!r}")
                    return
                with self._lock:
                    self.acknowledged.append((repo, digest))
                    self.pushed[n] += 1
                i += 1

    def _error(self, message: str) -> None:
        with self._lock:
            self.errors.append(message)

    def start(self, acknowledged_each: int) -> None:
        """Start, and return once every client has had `acknowledged_each` pushes acknowledged."""
        for t in self._threads:
            t.start()
        deadline = time.monotonic() + 60
        while min(self.pushed) < acknowledged_each and not self.errors:
            assert time.monotonic() < deadline, f"pushes never got going: {self.pushed} acknowledged per client"
            time.sleep(0.05)
        assert not self.errors, self.errors

    def kill(self, reg: Registry) -> None:
        self.killing.set()
        reg.kill()
        for t in self._threads:
            t.join(30)
        assert not any(t.is_alive() for t in self._threads), "a client was still pushing after the kill"
        assert not self.errors, self.errors

    def check_served(self, reg: Registry) -> None:
        """Against the restarted registry: whatever it has of what was sent, it serves whole and exact (a
        blob it lists has its bytes, a manifest it has its blobs), and everything acknowledged is there."""
        with httpx.Client(base_url=reg.url, timeout=60) as c:
            present: set[tuple[str, str]] = set()
            for repo, digest, data in self.blobs:
                head = c.head(f"/v2/{repo}/blobs/{digest}")  # 307 to object storage, or 200
                assert head.status_code in (200, 307, 404), (repo, digest, head.status_code)
                if head.status_code != 404:
                    present.add((repo, digest))
                    r = c.get(f"/v2/{repo}/blobs/{digest}", follow_redirects=True)
                    assert r.status_code == 200, (repo, digest, r.status_code)
                    assert r.content == data, f"{repo}@{digest}: recorded, but its bytes are not the blob's"
            for repo, digest, body in self.manifests:
                r = c.get(f"/v2/{repo}/manifests/{digest}", headers={"Accept": OCI_MANIFEST})
                assert r.status_code in (200, 404), (repo, digest, r.text)
                if r.status_code == 200:
                    assert r.content == body
                    manifest = json.loads(body)
                    for d in [manifest["config"], *manifest["layers"]]:
                        assert (repo, d["digest"]) in present, f"{repo}@{digest} refers to a missing blob"
            for repo, digest in self.acknowledged:
                r = c.get(f"/v2/{repo}/manifests/{digest}", headers={"Accept": OCI_MANIFEST})
                assert r.status_code == 200, f"acknowledged {repo}@{digest} is gone: {r.text}"


def test_kill_during_pushes_leaves_a_consistent_store(
    crash_setup: CrashSetup, registry_factory: RegistryFactory
) -> None:
    """Six clients push images until SIGKILL, three times, each time once every client has had pushes
    acknowledged. After each restart every acknowledged push is there, whole, and nothing is recorded whose
    bytes are missing."""
    reg = registry_factory(crash_setup.overrides, workers=2)
    acknowledged: list[tuple[str, str]] = []
    for round_ in range(3):
        pushers = Pushers(reg.url, 6, f"r{round_}")
        pushers.start(acknowledged_each=2)
        pushers.kill(reg)
        acknowledged += pushers.acknowledged
        counts = crash_setup.check_stopped(reg)
        assert counts is None or counts["manifests"] >= len(acknowledged) > 0
        reg.start()
        pushers.check_served(reg)
        with httpx.Client(base_url=reg.url, timeout=30) as c:
            for repo, digest in acknowledged:
                r = c.get(f"/v2/{repo}/manifests/{digest}", headers={"Accept": OCI_MANIFEST})
                assert r.status_code == 200, (repo, digest, r.text)
    reg.stop()


def test_upload_continues_across_instances_sharing_the_store(registry_factory: RegistryFactory) -> None:
    """Each chunk goes to another process: hash state is rebuilt from the stored bytes where it is missing."""
    first = registry_factory(workers=1)
    second = registry_factory(workers=1, replace={**first.config, "http": {"addr": f"127.0.0.1:{_free_port()}"}})
    repo = unique_repo("multi")
    chunks = [os.urandom(1024 * 1024 + i) for i in range(4)]
    data = b"".join(chunks)
    servers = [first, second]
    with httpx.Client(timeout=60) as c:
        location = c.post(f"{first.url}/v2/{repo}/blobs/uploads/").headers["Location"]
        path = httpx.URL(location).raw_path.decode()
        offset = 0
        for i, chunk in enumerate(chunks[:-1]):
            r = c.patch(
                servers[(i + 1) % 2].url + path,
                content=chunk,
                headers={"Content-Range": f"{offset}-{offset + len(chunk) - 1}"},
            )
            assert r.status_code == 202, r.text
            offset += len(chunk)
            path = httpx.URL(r.headers["Location"]).raw_path.decode()
        r = c.put(f"{first.url}{path}", params={"digest": sha256(data)}, content=chunks[-1])
        assert r.status_code == 201, r.text
        assert c.get(f"{second.url}/v2/{repo}/blobs/{sha256(data)}").content == data
        sha512 = "sha512:" + hashlib.sha512(data).hexdigest()
        location = c.post(f"{second.url}/v2/{repo}/blobs/uploads/").headers["Location"]
        path = httpx.URL(location).raw_path.decode()
        assert c.patch(first.url + path, content=data).status_code == 202
        r = c.put(second.url + path, params={"digest": sha512})
        assert r.status_code == 201, r.text
        assert c.get(f"{first.url}/v2/{repo}/blobs/{sha512}").content == data


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_stale_uploads_are_purged(registry_factory: RegistryFactory) -> None:
    purging = {"enabled": True, "age": "3s", "interval": "1s", "dryrun": False}
    reg = registry_factory({"storage": {"maintenance": {"uploadpurging": purging}}}, workers=1)
    repo = unique_repo("purge")
    with httpx.Client(base_url=reg.url, timeout=30) as c:
        idle = c.post(f"/v2/{repo}/blobs/uploads/").headers["Location"]
        assert c.patch(idle, content=b"idle bytes").status_code == 202
        busy = c.post(f"/v2/{repo}/blobs/uploads/").headers["Location"]
        idle_dir = reg.root / "docker/registry/v2/uploads" / idle.rsplit("/", 1)[1]
        assert idle_dir.is_dir()
        deadline = time.monotonic() + 20
        while c.get(idle).status_code != 404:
            assert time.monotonic() < deadline, "idle upload was never purged"
            r = c.patch(busy, content=b"x")
            assert r.status_code == 202, "an active upload must not be purged"
            busy = r.headers["Location"]
            time.sleep(0.5)
        assert not idle_dir.exists()
        assert c.get(busy).status_code == 204


HOSTILE_PATHS = [
    "/v2/../../etc/passwd",
    "/v2/a/../../../tmp/x/blobs/uploads/",
    "/v2/%2e%2e/%2e%2e/etc/blobs/uploads/",
    "/v2/a%2f..%2f..%2fescape/blobs/uploads/",
    "/v2/..%2f..%2fescape/manifests/latest",
    "/v2/a/blobs/sha256:..%2f..%2f..%2fetc%2fpasswd",
    "/v2/a/blobs/uploads/..%2f..%2f..%2f..%2fetc",
    "/v2/a/blobs/uploads/../../../../etc/passwd",
    "/v2/a/manifests/..%2f..%2fx",
    "/v2/a/referrers/sha256:..%2f..",
    "/v2//blobs/uploads/",
    "/v2/a\\..\\..\\x/blobs/uploads/",
    "/v2/a%00b/blobs/uploads/",
    "/v2/" + "a/" * 200 + "blobs/uploads/",
]


def _raw_request(host: str, method: str, path: str, body: bytes = b"") -> tuple[int, bytes]:
    addr, port = host.rsplit(":", 1)
    with socket.create_connection((addr, int(port)), timeout=10) as s:
        head = f"{method} {path} HTTP/1.1\r\nHost: {host}\r\nContent-Length: {len(body)}\r\nConnection: close\r\n\r\n"
        s.sendall(head.encode() + body)
        response = b""
        while chunk := s.recv(65536):
            response += chunk
    status = int(response.split(b" ", 2)[1])
    return status, response.split(b"\r\n\r\n", 1)[1]


@pytest.mark.parametrize("path", HOSTILE_PATHS)
def test_path_tricks_never_escape_the_root(registry: Registry, path: str) -> None:
    for method in ("GET", "HEAD", "POST", "PUT", "PATCH", "DELETE"):
        body = b"payload" if method in ("POST", "PUT", "PATCH") else b""
        status, answer = _raw_request(registry.host, method, path, body)
        assert 400 <= status < 500, (method, path, status, answer[:200])
        if method != "HEAD" and answer:
            assert json.loads(answer)["errors"][0]["code"]
    assert {p.name for p in registry.workdir.iterdir()} == {"config.yml", "server.log", "data"}
    # What the tricks aim at, one and two levels above the workdir (the test session's own directories).
    for ancestor in (registry.workdir.parent, registry.workdir.parent.parent):
        assert not {p.name for p in ancestor.iterdir()} & {"etc", "escape", "x", "tmp"}
    top = {p.name for p in registry.root.iterdir()}
    assert top <= {
        "docker",
        "portside.db",
        "portside.db-wal",
        "portside.db-shm",
        "portside.db.writelock",
        "portside.db.digestlocks",
    }


def test_blob_pushed_through_one_name_is_invisible_under_another(registry: Registry, client: httpx.Client) -> None:
    repo, other = unique_repo("own"), unique_repo("own")
    digest = push_blob(client, repo, b"private bytes")
    push_blob(client, other, b"something else")
    assert client.head(f"/v2/{other}/blobs/{digest}").status_code == 404
    assert client.get(f"/v2/{other}/blobs/{digest}").json()["errors"][0]["code"] == "BLOB_UNKNOWN"
