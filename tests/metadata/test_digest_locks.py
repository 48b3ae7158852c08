"""Digest locks between processes (SQLite's byte-range locks on `<database>.digestlocks`)."""

from __future__ import annotations

import asyncio
import sys
from pathlib import Path

from portside.metadata.locks import FileDigestLocks

FIRST, SECOND = "sha256:" + "1" * 64, "sha256:" + "2" * 64

OTHER_PROCESS = """
import asyncio, sys
from portside.metadata.locks import FileDigestLocks

async def main() -> None:
    locks = FileDigestLocks(sys.argv[1])
    async with locks.hold([sys.argv[3]]):
        print("held", flush=True)
        await asyncio.to_thread(sys.stdin.readline)
        async with locks.hold([sys.argv[2]]):
            print("got both", flush=True)

asyncio.run(main())
"""


async def test_a_wait_the_kernel_takes_for_a_deadlock_is_waited_out(tmp_path: Path) -> None:
    """The kernel sees byte-range locks per process: while a task of ours holds FIRST and another task of ours
    waits for SECOND, which the other process holds, that process asking for FIRST looks to the kernel like a
    cycle (EDEADLK), though our holder waits for nothing. The other process must wait, not fail."""
    path = str(tmp_path / "metadata.db.digestlocks")
    locks = FileDigestLocks(path)
    other = await asyncio.create_subprocess_exec(
        sys.executable, "-c", OTHER_PROCESS, path, FIRST, SECOND,
        stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip
    assert other.stdin is not None
    assert other.stdout is not None
    release_first = asyncio.Event()

    async def hold_first() -> None:
        async with locks.hold([FIRST]):
            await release_first.wait()

    async def wait_for_second() -> None:
        async with locks.hold([SECOND]):
            pass

    holder = asyncio.create_task(hold_first())
    assert await asyncio.wait_for(other.stdout.readline(), 30) == b"held\n"
    waiter = asyncio.create_task(wait_for_second())
    await asyncio.sleep(0.5)  # the waiter is now blocked in the kernel on SECOND
    assert not waiter.done()
    other.stdin.write(b"go\n")
    await other.stdin.drain()
    await asyncio.sleep(0.5)  # the other process has asked for FIRST (and was told EDEADLK)
    release_first.set()
    await holder
    out, err = await asyncio.wait_for(other.communicate(), 30)
    assert other.returncode == 0, err.decode()
    assert out == b"got both\n"
    await asyncio.wait_for(waiter, 30)
    await locks.close()
