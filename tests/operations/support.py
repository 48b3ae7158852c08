"""Helpers for the operations tests: requests that remember their `X-Request-Id`, content to push, the
debug server, Prometheus text parsing, JSON log lines and the `portside events` command.

Rules are quoted from Portside's `docs/operations.md` (the contract) and `docs/http-behaviour.md`, and from
Docker Distribution's `docs/content/about/notifications.md` and `configuration.md`.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import bcrypt
import httpx
from prometheus_client.parser import text_string_to_metric_families

from tests.conftest import Registry, free_port

OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
OCI_INDEX = "application/vnd.oci.image.index.v1+json"
OCI_CONFIG = "application/vnd.oci.image.config.v1+json"
OCI_LAYER = "application/vnd.oci.image.layer.v1.tar+gzip"
OCTET_STREAM = "application/octet-stream"
USER_AGENT = "portside-operations-tests/1.0"
RFC3339 = re.compile(r"^\d{4}-\d{2}-\d{2}[Tt]\d{2}:\d{2}:\d{2}(\.\d+)?([Zz]|[+-]\d{2}:\d{2})$")
UUID = re.compile(r"^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$")

T = TypeVar("T")


def sha256(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


def unique_repo(prefix: str = "ops") -> str:
    return f"{prefix}/{uuid.uuid4().hex[:12]}"


def wait_until(probe: Callable[[], T | None], timeout: float, what: str, interval: float = 0.1) -> T:
    """Poll `probe` until it returns something truthy; fail naming `what` after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    last: T | None = None
    while True:
        last = probe()
        if last:
            return last
        if time.monotonic() >= deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what} (last: {last!r})")
        time.sleep(interval)


def debug_addr() -> str:
    return f"127.0.0.1:{free_port()}"


# ---------------------------------------------------------------------------
# Requests that remember their request ids


@dataclass
class Call:
    """One request made to the registry and what the client saw of it."""

    method: str
    path: str
    status: int
    request_id: str
    response: httpx.Response
    started: float = 0.0
    elapsed: float = 0.0


@dataclass
class Client:
    """An httpx client that records every call with the `X-Request-Id` the registry answered."""

    base_url: str
    auth: tuple[str, str] | None = None
    calls: list[Call] = field(default_factory=list)
    fresh_connections: bool = False
    _client: httpx.Client | None = None

    def __post_init__(self) -> None:
        self._client = httpx.Client(
            base_url=self.base_url, timeout=60.0, headers={"User-Agent": USER_AGENT}, auth=self.auth
        )

    def close(self) -> None:
        if self._client is not None:
            self._client.close()

    def request(self, method: str, path: str, **kwargs: Any) -> Call:
        started = time.monotonic()
        if self.fresh_connections:
            with httpx.Client(
                base_url=self.base_url, timeout=60.0, headers={"User-Agent": USER_AGENT}, auth=self.auth
            ) as c:
                r = c.request(method, path, **kwargs)
        else:
            assert self._client is not None
            r = self._client.request(method, path, **kwargs)
        call = Call(
            method=method,
            path=path,
            status=r.status_code,
            request_id=r.headers.get("X-Request-Id", ""),
            response=r,
            started=started,
            elapsed=time.monotonic() - started,
        )
        self.calls.append(call)
        return call

    def push_blob(self, repo: str, data: bytes, **kwargs: Any) -> Call:
        """A monolithic upload: `POST /v2/<name>/blobs/uploads/?digest=<d>` with the body."""
        call = self.request(
            "POST", f"/v2/{repo}/blobs/uploads/", params={"digest": sha256(data)}, content=data, **kwargs
        )
        assert call.status == 201, call.response.text
        return call

    def push_blob_chunked(self, repo: str, data: bytes) -> Call:
        """POST, PATCH, then `PUT <location>?digest=<d>`: the PUT completes the upload."""
        start = self.request("POST", f"/v2/{repo}/blobs/uploads/")
        assert start.status == 202, start.response.text
        location = start.response.headers["Location"]
        patch = self.request(
            "PATCH",
            location,
            content=data,
            headers={"Content-Type": OCTET_STREAM, "Content-Range": f"0-{len(data) - 1}"},
        )
        assert patch.status == 202, patch.response.text
        put = self.request("PUT", patch.response.headers["Location"], params={"digest": sha256(data)})
        assert put.status == 201, put.response.text
        return put

    def push_manifest(
        self, repo: str, body: bytes, reference: str | None = None, headers: dict[str, str] | None = None
    ) -> Call:
        ref = reference or sha256(body)
        call = self.request(
            "PUT",
            f"/v2/{repo}/manifests/{ref}",
            content=body,
            headers={"Content-Type": OCI_MANIFEST, **(headers or {})},
        )
        assert call.status == 201, call.response.text
        return call


@dataclass
class Image:
    """An OCI image pushed with `push_image`: its blobs, manifest and the calls that pushed them."""

    repo: str
    config: bytes
    layers: list[bytes]
    manifest: bytes
    tag: str | None
    calls: list[Call]

    @property
    def digest(self) -> str:
        return sha256(self.manifest)

    @property
    def blob_digests(self) -> list[str]:
        return [sha256(self.config), *(sha256(b) for b in self.layers)]


def image_manifest(config: bytes, layers: Iterable[bytes]) -> bytes:
    return json.dumps(
        {
            "schemaVersion": 2,
            "mediaType": OCI_MANIFEST,
            "config": {"mediaType": OCI_CONFIG, "digest": sha256(config), "size": len(config)},
            "layers": [{"mediaType": OCI_LAYER, "digest": sha256(b), "size": len(b)} for b in layers],
        }
    ).encode()


def new_config() -> bytes:
    return json.dumps({"architecture": "amd64", "os": "linux", "nonce": uuid.uuid4().hex}).encode()


def push_image(client: Client, repo: str, tag: str | None = None, layers: int = 1, layer_size: int = 1024) -> Image:
    """Config and layers pushed monolithically, then the manifest by `tag` (or by digest)."""
    config = new_config()
    blobs = [os.urandom(layer_size + i) for i in range(layers)]
    calls = [client.push_blob(repo, config), *(client.push_blob(repo, b) for b in blobs)]
    manifest = image_manifest(config, blobs)
    calls.append(client.push_manifest(repo, manifest, tag))
    return Image(repo=repo, config=config, layers=blobs, manifest=manifest, tag=tag, calls=calls)


# ---------------------------------------------------------------------------
# Authentication


def write_htpasswd(path: Path, users: dict[str, str]) -> Path:
    """bcrypt entries, the only kind Distribution's htpasswd accepts."""
    lines = [f"{u}:{bcrypt.hashpw(p.encode(), bcrypt.gensalt(rounds=5)).decode()}" for u, p in users.items()]
    path.write_text("\n".join(lines) + "\n")
    return path


# ---------------------------------------------------------------------------
# Prometheus


@dataclass
class Scrape:
    """One scrape of the metrics endpoint: sample values by (name, labels) and `# TYPE` declarations."""

    text: str
    samples: dict[tuple[str, frozenset[tuple[str, str]]], float]
    types: dict[str, str]

    def value(self, name: str, **labels: str) -> float:
        """The sum of every sample called `name` whose labels include `labels` (0 when there is none)."""
        want = set(labels.items())
        return sum(v for (n, ls), v in self.samples.items() if n == name and want <= ls)

    def label_values(self, name: str, label: str) -> set[str]:
        return {dict(ls)[label] for (n, ls) in self.samples if n == name and label in dict(ls)}

    def type_of(self, family: str) -> str | None:
        """The declared type of a family; counters may be declared with or without their `_total`."""
        for name in (family, family.removesuffix("_total"), f"{family}_total"):
            if name in self.types:
                return self.types[name]
        return None


def parse_metrics(text: str) -> Scrape:
    samples: dict[tuple[str, frozenset[tuple[str, str]]], float] = {}
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            key = (s.name, frozenset(s.labels.items()))
            samples[key] = samples.get(key, 0.0) + float(s.value)
    types = {}
    for line in text.splitlines():
        parts = line.split()
        if len(parts) == 4 and parts[:2] == ["#", "TYPE"]:
            types[parts[2]] = parts[3]
    return Scrape(text=text, samples=samples, types=types)


def scrape(debug: str, path: str = "/metrics") -> Scrape:
    r = httpx.get(f"http://{debug}{path}", timeout=10.0)
    assert r.status_code == 200, f"GET {path} on the debug server: {r.status_code} {r.text[:300]}"
    return parse_metrics(r.text)


# ---------------------------------------------------------------------------
# Logs


def json_log_lines(reg: Registry) -> list[dict[str, Any]]:
    """Every line of the server's output that is a JSON object."""
    out = []
    for line in reg.log_path.read_text(errors="replace").splitlines():
        try:
            doc = json.loads(line)
        except ValueError:
            continue
        if isinstance(doc, dict):
            out.append(doc)
    return out


def access_lines(reg: Registry, request_id: str) -> list[dict[str, Any]]:
    return [d for d in json_log_lines(reg) if d.get("request_id") == request_id]


# ---------------------------------------------------------------------------
# The `portside events` command


def portside(*args: str, timeout: float = 60.0) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "portside", *args], capture_output=True, text=True, timeout=timeout, check=False
    )


def events_list(reg: Registry, *options: str) -> list[dict[str, Any]]:
    """`portside events list CONFIG [options]`: one JSON object per line (docs/operations.md)."""
    done = portside("events", "list", str(reg.config_path), *options)
    assert done.returncode == 0, f"portside events list {' '.join(options)}: {done.returncode}\n{done.stderr}"
    rows = []
    for line in done.stdout.splitlines():
        if not line.strip():
            continue
        row = json.loads(line)
        assert isinstance(row, dict), f"events list printed a line that is not a JSON object: {line!r}"
        rows.append(row)
    return rows


def events_replay(reg: Registry, *options: str) -> subprocess.CompletedProcess[str]:
    done = portside("events", "replay", str(reg.config_path), *options)
    assert done.returncode == 0, f"portside events replay {' '.join(options)}: {done.returncode}\n{done.stderr}"
    return done
