"""Whether Portside turns more cores into more throughput: one worker against one per CPU, on CPU-bound
scenarios.

    .venv/bin/python -m benchmarks.workers [--rounds 3] [--scenarios manifest_get,tags_list,manifest_put]

Each round starts Portside (as `benchmarks.compare` does) with 1 worker and then with one worker per CPU,
alternating the order, and runs the same `regbench.py` scenarios. Medians and the ratio go to
docs/performance.md. The load generator shares the machine's cores, so the ratio on a 2-core machine is
bounded below 2.
"""

from __future__ import annotations

import argparse
import os
import shutil
import tempfile
from pathlib import Path
from typing import Any

from benchmarks.compare import Server, median, run_round, write_report

BEGIN, END = "<!-- BEGIN benchmarks.workers -->", "<!-- END benchmarks.workers -->"


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--scenarios", default="manifest_get,tags_list,manifest_put")
    parser.add_argument("--no-report", action="store_true")
    args = parser.parse_args(argv)
    cpus = len(os.sched_getaffinity(0))
    counts = [1, cpus]
    base = Path(tempfile.mkdtemp(prefix="portside-workers-"))
    results: dict[int, list[dict[str, Any]]] = {n: [] for n in counts}
    try:
        for round_no in range(args.rounds):
            for workers in counts if round_no % 2 == 0 else counts[::-1]:
                server = Server("portside", base / f"w{workers}-{round_no}", workers)
                results[workers].extend(run_round(server, args.scenarios, []))
    finally:
        shutil.rmtree(base, ignore_errors=True)
    lines = [
        f"Command: `python -m benchmarks.workers --rounds {args.rounds} --scenarios {args.scenarios}`; medians.",
        "",
        f"| scenario | unit | 1 worker | {cpus} workers | ratio |",
        "|---|---|---|---|---|",
    ]
    for scenario in args.scenarios.split(","):
        one = median([r for r in results[1] if r["scenario"] == scenario], "value")
        many = median([r for r in results[cpus] if r["scenario"] == scenario], "value")
        unit = next((r["unit"] for r in results[1] if r["scenario"] == scenario), "")
        lines.append(f"| {scenario} | {unit} | {one:.1f} | {many:.1f} | {many / one:.2f}x |")
    text = "\n".join(lines)
    print(text)
    if not args.no_report:
        write_report(text, BEGIN, END, "## Workers and cores")


if __name__ == "__main__":
    main()
