"""Portside against the reference Go registry (Docker Distribution, Debian's `docker-registry`), side by side.

    .venv/bin/python -m benchmarks.compare [--rounds 3] [--scenarios big_push,big_pull,...] [--workers N]

Each round starts both servers on 127.0.0.1 with equivalent settings (filesystem storage, deletes on, access
log off, level warn) on fresh data directories, and runs the same `regbench.py` scenarios against one then the
other, alternating which goes first. The table of medians, Portside/Go ratios, idle and peak memory is
written to docs/performance.md (the section between the BEGIN/END markers) and printed.

Memory is reported two ways for the whole process tree: RSS (what `ps` shows, shared pages counted in every
process) and PSS (shared pages divided among the processes sharing them, so the sum is real memory use).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from benchmarks.regbench import ProcSampler

ROOT = Path(__file__).resolve().parent.parent
REGBENCH = Path(__file__).with_name("regbench.py")
REPORT = ROOT / "docs" / "performance.md"
BEGIN, END = "<!-- BEGIN benchmarks.compare -->", "<!-- END benchmarks.compare -->"
GO_REGISTRY = "docker-registry"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def ensure_go_registry() -> str:
    path = shutil.which(GO_REGISTRY)
    if path:
        return path
    sudo = [] if os.geteuid() == 0 else ["sudo"]
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    subprocess.run([*sudo, "apt-get", "update", "-qq"], check=True, env=env)
    subprocess.run([*sudo, "apt-get", "install", "-y", "-qq", GO_REGISTRY], check=True, env=env)
    found = shutil.which(GO_REGISTRY)
    if not found:
        raise SystemExit(f"{GO_REGISTRY} did not install")
    return found


def tree_memory_kib(pid: int) -> tuple[int, int]:
    """(RSS, PSS) summed over `pid` and its descendants."""
    sampler = ProcSampler(pid)
    return sampler.rss_kib(), sampler.pss_kib()


@dataclass
class Server:
    name: str
    workdir: Path
    workers: int
    port: int = field(default_factory=free_port)
    process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def config(self) -> dict[str, Any]:
        return {
            "version": 0.1,
            "log": {"level": "warn", "accesslog": {"disabled": True}},
            "storage": {
                "filesystem": {"rootdirectory": str(self.workdir / "data")},
                "delete": {"enabled": True},
                "cache": {"blobdescriptor": "inmemory"},
            },
            "http": {"addr": f"127.0.0.1:{self.port}"},
        }

    def command(self, config_path: Path) -> list[str]:
        if self.name == "go":
            return [ensure_go_registry(), "serve", str(config_path)]
        return [sys.executable, "-m", "portside", "serve", str(config_path), "--workers", str(self.workers)]

    def start(self) -> None:
        self.workdir.mkdir(parents=True, exist_ok=True)
        config_path = self.workdir / "config.yml"
        config_path.write_text(yaml.safe_dump(self.config()))
        log = (self.workdir / "server.log").open("ab")
        self.process = subprocess.Popen(
            self.command(config_path), stdout=log, stderr=subprocess.STDOUT, start_new_session=True
        )
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            try:
                with urllib.request.urlopen(f"{self.url}/v2/", timeout=1):
                    return
            except OSError:
                time.sleep(0.05)
        raise SystemExit(f"{self.name} did not start; see {self.workdir / 'server.log'}")

    def stop(self) -> None:
        if self.process is not None:
            os.killpg(self.process.pid, signal.SIGTERM)
            self.process.wait(30)


def run_round(server: Server, scenarios: str, extra: list[str]) -> list[dict[str, Any]]:
    server.start()
    assert server.process is not None
    time.sleep(1.0)
    idle_rss, idle_pss = tree_memory_kib(server.process.pid)
    try:
        out = subprocess.run(
            [
                sys.executable,
                str(REGBENCH),
                "--url",
                server.url,
                "--scenarios",
                scenarios,
                "--server-pid",
                str(server.process.pid),
                "--label",
                server.name,
                *extra,
            ],
            capture_output=True,
            text=True,
            check=False,
        )
    finally:
        server.stop()
    records = [json.loads(line) for line in out.stdout.splitlines() if line.startswith("{")]
    if not records:
        raise SystemExit(f"regbench produced nothing for {server.name}:\n{out.stderr[-2000:]}")
    for record in records:
        record["idle_rss_mib"] = round(idle_rss / 1024, 1)
        record["idle_pss_mib"] = round(idle_pss / 1024, 1)
    return records


def median(records: list[dict[str, Any]], key: str) -> float:
    values = [r[key] for r in records if key in r]
    return statistics.median(values) if values else float("nan")


def table(results: dict[str, list[dict[str, Any]]], scenarios: list[str]) -> str:
    lines = [
        "| scenario | unit | Go | Portside | Portside/Go | Go peak RSS MiB | Portside peak RSS MiB | "
        "Portside peak PSS MiB | all ok |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for scenario in scenarios:
        go = [r for r in results["go"] if r["scenario"] == scenario]
        ps = [r for r in results["portside"] if r["scenario"] == scenario]
        if not go or not ps:
            continue
        g, p = median(go, "value"), median(ps, "value")
        ok = all(r["ok"] for r in go + ps)
        lines.append(
            f"| {scenario} | {ps[0]['unit']} | {g:.1f} | {p:.1f} | {p / g:.2f}x | "
            f"{median(go, 'server_rss_mib'):.0f} | {median(ps, 'server_rss_mib'):.0f} | "
            f"{median(ps, 'server_pss_mib'):.0f} | {'yes' if ok else 'NO'} |"
        )
    growth = growth_table(results, scenarios)
    if growth:
        lines += ["", growth]
    go_idle, ps_idle = results["go"], results["portside"]
    lines.append("")
    lines.append(
        f"Idle memory after start: Go RSS {median(go_idle, 'idle_rss_mib'):.0f} MiB; Portside RSS "
        f"{median(ps_idle, 'idle_rss_mib'):.0f} MiB, PSS {median(ps_idle, 'idle_pss_mib'):.0f} MiB."
    )
    return "\n".join(lines)


GROWTH = (
    ("tags_list", "tags_list_10k", "1,000 to 10,000 tags"),
    ("catalog", "catalog_10k", "1,000 to 10,000 repositories"),
)


def growth_table(results: dict[str, list[dict[str, Any]]], scenarios: list[str]) -> str:
    """How much slower each server gets as the data grows: throughput at the small size over the large."""
    lines = []
    for small, large, what in GROWTH:
        if small not in scenarios or large not in scenarios:
            continue
        cells = []
        for name in ("go", "portside"):
            at_small = median([r for r in results[name] if r["scenario"] == small], "value")
            at_large = median([r for r in results[name] if r["scenario"] == large], "value")
            cells.append(f"{at_small / at_large:.1f}x" if at_large else "n/a")
        lines.append(f"| {small}, {what} | {cells[0]} | {cells[1]} |")
    if not lines:
        return ""
    head = ["| growth (cost at the large size / at the small size) | Go | Portside |", "|---|---|---|"]
    return "\n".join(head + lines)


def write_report(text: str, begin: str = BEGIN, end: str = END, heading: str = "## Latest run") -> None:
    """Replace the section between `begin` and `end` in docs/performance.md (added under `heading`)."""
    current = REPORT.read_text() if REPORT.exists() else "# Performance\n\n"
    block = f"{begin}\n{text}\n{end}"
    if begin in current and end in current:
        head, rest = current.split(begin, 1)
        current = head + block + rest.split(end, 1)[1]
    else:
        current = current.rstrip() + f"\n\n{heading}\n\n" + block + "\n"
    REPORT.write_text(current)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument(
        "--scenarios",
        default="big_push,big_pull,small_push,manifest_put,manifest_get,tags_list,catalog,concurrent_pull,"
        "tags_list_10k,catalog_10k",
    )
    parser.add_argument("--workers", type=int, default=0, help="Portside workers (default: one per CPU)")
    parser.add_argument("--no-report", action="store_true", help="print the table without writing the report")
    parser.add_argument("regbench_args", nargs="*", help="passed to regbench.py after --")
    args = parser.parse_args(argv)
    ensure_go_registry()
    workers = args.workers or len(os.sched_getaffinity(0))
    base = Path(tempfile.mkdtemp(prefix="portside-bench-"))
    results: dict[str, list[dict[str, Any]]] = {"go": [], "portside": []}
    try:
        for round_no in range(args.rounds):
            order = ["portside", "go"] if round_no % 2 == 0 else ["go", "portside"]
            for name in order:
                server = Server(name, base / f"{name}-{round_no}", workers)
                records = run_round(server, args.scenarios, args.regbench_args)
                results[name].extend(records)
                for record in records:
                    print(json.dumps(record), file=sys.stderr)
    finally:
        # Deleting many files right before a run slows the next file creations on this kind of disk, so
        # data directories are removed only once every round is over.
        shutil.rmtree(base, ignore_errors=True)
    scenarios = args.scenarios.split(",")
    command = "python -m benchmarks.compare " + " ".join(argv if argv is not None else sys.argv[1:])
    text = (
        f"Command: `{command.strip()}`; {args.rounds} rounds, medians; Portside with {workers} workers; "
        f"{os.cpu_count()} CPUs.\n\n{table(results, scenarios)}"
    )
    print(text)
    if not args.no_report:
        write_report(text)


if __name__ == "__main__":
    main()
