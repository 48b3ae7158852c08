"""Whether memory stays flat as blobs grow: peak memory of the whole server during a 4 MiB push and a 4 GiB push.

    .venv/bin/python -m benchmarks.memory [--small-mib 4] [--large-mib 4096] [--workers N]

Each push runs on a fresh server (Portside, then the Go registry for reference) through `regbench.py`'s
big_push scenario (16 MiB chunks), sampling RSS and PSS of the server's process tree throughout. Portside's
target: the large push peaks at most 20 MiB above the small one. The result goes to docs/performance.md.
"""

from __future__ import annotations

import argparse
import os
import shutil
import tempfile
from pathlib import Path

from benchmarks.compare import Server, run_round, write_report

BEGIN, END = "<!-- BEGIN benchmarks.memory -->", "<!-- END benchmarks.memory -->"
ALLOWANCE_MIB = 20


def peak(name: str, workdir: Path, workers: int, mib: int) -> tuple[float, float, float]:
    """(peak RSS, peak PSS, MiB/s) of one push of `mib` MiB on a fresh server."""
    records = run_round(Server(name, workdir, workers), "big_push", ["--big-mib", str(mib)])
    record = records[0]
    if not record["ok"]:
        raise SystemExit(f"{name} push of {mib} MiB failed: {record.get('first_error')}")
    return record["server_rss_mib"], record["server_pss_mib"], record["value"]


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--small-mib", type=int, default=4)
    parser.add_argument("--large-mib", type=int, default=4096)
    parser.add_argument("--workers", type=int, default=0, help="Portside workers (default: one per CPU)")
    parser.add_argument("--no-report", action="store_true")
    args = parser.parse_args(argv)
    workers = args.workers or len(os.sched_getaffinity(0))
    base = Path(tempfile.mkdtemp(prefix="portside-memory-"))
    rows = []
    verdict = ""
    try:
        for name in ("portside", "go"):
            small = peak(name, base / f"{name}-small", workers, args.small_mib)
            large = peak(name, base / f"{name}-large", workers, args.large_mib)
            growth = large[0] - small[0]
            rows.append(
                f"| {name} | {small[0]:.0f} | {large[0]:.0f} | {growth:+.0f} | {small[1]:.0f} | {large[1]:.0f} | "
                f"{large[2]:.0f} |"
            )
            if name == "portside":
                met = "met" if growth <= ALLOWANCE_MIB else "not met"
                verdict = f"Portside's target (at most +{ALLOWANCE_MIB} MiB RSS): {met}, {growth:+.0f} MiB."
    finally:
        shutil.rmtree(base, ignore_errors=True)
    text = "\n".join(
        [
            f"Command: `python -m benchmarks.memory --small-mib {args.small_mib} --large-mib {args.large_mib}`; "
            f"Portside with {workers} workers; peaks over the whole process tree.",
            "",
            f"| server | peak RSS, {args.small_mib} MiB push | peak RSS, {args.large_mib} MiB push | growth | "
            f"peak PSS, small | peak PSS, large | large push MiB/s |",
            "|---|---|---|---|---|---|---|",
            *rows,
            "",
            verdict,
        ]
    )
    print(text)
    if not args.no_report:
        write_report(text, BEGIN, END, "## Memory against blob size")


if __name__ == "__main__":
    main()
