"""`portside import` of a store the Go reference registry wrote: manifests per second and peak memory, on the
filesystem driver and on S3 (moto).

    .venv/bin/python -m benchmarks.importing [--repositories 1000] [--manifests 10000] [--backends filesystem,s3]

The store is filled through the Go registry's HTTP API (`benchmarks.gostore`: shared layers mounted into
every repository, a config per repository, an index per repository, a tenth of the manifests untagged) on
the local file system. For S3 the Go-written tree is then copied object for object into a moto bucket
(filling moto through the Go registry itself would take most of an hour: moto answers about a hundred
requests a second). Each backend is imported twice by a `portside import` process of its own, into a fresh
SQLite database: the first run records everything, the second finds nothing to do (the cost of the
"import again" step of a migration). Peak RSS is the import process's own (`wait4`). The results replace
the section between the BEGIN/END markers in docs/performance.md.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import yaml

from benchmarks.gostore import populate

ROOT = Path(__file__).resolve().parent.parent
REPORT = ROOT / "docs" / "performance.md"
BEGIN, END = "<!-- BEGIN benchmarks.importing -->", "<!-- END benchmarks.importing -->"
GO_REGISTRY = "/usr/bin/docker-registry"


def free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_http(url: str, timeout: float = 60) -> None:
    import urllib.request

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(url, timeout=1):
                return
        except OSError:
            time.sleep(0.05)
    raise SystemExit(f"{url} did not answer")


def go_store(workdir: Path, repositories: int, manifests: int) -> tuple[Path, int, float]:
    """Fill a filesystem store through the Go registry; (root, manifests pushed, seconds)."""
    root = workdir / "store"
    port = free_port()
    config = {
        "version": 0.1,
        "log": {"level": "error", "accesslog": {"disabled": True}},
        "storage": {"filesystem": {"rootdirectory": str(root)}},
        "http": {"addr": f"127.0.0.1:{port}"},
    }
    (workdir / "go.yml").write_text(yaml.safe_dump(config))
    log = (workdir / "go.log").open("ab")
    process = subprocess.Popen([GO_REGISTRY, "serve", str(workdir / "go.yml")], stdout=log, stderr=log)
    try:
        wait_http(f"http://127.0.0.1:{port}/v2/")
        done = asyncio.run(
            populate(
                f"http://127.0.0.1:{port}",
                repositories,
                manifests,
                pool_layers=40,
                layers_per_image=3,
                untagged=0.1,
                indexes=True,
                concurrency=32,
            )
        )
    finally:
        process.terminate()
        process.wait(30)
    return root, done.manifests, done.seconds


def files_under(root: Path) -> Iterator[Path]:
    for directory, _, names in os.walk(root / "docker"):
        for name in names:
            yield Path(directory) / name


async def copy_to_bucket(root: Path, endpoint: str, bucket: str, concurrency: int = 32) -> int:
    """Every file of the Go-written tree as an object with the same key (S3 driver, empty root directory)."""
    from aiobotocore.session import get_session
    from tests.object_storage import ACCESS_KEY, SECRET_KEY

    session = get_session()
    limit = asyncio.Semaphore(concurrency)
    count = 0
    async with session.create_client(
        "s3",
        endpoint_url=endpoint,
        aws_access_key_id=ACCESS_KEY,
        aws_secret_access_key=SECRET_KEY,
        region_name="us-east-1",
    ) as client:

        async def put(path: Path) -> None:
            nonlocal count
            async with limit:
                body = await asyncio.to_thread(path.read_bytes)
                await client.put_object(Bucket=bucket, Key=str(path.relative_to(root)), Body=body)
            count += 1

        pending: set[asyncio.Task[None]] = set()
        for path in files_under(root):
            if len(pending) >= concurrency * 4:
                _, pending = await asyncio.wait(pending, return_when=asyncio.FIRST_COMPLETED)
            pending.add(asyncio.ensure_future(put(path)))
        await asyncio.gather(*pending)
    return count


def run_import(config: Path) -> dict[str, Any]:
    """One `portside import` process: its summary, wall seconds and peak RSS (MiB)."""
    started = time.monotonic()
    with tempfile.TemporaryFile() as out:
        process = subprocess.Popen(
            [sys.executable, "-m", "portside", "import", str(config), "--json"], stdout=out, stderr=subprocess.PIPE
        )
        _, status, usage = os.wait4(process.pid, 0)
        process.returncode = os.waitstatus_to_exitcode(status)
        seconds = time.monotonic() - started
        out.seek(0)
        lines = out.read().decode().splitlines()
    if process.returncode != 0:
        raise SystemExit(f"portside import failed ({process.returncode}): {lines[-3:]}")
    summary = json.loads(lines[-1])
    return {"summary": summary, "seconds": seconds, "rss_mib": usage.ru_maxrss / 1024}


def requests_served(log: Path | None) -> int | None:
    """Requests moto logged so far (one access-log line each)."""
    if log is None:
        return None
    return sum(1 for line in log.read_text(errors="replace").splitlines() if '" 20' in line or '" 40' in line)


def measure(name: str, storage: dict[str, Any], workdir: Path, log: Path | None = None) -> dict[str, Any]:
    config = {
        "version": 0.1,
        "log": {"level": "warn"},
        "storage": storage,
        "database": {"dsn": f"sqlite:///{workdir / f'{name}.db'}"},
    }
    path = workdir / f"{name}.yml"
    path.write_text(yaml.safe_dump(config))
    before = requests_served(log)
    first = run_import(path)
    middle = requests_served(log)
    again = run_import(path)
    after = requests_served(log)
    if before is not None and middle is not None and after is not None:
        first["requests"], again["requests"] = middle - before, after - middle
    return {"backend": name, "first": first, "again": again}


def table(results: list[dict[str, Any]], store: dict[str, Any]) -> str:
    lines = [
        f"Store: {store['repositories']} repositories, {store['manifests']} manifests pushed through the Go "
        f"registry in {store['fill_seconds']:.0f} s ({store['objects']} files); SQLite metadata; "
        f"{os.cpu_count()} CPUs, {time.strftime('%Y-%m-%d')}.",
        "",
        "| backend | first import | manifests/s | peak RSS | storage requests | import again (no changes) "
        "| peak RSS | storage requests |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for r in results:
        first, again = r["first"], r["again"]
        rate = first["summary"]["manifests"] / first["seconds"]
        lines.append(
            f"| {r['backend']} | {first['seconds']:.1f} s ({first['summary']['manifests']} manifests, "
            f"{first['summary']['tags']} tags, {first['summary']['blobs']} blob links) | {rate:.0f} | "
            f"{first['rss_mib']:.0f} MiB | {first.get('requests', '-')} | {again['seconds']:.1f} s | "
            f"{again['rss_mib']:.0f} MiB | {again.get('requests', '-')} |"
        )
    return "\n".join(lines)


def write_report(text: str) -> None:
    report = REPORT.read_text()
    section = f"{BEGIN}\n{text}\n{END}"
    if BEGIN in report:
        head, rest = report.split(BEGIN, 1)
        report = head + section + rest.split(END, 1)[1]
    else:
        report = report.rstrip("\n") + "\n\n" + section + "\n"
    REPORT.write_text(report)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--repositories", type=int, default=1000)
    parser.add_argument("--manifests", type=int, default=10000)
    parser.add_argument("--backends", default="filesystem,s3")
    parser.add_argument("--no-report", action="store_true", help="print only; leave docs/performance.md alone")
    args = parser.parse_args()
    workdir = Path(tempfile.mkdtemp(prefix="portside-import-bench-"))
    try:
        root, pushed, fill_seconds = go_store(workdir, args.repositories, args.manifests)
        store = {
            "repositories": args.repositories,
            "manifests": pushed,
            "fill_seconds": fill_seconds,
            "objects": sum(1 for _ in files_under(root)),
        }
        print(f"store: {store}", flush=True)
        results = []
        for backend in args.backends.split(","):
            if backend == "filesystem":
                results.append(measure("filesystem", {"filesystem": {"rootdirectory": str(root)}}, workdir))
            elif backend == "s3":
                from tests.object_storage import create_bucket, moto_server, s3_parameters

                servers = moto_server(workdir)
                endpoint = next(servers)
                try:
                    bucket = create_bucket(endpoint)
                    copied = asyncio.run(copy_to_bucket(root, endpoint, bucket))
                    print(f"copied {copied} objects into moto", flush=True)
                    storage = {"s3": s3_parameters(endpoint, bucket)}
                    results.append(measure("s3 (moto)", storage, workdir, workdir / "moto.log"))
                finally:
                    servers.close()
            print(json.dumps(results[-1]), flush=True)
        text = table(results, store)
        print(text)
        if not args.no_report:
            write_report(text)
    finally:
        shutil.rmtree(workdir, ignore_errors=True)


if __name__ == "__main__":
    main()
