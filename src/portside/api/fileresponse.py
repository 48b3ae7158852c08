"""A response that sends a byte range of a local file without holding more than one block of it in memory.

Two ways to move the bytes, chosen per connection by measurement (docs/performance.md):

- A peer on another host gets sendfile(2) from the event loop: page-cache pages go to the network card without
  a copy through the process.
- A peer on this host (loopback) gets the range copied by a thread in blocks sized to fit the CPU's cache. Over
  loopback the receiving client shares the CPUs, and pages attached by sendfile cost it more to read out than the
  copy saves the server: with a client that checks what it receives, copying is measured at about 1.5x sendfile's
  throughput. Only so many copies run at once per process; past that, loopback peers get sendfile too.
"""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
import os
import socket
from concurrent.futures import ThreadPoolExecutor

from aiohttp import web
from aiohttp.abc import AbstractStreamWriter

COPY_BLOCK = 512 * 1024
COPY_THREADS = 16
STALL_SECONDS = 60.0
"""How long a client may take to accept one block before the copy gives up on it (a stalled reader)."""

_copies = 0
_threads: ThreadPoolExecutor | None = None


class FileRangeResponse(web.StreamResponse):
    def __init__(self, fd: int, offset: int, count: int, *, status: int = 200, headers: dict[str, str]) -> None:
        super().__init__(status=status, headers=headers)
        self._fd = fd
        self._offset = offset
        self._count = count
        self.content_length = count

    async def prepare(self, request: web.BaseRequest) -> AbstractStreamWriter | None:
        try:
            writer = await super().prepare(request)
            if request.method == "HEAD" or self._count == 0:
                return writer
            transport = request.transport
            if transport is None:
                raise ConnectionResetError("connection lost")
            if _copies < COPY_THREADS and _is_plain_loopback(transport) and _is_flushed(transport):
                await self._copy(transport)
            else:
                with os.fdopen(os.dup(self._fd), "rb") as file:
                    await asyncio.get_running_loop().sendfile(transport, file, self._offset, self._count)
            await super().write_eof()
            return writer
        finally:
            self.close_file()

    async def _copy(self, transport: asyncio.Transport) -> None:
        """Copy on a thread through duplicates of both descriptors, so closing the connection or the response
        while the thread runs can never leave it writing to a descriptor number reused by something else."""
        global _copies, _threads
        if _threads is None:  # made on first use, so never before a worker process forks
            _threads = ThreadPoolExecutor(COPY_THREADS, thread_name_prefix="portside-copy")
        connection = transport.get_extra_info("socket")
        own = socket.socket(fileno=os.dup(connection.fileno()))
        own.settimeout(STALL_SECONDS)
        source = os.dup(self._fd)
        reading = transport.is_reading()
        transport.pause_reading()
        _copies += 1
        try:
            await asyncio.get_running_loop().run_in_executor(
                _threads, _copy_range, source, own, self._offset, self._count
            )
        except asyncio.CancelledError:
            # Stop the thread by ending the connection through the loop's own descriptor, which stays open
            # here; the thread's duplicate may already be closed and its number reused.
            with contextlib.suppress(OSError):
                connection.shutdown(socket.SHUT_RDWR)
            raise
        except TimeoutError:
            raise ConnectionResetError("client stopped reading") from None
        finally:
            _copies -= 1
            if reading and not transport.is_closing():
                transport.resume_reading()

    def close_file(self) -> None:
        if self._fd >= 0:
            fd, self._fd = self._fd, -1
            os.close(fd)


def _copy_range(source: int, sink: socket.socket, offset: int, count: int) -> None:
    """Runs on a thread, which owns (and closes) both descriptors."""
    try:
        block = memoryview(bytearray(min(COPY_BLOCK, count)))
        end = offset + count
        while offset < end:
            n = os.preadv(source, [block[: min(len(block), end - offset)]], offset)
            if n == 0:
                raise ConnectionResetError("blob file shorter than its recorded size")
            sink.sendall(block[:n])
            offset += n
    finally:
        os.close(source)
        sink.close()


def _is_flushed(transport: asyncio.Transport) -> bool:
    """Nothing the transport was given is still waiting to be sent (the status line and headers, or an earlier
    response to a client slow to read): the copy writes past the transport, so anything queued there would
    reach the client after the body. When something is queued, the response goes by sendfile, which waits."""
    return transport.get_write_buffer_size() == 0


def _is_plain_loopback(transport: asyncio.BaseTransport) -> bool:
    """A TCP peer on this host without TLS (TLS bytes must go through the transport, never the raw socket)."""
    if transport.get_extra_info("ssl_object") is not None:
        return False
    peer = transport.get_extra_info("peername")
    if not isinstance(peer, tuple) or not peer:
        return False
    try:
        address = ipaddress.ip_address(peer[0])
    except ValueError:
        return False
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        address = address.ipv4_mapped
    return address.is_loopback
