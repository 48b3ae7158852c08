"""Helpers of the pull-through cache tests: the Go registry as an upstream, a client that follows Docker's token
flow, images pushed upstream, and pulls through the cache that check every byte."""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import datetime
import json
import os
import re
import sqlite3
import subprocess
import time
import uuid
from collections.abc import Generator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import bcrypt
import httpx
import yaml

from tests.conftest import free_port
from tests.helpers import OCI_CONFIG, OCI_MANIFEST, sha256

LAYER = "application/vnd.oci.image.layer.v1.tar"
GO_REGISTRY = "/usr/bin/docker-registry"
STALE_WARNING = "110"


def unique(prefix: str = "img") -> str:
    return f"{prefix}{uuid.uuid4().hex[:10]}"


def bcrypt_line(user: str, password: str) -> str:
    """An `htpasswd -B` line (`$2y$`, cost 4 to keep the tests fast)."""
    hashed = bcrypt.hashpw(password.encode(), bcrypt.gensalt(rounds=4)).decode()
    return f"{user}:$2y${hashed[4:]}"


class TokenAuth(httpx.Auth):
    """Basic credentials, sent as they are or exchanged for a bearer token when the registry asks for one."""

    def __init__(self, username: str, password: str) -> None:
        self._basic = httpx.BasicAuth(username, password)
        self._tokens: dict[str, str] = {}

    def auth_flow(self, request: httpx.Request) -> Generator[httpx.Request, httpx.Response, None]:
        response = yield request
        if response.status_code != 401:
            return
        challenge = response.headers.get("WWW-Authenticate", "")
        if challenge.lower().startswith("basic"):
            yield next(self._basic.auth_flow(request))
            return
        params = {m[1].lower(): m[2] for m in re.finditer(r'(\w+)="([^"]*)"', challenge)}
        query = {"service": params.get("service", ""), "scope": params.get("scope", "")}
        token_request = httpx.Request("GET", params["realm"], params=query)
        token_request.headers["Authorization"] = next(self._basic.auth_flow(token_request)).headers["Authorization"]
        answer = yield token_request
        answer.read()
        body = answer.json()
        request.headers["Authorization"] = f"Bearer {body.get('token') or body.get('access_token')}"
        yield request


@dataclass
class Image:
    repository: str
    tag: str
    digest: str
    manifest: bytes
    config: bytes
    layers: list[bytes]

    @property
    def blobs(self) -> dict[str, bytes]:
        return {sha256(b): b for b in [self.config, *self.layers]}

    @property
    def layer_digest(self) -> str:
        return sha256(self.layers[0])


def push_blob(client: httpx.Client, repo: str, data: bytes) -> str:
    digest = sha256(data)
    r = client.post(f"/v2/{repo}/blobs/uploads/")
    assert r.status_code == 202, r.text
    location = r.headers["Location"]
    location += ("&" if "?" in location else "?") + f"digest={digest}"
    r = client.put(location, content=data, headers={"Content-Type": "application/octet-stream"})
    assert r.status_code == 201, r.text
    return digest


def push_image(client: httpx.Client, repo: str, tag: str, layer_sizes: tuple[int, ...] = (4096,)) -> Image:
    """A config, random layers and an OCI manifest tagged `tag`, pushed as a client would."""
    config = json.dumps(
        {"architecture": "amd64", "os": "linux", "rootfs": {"type": "layers", "diff_ids": []}, "n": unique()}
    ).encode()
    layers = [os.urandom(size) for size in layer_sizes]
    for blob in [config, *layers]:
        push_blob(client, repo, blob)
    return push_manifest(client, repo, tag, config, layers)


def push_manifest(client: httpx.Client, repo: str, tag: str, config: bytes, layers: list[bytes]) -> Image:
    manifest = json.dumps(
        {
            "schemaVersion": 2,
            "mediaType": OCI_MANIFEST,
            "config": {"mediaType": OCI_CONFIG, "digest": sha256(config), "size": len(config)},
            "layers": [{"mediaType": LAYER, "digest": sha256(b), "size": len(b)} for b in layers],
        }
    ).encode()
    r = client.put(f"/v2/{repo}/manifests/{tag}", content=manifest, headers={"Content-Type": OCI_MANIFEST})
    assert r.status_code == 201, r.text
    return Image(repo, tag, sha256(manifest), manifest, config, layers)


def get_manifest(client: httpx.Client, repo: str, reference: str) -> httpx.Response:
    return client.get(f"/v2/{repo}/manifests/{reference}", headers={"Accept": OCI_MANIFEST})


def pull(client: httpx.Client, image: Image, reference: str | None = None) -> list[httpx.Response]:
    """The manifest (by tag unless `reference`) and every blob, each checked against what was pushed."""
    r = get_manifest(client, image.repository, reference or image.tag)
    assert r.status_code == 200, (r.status_code, r.text)
    assert r.content == image.manifest
    assert r.headers["Docker-Content-Digest"] == image.digest
    answers = [r]
    for digest, data in image.blobs.items():
        b = client.get(f"/v2/{image.repository}/blobs/{digest}")
        assert b.status_code == 200, (b.status_code, b.text)
        assert sha256(b.content) == digest
        assert b.content == data
        answers.append(b)
    return answers


def stored_blob(root: Path, digest: str) -> Path:
    """Where the filesystem driver keeps a blob's bytes."""
    hexpart = digest.split(":", 1)[1]
    return root / "docker/registry/v2/blobs/sha256" / hexpart[:2] / hexpart / "data"


# ---------------------------------------------------------------------------
# The Go registry


@dataclass
class GoRegistry:
    """Distribution's own registry (`docker-registry`), with htpasswd auth."""

    workdir: Path
    username: str
    password: str
    port: int = 0
    process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self, timeout: float = 20.0) -> GoRegistry:
        self.port = self.port or free_port()
        htpasswd = self.workdir / "htpasswd"
        htpasswd.write_text(bcrypt_line(self.username, self.password) + "\n")
        config: dict[str, Any] = {
            "version": 0.1,
            "log": {"level": "warn", "accesslog": {"disabled": True}},
            "storage": {"filesystem": {"rootdirectory": str(self.workdir / "data")}, "delete": {"enabled": True}},
            "http": {"addr": f"127.0.0.1:{self.port}"},
            "auth": {"htpasswd": {"realm": "go-upstream", "path": str(htpasswd)}},
        }
        path = self.workdir / "config.yml"
        path.write_text(yaml.safe_dump(config))
        log = (self.workdir / "registry.log").open("ab")
        self.process = subprocess.Popen(
            [GO_REGISTRY, "serve", str(path)], stdout=log, stderr=subprocess.STDOUT, start_new_session=True
        )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"docker-registry exited: {(self.workdir / 'registry.log').read_text()[-2000:]}")
            try:
                if httpx.get(f"{self.url}/v2/", timeout=1.0).status_code == 401:
                    return self
            except httpx.HTTPError:
                pass
            time.sleep(0.05)
        raise RuntimeError("docker-registry did not answer")

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()

    def client(self) -> httpx.Client:
        return httpx.Client(base_url=self.url, auth=(self.username, self.password), timeout=30.0)


# ---------------------------------------------------------------------------
# The cache's metadata store


def keep_until(database: str, repository: str) -> dict[str, datetime.datetime | None]:
    """`keep_until` of each manifest of `repository`, read from the store (`database`: a SQLite file or a
    PostgreSQL DSN)."""
    query = (
        "SELECT m.digest, m.keep_until FROM manifests m JOIN repositories r ON r.id = m.repository_id WHERE r.name = {}"
    )
    if not database.startswith("postgresql"):
        with contextlib.closing(sqlite3.connect(database)) as db:
            rows = db.execute(query.format("?"), (repository,)).fetchall()
        return {d: None if k is None else datetime.datetime.fromisoformat(str(k)) for d, k in rows}

    async def fetch() -> list[Any]:
        import asyncpg

        conn = await asyncpg.connect(database)
        try:
            return list(await conn.fetch(query.format("$1"), repository))
        finally:
            await conn.close()

    return {row[0]: row[1] for row in asyncio.run(fetch())}


def as_cached(image: Image, prefix: str) -> Image:
    """`image` as a cache serves it under `prefix`."""
    return dataclasses.replace(image, repository=f"{prefix}/{image.repository}")
