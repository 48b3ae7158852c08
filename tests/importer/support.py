"""Helpers of the import tests: the Go reference registry (Debian's `docker-registry`) writing a store, the
`portside import` command, and what a store and a metadata database hold.

Rules are quoted from docs/operations.md ("Migrating from Docker Distribution"), the contract of
`portside import`.
"""

from __future__ import annotations

import hashlib
import json
import os
import signal
import sqlite3
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import yaml

from tests.conftest import free_port

GO_REGISTRY = "/usr/bin/docker-registry"
ACCEPT = ", ".join(
    [
        "application/vnd.oci.image.manifest.v1+json",
        "application/vnd.oci.image.index.v1+json",
        "application/vnd.docker.distribution.manifest.v2+json",
        "application/vnd.docker.distribution.manifest.list.v2+json",
    ]
)
V2 = Path("docker/registry/v2")


def sha256(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


@dataclass
class GoRegistry:
    """A running `docker-registry serve` on 127.0.0.1 with the given storage section."""

    workdir: Path
    storage: dict[str, Any]
    port: int = field(default_factory=free_port)
    process: subprocess.Popen[bytes] | None = None

    @property
    def host(self) -> str:
        return f"127.0.0.1:{self.port}"

    @property
    def url(self) -> str:
        return f"http://{self.host}"

    def start(self, timeout: float = 30.0) -> GoRegistry:
        if not os.path.exists(GO_REGISTRY):
            raise RuntimeError("docker-registry is not installed (apt-get install docker-registry; scripts/test does)")
        config = {
            "version": 0.1,
            "log": {"level": "warn", "accesslog": {"disabled": True}},
            "storage": {**self.storage, "delete": {"enabled": True}, "redirect": {"disable": True}},
            "http": {"addr": self.host},
        }
        path = self.workdir / "go-registry.yml"
        path.write_text(yaml.safe_dump(config))
        log = (self.workdir / "go-registry.log").open("ab")
        # aws-sdk-go refuses a custom CA bundle with the registry's own HTTP transport; moto is plain HTTP.
        env = {k: v for k, v in os.environ.items() if k != "AWS_CA_BUNDLE"}
        self.process = subprocess.Popen(
            [GO_REGISTRY, "serve", str(path)], stdout=log, stderr=subprocess.STDOUT, start_new_session=True, env=env
        )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"docker-registry exited: {(self.workdir / 'go-registry.log').read_text()[-2000:]}")
            try:
                httpx.get(f"{self.url}/v2/", timeout=1.0)
                return self
            except httpx.HTTPError:
                time.sleep(0.05)
        raise RuntimeError("docker-registry did not answer")

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGTERM)
            try:
                self.process.wait(10)
            except subprocess.TimeoutExpired:
                os.killpg(self.process.pid, signal.SIGKILL)
                self.process.wait()


def portside_config(workdir: Path, storage: dict[str, Any], dsn: str | None = None) -> dict[str, Any]:
    """A Portside configuration over the same storage as the Go registry (the README's promise)."""
    return {
        "version": 0.1,
        "log": {"level": "warn", "accesslog": {"disabled": True}},
        "storage": {**storage, "delete": {"enabled": True}, "redirect": {"disable": True}},
        "http": {"addr": f"127.0.0.1:{free_port()}"},
        "database": {"dsn": dsn or f"sqlite:///{workdir / 'portside.db'}"},
    }


def write_config(workdir: Path, config: dict[str, Any], name: str = "portside.yml") -> Path:
    path = workdir / name
    path.write_text(yaml.safe_dump(config))
    return path


@dataclass
class ImportRun:
    returncode: int
    events: list[dict[str, Any]]
    stderr: str

    @property
    def summary(self) -> dict[str, Any]:
        assert self.events, "no output"
        assert self.events[-1]["event"] == "summary", self.events[-3:]
        return self.events[-1]

    @property
    def skipped(self) -> set[tuple[str, str, str, str]]:
        return {(e["repository"], e["kind"], e["item"], e["reason"]) for e in self.events if e["event"] == "skipped"}

    @property
    def repositories(self) -> dict[str, dict[str, Any]]:
        return {e["name"]: e for e in self.events if e["event"] == "repository"}


def run_import(config: Path, *options: str) -> ImportRun:
    """`portside import CONFIG --json [options]`: JSON lines, the summary last (docs/operations.md).

    The command runs in this process (click's runner), which spares each run an interpreter start; the
    kill test runs it as a process of its own."""
    from click.testing import CliRunner

    from portside.cli import main

    result = CliRunner().invoke(main, ["import", str(config), "--json", *options], catch_exceptions=False)
    events = [json.loads(line) for line in result.stdout.splitlines() if line.strip()]
    assert result.exit_code == 0, (
        f"portside import: {result.exit_code}\n{result.stderr[-3000:]}\n{result.stdout[-2000:]}"
    )
    return ImportRun(result.exit_code, events, result.stderr)


# ---------------------------------------------------------------------------------------- what stores hold


def tree_snapshot(root: Path) -> dict[str, tuple[int, int, str]]:
    """Every file under a filesystem store's `docker/` tree: size, modification time and content hash."""
    found: dict[str, tuple[int, int, str]] = {}
    for path in sorted((root / "docker").rglob("*")):
        if path.is_file():
            st = path.stat()
            found[str(path.relative_to(root))] = (st.st_size, st.st_mtime_ns, sha256(path.read_bytes()))
        elif path.is_dir():
            found[str(path.relative_to(root)) + "/"] = (0, path.stat().st_mtime_ns, "")
    return found


def bucket_snapshot(endpoint: str, bucket: str) -> dict[str, tuple[int, str, str]]:
    """Every object in an S3 bucket: size, ETag and modification time."""
    import boto3

    from tests.object_storage import ACCESS_KEY, SECRET_KEY

    client = boto3.client(
        "s3",
        endpoint_url=endpoint,
        aws_access_key_id=ACCESS_KEY,
        aws_secret_access_key=SECRET_KEY,
        region_name="us-east-1",
    )
    found: dict[str, tuple[int, str, str]] = {}
    for page in client.get_paginator("list_objects_v2").paginate(Bucket=bucket):
        for obj in page.get("Contents", []):
            found[obj["Key"]] = (obj["Size"], obj["ETag"], obj["LastModified"].isoformat())
    return found


TABLES = ("repositories", "blobs", "repository_blobs", "manifests", "manifest_references", "tags")


def sqlite_rows(db: Path) -> dict[str, list[tuple[Any, ...]]]:
    """Every row of the metadata tables, timestamps and ids included: equal dumps mean nothing was written."""
    with sqlite3.connect(db) as conn:
        return {t: sorted(conn.execute(f"SELECT * FROM {t}").fetchall(), key=repr) for t in TABLES}


def sqlite_content(db: Path) -> dict[str, set[tuple[Any, ...]]]:
    """What the store records, without ids and times: comparable between two databases."""
    with sqlite3.connect(db) as conn:
        q = conn.execute
        return {
            "repositories": set(q("SELECT name FROM repositories")),
            "blobs": set(q("SELECT digest, size FROM blobs")),
            "links": set(
                q("SELECT r.name, b.digest FROM repository_blobs b JOIN repositories r ON r.id = b.repository_id")
            ),
            "manifests": set(
                q(
                    "SELECT r.name, m.digest, m.media_type, m.size, m.payload, m.artifact_type, m.subject_digest, "
                    "m.annotations FROM manifests m JOIN repositories r ON r.id = m.repository_id"
                )
            ),
            "references": set(
                q(
                    "SELECT r.name, m.digest, x.digest, x.kind FROM manifest_references x "
                    "JOIN manifests m ON m.id = x.manifest_id JOIN repositories r ON r.id = m.repository_id"
                )
            ),
            "tags": set(
                q(
                    "SELECT r.name, t.name, m.digest FROM tags t JOIN manifests m ON m.id = t.manifest_id "
                    "JOIN repositories r ON r.id = t.repository_id"
                )
            ),
        }


# ---------------------------------------------------------------------------------------- registries over HTTP


def catalog(url: str) -> list[str]:
    r = httpx.get(f"{url}/v2/_catalog", params={"n": 1000}, timeout=30)
    assert r.status_code == 200, r.text
    return list(r.json()["repositories"] or [])


def tag_list(url: str, repo: str) -> list[str]:
    r = httpx.get(f"{url}/v2/{repo}/tags/list", params={"n": 1000}, timeout=30)
    assert r.status_code == 200, (repo, r.status_code, r.text)
    return sorted(r.json()["tags"] or [])


def raw_manifest(url: str, repo: str, reference: str) -> httpx.Response:
    return httpx.get(f"{url}/v2/{repo}/manifests/{reference}", headers={"Accept": ACCEPT}, timeout=30)


def closure(url: str, repo: str, reference: str) -> dict[str, bytes]:
    """Every manifest and blob a reference leads to, by digest, fetched from a registry over HTTP."""
    found: dict[str, bytes] = {}

    def visit(ref: str) -> None:
        r = raw_manifest(url, repo, ref)
        assert r.status_code == 200, (repo, ref, r.status_code, r.text)
        found[sha256(r.content)] = r.content
        body = json.loads(r.content)
        for child in body.get("manifests", []):
            visit(child["digest"])
        for desc in [body["config"], *body.get("layers", [])] if "config" in body else []:
            blob = httpx.get(f"{url}/v2/{repo}/blobs/{desc['digest']}", timeout=30, follow_redirects=True)
            assert blob.status_code == 200, (repo, desc, blob.status_code)
            found[desc["digest"]] = blob.content

    visit(reference)
    return found


def skopeo(*args: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    done = subprocess.run(
        ["skopeo", *args], capture_output=True, text=True, timeout=timeout, check=False, stdin=subprocess.DEVNULL
    )
    assert done.returncode == 0, f"skopeo {' '.join(args)}: {done.stderr[-2000:]}"
    return done


def copy(source: str, dest: str, *extra: str) -> None:
    skopeo("copy", "--retry-times", "0", "--src-tls-verify=false", "--dest-tls-verify=false", *extra, source, dest)


def dir_contents(path: Path) -> dict[str, bytes]:
    """What `skopeo copy ... dir:PATH` wrote, by digest: blobs are named by their hex, instances of an index
    `<hex>.manifest.json`, the top manifest `manifest.json` (returned under the key "manifest.json")."""
    found: dict[str, bytes] = {}
    for file in path.iterdir():
        if file.name == "version":
            continue
        data = file.read_bytes()
        if file.name == "manifest.json":
            found["manifest.json"] = data
        else:
            digest = "sha256:" + file.name.removesuffix(".manifest.json")
            assert sha256(data) == digest, f"{file.name} does not hold the bytes its name says"
            found[digest] = data
    return found


# ---------------------------------------------------------------------------------------- an OCI layout for skopeo


def _tar_gz(files: dict[str, bytes]) -> tuple[bytes, bytes]:
    """(gzip of a tar, the tar) with fixed metadata, so the content alone decides the digests."""
    import gzip
    import io
    import tarfile

    raw = io.BytesIO()
    with tarfile.open(fileobj=raw, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for name, data in sorted(files.items()):
            info = tarfile.TarInfo(name)
            info.size, info.mtime, info.mode = len(data), 0, 0o644
            tar.addfile(info, io.BytesIO(data))
    return gzip.compress(raw.getvalue(), mtime=0), raw.getvalue()


@dataclass
class Layout:
    path: Path
    manifests: dict[str, str] = field(default_factory=dict)  # ref name -> digest


def build_layout(path: Path, nonce: str) -> Layout:
    """An OCI image layout with images `amd64` and `arm64` (a shared base layer and one of their own) and an
    index `multi` over both."""
    blobs = path / "blobs" / "sha256"
    blobs.mkdir(parents=True)
    (path / "oci-layout").write_text('{"imageLayoutVersion":"1.0.0"}')
    layout = Layout(path)

    def blob(data: bytes, media_type: str, **extra: Any) -> dict[str, Any]:
        digest = sha256(data)
        (blobs / digest.split(":")[1]).write_bytes(data)
        return {"mediaType": media_type, "digest": digest, "size": len(data), **extra}

    base, base_tar = _tar_gz({"hello.txt": f"hello {nonce}\n".encode(), "data.bin": os.urandom(64 * 1024)})
    base_desc = blob(base, "application/vnd.oci.image.layer.v1.tar+gzip")
    entries: list[dict[str, Any]] = []
    refs: list[dict[str, Any]] = []
    for arch in ("amd64", "arm64"):
        own, own_tar = _tar_gz({"etc/release": f"{arch} {nonce}\n".encode()})
        config = {
            "architecture": arch,
            "os": "linux",
            "config": {"Labels": {"nonce": nonce}},
            "rootfs": {"type": "layers", "diff_ids": [sha256(base_tar), sha256(own_tar)]},
        }
        manifest = {
            "schemaVersion": 2,
            "mediaType": "application/vnd.oci.image.manifest.v1+json",
            "config": blob(json.dumps(config).encode(), "application/vnd.oci.image.config.v1+json"),
            "layers": [base_desc, blob(own, "application/vnd.oci.image.layer.v1.tar+gzip")],
        }
        desc = blob(json.dumps(manifest).encode(), manifest["mediaType"])
        layout.manifests[arch] = desc["digest"]
        entries.append({**desc, "platform": {"architecture": arch, "os": "linux"}})
        refs.append({**desc, "annotations": {"org.opencontainers.image.ref.name": arch}})
    index = {"schemaVersion": 2, "mediaType": "application/vnd.oci.image.index.v1+json", "manifests": entries}
    index_desc = blob(json.dumps(index).encode(), index["mediaType"])
    layout.manifests["multi"] = index_desc["digest"]
    refs.append({**index_desc, "annotations": {"org.opencontainers.image.ref.name": "multi"}})
    (path / "index.json").write_text(json.dumps({"schemaVersion": 2, "manifests": refs}))
    return layout


def wait_for(probe: Any, timeout: float, what: str) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        value = probe()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what}")
        time.sleep(0.05)
