"""Profile Portside under one benchmark scenario with py-spy, and print where the workers spend their time.

    .venv/bin/python -m benchmarks.profile manifest_get [--workers 2] [--top 30] [--out DIR] [-- regbench args]

Starts Portside as `benchmarks.compare` does, records every worker with `py-spy record --subprocesses`
while `regbench.py` runs the scenario, keeps the raw collapsed stacks in DIR (open them in speedscope or
flamegraph.pl), and prints the functions with the most samples: inclusive (on the stack) and self (on top).
Scenarios that need data first (manifest_get needs manifests) get it from regbench's own set-up steps, which
are profiled too; compare profiles, not absolute counts.
"""

from __future__ import annotations

import argparse
import collections
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from benchmarks.compare import REGBENCH, Server

IDLE_FRAMES = ("select (selectors.py", "_run_once (asyncio/base_events.py", "epoll")


def summarise(collapsed: Path, top: int) -> str:
    """Inclusive and self sample counts per function from py-spy's raw (collapsed) output."""
    inclusive: collections.Counter[str] = collections.Counter()
    own: collections.Counter[str] = collections.Counter()
    total = 0
    for line in collapsed.read_text().splitlines():
        stack, _, count_text = line.rpartition(" ")
        if not stack:
            continue
        count = int(count_text)
        frames = [f.split(":")[0] if "(" not in f else f.rsplit(":", 1)[0] for f in stack.split(";")]
        if frames and any(frames[-1].startswith(idle) for idle in IDLE_FRAMES):
            continue  # waiting in the event loop's poll is idle time, not work
        total += count
        for frame in set(frames):
            inclusive[frame] += count
        own[frames[-1]] += count
    lines = [f"busy samples: {total}", "", "inclusive %  function"]
    lines += [f"{100 * n / total:10.1f}  {f}" for f, n in inclusive.most_common(top)]
    lines += ["", "self %      function"]
    lines += [f"{100 * n / total:10.1f}  {f}" for f, n in own.most_common(top)]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("scenario")
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--top", type=int, default=30)
    parser.add_argument("--rate", type=int, default=250, help="py-spy samples per second")
    parser.add_argument("--out", type=Path, help="keep the collapsed stacks here")
    parser.add_argument("regbench_args", nargs="*")
    args = parser.parse_args(argv)
    py_spy = shutil.which("py-spy") or str(Path(sys.executable).with_name("py-spy"))
    base = Path(tempfile.mkdtemp(prefix="portside-profile-"))
    out = args.out or base
    out.mkdir(parents=True, exist_ok=True)
    collapsed = out / f"{args.scenario}.collapsed"
    server = Server("portside", base / "server", args.workers)
    server.start()
    assert server.process is not None
    time.sleep(1.0)
    spy = subprocess.Popen(
        [
            py_spy,
            "record",
            "--subprocesses",
            "--format",
            "raw",
            "--rate",
            str(args.rate),
            "--nonblocking",
            "-o",
            str(collapsed),
            "-p",
            str(server.process.pid),
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        bench = subprocess.run(
            [
                sys.executable,
                str(REGBENCH),
                "--url",
                server.url,
                "--scenarios",
                args.scenario,
                "--server-pid",
                str(server.process.pid),
                *args.regbench_args,
            ],
            capture_output=True,
            text=True,
            check=False,
        )
        print(bench.stdout.strip())
    finally:
        spy.send_signal(signal.SIGINT)
        spy.wait(60)
        server.stop()
    print(summarise(collapsed, args.top))
    print(f"\ncollapsed stacks: {collapsed}")
    if args.out is None:
        print("(temporary; pass --out DIR to keep them)")


if __name__ == "__main__":
    main()
