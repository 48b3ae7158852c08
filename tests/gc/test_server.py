"""Garbage collection on a running Portside: online collection in the workers, and the commands beside it."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import httpx

from tests.conftest import RegistryFactory
from tests.helpers import push_blob, push_image, unique_repo
from tests.operations.support import debug_addr, scrape, wait_until


def portside(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "portside", *args], capture_output=True, text=True, timeout=120, check=False
    )


def blob_files(root: Path) -> set[str]:
    base = root / "docker" / "registry" / "v2" / "blobs"
    return {f"{p.parent.parent.parent.name}:{p.parent.name}" for p in base.glob("*/*/*/data")}


def test_online_collection_reclaims_a_deleted_image(registry_factory: RegistryFactory) -> None:
    debug = debug_addr()
    fast = {"reviewafter": "1s", "maxbackoff": "1s", "blobs": {"interval": "0.2s"}, "manifests": {"interval": "0.2s"}}
    reg = registry_factory({"gc": fast, "http": {"debug": {"addr": debug, "prometheus": {"enabled": True}}}}, workers=2)
    with httpx.Client(base_url=reg.url, timeout=30) as client:
        keep = unique_repo("gc")
        kept, _ = push_image(client, keep, tag="v1")
        repo = unique_repo("gc")
        digest, _ = push_image(client, repo, tag="v1", layers=2)
        before = blob_files(reg.root)
        assert client.delete(f"/v2/{repo}/manifests/{digest}").status_code == 202

        def reclaimed() -> bool:
            catalog = client.get("/v2/_catalog").json()["repositories"]
            return repo not in catalog and len(blob_files(reg.root)) == len(before) - 3

        wait_until(reclaimed, 60, "the image's config and layers collected and its repository gone")
        assert client.get(f"/v2/{keep}/manifests/v1").status_code == 200
        assert client.get(f"/v2/{keep}/manifests/{kept}").status_code == 200
    metrics = scrape(debug)
    assert metrics.value("portside_gc_deleted_total", kind="blob") >= 3
    assert metrics.value("portside_gc_reclaimed_bytes_total") > 0
    assert metrics.value("portside_gc_queue_size", queue="blobs") == 0


def test_the_command_collects_beside_a_running_registry(registry_factory: RegistryFactory) -> None:
    reg = registry_factory({"gc": {"disabled": True, "reviewafter": "0s"}}, workers=2)
    config = str(reg.config_path)
    with httpx.Client(base_url=reg.url, timeout=30) as client:
        keep = unique_repo("cli")
        push_image(client, keep, tag="v1")
        repo = unique_repo("cli")
        digest, _ = push_image(client, repo, tag="v1")
        loose = push_blob(client, unique_repo("cli"), b"uploaded, never referenced")
        client.delete(f"/v2/{repo}/manifests/{digest}")
        files = blob_files(reg.root)

        dry = portside("garbage-collect", config, "--dry-run", "--json")
        assert dry.returncode == 0, dry.stderr
        lines = [json.loads(line) for line in dry.stdout.splitlines()]
        assert lines[-1]["summary"] == {
            "manifests": 0,
            "links": 3,
            "blobs": 3,
            "bytes": lines[-1]["summary"]["bytes"],
            "repositories": 2,
            "leftovers": 0,
            "failures": 0,
        }
        assert lines[-1]["dry_run"] is True
        assert {line["item"] for line in lines[:-1] if line.get("would_remove") == "blob"} >= {loose}
        assert blob_files(reg.root) == files, "a dry run removes nothing"

        done = portside("garbage-collect", config)
        assert done.returncode == 0, done.stderr
        assert done.stdout.strip() == "removed 0 manifest(s), 3 link(s), 3 blob(s) " + (
            f"({lines[-1]['summary']['bytes']} bytes), 2 repositories"
        )
        assert len(blob_files(reg.root)) == len(files) - 3
        assert sorted(client.get("/v2/_catalog").json()["repositories"]) == [keep]
        assert client.get(f"/v2/{keep}/manifests/v1").status_code == 200

        healthy = portside("fsck", config, "--verify-digests")
        assert healthy.returncode == 0, healthy.stdout
        assert "healthy" in healthy.stdout
        victim = sorted(blob_files(reg.root))[0]
        algorithm, encoded = victim.split(":")
        (reg.root / "docker" / "registry" / "v2" / "blobs" / algorithm / encoded[:2] / encoded / "data").unlink()
        broken = portside("fsck", config, "--json")
        assert broken.returncode == 1
        findings = [json.loads(line) for line in broken.stdout.splitlines()]
        assert {"problem": "missing", "item": victim, "detail": "recorded, but storage has no bytes"} in findings
