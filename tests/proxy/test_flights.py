"""The single-flight spool (src/portside/proxy/flights.py) in process, on a real directory: a fetch that failed
cleans up its spool files later; that must never take the files of a newer fetch of the same blob."""

from __future__ import annotations

import asyncio
import hashlib
from pathlib import Path

import pytest

from portside.proxy import flights
from portside.proxy.flights import Flight, Flights
from portside.registry.errors import UpstreamUnavailable

DATA = bytes(range(256)) * 64
DIGEST = "sha256:" + hashlib.sha256(DATA).hexdigest()


async def never_stored() -> bool:
    return False


async def read_all(flight: Flight) -> bytes:
    got = bytearray()
    async with await flight.reader(0) as reader:
        while chunk := await reader.read(4096):
            got += chunk
    return bytes(got)


async def test_a_failed_fetch_leaves_a_newer_fetchs_spool_alone(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(flights, "KEEP_SPOOL_SECONDS", 0.05)
    spool = Flights(tmp_path)

    async def broken(flight: Flight) -> None:
        flight.append(DATA[:100])
        raise UpstreamUnavailable("the upstream broke off", "unreachable")

    first = await spool.join(DIGEST, len(DATA), broken, never_stored)
    assert first is not None
    with pytest.raises(UpstreamUnavailable):
        await read_all(first)

    go_on = asyncio.Event()

    async def slow(flight: Flight) -> None:
        flight.append(DATA[:1000])
        await go_on.wait()
        flight.append(DATA[1000:])
        flight.finish()

    second = await spool.join(DIGEST, len(DATA), slow, never_stored)
    assert second is not None
    assert second is not first
    await asyncio.sleep(0.3)  # the first fetch's clean-up is due meanwhile
    assert second.path.exists(), "the newer fetch's spool is still there for readers that join it"
    go_on.set()
    assert await read_all(second) == DATA
    await spool.close()
