"""skopeo and podman pull through the cache from the Go registry (htpasswd auth), as they are invoked in
tests/clients: plain HTTP (`tls-verify=false`), their own registries.conf, auth file and storage in a temporary
directory. podman also pulls the upstream's name with the cache as its `[[registry.mirror]]`.
"""

from __future__ import annotations

import gzip
import hashlib
import io
import json
import os
import shutil
import subprocess
import tarfile
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from tests.conftest import Registry
from tests.proxy.conftest import Cache
from tests.proxy.relay import Relay
from tests.proxy.support import OCI_CONFIG, OCI_MANIFEST, GoRegistry, Image, push_blob, sha256, unique

pytestmark = [pytest.mark.clients, pytest.mark.slow]

TIMEOUT = 120
GZIP_LAYER = "application/vnd.oci.image.layer.v1.tar+gzip"


@dataclass
class Setup:
    cache: Registry
    relay: Relay
    upstream: GoRegistry
    work: Path
    env: dict[str, str]


def layer_tar(text: str) -> tuple[bytes, str]:
    """A gzipped tar with one file; (its bytes, the diff id of the tar inside)."""
    raw = io.BytesIO()
    with tarfile.open(fileobj=raw, mode="w") as tar:
        data = text.encode()
        info = tarfile.TarInfo("hello.txt")
        info.size = len(data)
        info.mtime = 1_700_000_000
        tar.addfile(info, io.BytesIO(data))
    tar_bytes = raw.getvalue()
    return gzip.compress(tar_bytes, mtime=0), "sha256:" + hashlib.sha256(tar_bytes).hexdigest()


def push_runnable_image(client: httpx.Client, repo: str) -> Image:
    layer, diff_id = layer_tar(f"pulled through the cache {unique()}\n")
    config = json.dumps(
        {
            "architecture": "amd64",
            "os": "linux",
            "config": {"Cmd": ["/hello.txt"]},
            "rootfs": {"type": "layers", "diff_ids": [diff_id]},
        }
    ).encode()
    push_blob(client, repo, config)
    push_blob(client, repo, layer)
    body = {
        "schemaVersion": 2,
        "mediaType": OCI_MANIFEST,
        "config": {"mediaType": OCI_CONFIG, "digest": sha256(config), "size": len(config)},
        "layers": [{"mediaType": GZIP_LAYER, "digest": sha256(layer), "size": len(layer)}],
    }
    data = json.dumps(body).encode()
    r = client.put(f"/v2/{repo}/manifests/v1", content=data, headers={"Content-Type": OCI_MANIFEST})
    assert r.status_code == 201, r.text
    return Image(repo, "v1", sha256(data), data, config, [layer])


@pytest.fixture(scope="module")
def setup(go_cache: Cache) -> Iterator[Setup]:
    cache, relay = go_cache.registry, go_cache.relay
    # podman refuses a run root longer than 50 characters: the client state goes under /tmp
    work = Path(tempfile.mkdtemp(prefix="pxc-", dir="/tmp"))
    (work / "auth.json").write_text("{}")
    (work / "registries.conf").write_text(
        "unqualified-search-registries = []\n"
        f'[[registry]]\nlocation = "{cache.host}"\ninsecure = true\n'
        f'[[registry]]\nprefix = "upstream.invalid/go"\nlocation = "upstream.invalid/go"\n'
        f'[[registry.mirror]]\nlocation = "{cache.host}"\ninsecure = true\n'
    )
    (work / "storage.conf").write_text(
        f'[storage]\ndriver = "vfs"\nrunroot = "{work}/run"\ngraphroot = "{work}/storage"\n'
    )
    environ = {k: v for k, v in os.environ.items() if k not in ("TMPDIR", "STORAGE_OPTS")}
    env = {
        **environ,
        "REGISTRY_AUTH_FILE": str(work / "auth.json"),
        "CONTAINERS_REGISTRIES_CONF": str(work / "registries.conf"),
        "CONTAINERS_STORAGE_CONF": str(work / "storage.conf"),
        "DOCKER_CONFIG": str(work / "docker"),
        "STORAGE_DRIVER": "vfs",
    }
    yield Setup(cache, relay, go_cache.upstream, work, env)
    subprocess.run(podman(work, "rmi", "-a", "-f"), env=env, capture_output=True, timeout=TIMEOUT, check=False)
    shutil.rmtree(work, ignore_errors=True)


def podman(work: Path, *args: str) -> list[str]:
    return [
        "podman",
        "--root", f"{work}/storage",
        "--runroot", f"{work}/run",
        "--storage-driver", "vfs",
        "--tmpdir", f"{work}/libpod",
        "--events-backend", "none",
        "--cgroup-manager", "cgroupfs",
        *args,
    ]  # fmt: skip


def run(setup: Setup, command: list[str]) -> str:
    result = subprocess.run(
        command, env=setup.env, stdin=subprocess.DEVNULL, capture_output=True, text=True, timeout=TIMEOUT, check=False
    )
    assert result.returncode == 0, (
        f"{command}:\n{result.stdout[-2000:]}\n{result.stderr[-3000:]}\n{setup.cache.log_tail()}"
    )
    return result.stdout


@pytest.fixture
def image(setup: Setup) -> Image:
    with setup.upstream.client() as up:
        return push_runnable_image(up, f"lib/{unique()}")


def test_skopeo_copies_through_the_cache(setup: Setup, image: Image) -> None:
    target = setup.work / f"oci-{unique()}"
    ref = f"docker://{setup.cache.host}/{image.repository}:{image.tag}"
    run(setup, ["skopeo", "--registries-conf", str(setup.work / "registries.conf"), "copy",
                "--src-tls-verify=false", ref, f"oci:{target}:v1"])  # fmt: skip
    index = json.loads((target / "index.json").read_text())
    assert index["manifests"][0]["digest"] == image.digest
    for digest, data in image.blobs.items():
        assert (target / "blobs/sha256" / digest.split(":")[1]).read_bytes() == data
    assert setup.relay.count("GET", f"/v2/{image.repository}/blobs/") == len(image.blobs)
    out = run(setup, ["skopeo", "inspect", "--tls-verify=false", "--raw", ref])
    assert out.encode().strip() == image.manifest.strip()
    assert setup.relay.count("GET", f"/v2/{image.repository}/blobs/") == len(image.blobs), "then from the cache"


def test_podman_pulls_through_the_cache(setup: Setup, image: Image) -> None:
    ref = f"{setup.cache.host}/{image.repository}:{image.tag}"
    run(setup, podman(setup.work, "pull", "--tls-verify=false", ref))
    out = run(setup, podman(setup.work, "image", "inspect", "--format", "{{.Digest}}", ref))
    assert out.strip() == image.digest
    assert setup.relay.count("GET", f"/v2/{image.repository}/blobs/") == len(image.blobs)


def test_podman_pulls_through_the_cache_as_a_mirror(setup: Setup, image: Image) -> None:
    """The upstream's own host name does not resolve: only the mirror can have answered."""
    ref = f"upstream.invalid/go/{image.repository}:{image.tag}"
    assert setup.relay.count("GET", f"/v2/{image.repository}/blobs/") == 0
    run(setup, podman(setup.work, "pull", ref))
    out = run(setup, podman(setup.work, "image", "inspect", "--format", "{{.Digest}}", ref))
    assert out.strip() == image.digest
    assert setup.relay.count("GET", f"/v2/{image.repository}/blobs/") == len(image.blobs)
