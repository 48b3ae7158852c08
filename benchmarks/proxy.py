"""Portside's pull-through cache against the Go registry's proxy mode, both in front of the same upstream.

    .venv/bin/python -m benchmarks.proxy [--size-mib 1024] [--concurrent-mib 256] [--clients 8] [--no-report]

The upstream is a Go registry (Debian's `docker-registry`) holding two images: one with a layer of
`--size-mib` and one with a layer of `--concurrent-mib`. Each cache reaches it through a relay of its own
that counts the bytes the upstream sends, so "upstream bytes" is exactly what each cache fetched. For each
cache, in turn (both caches run with their defaults, Portside with two workers):

- cold pull: the manifest by tag, the config and the big layer, with the time to the layer's first byte;
- warm pull: the same again, now from the cache;
- concurrent cold pull: `--clients` clients GET the other image's layer at the same moment; every client's
  bytes are hashed and checked against the digest. The target is one upstream copy, however many clients.

Times are wall clock on 127.0.0.1, so the machine's load shows in them; ratios are Go / Portside (above 1:
Portside faster). Writes docs/performance.md (the benchmarks.proxy section) unless `--no-report`.
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import json
import os
import statistics
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp

from benchmarks.compare import Server, ensure_go_registry, free_port, write_report

BEGIN, END = "<!-- BEGIN benchmarks.proxy -->", "<!-- END benchmarks.proxy -->"
MiB = 1024 * 1024
OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
BLOCK = 1024 * 1024


class Relay:
    """A TCP relay from a local port to the upstream that counts the bytes the upstream sends."""

    def __init__(self, upstream_port: int) -> None:
        self.upstream_port = upstream_port
        self.port = free_port()
        self.received = 0
        self._server: asyncio.Server | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    async def start(self) -> None:
        self._server = await asyncio.start_server(self._serve, "127.0.0.1", self.port)

    async def stop(self) -> None:
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            up_reader, up_writer = await asyncio.open_connection("127.0.0.1", self.upstream_port)
        except OSError:
            writer.close()
            return

        async def pipe(src: asyncio.StreamReader, dst: asyncio.StreamWriter, count: bool) -> None:
            try:
                while data := await src.read(256 * 1024):
                    if count:
                        self.received += len(data)
                    dst.write(data)
                    await dst.drain()
            except (ConnectionError, asyncio.CancelledError):
                pass
            finally:
                dst.close()

        await asyncio.gather(pipe(reader, up_writer, False), pipe(up_reader, writer, True))


@dataclass
class CacheServer(Server):
    """compare.py's server configured as a pull-through cache of `remote`."""

    remote: str = ""

    def config(self) -> dict[str, Any]:
        config = super().config()
        config["proxy"] = {"remoteurl": self.remote}
        return config


@dataclass
class Image:
    repository: str
    tag: str
    layer: str
    layer_size: int


def write_layer(path: Path, size: int) -> str:
    """A layer file of `size` pseudo-random bytes; its digest."""
    digest = hashlib.sha256()
    block = os.urandom(BLOCK)
    with path.open("wb") as out:
        left = size
        while left:
            piece = block[: min(left, BLOCK)]
            out.write(piece)
            digest.update(piece)
            left -= len(piece)
            block = hashlib.sha256(block[:64]).digest() * (BLOCK // 32)  # changes each block, cheaply
    return "sha256:" + digest.hexdigest()


async def push_image(url: str, repository: str, tag: str, layer_path: Path, layer_digest: str, size: int) -> Image:
    async with aiohttp.ClientSession() as session:

        async def push_blob(digest: str, body: Any, size: int) -> None:
            async with session.post(f"{url}/v2/{repository}/blobs/uploads/") as r:
                assert r.status == 202, r.status
                location = r.headers["Location"]
            if location.startswith("/"):
                location = url + location
            sep = "&" if "?" in location else "?"
            headers = {"Content-Type": "application/octet-stream", "Content-Length": str(size)}
            async with session.put(f"{location}{sep}digest={digest}", data=body, headers=headers) as r:
                assert r.status == 201, (r.status, await r.text())

        with layer_path.open("rb") as body:
            await push_blob(layer_digest, body, size)
        config = json.dumps({"architecture": "amd64", "os": "linux", "rootfs": {"type": "layers"}}).encode()
        config_digest = "sha256:" + hashlib.sha256(config).hexdigest()
        await push_blob(config_digest, config, len(config))
        manifest = json.dumps(
            {
                "schemaVersion": 2,
                "mediaType": OCI_MANIFEST,
                "config": {
                    "mediaType": "application/vnd.oci.image.config.v1+json",
                    "digest": config_digest,
                    "size": len(config),
                },
                "layers": [
                    {"mediaType": "application/vnd.oci.image.layer.v1.tar", "digest": layer_digest, "size": size}
                ],
            }
        ).encode()
        headers = {"Content-Type": OCI_MANIFEST}
        async with session.put(f"{url}/v2/{repository}/manifests/{tag}", data=manifest, headers=headers) as r:
            assert r.status == 201, (r.status, await r.text())
    return Image(repository, tag, layer_digest, size)


async def get_blob(session: aiohttp.ClientSession, url: str, repository: str, digest: str) -> tuple[float, float]:
    """GET a blob, hashing it; (seconds to the first byte, seconds in all). Fails on a wrong digest."""
    started = time.perf_counter()
    first = 0.0
    hasher = hashlib.sha256()
    timeout = aiohttp.ClientTimeout(total=1800)
    async with session.get(f"{url}/v2/{repository}/blobs/{digest}", timeout=timeout) as r:
        assert r.status == 200, (r.status, await r.text())
        async for chunk in r.content.iter_chunked(BLOCK):
            if not first:
                first = time.perf_counter() - started
            hasher.update(chunk)
    if "sha256:" + hasher.hexdigest() != digest:
        raise SystemExit(f"{url}: blob {digest} came back with the wrong bytes")
    return first, time.perf_counter() - started


async def pull(url: str, image: Image) -> dict[str, float]:
    async with aiohttp.ClientSession() as session:
        started = time.perf_counter()
        headers = {"Accept": OCI_MANIFEST}
        async with session.get(f"{url}/v2/{image.repository}/manifests/{image.tag}", headers=headers) as r:
            assert r.status == 200, (r.status, await r.text())
            manifest = await r.json(content_type=None)
        await get_blob(session, url, image.repository, manifest["config"]["digest"])
        first, _ = await get_blob(session, url, image.repository, image.layer)
        total = time.perf_counter() - started
    return {"seconds": total, "ttfb": first, "mib_s": image.layer_size / MiB / total}


async def concurrent_pull(url: str, image: Image, clients: int) -> dict[str, float]:
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=clients * 2)) as session:
        headers = {"Accept": OCI_MANIFEST}
        async with session.get(f"{url}/v2/{image.repository}/manifests/{image.tag}", headers=headers) as r:
            assert r.status == 200, (r.status, await r.text())
        started = time.perf_counter()
        results = await asyncio.gather(*(get_blob(session, url, image.repository, image.layer) for _ in range(clients)))
        wall = time.perf_counter() - started
    firsts = [first for first, _ in results]
    return {
        "wall": wall,
        "ttfb_median": statistics.median(firsts),
        "ttfb_max": max(firsts),
        "aggregate_mib_s": clients * image.layer_size / MiB / wall,
    }


async def measure(cache: CacheServer, relay: Relay, big: Image, shared: Image, clients: int) -> dict[str, Any]:
    out: dict[str, Any] = {}
    before = relay.received
    out["cold"] = await pull(cache.url, big)
    out["cold"]["upstream_mib"] = (relay.received - before) / MiB
    before = relay.received
    out["warm"] = await pull(cache.url, big)
    out["warm"]["upstream_mib"] = (relay.received - before) / MiB
    before = relay.received
    out["concurrent"] = await concurrent_pull(cache.url, shared, clients)
    out["concurrent"]["upstream_mib"] = (relay.received - before) / MiB
    return out


def report(results: dict[str, dict[str, Any]], big: Image, shared: Image, clients: int, load: str) -> str:
    go, ps = results["go"], results["portside"]

    def row(label: str, key: str, part: str, unit: str, higher_better: bool = False) -> str:
        g, p = go[part][key], ps[part][key]
        ratio = (p / g if higher_better else g / p) if g and p else float("nan")
        return f"| {label} | {g:.2f} {unit} | {p:.2f} {unit} | {ratio:.2f}x |"

    lines = [
        f"Upstream: a Go registry on 127.0.0.1; a {big.layer_size // MiB} MiB layer for the cold and warm pulls, a "
        f"{shared.layer_size // MiB} MiB layer for {clients} concurrent cold pulls. Load average at the start: {load}.",
        "",
        "| | Go proxy mode | Portside cache | Go / Portside (time), Portside / Go (rate) |",
        "|---|---|---|---|",
        row("cold pull, manifest + config + layer", "seconds", "cold", "s"),
        row("cold pull, time to the layer's first byte", "ttfb", "cold", "s"),
        row("cold pull, rate", "mib_s", "cold", "MiB/s", higher_better=True),
        row("warm pull", "seconds", "warm", "s"),
        row("warm pull, rate", "mib_s", "warm", "MiB/s", higher_better=True),
        row(f"{clients} concurrent cold pulls of one layer, until the last ends", "wall", "concurrent", "s"),
        row("  their median time to first byte", "ttfb_median", "concurrent", "s"),
        row("  their slowest time to first byte", "ttfb_max", "concurrent", "s"),
        row("  aggregate rate", "aggregate_mib_s", "concurrent", "MiB/s", higher_better=True),
        "",
        "Bytes fetched from the upstream (MiB; the layer is "
        f"{big.layer_size // MiB} MiB, the shared one {shared.layer_size // MiB} MiB):",
        "",
        "| | Go proxy mode | Portside cache |",
        "|---|---|---|",
        f"| cold pull | {go['cold']['upstream_mib']:.1f} | {ps['cold']['upstream_mib']:.1f} |",
        f"| warm pull | {go['warm']['upstream_mib']:.2f} | {ps['warm']['upstream_mib']:.2f} |",
        f"| {clients} concurrent cold pulls | {go['concurrent']['upstream_mib']:.1f} | "
        f"{ps['concurrent']['upstream_mib']:.1f} |",
    ]
    return "\n".join(lines)


async def run(args: argparse.Namespace, work: Path) -> tuple[dict[str, dict[str, Any]], Image, Image]:
    upstream = Server("go", work / "upstream", workers=1)
    upstream.start()
    results: dict[str, dict[str, Any]] = {}
    try:
        big_path, shared_path = work / "big.layer", work / "shared.layer"
        big_digest = write_layer(big_path, args.size_mib * MiB)
        shared_digest = write_layer(shared_path, args.concurrent_mib * MiB)
        big = await push_image(upstream.url, "bench/big", "v1", big_path, big_digest, args.size_mib * MiB)
        shared = await push_image(
            upstream.url, "bench/shared", "v1", shared_path, shared_digest, args.concurrent_mib * MiB
        )
        big_path.unlink()
        shared_path.unlink()
        for name in ("go", "portside"):
            relay = Relay(upstream.port)
            await relay.start()
            cache = CacheServer(name, work / f"cache-{name}", workers=2, remote=relay.url)
            await asyncio.to_thread(cache.start)  # the relay must answer while it starts (Go asks upstream)
            try:
                results[name] = await measure(cache, relay, big, shared, args.clients)
            finally:
                await asyncio.to_thread(cache.stop)
                await relay.stop()
            print(name, json.dumps(results[name]), flush=True)
    finally:
        upstream.stop()
    return results, big, shared


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--size-mib", type=int, default=1024)
    parser.add_argument("--concurrent-mib", type=int, default=256)
    parser.add_argument("--clients", type=int, default=8)
    parser.add_argument("--no-report", action="store_true")
    args = parser.parse_args()
    ensure_go_registry()
    load = ", ".join(f"{x:.1f}" for x in os.getloadavg())
    with tempfile.TemporaryDirectory(prefix="portside-proxy-bench-") as workdir:
        results, big, shared = asyncio.run(run(args, Path(workdir)))
    text = report(results, big, shared, args.clients, load)
    print(text)
    if not args.no_report:
        write_report(text, BEGIN, END, heading="## A pull-through cache against the Go registry's proxy mode")


if __name__ == "__main__":
    main()
