"""Cross-repository mounts under access control (docs/auth.md "What each route needs").

A mount needs `pull,push` on the target like any upload; the blob is mounted only if the caller may also
`pull` the source (without `from`: a repository the caller may pull). Otherwise the answer is a new upload
session (202) exactly as when the blob does not exist, so a mount never reveals what the caller may not read.
The user `mounter` may pull,push `mnt/target/**`, pull `mnt/readable/**` and only push `mnt/pushable/**`.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from dataclasses import dataclass

import httpx
import pytest

from tests.auth.routes import AdminAuth, BasicAdmin, TokenAdmin
from tests.auth.support import SERVICE, USERS, basic, bearer, fetch_token, sha256, token_of
from tests.conftest import Registry

IGNORED_HEADERS = {"date", "location", "docker-upload-uuid", "content-length", "connection", "keep-alive"}


@dataclass
class MountWorld:
    kind: str
    client: httpx.Client
    admin: AdminAuth
    realm: str
    blobs: dict[str, bytes]  # "secret" / "readable" / "pushable" -> content
    repos: dict[str, str]

    def push(self, repo: str, data: bytes) -> None:
        r = self.client.post(
            f"/v2/{repo}/blobs/uploads/",
            params={"digest": sha256(data)},
            content=data,
            headers=self.admin.headers(repo),
        )
        assert r.status_code == 201, f"setup: {r.status_code} {r.text}"

    def has_blob(self, repo: str, digest: str) -> bool:
        r = self.client.head(f"/v2/{repo}/blobs/{digest}", headers=self.admin.headers(repo))
        return r.status_code == 200

    def mounter_auth(self, target: str, sources: list[str]) -> dict[str, str]:
        if self.kind == "htpasswd":
            return basic("mounter", USERS["mounter"])
        scopes = [f"repository:{target}:pull,push"] + [f"repository:{s}:pull" for s in sources]
        return bearer(token_of(fetch_token(self.client, self.realm, SERVICE, scopes, "mounter")))

    def mount(self, target: str, digest: str, source: str | None, token_sources: list[str]) -> httpx.Response:
        params = {"mount": digest} | ({"from": source} if source else {})
        return self.client.post(
            f"/v2/{target}/blobs/uploads/", params=params, headers=self.mounter_auth(target, token_sources)
        )


@pytest.fixture(scope="module", params=["htpasswd", "token"])
def world(request: pytest.FixtureRequest) -> Iterator[MountWorld]:
    kind = str(request.param)
    reg: Registry = request.getfixturevalue("htpasswd_registry" if kind == "htpasswd" else "token_registry")
    realm = reg.url + "/token"
    with httpx.Client(base_url=reg.url, timeout=30.0) as client:
        admin: AdminAuth = BasicAdmin() if kind == "htpasswd" else TokenAdmin(client, realm, SERVICE)
        tag = uuid.uuid4().hex[:10]
        repos = {k: f"mnt/{k}/{tag}" for k in ("secret", "readable", "pushable")}
        blobs = {k: os.urandom(500) for k in repos}
        w = MountWorld(kind, client, admin, realm, blobs, repos)
        for k, repo in repos.items():
            w.push(repo, blobs[k])
        yield w


def target() -> str:
    return f"mnt/target/{uuid.uuid4().hex[:10]}"


def assert_like_missing_blob(w: MountWorld, r: httpx.Response, tgt: str, data: bytes) -> None:
    """202 and a new upload session, with the headers a mount of an unknown blob gets; nothing mounted."""
    assert r.status_code == 202, f"{r.status_code} {dict(r.headers)} {r.text}"
    assert "docker-content-digest" not in r.headers, r.headers
    assert f"/v2/{tgt}/blobs/uploads/" in r.headers.get("location", ""), r.headers
    assert r.headers.get("range") == "0-0", r.headers
    assert r.content == b""
    missing = w.mount(tgt, sha256(os.urandom(64)), w.repos["readable"], [w.repos["readable"]])
    assert missing.status_code == 202, missing.text
    names = {k.lower() for k in r.headers} - IGNORED_HEADERS
    assert names == {k.lower() for k in missing.headers} - IGNORED_HEADERS
    assert not w.has_blob(tgt, sha256(data)), "the blob was mounted"
    # The session is an ordinary one: the caller can finish it (with other content, so that the blob asked
    # for stays out of every repository the caller may pull).
    own = os.urandom(300)
    put = w.client.put(
        r.headers["location"],
        params={"digest": sha256(own)},
        content=own,
        headers={**w.mounter_auth(tgt, []), "Content-Type": "application/octet-stream"},
    )
    assert put.status_code == 201, put.text


def assert_mounted(w: MountWorld, r: httpx.Response, tgt: str, data: bytes) -> None:
    digest = sha256(data)
    assert r.status_code == 201, f"{r.status_code} {dict(r.headers)} {r.text}"
    assert r.headers.get("docker-content-digest") == digest, r.headers
    assert r.headers.get("location", "").endswith(f"/v2/{tgt}/blobs/{digest}"), r.headers
    assert w.has_blob(tgt, digest)


def test_mount_without_pull_on_source_is_new_session(world: MountWorld) -> None:
    """pull,push on the target but no access to `from`: 202, never 201, and the blob stays unmounted."""
    tgt, data = target(), world.blobs["secret"]
    r = world.mount(tgt, sha256(data), world.repos["secret"], [world.repos["secret"]])
    assert_like_missing_blob(world, r, tgt, data)


def test_mount_with_push_only_on_source_is_new_session(world: MountWorld) -> None:
    """`push` on the source does not imply `pull` (policy rules): 202."""
    tgt, data = target(), world.blobs["pushable"]
    r = world.mount(tgt, sha256(data), world.repos["pushable"], [world.repos["pushable"]])
    assert_like_missing_blob(world, r, tgt, data)


def test_mount_with_pull_on_source_mounts(world: MountWorld) -> None:
    """pull on `from`: 201 with `Location` and `Docker-Content-Digest`, and the blob is in the target."""
    tgt, data = target(), world.blobs["readable"]
    r = world.mount(tgt, sha256(data), world.repos["readable"], [world.repos["readable"]])
    assert_mounted(world, r, tgt, data)


def test_mount_from_readable_repo_without_the_blob(world: MountWorld) -> None:
    """`from` names a readable repository that lacks the blob (which lives in an unreadable one): 202."""
    tgt, data = target(), world.blobs["secret"]
    r = world.mount(tgt, sha256(data), world.repos["readable"], [world.repos["readable"]])
    assert_like_missing_blob(world, r, tgt, data)


def test_mount_anywhere_of_unreadable_blob_is_new_session(world: MountWorld) -> None:
    """Without `from`, a blob held only by repositories the caller may not pull is not mounted: 202."""
    tgt, data = target(), world.blobs["secret"]
    r = world.mount(tgt, sha256(data), None, [])
    assert_like_missing_blob(world, r, tgt, data)


def test_mount_anywhere_of_readable_blob_mounts(world: MountWorld) -> None:
    """Without `from`, a blob in a repository the caller may pull is mounted: 201 (with token auth the
    token carries that pull)."""
    tgt, data = target(), world.blobs["readable"]
    r = world.mount(tgt, sha256(data), None, [world.repos["readable"]])
    assert_mounted(world, r, tgt, data)
