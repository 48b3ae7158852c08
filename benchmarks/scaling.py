"""One Portside instance against two, on one machine, sharing PostgreSQL, the blob store and Redis.

    .venv/bin/python -m benchmarks.scaling [--rounds 3] [--scenarios small_push,manifest_get]

Each instance runs one worker. For N instances, N `regbench.py` clients run at once, one per instance (each
with its own repositories), and their throughputs are added: the cluster's throughput. Rounds alternate
1 and 2 instances; medians and the 2/1 ratio go to docs/performance.md. On a machine with two cores the
servers, PostgreSQL and the clients all share those cores, so the ratio shows how much of a second core a
second instance turns into throughput, not what separate machines would give.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

import yaml

from benchmarks.compare import REGBENCH, free_port, write_report

BEGIN, END = "<!-- BEGIN benchmarks.scaling -->", "<!-- END benchmarks.scaling -->"


def postgres_database(admin_dsn: str) -> str:
    import asyncio

    import asyncpg
    from sqlalchemy.engine import make_url

    url = make_url(admin_dsn)
    name = f"portside_bench_{uuid.uuid4().hex[:10]}"

    async def create() -> None:
        conn = await asyncpg.connect(
            user=url.username, password=url.password, host=url.host, port=url.port or 5432, database=url.database
        )
        try:
            await conn.execute(f'CREATE DATABASE "{name}"')
        finally:
            await conn.close()

    asyncio.run(create())
    return url.set(database=name).render_as_string(hide_password=False)


def start_instance(workdir: Path, shared: dict[str, Any]) -> tuple[subprocess.Popen[bytes], str]:
    port = free_port()
    config = {
        "version": 0.1,
        "log": {"level": "warn", "accesslog": {"disabled": True}},
        "http": {"addr": f"127.0.0.1:{port}"},
        **shared,
    }
    workdir.mkdir(parents=True, exist_ok=True)
    path = workdir / f"config-{port}.yml"
    path.write_text(yaml.safe_dump(config))
    log = (workdir / f"server-{port}.log").open("ab")
    process = subprocess.Popen(
        [sys.executable, "-m", "portside", "serve", str(path), "--workers", "1"],
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    url = f"http://127.0.0.1:{port}"
    import urllib.request

    for _ in range(300):
        try:
            with urllib.request.urlopen(f"{url}/v2/", timeout=1):
                return process, url
        except OSError:
            time.sleep(0.1)
    raise SystemExit(f"instance did not start; see {workdir}")


def run(instances: int, shared: dict[str, Any], workdir: Path, scenarios: str) -> dict[str, float]:
    processes = [start_instance(workdir / f"i{i}", shared) for i in range(instances)]
    try:
        clients = [
            subprocess.Popen(
                [
                    sys.executable,
                    str(REGBENCH),
                    "--url",
                    url,
                    "--scenarios",
                    scenarios,
                    "--prefix",
                    f"s{uuid.uuid4().hex[:8]}",
                ],
                stdout=subprocess.PIPE,
                stderr=subprocess.DEVNULL,
                text=True,
            )
            for _, url in processes
        ]
        totals: dict[str, float] = {}
        for client in clients:
            out, _ = client.communicate()
            for line in out.splitlines():
                if line.startswith("{"):
                    record = json.loads(line)
                    if not record["ok"]:
                        raise SystemExit(f"regbench failed: {record}")
                    totals[record["scenario"]] = totals.get(record["scenario"], 0.0) + record["value"]
        return totals
    finally:
        for process, _ in processes:
            process.terminate()
            process.wait(30)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--scenarios", default="small_push,manifest_get")
    parser.add_argument("--postgres", default=os.environ.get("PORTSIDE_TEST_POSTGRES", ""))
    parser.add_argument("--redis", default="127.0.0.1:6379")
    parser.add_argument("--no-report", action="store_true")
    args = parser.parse_args(argv)
    if not args.postgres:
        raise SystemExit("needs --postgres DSN (or PORTSIDE_TEST_POSTGRES; scripts/start-services prints it)")
    base = Path(tempfile.mkdtemp(prefix="portside-scaling-"))
    results: dict[int, list[dict[str, float]]] = {1: [], 2: []}
    try:
        for round_no in range(args.rounds):
            for count in (1, 2) if round_no % 2 == 0 else (2, 1):
                shared = {
                    "storage": {
                        "filesystem": {"rootdirectory": str(base / f"data-{round_no}-{count}")},
                        "delete": {"enabled": True},
                        "cache": {"blobdescriptor": "redis"},
                    },
                    "database": {"dsn": postgres_database(args.postgres)},
                    "redis": {"addr": args.redis, "db": 3},
                }
                totals = run(count, shared, base / f"r{round_no}-{count}", args.scenarios)
                results[count].append(totals)
                print(json.dumps({"instances": count, **totals}), file=sys.stderr)
    finally:
        shutil.rmtree(base, ignore_errors=True)
    lines = [
        "| scenario | 1 instance | 2 instances | 2/1 |",
        "|---|---|---|---|",
    ]
    for scenario in args.scenarios.split(","):
        one = statistics.median(r[scenario] for r in results[1])
        two = statistics.median(r[scenario] for r in results[2])
        lines.append(f"| {scenario} | {one:.0f} | {two:.0f} | {two / one:.2f}x |")
    text = (
        f"Command: `python -m benchmarks.scaling {' '.join(argv if argv is not None else sys.argv[1:])}`; "
        f"{args.rounds} rounds, medians; each instance one worker, sharing PostgreSQL, the file system "
        f"blob store and Redis; {os.cpu_count()} CPUs shared by servers, database and clients.\n\n" + "\n".join(lines)
    )
    print(text)
    if not args.no_report:
        write_report(text, BEGIN, END, "## Scaling out")


if __name__ == "__main__":
    main()
