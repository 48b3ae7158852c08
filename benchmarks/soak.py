"""Garbage collection under load: clients push, pull, tag and delete while online collection runs with a short
review delay and `portside garbage-collect` runs now and then.

    .venv/bin/python -m benchmarks.soak --minutes 30 [--clients 16] [--workers 2] [--database postgresql://...]

Each client owns a few repositories (so its own view of what it pushed is the truth) and pushes images whose
layers come from a pool shared by every client, so collection always races pushes of blobs other repositories
hold or have just let go. Checked, and printed as one JSON line:

- `errors`: requests answered otherwise than the API says they must be (a 5xx, a push refused, a pull of an
  image the client holds that fails or returns other bytes); the target is 0;
- `lost`: acknowledged images the client did not delete that cannot be pulled back whole at the end; target 0;
- after the clients stop and a last collection ran past the review delay, `stored_exact`: the blob files in
  storage are exactly the configs and layers of the manifests that remain, and `fsck` finds nothing wrong.
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import json
import os
import random
import signal
import socket
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp
import yaml

OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
OCI_CONFIG = "application/vnd.oci.image.config.v1+json"
LAYER = "application/vnd.oci.image.layer.v1.tar+gzip"
REVIEW_AFTER = 5.0


def sha256(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class Image:
    digest: str
    body: bytes
    blobs: dict[str, bytes]
    tags: set[str] = field(default_factory=set)


@dataclass
class Tally:
    operations: dict[str, int] = field(default_factory=dict)
    errors: list[str] = field(default_factory=list)

    def count(self, what: str) -> None:
        self.operations[what] = self.operations.get(what, 0) + 1

    def error(self, what: str) -> None:
        self.errors.append(what[:300])


class Client:
    """One client: its repositories, the images it holds in them, and what it does next."""

    def __init__(self, n: int, url: str, session: aiohttp.ClientSession, pool: list[bytes], tally: Tally) -> None:
        self.url = url
        self.session = session
        self.pool = pool
        self.tally = tally
        self.repos = [f"soak/c{n}/r{i}" for i in range(2)]
        self.images: dict[str, dict[str, Image]] = {repo: {} for repo in self.repos}
        self.rng = random.Random(n)

    async def _expect(self, method: str, path: str, statuses: tuple[int, ...], what: str, **kwargs: Any) -> Any:
        async with self.session.request(method, self.url + path, **kwargs) as response:
            body = await response.read()
            if response.status not in statuses:
                self.tally.error(f"{what}: {method} {path[:80]} answered {response.status}: {body[:200]!r}")
                return None
            return response.status, body, response.headers

    async def push_blob(self, repo: str, data: bytes) -> bool:
        digest = sha256(data)
        head = await self._expect("HEAD", f"/v2/{repo}/blobs/{digest}", (200, 404), "blob check")
        if head is None:
            return False
        if head[0] == 200:
            return True  # the registry said it has it: the manifest push that follows must find it
        done = await self._expect(
            "POST", f"/v2/{repo}/blobs/uploads/", (201,), "blob push", params={"digest": digest}, data=data
        )
        return done is not None

    async def push(self) -> None:
        repo = self.rng.choice(self.repos)
        config = json.dumps({"os": "linux", "nonce": os.urandom(8).hex()}).encode()
        layers = self.rng.sample(self.pool, 2)
        blobs = {sha256(b): b for b in (config, *layers)}
        for data in blobs.values():
            if not await self.push_blob(repo, data):
                return
        manifest = {
            "schemaVersion": 2,
            "mediaType": OCI_MANIFEST,
            "config": {"mediaType": OCI_CONFIG, "digest": sha256(config), "size": len(config)},
            "layers": [{"mediaType": LAYER, "digest": sha256(b), "size": len(b)} for b in layers],
        }
        body = json.dumps(manifest).encode()
        tag = f"t{self.rng.randrange(6)}"
        put = await self._expect(
            "PUT",
            f"/v2/{repo}/manifests/{tag}",
            (201,),
            "manifest push",
            data=body,
            headers={"Content-Type": OCI_MANIFEST},
        )
        if put is None:
            return
        for image in self.images[repo].values():
            image.tags.discard(tag)
        image = self.images[repo].setdefault(sha256(body), Image(sha256(body), body, blobs))
        image.tags.add(tag)
        self.tally.count("push")

    async def pull(self) -> None:
        repo = self.rng.choice(self.repos)
        if not self.images[repo]:
            return
        image = self.rng.choice(list(self.images[repo].values()))
        if not await self.verify(repo, image):
            return
        self.tally.count("pull")

    async def verify(self, repo: str, image: Image) -> bool:
        got = await self._expect(
            "GET", f"/v2/{repo}/manifests/{image.digest}", (200,), "manifest pull", headers={"Accept": OCI_MANIFEST}
        )
        if got is None:
            return False
        if got[1] != image.body:
            self.tally.error(f"manifest pull: {repo}@{image.digest} came back different")
            return False
        for digest in image.blobs:
            blob = await self._expect("GET", f"/v2/{repo}/blobs/{digest}", (200,), "blob pull")
            if blob is None:
                return False
            if sha256(blob[1]) != digest:
                self.tally.error(f"blob pull: {repo} {digest} came back different")
                return False
        return True

    async def retag(self) -> None:
        repo = self.rng.choice(self.repos)
        if not self.images[repo]:
            return
        image = self.rng.choice(list(self.images[repo].values()))
        tag = f"t{self.rng.randrange(6)}"
        put = await self._expect(
            "PUT",
            f"/v2/{repo}/manifests/{tag}",
            (201,),
            "retag",
            data=image.body,
            headers={"Content-Type": OCI_MANIFEST},
        )
        if put is None:
            return
        for other in self.images[repo].values():
            other.tags.discard(tag)
        image.tags.add(tag)
        self.tally.count("retag")

    async def untag(self) -> None:
        repo = self.rng.choice(self.repos)
        tagged = [(i, t) for i in self.images[repo].values() for t in i.tags]
        if not tagged:
            return
        image, tag = self.rng.choice(tagged)
        if await self._expect("DELETE", f"/v2/{repo}/manifests/{tag}", (202,), "tag delete") is not None:
            image.tags.discard(tag)
            self.tally.count("untag")

    async def delete(self) -> None:
        repo = self.rng.choice(self.repos)
        if not self.images[repo]:
            return
        image = self.rng.choice(list(self.images[repo].values()))
        if await self._expect("DELETE", f"/v2/{repo}/manifests/{image.digest}", (202,), "manifest delete"):
            del self.images[repo][image.digest]
            self.tally.count("delete")

    async def run(self, deadline: float) -> None:
        actions = [self.push] * 4 + [self.pull] * 4 + [self.retag, self.untag, self.delete]
        while time.monotonic() < deadline:
            try:
                await self.rng.choice(actions)()
            except (aiohttp.ClientError, TimeoutError) as exc:
                self.tally.error(f"transport: {type(exc).__name__}: {exc}")


@dataclass
class Server:
    workdir: Path
    database: str
    workers: int
    port: int = field(default_factory=free_port)
    process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def root(self) -> Path:
        return self.workdir / "data"

    @property
    def config(self) -> Path:
        return self.workdir / "config.yml"

    def write_config(self) -> None:
        config: dict[str, Any] = {
            "version": 0.1,
            "log": {"level": "warn", "accesslog": {"disabled": True}},
            "storage": {"filesystem": {"rootdirectory": str(self.root)}, "delete": {"enabled": True}},
            "http": {"addr": f"127.0.0.1:{self.port}"},
            "gc": {
                "reviewafter": f"{REVIEW_AFTER}s",
                "maxbackoff": "1s",
                "blobs": {"interval": "0.2s"},
                "manifests": {"interval": "0.2s"},
            },
        }
        if self.database:
            config["database"] = {"dsn": self.database}
        self.config.write_text(yaml.safe_dump(config))

    def start(self) -> None:
        self.write_config()
        log = (self.workdir / "server.log").open("ab")
        self.process = subprocess.Popen(
            [sys.executable, "-m", "portside", "serve", str(self.config), "--workers", str(self.workers)],
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=0.5):
                    return
            except OSError:
                time.sleep(0.1)
        raise SystemExit("portside did not start")

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGTERM)
            self.process.wait(30)

    def portside(self, *args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "portside", *args, str(self.config)], capture_output=True, text=True, check=False
        )

    def stored_blobs(self) -> set[str]:
        base = self.root / "docker" / "registry" / "v2" / "blobs"
        return {f"{p.parent.parent.parent.name}:{p.parent.name}" for p in base.glob("*/*/*/data")}


async def soak(minutes: float, clients: int, server: Server, every: float) -> dict[str, Any]:
    pool = [os.urandom(random.randrange(16, 256) * 1024) for _ in range(24)]
    tally = Tally()
    deadline = time.monotonic() + minutes * 60
    collections = 0
    stop = asyncio.Event()

    async def collect_now_and_then() -> None:
        nonlocal collections
        while not stop.is_set():
            try:
                await asyncio.wait_for(stop.wait(), every)
            except TimeoutError:
                done = await asyncio.to_thread(server.portside, "garbage-collect")
                collections += 1
                if done.returncode != 0:
                    tally.error(f"garbage-collect exited {done.returncode}: {done.stderr[-300:]}")

    timeout = aiohttp.ClientTimeout(total=120)
    async with aiohttp.ClientSession(timeout=timeout) as session:
        workers = [Client(n, server.url, session, pool, tally) for n in range(clients)]
        collector = asyncio.create_task(collect_now_and_then())
        await asyncio.gather(*(w.run(deadline) for w in workers))
        stop.set()
        await collector
        lost = []
        for worker in workers:
            for repo, images in worker.images.items():
                for image in images.values():
                    if not await worker.verify(repo, image):
                        lost.append(f"{repo}@{image.digest}")
        await asyncio.sleep(REVIEW_AFTER + 1)  # past the review delay: what remains unreferenced may go
        final = await asyncio.to_thread(server.portside, "garbage-collect", "--delete-untagged")
        if final.returncode != 0:
            tally.error(f"final garbage-collect exited {final.returncode}: {final.stderr[-300:]}")
        wanted = {d for w in workers for images in w.images.values() for i in images.values() for d in i.blobs}
        # --delete-untagged also takes images the clients hold only by digest: keep only what stays tagged.
        untagged = {
            d for w in workers for images in w.images.values() for i in images.values() if not i.tags for d in i.blobs
        }
        tagged = {
            d for w in workers for images in w.images.values() for i in images.values() if i.tags for d in i.blobs
        }
        stored = server.stored_blobs()
        fsck = await asyncio.to_thread(server.portside, "fsck")
    return {
        "minutes": minutes,
        "clients": clients,
        "operations": tally.operations,
        "collections": collections,
        "errors": len(tally.errors),
        "first_errors": tally.errors[:10],
        "lost": len(lost),
        "stored_exact": stored == tagged,
        "stored": len(stored),
        "referenced": len(tagged),
        "held_untagged_only": len(untagged - tagged),
        "held": len(wanted),
        "fsck_healthy": fsck.returncode == 0,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--minutes", type=float, default=1.0)
    parser.add_argument("--clients", type=int, default=16)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--database", default="", help="a PostgreSQL DSN (default: SQLite beside the data)")
    parser.add_argument("--collect-every", type=float, default=20.0, help="seconds between garbage-collect runs")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="portside-soak-") as workdir:
        server = Server(Path(workdir), args.database, args.workers)
        server.start()
        try:
            result = asyncio.run(soak(args.minutes, args.clients, server, args.collect_every))
        finally:
            server.stop()
    print(json.dumps(result))
    ok = result["errors"] == 0 and result["lost"] == 0 and result["stored_exact"] and result["fsck_healthy"]
    raise SystemExit(0 if ok else 1)


if __name__ == "__main__":
    main()
