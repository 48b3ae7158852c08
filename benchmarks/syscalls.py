"""System calls per small push: a one-worker Portside and the Go registry under `strace -c`.

    .venv/bin/python -m benchmarks.syscalls [--servers portside,go] [--blobs 2000] [-- regbench args]

Starts each server on 127.0.0.1 as `benchmarks.compare` does (Portside with one worker), attaches
`strace -c -f` to the process that serves (Portside's worker, the Go registry itself) and runs regbench's
`small_push` (4 KiB blobs, POST then PUT each, 16 clients). Prints, per push, the calls that measure thread
hand-offs (futex), durability (fsync, fdatasync), writes (pwrite64), SQLite's locks (fcntl, flock) and
`getpid`, and the total, as a markdown table. Counts, unlike timings, barely move on a loaded machine, so
this is the measure to take before and after a change to the push path.
"""

from __future__ import annotations

import argparse
import json
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from benchmarks.compare import REGBENCH, Server

CALLS = ("futex", "fsync", "fdatasync", "pwrite64", "fcntl", "flock", "getpid")


def serving_pid(server: Server) -> int:
    """The process that answers requests: Portside's only worker (a child of the arbiter), or the Go registry."""
    assert server.process is not None
    pid = server.process.pid
    if server.name == "go":
        return pid
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        children = Path(f"/proc/{pid}/task/{pid}/children").read_text().split()
        for child in children:
            command = Path(f"/proc/{child}/cmdline").read_bytes()
            if b"portside" in command or b"python" in command:
                return int(child)
        time.sleep(0.1)
    raise SystemExit("no Portside worker appeared")


def parse_summary(text: str) -> dict[str, int]:
    """Calls per system call from `strace -c` output (the `calls` column, the last column is the name)."""
    counts: dict[str, int] = {}
    for line in text.splitlines():
        fields = line.split()
        if len(fields) < 5 or not fields[0][0].isdigit() or fields[-1] == "total":
            continue
        # "% time  seconds  usecs/call  calls  [errors]  syscall"
        calls = int(fields[3])
        counts[fields[-1]] = counts.get(fields[-1], 0) + calls
    return counts


def measure(name: str, workdir: Path, blobs: int, extra: list[str]) -> tuple[dict[str, int], dict[str, object]]:
    server = Server(name, workdir, workers=1)
    server.start()
    summary = workdir / "strace.txt"
    tracer: subprocess.Popen[bytes] | None = None
    try:
        time.sleep(1.0)
        pid = serving_pid(server)
        tracer = subprocess.Popen(
            ["strace", "-c", "-f", "-o", str(summary), "-p", str(pid)],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        time.sleep(1.0)  # strace attaches to every thread
        bench = subprocess.run(
            [
                sys.executable,
                str(REGBENCH),
                "--url",
                server.url,
                "--scenarios",
                "small_push",
                "--small-count",
                str(blobs),
                "--label",
                name,
                *extra,
            ],
            capture_output=True,
            text=True,
            check=False,
        )
    finally:
        if tracer is not None:
            tracer.send_signal(signal.SIGINT)
            tracer.wait(60)
        server.stop()
    records = [json.loads(line) for line in bench.stdout.splitlines() if line.startswith("{")]
    if not records:
        raise SystemExit(f"regbench produced nothing for {name}:\n{bench.stderr[-2000:]}")
    return parse_summary(summary.read_text()), records[0]


def table(results: dict[str, dict[str, int]], blobs: int) -> str:
    names = list(results)
    lines = ["| per push | " + " | ".join(names) + " |", "|---|" + "---|" * len(names)]
    for call in (*CALLS, "total"):
        cells = []
        for name in names:
            counts = results[name]
            value = sum(counts.values()) if call == "total" else counts.get(call, 0)
            cells.append(f"{value / blobs:.2f}")
        lines.append(f"| {call} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--servers", default="portside,go", help="portside, go or both")
    parser.add_argument("--blobs", type=int, default=2000, help="small blobs pushed (regbench --small-count)")
    parser.add_argument("--json", action="store_true", help="also print the raw counts as JSON")
    parser.add_argument("regbench_args", nargs="*", help="passed to regbench.py after --")
    args = parser.parse_args(argv)
    if shutil.which("strace") is None:
        raise SystemExit("strace is not installed")
    base = Path(tempfile.mkdtemp(prefix="portside-syscalls-"))
    results: dict[str, dict[str, int]] = {}
    try:
        for name in args.servers.split(","):
            counts, record = measure(name, base / name, args.blobs, args.regbench_args)
            if not record.get("ok"):
                raise SystemExit(f"{name}: small_push failed: {record.get('first_error')}")
            results[name] = counts
            print(f"{name}: {record['value']:.1f} blobs/s under strace", file=sys.stderr)
    finally:
        shutil.rmtree(base, ignore_errors=True)
    print(table(results, args.blobs))
    if args.json:
        print(json.dumps(results, sort_keys=True))


if __name__ == "__main__":
    main()
