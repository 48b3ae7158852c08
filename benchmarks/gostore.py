"""Fill a registry (the Go reference registry, for a store it wrote) with many repositories and manifests.

    .venv/bin/python -m benchmarks.gostore --url http://127.0.0.1:5000 --repositories 1000 --manifests 10000

Through the HTTP API only, as clients would: a pool of layers is uploaded once and mounted into every
repository that uses it (layers shared between images, as in real stores), each repository gets its own
config blob, and each manifest is an OCI image manifest over a few pool layers, tagged `v<N>` (a share can be
pushed by digest only, untagged). Optionally each repository also gets an index over its first two manifests.
Requests run concurrently. `populate` is importable for other benchmarks and tests.
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import json
import random
import time
from dataclasses import dataclass, field
from typing import Any

import aiohttp

OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
OCI_INDEX = "application/vnd.oci.image.index.v1+json"
OCI_CONFIG = "application/vnd.oci.image.config.v1+json"
LAYER = "application/vnd.oci.image.layer.v1.tar+gzip"


def sha256(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


@dataclass
class Populated:
    """What was pushed: per repository its tags (tag -> digest) and the digests pushed without a tag."""

    tags: dict[str, dict[str, str]] = field(default_factory=dict)
    untagged: dict[str, list[str]] = field(default_factory=dict)
    layers: list[str] = field(default_factory=list)
    seconds: float = 0.0

    @property
    def manifests(self) -> int:
        return sum(len(set(t.values())) for t in self.tags.values()) + sum(len(u) for u in self.untagged.values())


class _Client:
    def __init__(self, session: aiohttp.ClientSession, url: str) -> None:
        self.session = session
        self.url = url.rstrip("/")

    async def _check(self, response: aiohttp.ClientResponse, expected: int, what: str) -> None:
        if response.status != expected:
            raise RuntimeError(f"{what}: {response.status} {(await response.text())[:300]}")

    async def push_blob(self, repo: str, data: bytes) -> str:
        digest = sha256(data)
        async with self.session.post(f"{self.url}/v2/{repo}/blobs/uploads/") as r:
            await self._check(r, 202, f"start upload in {repo}")
            location = r.headers["Location"]
        if location.startswith("/"):
            location = self.url + location
        async with self.session.put(
            location,
            params={"digest": digest},
            data=data,
            headers={"Content-Type": "application/octet-stream"},
        ) as r:
            await self._check(r, 201, f"finish upload in {repo}")
        return digest

    async def mount(self, repo: str, digest: str, source: str) -> None:
        async with self.session.post(
            f"{self.url}/v2/{repo}/blobs/uploads/", params={"mount": digest, "from": source}
        ) as r:
            await self._check(r, 201, f"mount {digest} into {repo}")

    async def put_manifest(self, repo: str, reference: str, body: bytes, media_type: str) -> None:
        async with self.session.put(
            f"{self.url}/v2/{repo}/manifests/{reference}", data=body, headers={"Content-Type": media_type}
        ) as r:
            await self._check(r, 201, f"put manifest {repo}:{reference}")


def _split(total: int, parts: int) -> list[int]:
    base, extra = divmod(total, parts)
    return [base + (1 if i < extra else 0) for i in range(parts)]


def repository_name(index: int, nested: bool = True) -> str:
    """Names of one, two and three components, as real stores have."""
    if not nested or index % 3 == 0:
        return f"bench-{index:05d}"
    if index % 3 == 1:
        return f"team-{index % 17:02d}/app-{index:05d}"
    return f"org-{index % 5}/team-{index % 11:02d}/svc-{index:05d}"


async def populate(
    url: str,
    repositories: int,
    manifests: int,
    *,
    pool_layers: int = 50,
    layers_per_image: int = 3,
    layer_size: int = 2048,
    untagged: float = 0.0,
    indexes: bool = False,
    concurrency: int = 32,
    seed: int = 1,
    names: list[str] | None = None,
) -> Populated:
    """Push `manifests` image manifests spread over `repositories` repositories (or over `names`, when given,
    instead), plus an index per repository with `indexes`; `untagged` is the share pushed by digest only.
    The same `seed` pushes the same layers. Returns what was pushed."""
    started = time.monotonic()
    rng = random.Random(seed)
    repo_names = names or [repository_name(i) for i in range(repositories)]
    per_repo = _split(manifests, len(repo_names))
    done = Populated({name: {} for name in repo_names}, {name: [] for name in repo_names})
    limit = asyncio.Semaphore(concurrency)
    connector = aiohttp.TCPConnector(limit=concurrency)
    async with aiohttp.ClientSession(connector=connector, timeout=aiohttp.ClientTimeout(total=300)) as session:
        client = _Client(session, url)
        home = repo_names[0]
        pool_blobs = [rng.randbytes(layer_size) for _ in range(pool_layers)]

        async def limited(make: Any) -> Any:
            async with limit:
                return await make()

        pool = await asyncio.gather(*(limited(lambda b=b: client.push_blob(home, b)) for b in pool_blobs))
        done.layers = list(pool)
        sizes = {d: len(b) for d, b in zip(pool, pool_blobs, strict=True)}
        plans = []
        for name, count in zip(repo_names, per_repo, strict=True):
            images = [rng.sample(pool, min(layers_per_image, len(pool))) for _ in range(count)]
            plans.append((name, images, [rng.random() < untagged for _ in range(count)]))

        async def fill(name: str, images: list[list[str]], bare: list[bool]) -> None:
            used = sorted({d for layers in images for d in layers})
            if name != home:
                await asyncio.gather(*(limited(lambda d=d: client.mount(name, d, home)) for d in used))
            config = json.dumps({"architecture": "amd64", "os": "linux", "repository": name}).encode()
            config_digest = await limited(lambda: client.push_blob(name, config))
            children: list[dict[str, Any]] = []

            async def one(i: int, layers: list[str]) -> None:
                manifest = {
                    "schemaVersion": 2,
                    "mediaType": OCI_MANIFEST,
                    "config": {"mediaType": OCI_CONFIG, "digest": config_digest, "size": len(config)},
                    "layers": [{"mediaType": LAYER, "digest": d, "size": sizes[d]} for d in layers],
                    "annotations": {"org.example.build": f"{name}#{i}"},
                }
                body = json.dumps(manifest, separators=(",", ":")).encode()
                digest = sha256(body)
                reference = digest if bare[i] else f"v{i}"
                await limited(lambda: client.put_manifest(name, reference, body, OCI_MANIFEST))
                if bare[i]:
                    done.untagged[name].append(digest)
                else:
                    done.tags[name][reference] = digest
                if i < 2:
                    children.append({"mediaType": OCI_MANIFEST, "digest": digest, "size": len(body), "i": i})

            await asyncio.gather(*(one(i, layers) for i, layers in enumerate(images)))
            if indexes and len(children) == 2:
                children.sort(key=lambda c: c.pop("i"))
                for child, arch in zip(children, ("amd64", "arm64"), strict=True):
                    child["platform"] = {"architecture": arch, "os": "linux"}
                index = json.dumps({"schemaVersion": 2, "mediaType": OCI_INDEX, "manifests": children}).encode()
                await limited(lambda: client.put_manifest(name, "multi", index, OCI_INDEX))
                done.tags[name]["multi"] = sha256(index)

        # A bounded number of repositories at a time, so memory and open tasks stay small at any size.
        queue = iter(plans)

        async def worker() -> None:
            for name, images, bare in queue:
                await fill(name, images, bare)

        await asyncio.gather(*(worker() for _ in range(max(1, concurrency // 4))))
    done.seconds = time.monotonic() - started
    return done


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--url", required=True)
    parser.add_argument("--repositories", type=int, default=1000)
    parser.add_argument("--manifests", type=int, default=10000)
    parser.add_argument("--concurrency", type=int, default=32)
    parser.add_argument("--untagged", type=float, default=0.0)
    parser.add_argument("--indexes", action="store_true")
    args = parser.parse_args()
    done = asyncio.run(
        populate(
            args.url,
            args.repositories,
            args.manifests,
            concurrency=args.concurrency,
            untagged=args.untagged,
            indexes=args.indexes,
        )
    )
    print(f"pushed {done.manifests} manifests into {len(done.tags)} repositories in {done.seconds:.1f}s")


if __name__ == "__main__":
    main()
