"""Upload purging (`storage.maintenance.uploadpurging`: `enabled`, `age`, `interval`, `dryrun`).

docs/architecture.md: a crash leaves "at worst bytes nothing refers to (removed by upload purging ...)", and
uploads in progress live in `/docker/registry/v2/uploads/<id>/`. Purging removes upload sessions idle for
longer than `age` and upload bytes that no session owns once they are older than `age`; an upload in use is
never touched; `dryrun: true` only reports what it would remove. On every storage driver.
"""

from __future__ import annotations

import asyncio
import os
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.conftest import RegistryFactory
from tests.helpers import unique_repo

UPLOADS = "/docker/registry/v2/uploads"
MiB = 1024 * 1024


def leftover(root: Path, name: str, age_seconds: float) -> Path:
    """Bytes under `uploads/` that no session owns, as a worker killed mid-upload leaves them."""
    directory = root / "docker/registry/v2/uploads" / name
    directory.mkdir(parents=True)
    (directory / "data").write_bytes(os.urandom(4096))
    then = time.time() - age_seconds
    os.utime(directory / "data", (then, then))
    os.utime(directory, (then, then))
    return directory


def keep_busy(c: httpx.Client, location: str, until: Callable[[], bool], what: str, timeout: float = 60) -> str:
    """PATCH a byte to the upload at `location` every half second until `until()`; every PATCH must succeed
    (an upload in use is never purged). Returns the upload's last location."""
    deadline = time.monotonic() + timeout
    while not until():
        assert time.monotonic() < deadline, f"timed out after {timeout}s waiting for {what}"
        r = c.patch(location, content=b"x")
        assert r.status_code == 202, f"an upload in use was purged: {r.status_code} {r.text}"
        location = r.headers["Location"]
        time.sleep(0.5)
    return location


def test_crash_leftovers_are_purged_once_older_than_age(registry_factory: RegistryFactory) -> None:
    """Bytes under `uploads/` that no session owns go once they are older than `age` (1h here); younger
    leftovers and sessions stay. The leftover listed between two old ones shows the purge has looked at it."""
    purging = {"enabled": True, "age": "1h", "interval": "1s", "dryrun": False}
    reg = registry_factory({"storage": {"maintenance": {"uploadpurging": purging}}}, workers=1)
    first = leftover(reg.root, f"00000000-{uuid.uuid4()}", age_seconds=2 * 3600)
    young = leftover(reg.root, f"77777777-{uuid.uuid4()}", age_seconds=60)
    last = leftover(reg.root, f"ffffffff-{uuid.uuid4()}", age_seconds=2 * 3600)
    with httpx.Client(base_url=reg.url, timeout=30) as c:
        session = c.post(f"/v2/{unique_repo('purge')}/blobs/uploads/").headers["Location"]
        assert c.patch(session, content=b"young session").status_code == 202
        session = keep_busy(c, session, lambda: not first.exists() and not last.exists(), "the old leftovers to go")
        assert young.is_dir(), "a leftover younger than age was purged"
        assert c.get(session).status_code == 204, "a session younger than age was purged"


def test_dryrun_removes_nothing(registry_factory: RegistryFactory) -> None:
    """`dryrun: true`: the purge runs and reports what it would remove (an idle session and an old leftover)
    but removes nothing."""
    purging = {"enabled": True, "age": "2s", "interval": "1s", "dryrun": True}
    reg = registry_factory(
        {"log": {"level": "info"}, "storage": {"maintenance": {"uploadpurging": purging}}}, workers=1
    )
    old = leftover(reg.root, f"00000000-{uuid.uuid4()}", age_seconds=2 * 3600)
    with httpx.Client(base_url=reg.url, timeout=30) as c:
        idle = c.post(f"/v2/{unique_repo('dryrun')}/blobs/uploads/").headers["Location"]
        assert c.patch(idle, content=b"idle bytes").status_code == 202
        created = time.monotonic()
        idle_dir = reg.root / "docker/registry/v2/uploads" / idle.rsplit("/", 1)[1].split("?")[0]

        def reported_both() -> bool:
            """A purge round after the session went idle for longer than age would remove it and the leftover."""
            lines = [line for line in reg.log_path.read_text(errors="replace").splitlines() if "would remove" in line]
            return time.monotonic() - created > 2 and any(" 2 " in line for line in lines)

        deadline = time.monotonic() + 60
        while not reported_both():
            assert time.monotonic() < deadline, f"no dry run reported two uploads:\n{reg.log_tail()}"
            time.sleep(0.2)
        assert old.is_dir(), "a dry run removed a leftover"
        assert idle_dir.is_dir(), "a dry run removed an idle session's bytes"
        assert c.get(idle).status_code == 204, "a dry run removed an idle session"


def _storage(backend: str, request: pytest.FixtureRequest) -> dict[str, Any]:
    from tests.object_storage import azure_parameters, create_bucket, create_gcs_bucket, s3_parameters

    if backend == "s3":
        endpoint = request.getfixturevalue("s3_endpoint")
        return s3_parameters(endpoint, create_bucket(endpoint), chunksize=5 * MiB)
    if backend == "azure":
        return azure_parameters(request.getfixturevalue("azurite_url"), chunksize=MiB)
    endpoint = request.getfixturevalue("gcs_endpoint")
    return {"bucket": create_gcs_bucket(endpoint), "endpoint": endpoint, "chunksize": 256 * 1024}


async def _uploads(backend: str, parameters: dict[str, Any], write: str | None = None) -> list[str]:
    """The names under `uploads/` in the registry's object storage, as Portside's own driver lists them (in
    progress multipart uploads, uncommitted blocks and part objects included); with `write`, first leave an
    unfinished upload of a part and a half there under that name, as a crashed worker would."""
    from portside.storage import PathNotFound
    from portside.storage.factory import create

    driver = create(backend, parameters)
    await driver.connect()
    try:
        if write is not None:
            writer = await driver.writer(f"{UPLOADS}/{write}/data")
            await writer.write(os.urandom(int(parameters["chunksize"]) * 3 // 2))
            await writer.close()
        try:
            names = [path.rsplit("/", 1)[1] for path in await driver.list(UPLOADS)]
        except PathNotFound:
            names = []
        if backend == "s3":  # and S3's own account of unfinished multipart uploads, which cost storage
            s3: Any = driver.inner  # the S3 driver behind the path checks
            found = await s3.client.list_multipart_uploads(Bucket=s3.bucket, Prefix=s3.key(UPLOADS))
            names += [u["Key"].rsplit("/", 2)[1] for u in found.get("Uploads", [])]
        return names
    finally:
        await driver.close()


@pytest.mark.parametrize("backend", ["s3", "azure", "gcs"])
def test_purging_on_object_storage(
    registry_factory: RegistryFactory, request: pytest.FixtureRequest, backend: str
) -> None:
    """On S3, Azure and GCS: an idle session with bytes and an unfinished upload no session owns are removed
    from the store once older than `age`; a session in use stays."""
    parameters = _storage(backend, request)
    purging = {"enabled": True, "age": "3s", "interval": "1s", "dryrun": False}
    reg = registry_factory(
        {"storage": {"filesystem": None, backend: parameters, "maintenance": {"uploadpurging": purging}}}, workers=1
    )
    orphan = f"{uuid.uuid4()}"
    assert orphan in asyncio.run(_uploads(backend, parameters, write=orphan))
    repo = unique_repo(f"purge-{backend}")
    with httpx.Client(base_url=reg.url, timeout=60) as c:
        idle = c.post(f"/v2/{repo}/blobs/uploads/").headers["Location"]
        assert c.patch(idle, content=os.urandom(MiB)).status_code == 202
        idle_id = idle.rsplit("/", 1)[1].split("?")[0]
        assert idle_id in asyncio.run(_uploads(backend, parameters))
        busy = c.post(f"/v2/{repo}/blobs/uploads/").headers["Location"]
        busy = keep_busy(c, busy, lambda: c.get(idle).status_code == 404, "the idle session to be purged")

        def gone() -> bool:
            return not {orphan, idle_id} & set(asyncio.run(_uploads(backend, parameters)))

        busy = keep_busy(c, busy, gone, "the idle session's bytes and the unowned upload to leave the store")
        assert c.get(busy).status_code == 204, "a session in use was purged"
