"""The small-blob path: a whole blob up to `SMALL_BLOB_LIMIT` is hashed and written by the event loop, and made
durable at its place by the metadata store's writer just before the transaction that records it. Against real
servers on the file system, with SQLite and with PostgreSQL."""

from __future__ import annotations

import asyncio
import fcntl
import os
import threading
import time
import uuid
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy.engine import make_url

from portside.registry.uploads import SMALL_BLOB_LIMIT
from tests.conftest import Registry, default_config, free_port
from tests.helpers import sha256, unique_repo
from tests.integration.test_safety import check_consistency


@dataclass
class Setup:
    """Filesystem storage with SQLite (the default) or with PostgreSQL (`dsn`)."""

    name: str
    dsn: str | None = None

    def overrides(self) -> dict[str, Any]:
        return {"database": {"dsn": self.dsn}} if self.dsn else {}

    def start(self, workdir: Path) -> Registry:
        config = default_config(workdir, free_port())
        config.update(self.overrides())
        reg = Registry(workdir=workdir, config=config, workers=2)
        reg.start()
        return reg

    def recorded(self, reg: Registry, digest: str) -> bool:
        """Whether the store records the blob at all (read from the database, not through the server)."""
        if self.dsn is None:
            import sqlite3

            db = sqlite3.connect(reg.root / "portside.db")
            try:
                return db.execute("SELECT 1 FROM blobs WHERE digest = ?", (digest,)).fetchone() is not None
            finally:
                db.close()
        return bool(asyncio.run(_pg_fetch(self.dsn, "SELECT 1 FROM blobs WHERE digest = $1", digest)))


async def _pg_connect(dsn: str) -> Any:
    import asyncpg

    url = make_url(dsn)
    return await asyncpg.connect(
        user=url.username, password=url.password, host=url.host, port=url.port or 5432, database=url.database
    )


async def _pg_fetch(dsn: str, sql: str, *args: Any) -> list[Any]:
    conn = await _pg_connect(dsn)
    try:
        return list(await conn.fetch(sql, *args))
    finally:
        await conn.close()


@pytest.fixture(scope="module", params=["sqlite", "postgresql"])
def setup(request: pytest.FixtureRequest) -> Iterator[Setup]:
    if request.param == "sqlite":
        yield Setup("sqlite")
        return
    from tests.metadata.conftest import _admin, postgres_admin_dsn

    database = f"portside_small_{uuid.uuid4().hex[:10]}"
    asyncio.run(_admin(f'CREATE DATABASE "{database}"'))
    try:
        yield Setup("postgresql", make_url(postgres_admin_dsn()).set(database=database).render_as_string(False))
    finally:
        asyncio.run(_admin(f'DROP DATABASE IF EXISTS "{database}" WITH (FORCE)'))


@pytest.fixture(scope="module")
def server(setup: Setup, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Registry]:
    """One server per setup for the module; the kill test restarts it. Its store is checked at the end."""
    reg = setup.start(tmp_path_factory.mktemp("small"))
    yield reg
    reg.stop()
    if setup.dsn is None:
        check_consistency(reg)


def blob_path(reg: Registry, digest: str) -> Path:
    algorithm, encoded = digest.split(":")
    return reg.root / "docker/registry/v2/blobs" / algorithm / encoded[:2] / encoded / "data"


def leftovers(reg: Registry) -> list[Path]:
    """Staged files never placed: a push that failed or was answered must leave none behind."""
    return sorted((reg.root / "docker/registry/v2/blobs").rglob("*.tmp"))


def push_whole(c: httpx.Client, repo: str, data: bytes, digest: str, monolithic: bool) -> httpx.Response:
    """A whole blob in one request: `POST ?digest=`, or POST then PUT into the fresh session."""
    if monolithic:
        return c.post(f"/v2/{repo}/blobs/uploads/", params={"digest": digest}, content=data)
    start = c.post(f"/v2/{repo}/blobs/uploads/")
    assert start.status_code == 202, start.text
    return c.put(start.headers["Location"], params={"digest": digest}, content=data)


@pytest.mark.parametrize("monolithic", [True, False], ids=["post", "post-put"])
def test_a_digest_mismatch_is_refused_and_stores_nothing(server: Registry, monolithic: bool) -> None:
    repo = unique_repo("small")
    data = os.urandom(4096)
    claimed = sha256(os.urandom(4096))
    with httpx.Client(base_url=server.url, timeout=30) as c:
        r = push_whole(c, repo, data, claimed, monolithic)
        assert r.status_code == 400, r.text
        assert r.json()["errors"][0]["code"] == "DIGEST_INVALID"
        for digest in (claimed, sha256(data)):
            assert c.head(f"/v2/{repo}/blobs/{digest}").status_code == 404
            assert not blob_path(server, digest).parent.exists()
    assert leftovers(server) == []


@pytest.mark.parametrize("size", [1, SMALL_BLOB_LIMIT - 1, SMALL_BLOB_LIMIT, SMALL_BLOB_LIMIT + 1])
def test_sizes_at_and_around_the_limit_are_stored_whole(server: Registry, size: int) -> None:
    """Below and at the limit the small path takes the blob, above it the thread path; both store it alike."""
    repo = unique_repo("small")
    with httpx.Client(base_url=server.url, timeout=30) as c:
        for monolithic in (True, False):
            data = os.urandom(size)
            digest = sha256(data)
            r = push_whole(c, repo, data, digest, monolithic)
            assert r.status_code == 201, r.text
            assert r.headers["Docker-Content-Digest"] == digest
            got = c.get(f"/v2/{repo}/blobs/{digest}")
            assert got.status_code == 200
            assert got.content == data
            assert blob_path(server, digest).read_bytes() == data
    assert leftovers(server) == []


def test_concurrent_pushes_of_the_same_small_blob_all_succeed(server: Registry) -> None:
    """Sixteen clients push one blob at once, into one repository and into four others, both ways: the digest
    lock lets one write it, the others find it stored; every repository then serves it."""
    data = os.urandom(4096)
    digest = sha256(data)
    shared = unique_repo("same")
    repos = [shared] * 8 + [unique_repo("same") for _ in range(4)] * 2

    def push(i: int) -> int:
        with httpx.Client(base_url=server.url, timeout=30) as c:
            return push_whole(c, repos[i], data, digest, monolithic=i % 2 == 0).status_code

    with ThreadPoolExecutor(16) as pool:
        assert list(pool.map(push, range(len(repos)))) == [201] * len(repos)
    with httpx.Client(base_url=server.url, timeout=30) as c:
        for repo in set(repos):
            assert c.get(f"/v2/{repo}/blobs/{digest}").content == data
    assert blob_path(server, digest).read_bytes() == data
    assert leftovers(server) == []


class WriteLock:
    """Holds the metadata store's write lock from outside the server, so its transactions wait: SQLite's
    writer queues on `<database>.writelock`; on PostgreSQL an exclusive lock on `repository_blobs` makes every
    blob link wait."""

    def __init__(self, setup: Setup, reg: Registry) -> None:
        self.setup = setup
        self.reg = reg
        self._fd = -1
        self._release = threading.Event()
        self._held = threading.Event()
        self._thread: threading.Thread | None = None

    def __enter__(self) -> WriteLock:
        if self.setup.dsn is None:
            self._fd = os.open(self.reg.root / "portside.db.writelock", os.O_RDWR | os.O_CREAT, 0o644)
            fcntl.flock(self._fd, fcntl.LOCK_EX)
            return self
        self._thread = threading.Thread(target=lambda: asyncio.run(self._hold_pg()), daemon=True)
        self._thread.start()
        assert self._held.wait(10), "could not lock repository_blobs"
        return self

    async def _hold_pg(self) -> None:
        assert self.setup.dsn is not None
        conn = await _pg_connect(self.setup.dsn)
        try:
            async with conn.transaction():
                await conn.execute("LOCK TABLE repository_blobs IN EXCLUSIVE MODE")
                self._held.set()
                await asyncio.to_thread(self._release.wait)
        finally:
            await conn.close()

    def __exit__(self, *exc: object) -> None:
        if self._fd >= 0:
            os.close(self._fd)  # closing the descriptor drops the flock
        self._release.set()
        if self._thread is not None:
            self._thread.join(10)


def test_a_kill_between_writing_and_recording_leaves_the_store_consistent(setup: Setup, server: Registry) -> None:
    """With the metadata write held back, small pushes get as far as their bytes staged, or durable at their
    place, and no further; SIGKILL then. After the restart none of them is recorded (no record without its
    file, no blob served without its bytes), the store's invariants hold, and pushing them again stores them."""
    reg = server  # restarted below, for the module's other tests
    repo = unique_repo("kill")
    blobs = [os.urandom(4096 + i) for i in range(4)]
    digests = [sha256(data) for data in blobs]
    with httpx.Client(base_url=reg.url, timeout=30) as c:
        sessions = [c.post(f"/v2/{repo}/blobs/uploads/").headers["Location"] for _ in range(2)]
    answers: list[int] = []
    cut_off: list[int] = []

    def send(i: int) -> None:
        with httpx.Client(base_url=reg.url, timeout=30) as c:
            try:
                if i < 2:
                    r = c.post(f"/v2/{repo}/blobs/uploads/", params={"digest": digests[i]}, content=blobs[i])
                else:
                    r = c.put(sessions[i - 2], params={"digest": digests[i]}, content=blobs[i])
                answers.append(r.status_code)
            except httpx.TransportError:
                cut_off.append(i)

    def reached(digest: str) -> str | None:
        """How far a push got on disk: its bytes at their place, staged beside it, or nothing yet."""
        path = blob_path(reg, digest)
        if path.exists():
            return "placed"
        return "staged" if path.parent.exists() and any(path.parent.glob("*.tmp")) else None

    with WriteLock(setup, reg):
        senders = [threading.Thread(target=send, args=(i,)) for i in range(len(blobs))]
        for sender in senders:
            sender.start()
        deadline = time.monotonic() + 15
        while time.monotonic() < deadline:
            stages = [reached(d) for d in digests]
            if None not in stages and "placed" in stages:
                break
            time.sleep(0.02)
        assert None not in stages, stages
        assert "placed" in stages, stages
        for digest, data, stage in zip(digests, blobs, stages, strict=True):
            if stage == "placed":
                assert blob_path(reg, digest).read_bytes() == data
        reg.kill()
        for sender in senders:
            sender.join(10)
    assert answers == [], "a push was answered while its record could not be written"
    assert sorted(cut_off) == list(range(len(blobs)))
    assert not any(setup.recorded(reg, d) for d in digests)
    if setup.dsn is None:
        check_consistency(reg)
    reg.start()
    with httpx.Client(base_url=reg.url, timeout=30) as c:
        for digest, data in zip(digests, blobs, strict=True):
            assert c.head(f"/v2/{repo}/blobs/{digest}").status_code == 404
            r = c.post(f"/v2/{repo}/blobs/uploads/", params={"digest": digest}, content=data)
            assert r.status_code == 201, r.text
            assert c.get(f"/v2/{repo}/blobs/{digest}").content == data
