"""Metadata and storage out of step: a database restored without its storage, a changed `rootdirectory`.

docs/operations.md, "Metadata and storage out of step": a push of a blob the metadata store records but
storage lacks writes the bytes again, and at start-up a store that records blobs over a storage root holding
none is logged as an error naming both.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Callable

import httpx
import pytest

from tests.conftest import RegistryFactory
from tests.helpers import sha256, unique_repo
from tests.operations.support import wait_until

BLOBS = "docker/registry/v2/blobs"


def monolithic(client: httpx.Client, repo: str, data: bytes) -> httpx.Response:
    """POST with `digest` and the whole body: stored in one write."""
    return client.post(f"/v2/{repo}/blobs/uploads/", params={"digest": sha256(data)}, content=data)


def session_put(client: httpx.Client, repo: str, data: bytes) -> httpx.Response:
    """POST, then PUT with the whole body into the empty session."""
    started = client.post(f"/v2/{repo}/blobs/uploads/")
    assert started.status_code == 202, started.text
    return client.put(started.headers["Location"], params={"digest": sha256(data)}, content=data)


def chunked(client: httpx.Client, repo: str, data: bytes) -> httpx.Response:
    """POST, PATCH the bytes, PUT to finish: the upload file is moved to the blob's place."""
    started = client.post(f"/v2/{repo}/blobs/uploads/")
    assert started.status_code == 202, started.text
    patched = client.patch(started.headers["Location"], content=data)
    assert patched.status_code == 202, patched.text
    return client.put(patched.headers["Location"], params={"digest": sha256(data)})


FLOWS: dict[str, Callable[[httpx.Client, str, bytes], httpx.Response]] = {
    "monolithic": monolithic,
    "session-put": session_put,
    "chunked": chunked,
}


@pytest.mark.parametrize("flow", FLOWS.values(), ids=list(FLOWS))
def test_a_recorded_blob_missing_from_storage_is_written_again(
    registry_factory: RegistryFactory, flow: Callable[[httpx.Client, str, bytes], httpx.Response]
) -> None:
    """The commit of a blob the store already records checks that storage holds it; when it does not, the
    bytes just received are stored, so the blob can be pulled again."""
    reg = registry_factory()
    data = os.urandom(300_000)
    digest = sha256(data)
    first, second = unique_repo("step"), unique_repo("step")
    with httpx.Client(base_url=reg.url, timeout=60) as c:
        assert flow(c, first, data).status_code == 201
        shutil.rmtree(reg.root / BLOBS)  # the bytes are gone, the records stay
        assert c.get(f"/v2/{first}/blobs/{digest}").status_code >= 400
        pushed = flow(c, second, data)
        assert pushed.status_code == 201, pushed.text
        for repo in (first, second):
            pulled = c.get(f"/v2/{repo}/blobs/{digest}")
            assert pulled.status_code == 200, pulled.text
            assert pulled.content == data


def test_start_up_names_a_store_whose_blobs_the_storage_root_lacks(registry_factory: RegistryFactory) -> None:
    """A metadata store that records blobs over a storage root that holds none (rootdirectory changed, or the
    database restored without its storage) is logged at start-up as an error naming both; serving goes on."""
    reg = registry_factory()
    database = reg.workdir / "metadata.db"
    reg.config["database"] = {"dsn": f"sqlite:///{database}"}
    reg.restart()
    with httpx.Client(base_url=reg.url, timeout=30) as c:
        assert monolithic(c, unique_repo("step"), os.urandom(64)).status_code == 201
    reg.stop()
    assert "holds none" not in reg.log_path.read_text()
    moved = reg.workdir / "elsewhere"
    reg.config["storage"]["filesystem"]["rootdirectory"] = str(moved)
    reg.start()
    line = wait_until(
        lambda: next((x for x in reg.log_path.read_text().splitlines() if "holds none" in x), None),
        30,
        "the start-up error about blobs missing from storage",
    )
    assert "ERROR" in line, line
    assert str(database) in line, line
    assert str(moved) in line, line
    with httpx.Client(base_url=reg.url, timeout=30) as c:
        assert c.get("/v2/").status_code == 200
