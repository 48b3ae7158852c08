"""`portside garbage-collect` against `docker-registry garbage-collect` (Debian's Go registry) on the same content.

    .venv/bin/python -m benchmarks.gc [--repositories 1000] [--manifests 10000] [--no-report]

Both registries get the same pushes through their HTTP API: per manifest a config and two layers of its own
and one layer of a pool of 100 shared by all (so 40,100 blobs counting the Go registry's manifest blobs), tagged;
then half the manifests are deleted by digest. With both registries stopped (the Go command needs that; Portside
would not), each command runs as a process of its own: a dry run (the mark), then the collection. Measured: wall
time, the process's peak RSS (from wait4), blob files before and after; for Portside also the mark's and the
sweep's own time (the command's `--json` summary; the rest is the interpreter starting and the store
opening), `--sweep-storage` (a walk of every blob file) against the Go dry run (which walks the repositories and
every blob), and, for scale, the time to merely unlink the blob files Portside removes (hard links to them,
made before the collection, unlinked by one thread with their directories). Writes docs/performance.md.
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import json
import os
import random
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import aiohttp
import yaml

from benchmarks.compare import Server, ensure_go_registry, write_report

BEGIN, END = "<!-- BEGIN benchmarks.gc -->", "<!-- END benchmarks.gc -->"
OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
OCI_CONFIG = "application/vnd.oci.image.config.v1+json"
LAYER = "application/vnd.oci.image.layer.v1.tar+gzip"
SHARED = 100


def sha256(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


class Registry(Server):
    """compare.py's server with a collection-friendly Portside configuration: no online collection (the store
    is collected by the command alone, as the Go registry's is) and no review delay (the Go command has none)."""

    def config(self) -> dict[str, Any]:
        config = super().config()
        if self.name == "portside":
            config["gc"] = {"disabled": True, "reviewafter": "0s"}
        return config

    @property
    def config_path(self) -> Path:
        return self.workdir / "config.yml"

    @property
    def blobs_dir(self) -> Path:
        return self.workdir / "data" / "docker" / "registry" / "v2" / "blobs"

    def blob_files(self) -> int:
        return sum(1 for _ in self.blobs_dir.glob("*/*/*/data"))


async def populate(url: str, repositories: int, manifests: int, seed: int = 7) -> list[tuple[str, str]]:
    """Push the content; returns (repository, manifest digest) of every manifest, in push order."""
    rng = random.Random(seed)
    shared = [rng.randbytes(2048) for _ in range(SHARED)]
    per_repo = manifests // repositories
    limit = asyncio.Semaphore(32)
    pushed: list[tuple[str, str]] = []
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=600)) as session:

        async def blob(repo: str, data: bytes) -> None:
            """POST for a session, then PUT the whole blob (the Go registry has no one-request upload)."""
            async with limit:
                async with session.post(f"{url}/v2/{repo}/blobs/uploads/") as r:
                    if r.status != 202:
                        raise RuntimeError(f"upload start in {repo}: {r.status} {await r.text()}")
                    location = r.headers["Location"]
                if location.startswith("/"):
                    location = url + location
                separator = "&" if "?" in location else "?"
                async with session.put(f"{location}{separator}digest={sha256(data)}", data=data) as r:
                    if r.status != 201:
                        raise RuntimeError(f"blob push to {repo}: {r.status} {await r.text()}")

        async def image(repo: str, n: int, unique: list[bytes], common: bytes) -> str:
            config, one, two = unique
            await asyncio.gather(*(blob(repo, data) for data in (config, one, two, common)))
            body = json.dumps(
                {
                    "schemaVersion": 2,
                    "mediaType": OCI_MANIFEST,
                    "config": {"mediaType": OCI_CONFIG, "digest": sha256(config), "size": len(config)},
                    "layers": [{"mediaType": LAYER, "digest": sha256(d), "size": len(d)} for d in (one, two, common)],
                }
            ).encode()
            async with (
                limit,
                session.put(f"{url}/v2/{repo}/manifests/v{n}", data=body, headers={"Content-Type": OCI_MANIFEST}) as r,
            ):
                if r.status != 201:
                    raise RuntimeError(f"manifest push to {repo}: {r.status} {await r.text()}")
            return sha256(body)

        jobs = []
        for i in range(repositories):
            repo = f"bench/r{i:04d}"
            for n in range(per_repo):
                unique = [
                    json.dumps({"os": "linux", "n": f"{i}.{n}"}).encode(),
                    rng.randbytes(1024),
                    rng.randbytes(1024),
                ]
                jobs.append((repo, image(repo, n, unique, shared[rng.randrange(SHARED)])))
        digests = await asyncio.gather(*(job for _, job in jobs))
        pushed = [(repo, digest) for (repo, _), digest in zip(jobs, digests, strict=True)]
    return pushed


async def delete_half(url: str, pushed: list[tuple[str, str]]) -> None:
    limit = asyncio.Semaphore(32)
    async with aiohttp.ClientSession() as session:

        async def delete(repo: str, digest: str) -> None:
            async with limit, session.delete(f"{url}/v2/{repo}/manifests/{digest}") as r:
                if r.status != 202:
                    raise RuntimeError(f"delete {repo}@{digest}: {r.status} {await r.text()}")

        await asyncio.gather(*(delete(repo, digest) for repo, digest in pushed[::2]))


def timed(command: list[str]) -> tuple[float, int, str]:
    """Wall seconds, peak RSS in MiB and standard output of one process."""
    started = time.perf_counter()
    process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    assert process.stdout is not None
    assert process.stderr is not None
    out = process.stdout.read().decode()
    err = process.stderr.read().decode()
    _, status, usage = os.wait4(process.pid, 0)
    seconds = time.perf_counter() - started
    process.returncode = os.waitstatus_to_exitcode(status)
    if process.returncode != 0:
        raise SystemExit(f"{command[:3]} exited {process.returncode}: {err[-1500:]}")
    return seconds, usage.ru_maxrss // 1024, out


def bare_unlink(registry: Registry, digests: list[str], scratch: Path) -> float:
    """Hard links to the blob files `digests` in the blob layout under `scratch`, then unlinked (with their
    directories) by one thread: the least a collection of those blobs must do on this disk."""
    for digest in digests:
        algorithm, encoded = digest.split(":", 1)
        source = registry.blobs_dir / algorithm / encoded[:2] / encoded / "data"
        target = scratch / algorithm / encoded[:2] / encoded
        target.mkdir(parents=True, exist_ok=True)
        os.link(source, target / "data")
    started = time.perf_counter()
    for digest in digests:
        algorithm, encoded = digest.split(":", 1)
        directory = scratch / algorithm / encoded[:2] / encoded
        os.unlink(directory / "data")
        os.rmdir(directory)
    return time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--repositories", type=int, default=1000)
    parser.add_argument("--manifests", type=int, default=10000)
    parser.add_argument("--no-report", action="store_true")
    args = parser.parse_args()
    go_binary = ensure_go_registry()
    rows: dict[str, dict[str, Any]] = {}
    with tempfile.TemporaryDirectory(prefix="portside-gc-bench-") as workdir:
        work = Path(workdir)
        for name in ("go", "portside"):
            registry = Registry(name, work / name, workers=2)
            registry.start()
            try:
                started = time.perf_counter()
                pushed = asyncio.run(populate(registry.url, args.repositories, args.manifests))
                pushing = time.perf_counter() - started
                asyncio.run(delete_half(registry.url, pushed))
            finally:
                registry.stop()
            before = registry.blob_files()
            if name == "go":
                command = [go_binary, "garbage-collect", str(registry.config_path)]
                dry = timed([*command, "--dry-run"])
                run = timed(command)
                rows[name] = {"push": pushing, "files": before, "dry": dry, "run": run, "after": registry.blob_files()}
                continue
            command = [sys.executable, "-m", "portside", "garbage-collect", str(registry.config_path), "--json"]
            dry = timed([*command, "--dry-run"])
            would = [json.loads(line) for line in dry[2].splitlines()]
            doomed = [line["item"] for line in would if line.get("would_remove") == "blob"]
            walk = timed([*command, "--dry-run", "--sweep-storage"])
            unlink = bare_unlink(registry, doomed, work / "scratch")
            shutil.rmtree(work / "scratch", ignore_errors=True)
            run = timed(command)
            summary = json.loads(run[2].splitlines()[-1])
            rows[name] = {
                "push": pushing,
                "files": before,
                "dry": dry,
                "mark": json.loads(dry[2].splitlines()[-1])["seconds"]["mark"],
                "walk": walk,
                "walk_own": json.loads(walk[2].splitlines()[-1])["seconds"].get("storage", 0.0),
                "run": run,
                "sweep": summary["seconds"]["sweep"],
                "removed": summary["summary"],
                "unlink": unlink,
                "after": registry.blob_files(),
            }
    go, ps = rows["go"], rows["portside"]
    lines = [
        f"Content: {args.repositories} repositories, {args.manifests} manifests (a config and two layers each, one of "
        f"{SHARED} shared layers), half deleted by digest; pushed in {go['push']:.0f} s (Go) and "
        f"{ps['push']:.0f} s (Portside). Blob files before: Go {go['files']} (its manifests are blobs), Portside "
        f"{ps['files']}.",
        "",
        "| step | Go | Portside | Go / Portside |",
        "|---|---|---|---|",
        f"| dry run (the mark), command wall time | {go['dry'][0]:.2f} s | {ps['dry'][0]:.2f} s | "
        f"{go['dry'][0] / ps['dry'][0]:.1f}x |",
        f"| dry run, the mark itself (Portside's own timing) | | {ps['mark']:.3f} s | "
        f"{go['dry'][0] / ps['mark']:.1f}x |",
        f"| collection, command wall time | {go['run'][0]:.2f} s ({go['files'] - go['after']} files) | "
        f"{ps['run'][0]:.2f} s ({ps['files'] - ps['after']} files) | {go['run'][0] / ps['run'][0]:.1f}x |",
        f"| collection, the sweep itself | | {ps['sweep']:.2f} s | {go['run'][0] / ps['sweep']:.1f}x |",
        f"| walking every blob file (Go: its dry run; Portside: `--sweep-storage --dry-run`) | {go['dry'][0]:.2f} s | "
        f"{ps['walk'][0]:.2f} s (walk {ps['walk_own']:.2f} s) | {go['dry'][0] / ps['walk'][0]:.1f}x |",
        f"| peak RSS, dry run / collection | {go['dry'][1]} / {go['run'][1]} MiB | "
        f"{ps['dry'][1]} / {ps['run'][1]} MiB | |",
        "",
        f"Merely unlinking the {ps['removed']['blobs']} blob files Portside removes, with their directories, "
        "one thread: "
        f"{ps['unlink']:.2f} s; Portside's sweep took {ps['sweep'] / ps['unlink']:.2f}x that. Portside removed "
        f"{ps['removed']['manifests']} manifests, {ps['removed']['links']} links, {ps['removed']['blobs']} blobs "
        f"({ps['removed']['bytes']} bytes), {ps['removed']['repositories']} repositories.",
    ]
    text = "\n".join(lines)
    print(text)
    if not args.no_report:
        write_report(text, BEGIN, END, heading="## Garbage collection against the Go registry's")
    print(
        yaml.safe_dump(
            {k: {kk: vv for kk, vv in v.items() if kk not in ("dry", "run", "walk")} for k, v in rows.items()}
        )
    )


if __name__ == "__main__":
    main()
