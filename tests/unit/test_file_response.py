"""The blob body response (`portside.api.fileresponse`) on a real aiohttp server over loopback TCP: both ways
of sending (a copying thread, sendfile), ranges, keep-alive after a body, and clients that stop reading or
go away mid-body."""

from __future__ import annotations

import asyncio
import os
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer

from portside.api import fileresponse
from portside.api.fileresponse import FileRangeResponse

SIZE = 3 * fileresponse.COPY_BLOCK + 12345
BULK = bytes(range(256)) * 240  # 60 KiB: under the transport's high-water mark, so queued without pausing


@pytest.fixture
def blob(tmp_path: Path) -> tuple[Path, bytes]:
    data = os.urandom(SIZE)
    path = tmp_path / "data"
    path.write_bytes(data)
    return path, data


@pytest.fixture
async def server(tmp_path: Path, blob: tuple[Path, bytes]) -> AsyncIterator[TestServer]:
    big = tmp_path / "big"
    with big.open("wb") as f:
        f.truncate(256 * 1024 * 1024)  # sparse: more than any socket buffers hold

    async def send(request: web.Request) -> web.StreamResponse:
        path = big if request.match_info["name"] == "big" else blob[0]
        offset = int(request.query.get("offset", "0"))
        count = int(request.query.get("count", str(path.stat().st_size - offset)))
        return FileRangeResponse(os.open(path, os.O_RDONLY), offset, count, headers={})

    async def bulk(request: web.Request) -> web.StreamResponse:
        return web.Response(body=BULK)

    app = web.Application()
    app.router.add_get("/bulk", bulk)
    app.router.add_get("/{name}", send)
    srv = TestServer(app, host="127.0.0.1")
    await srv.start_server()
    yield srv
    await srv.close()


async def exchange(srv: TestServer, *targets: str) -> list[bytes]:
    """GET each target in turn on one keep-alive connection; the bodies."""
    reader, writer = await asyncio.open_connection(srv.host, srv.port)
    bodies = []
    try:
        for target in targets:
            writer.write(f"GET {target} HTTP/1.1\r\nHost: x\r\n\r\n".encode())
            head = await reader.readuntil(b"\r\n\r\n")
            assert head.startswith(b"HTTP/1.1 200"), head
            lines = head.lower().split(b"\r\n")
            length = next(int(line.split(b":", 1)[1]) for line in lines if line.startswith(b"content-length:"))
            bodies.append(await reader.readexactly(length))
    finally:
        writer.close()
    return bodies


async def test_body_after_a_response_still_queued_comes_in_order(server: TestServer, blob: tuple[Path, bytes]) -> None:
    """A pipelining client that reads nothing at first: earlier responses queue up ahead of the blob's, and
    the blob's bytes, which a copy writes past the transport, must still arrive after all of them."""
    reader, writer = await asyncio.open_connection(server.host, server.port)
    earlier = 200
    try:
        writer.write(b"GET /bulk HTTP/1.1\r\nHost: x\r\n\r\n" * earlier + b"GET /blob HTTP/1.1\r\nHost: x\r\n\r\n")
        await asyncio.sleep(0.5)
        bodies = []
        for _ in range(earlier + 1):
            head = await reader.readuntil(b"\r\n\r\n")
            lines = head.lower().split(b"\r\n")
            length = next(int(line.split(b":", 1)[1]) for line in lines if line.startswith(b"content-length:"))
            bodies.append(await reader.readexactly(length))
    finally:
        writer.close()
    assert all(body == BULK for body in bodies[:earlier])
    assert bodies[earlier] == blob[1]


async def copies_settle(expected: int = 0, seconds: float = 10.0) -> int:
    """The number of running copies once it is `expected` or `seconds` pass (the server finishes a response
    just after the client has its last byte)."""
    for _ in range(int(seconds / 0.02)):
        if fileresponse._copies == expected:
            break
        await asyncio.sleep(0.02)
    return fileresponse._copies


@pytest.mark.parametrize("threads", [fileresponse.COPY_THREADS, 0], ids=["copy", "sendfile"])
async def test_whole_and_ranges_on_one_connection(
    server: TestServer, blob: tuple[Path, bytes], threads: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(fileresponse, "COPY_THREADS", threads)
    _, data = blob
    block = fileresponse.COPY_BLOCK
    ranges = [(0, SIZE), (1, 10), (block - 1, block + 2), (SIZE - 5, 5), (7, SIZE - 7)]
    bodies = await exchange(server, *(f"/blob?offset={o}&count={n}" for o, n in ranges))
    for (offset, count), body in zip(ranges, bodies, strict=True):
        assert body == data[offset : offset + count], (offset, count)
    assert await copies_settle() == 0


async def test_client_that_stops_reading_is_dropped(server: TestServer, monkeypatch: pytest.MonkeyPatch) -> None:
    """A client that reads nothing for STALL_SECONDS loses its connection and frees its copying thread; the
    server goes on serving."""
    monkeypatch.setattr(fileresponse, "STALL_SECONDS", 1.0)
    reader, writer = await asyncio.open_connection(server.host, server.port, limit=1024)
    writer.write(b"GET /big HTTP/1.1\r\nHost: x\r\n\r\n")
    await reader.readuntil(b"\r\n\r\n")
    assert await copies_settle(1) == 1
    assert await copies_settle() == 0
    assert await _read_until_closed(reader) < 256 * 1024 * 1024
    writer.close()
    bodies = await exchange(server, "/blob")
    assert len(bodies[0]) == SIZE


async def _read_until_closed(reader: asyncio.StreamReader) -> int:
    received = 0
    try:
        while block := await reader.read(1024 * 1024):
            received += len(block)
    except ConnectionError:
        pass
    return received


async def test_client_gone_mid_body_frees_the_thread(server: TestServer, blob: tuple[Path, bytes]) -> None:
    reader, writer = await asyncio.open_connection(server.host, server.port)
    writer.write(b"GET /big HTTP/1.1\r\nHost: x\r\n\r\n")
    await reader.readuntil(b"\r\n\r\n")
    await reader.readexactly(1024 * 1024)
    writer.transport.abort()
    assert await copies_settle() == 0
    assert (await exchange(server, "/blob"))[0] == blob[1]
