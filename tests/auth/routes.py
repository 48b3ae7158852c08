"""Every route and method of the API with the access docs/auth.md says it needs, and content to call it on.

A `Stage` is a server plus content an administrator put there (an image tagged `v1` with a referrer, a blob
in a second repository to mount); each `Route` prepares one call on it, doing per-call setup as the
administrator when the call consumes something (a tag to delete, an upload session).
"""

from __future__ import annotations

import json
import os
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import httpx

from tests.auth.support import (
    CATALOG_NEED,
    EMPTY_JSON,
    OCI_EMPTY,
    OCI_MANIFEST,
    USERS,
    Need,
    basic,
    config_blob,
    fetch_token,
    image_manifest,
    repo_need,
    sha256,
    token_of,
)


class AdminAuth:
    """Credentials for setting content up: Basic for htpasswd, a token from the token server otherwise."""

    def headers(self, repo: str | None) -> dict[str, str]:
        raise NotImplementedError


@dataclass
class BasicAdmin(AdminAuth):
    user: str = "admin"

    def headers(self, repo: str | None) -> dict[str, str]:
        return basic(self.user, USERS[self.user])


@dataclass
class TokenAdmin(AdminAuth):
    client: httpx.Client
    realm: str
    service: str
    user: str = "admin"
    cache: dict[str | None, str] = field(default_factory=dict)

    def headers(self, repo: str | None) -> dict[str, str]:
        if repo not in self.cache:
            scopes = [f"repository:{repo}:pull,push,delete"] if repo else ["registry:catalog:*"]
            self.cache[repo] = token_of(fetch_token(self.client, self.realm, self.service, scopes, self.user))
        return {"Authorization": f"Bearer {self.cache[repo]}"}


@dataclass
class Call:
    """One request, the access it needs, and its status when allowed."""

    method: str
    url: str
    needs: list[Need]
    ok: int
    params: dict[str, str] = field(default_factory=dict)
    headers: dict[str, str] = field(default_factory=dict)
    content: bytes | None = None
    mount_from: str | None = None
    mount_source: str | None = None  # the repository holding the blob a mount asks for
    body: bytes | None = None  # what an allowed call answers with
    state: Callable[[], object] | None = None  # what the call changes, as the administrator sees it

    def snapshot(self) -> object:
        return self.state() if self.state is not None else None

    def check_state(self, before: object, allowed: bool, r: httpx.Response) -> None:
        """A refused write leaves everything as it was (the manifest or blob to delete is still there,
        nothing was written); an allowed one makes its change."""
        if self.state is None:
            return
        after = self.state()
        if allowed:
            assert after != before, f"allowed, but nothing changed ({after}): {describe(self, r)}"
        else:
            assert after == before, f"refused, but changed {before} -> {after}: {describe(self, r)}"

    def check_allowed(self, r: httpx.Response) -> None:
        """The route's success status (and content for reads)."""
        assert r.status_code == self.ok, describe(self, r)
        if self.body is not None and self.method == "GET":
            assert r.content == self.body, describe(self, r)

    def send(self, client: httpx.Client, auth: dict[str, str] | None = None) -> httpx.Response:
        return client.request(
            self.method,
            self.url,
            params=self.params or None,
            headers={**self.headers, **(auth or {})},
            content=self.content,
        )

    @property
    def optional(self) -> list[Need]:
        """A mount may also name the source repository in its challenge."""
        return [repo_need(self.mount_from, "pull")] if self.mount_from else []


class Stage:
    """A server with an administrator's content in repository `<prefix>/<id>`."""

    def __init__(self, client: httpx.Client, admin: AdminAuth, prefix: str = "m") -> None:
        self.client = client
        self.admin = admin
        self.prefix = prefix
        self.repo = f"{prefix}/{uuid.uuid4().hex[:10]}"
        self.source = f"{self.repo}-src"
        self.config = config_blob()
        self.layer = os.urandom(700)
        for blob in (self.config, self.layer, EMPTY_JSON):
            self.push_blob(self.repo, blob)
        self.manifest = image_manifest(self.config, [self.layer])
        self.manifest_digest = sha256(self.manifest)
        self.put_manifest(self.repo, "v1", self.manifest)
        referrer = json.dumps(
            {
                "schemaVersion": 2,
                "mediaType": OCI_MANIFEST,
                "artifactType": "application/vnd.example.signature",
                "config": {"mediaType": OCI_EMPTY, "digest": sha256(EMPTY_JSON), "size": 2},
                "layers": [{"mediaType": OCI_EMPTY, "digest": sha256(EMPTY_JSON), "size": 2}],
                "subject": {"mediaType": OCI_MANIFEST, "digest": self.manifest_digest, "size": len(self.manifest)},
            }
        ).encode()
        self.put_manifest(self.repo, sha256(referrer), referrer)
        self.mountable = os.urandom(600)
        self.push_blob(self.source, self.mountable)

    # -- as the administrator
    def push_blob(self, repo: str, data: bytes) -> str:
        digest = sha256(data)
        r = self.client.post(
            f"/v2/{repo}/blobs/uploads/", params={"digest": digest}, content=data, headers=self.admin.headers(repo)
        )
        assert r.status_code == 201, f"setup: push blob to {repo}: {r.status_code} {r.text}"
        return digest

    def put_manifest(self, repo: str, ref: str, body: bytes) -> None:
        headers = {**self.admin.headers(repo), "Content-Type": OCI_MANIFEST}
        r = self.client.put(f"/v2/{repo}/manifests/{ref}", content=body, headers=headers)
        assert r.status_code == 201, f"setup: put manifest {repo}:{ref}: {r.status_code} {r.text}"

    def start_upload(self, repo: str) -> str:
        r = self.client.post(f"/v2/{repo}/blobs/uploads/", headers=self.admin.headers(repo))
        assert r.status_code == 202, f"setup: start upload in {repo}: {r.status_code} {r.text}"
        return r.headers["Location"]

    def status(self, repo: str, url: str) -> tuple[int, str | None]:
        """The administrator's answer to a GET: its status, and the `Range` of an upload session."""
        r = self.client.get(url, headers={**self.admin.headers(repo), "Accept": OCI_MANIFEST})
        assert r.status_code in (200, 204, 404), f"setup: GET {url}: {r.status_code} {r.text}"
        return r.status_code, r.headers.get("Range")

    def has_blob(self, repo: str, digest: str) -> bool:
        r = self.client.head(f"/v2/{repo}/blobs/{digest}", headers=self.admin.headers(repo))
        assert r.status_code in (200, 404), f"setup: HEAD blob: {r.status_code}"
        return r.status_code == 200

    def new_manifest(self) -> bytes:
        """A manifest over the stage's blobs that no one pushed yet."""
        return image_manifest(self.config, [self.layer], annotations={"nonce": uuid.uuid4().hex})

    def fresh_repo(self) -> str:
        return f"{self.prefix}/{uuid.uuid4().hex[:10]}"


def _pull(name: str) -> list[Need]:
    return [repo_need(name, "pull")]


def _push(name: str) -> list[Need]:
    return [repo_need(name, "pull", "push")]


def _delete(name: str) -> list[Need]:
    return [repo_need(name, "delete")]


def _manifest_get(method: str, by_digest: bool) -> Callable[[Stage], Call]:
    def prepare(s: Stage) -> Call:
        ref = s.manifest_digest if by_digest else "v1"
        headers = {"Accept": OCI_MANIFEST}
        return Call(method, f"/v2/{s.repo}/manifests/{ref}", _pull(s.repo), 200, headers=headers, body=s.manifest)

    return prepare


def _manifest_put(by_digest: bool) -> Callable[[Stage], Call]:
    def prepare(s: Stage) -> Call:
        body = s.new_manifest()
        ref = sha256(body) if by_digest else f"t-{uuid.uuid4().hex[:8]}"
        return Call(
            "PUT",
            f"/v2/{s.repo}/manifests/{ref}",
            _push(s.repo),
            201,
            headers={"Content-Type": OCI_MANIFEST},
            content=body,
            state=lambda: (
                s.status(s.repo, f"/v2/{s.repo}/manifests/{sha256(body)}"),
                s.status(s.repo, f"/v2/{s.repo}/manifests/{ref}"),
            ),
        )

    return prepare


def _manifest_delete(by_digest: bool) -> Callable[[Stage], Call]:
    def prepare(s: Stage) -> Call:
        body = s.new_manifest()
        tag = f"d-{uuid.uuid4().hex[:8]}"
        s.put_manifest(s.repo, sha256(body) if by_digest else tag, body)
        ref = sha256(body) if by_digest else tag
        url = f"/v2/{s.repo}/manifests/{ref}"
        return Call("DELETE", url, _delete(s.repo), 202, state=lambda: s.status(s.repo, url))

    return prepare


def _blob_get(method: str) -> Callable[[Stage], Call]:
    def prepare(s: Stage) -> Call:
        return Call(method, f"/v2/{s.repo}/blobs/{sha256(s.layer)}", _pull(s.repo), 200, body=s.layer)

    return prepare


def _blob_delete(s: Stage) -> Call:
    digest = s.push_blob(s.repo, os.urandom(300))
    url = f"/v2/{s.repo}/blobs/{digest}"
    return Call("DELETE", url, _delete(s.repo), 202, state=lambda: s.status(s.repo, url))


def _upload_post(s: Stage) -> Call:
    return Call("POST", f"/v2/{s.repo}/blobs/uploads/", _push(s.repo), 202)


def _upload_patch(s: Stage) -> Call:
    location = s.start_upload(s.repo)
    return Call(
        "PATCH",
        location,
        _push(s.repo),
        202,
        headers={"Content-Type": "application/octet-stream"},
        content=os.urandom(200),
        state=lambda: s.status(s.repo, location),
    )


def _upload_put(s: Stage) -> Call:
    location = s.start_upload(s.repo)
    data = os.urandom(200)
    return Call(
        "PUT",
        location,
        _push(s.repo),
        201,
        params={"digest": sha256(data)},
        headers={"Content-Type": "application/octet-stream"},
        content=data,
        state=lambda: (s.status(s.repo, location), s.status(s.repo, f"/v2/{s.repo}/blobs/{sha256(data)}")),
    )


def _upload_get(s: Stage) -> Call:
    return Call("GET", s.start_upload(s.repo), _push(s.repo), 204)


def _upload_delete(s: Stage) -> Call:
    location = s.start_upload(s.repo)
    return Call("DELETE", location, _push(s.repo), 204, state=lambda: s.status(s.repo, location))


def _mount(with_from: bool) -> Callable[[Stage], Call]:
    def prepare(s: Stage) -> Call:
        target = s.fresh_repo()
        params = {"mount": sha256(s.mountable)}
        if with_from:
            params["from"] = s.source
        return Call(
            "POST",
            f"/v2/{target}/blobs/uploads/",
            _push(target),
            201,
            params=params,
            mount_from=s.source if with_from else None,
            mount_source=s.source,
            state=lambda: s.status(target, f"/v2/{target}/blobs/{sha256(s.mountable)}"),
        )

    return prepare


def _referrers(s: Stage) -> Call:
    return Call("GET", f"/v2/{s.repo}/referrers/{s.manifest_digest}", _pull(s.repo), 200)


def _base(method: str) -> Callable[[Stage], Call]:
    def prepare(s: Stage) -> Call:
        return Call(method, "/v2/", [], 200)

    return prepare


def _catalog(s: Stage) -> Call:
    return Call("GET", "/v2/_catalog", [CATALOG_NEED], 200)


def _tags(s: Stage) -> Call:
    return Call("GET", f"/v2/{s.repo}/tags/list", _pull(s.repo), 200)


def _get(path: str, needs: Callable[[Stage], list[Need]], body: bytes | None = None) -> Callable[[Stage], Call]:
    """A read of the management APIs: `{repo}` and `{digest}` in `path` name the stage's image."""

    def prepare(s: Stage) -> Call:
        return Call("GET", path.format(repo=s.repo, digest=s.manifest_digest), needs(s), 200, body=body)

    return prepare


def _pulls(s: Stage) -> list[Need]:
    return _pull(s.repo)


def _lists(s: Stage) -> list[Need]:
    return [CATALOG_NEED]


@dataclass(frozen=True)
class Route:
    id: str
    prepare: Callable[[Stage], Call]


ROUTES: list[Route] = [
    Route("base-GET", _base("GET")),
    Route("base-HEAD", _base("HEAD")),
    Route("catalog-GET", _catalog),
    Route("tags-GET", _tags),
    Route("manifest-tag-GET", _manifest_get("GET", by_digest=False)),
    Route("manifest-tag-HEAD", _manifest_get("HEAD", by_digest=False)),
    Route("manifest-digest-GET", _manifest_get("GET", by_digest=True)),
    Route("manifest-digest-HEAD", _manifest_get("HEAD", by_digest=True)),
    Route("manifest-tag-PUT", _manifest_put(by_digest=False)),
    Route("manifest-digest-PUT", _manifest_put(by_digest=True)),
    Route("manifest-tag-DELETE", _manifest_delete(by_digest=False)),
    Route("manifest-digest-DELETE", _manifest_delete(by_digest=True)),
    Route("blob-GET", _blob_get("GET")),
    Route("blob-HEAD", _blob_get("HEAD")),
    Route("blob-DELETE", _blob_delete),
    Route("upload-POST", _upload_post),
    Route("upload-PATCH", _upload_patch),
    Route("upload-PUT", _upload_put),
    Route("upload-GET", _upload_get),
    Route("upload-DELETE", _upload_delete),
    Route("mount-from-POST", _mount(with_from=True)),
    Route("mount-anywhere-POST", _mount(with_from=False)),
    Route("referrers-GET", _referrers),
    # GitLab's API v1 and Portside's management API: the access a client needs for the same data via /v2/.
    Route("gitlab-base-GET", _get("/gitlab/v1/", lambda s: [], b"")),
    Route("gitlab-repository-GET", _get("/gitlab/v1/repositories/{repo}/?size=self", _pulls)),
    Route("gitlab-tags-GET", _get("/gitlab/v1/repositories/{repo}/tags/list/", _pulls)),
    Route("portside-base-GET", _get("/portside/v1/", lambda s: [])),
    Route("portside-repositories-GET", _get("/portside/v1/repositories/", _lists)),
    Route("portside-storage-GET", _get("/portside/v1/storage", _lists)),
    Route("portside-repository-GET", _get("/portside/v1/repositories/{repo}/", _pulls)),
    Route("portside-tags-GET", _get("/portside/v1/repositories/{repo}/tags/", _pulls)),
    Route("portside-manifest-GET", _get("/portside/v1/repositories/{repo}/manifests/{digest}", _pulls)),
]

# What the policy (support.POLICY) grants each matrix user on `m/**`, and who may read the catalog.
MATRIX_RIGHTS: dict[str, set[str]] = {
    "admin": {"pull", "push", "delete"},
    "puller": {"pull"},
    "pusher": {"pull", "push"},
    "deleter": {"delete"},
    "cataloger": set(),
}
CATALOG_USERS = {"admin", "cataloger"}
MATRIX_USERS = ["anonymous", "wrong-password", "puller", "pusher", "deleter", "cataloger"]


def allowed(user: str, call: Call) -> bool:
    """Whether the policy lets `user` make `call` (docs/auth.md: the union of matching rules)."""
    for need in call.needs:
        if need.type == "registry":
            if user not in CATALOG_USERS:
                return False
        elif not set(need.actions) <= MATRIX_RIGHTS[user]:
            return False
    return True


def describe(call: Call, r: httpx.Response) -> str:
    body: Any = r.text[:300] if r.request.method != "HEAD" else ""
    return f"{call.method} {call.url} {call.params}: {r.status_code} {dict(r.headers)} {body}"
