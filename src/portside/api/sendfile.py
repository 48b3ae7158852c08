"""A response that sends a byte range of a local file with sendfile(2), never copying it through Python."""

from __future__ import annotations

import asyncio
import os

from aiohttp import web
from aiohttp.abc import AbstractStreamWriter


class SendfileResponse(web.StreamResponse):
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
            with os.fdopen(os.dup(self._fd), "rb") as file:
                await asyncio.get_running_loop().sendfile(transport, file, self._offset, self._count)
            await super().write_eof()
            return writer
        finally:
            self.close_file()

    def close_file(self) -> None:
        if self._fd >= 0:
            fd, self._fd = self._fd, -1
            os.close(fd)
