"""`/v2/<name>/blobs/<digest>`: read, check and unlink blobs."""

from __future__ import annotations

import logging
import os

from aiohttp import web

from portside.api.context import Context
from portside.api.fileresponse import FileRangeResponse
from portside.api.headers import etag_matches, parse_range
from portside.digest import Digest, DigestError
from portside.registry import BlobContent, BlobUnknown, DigestInvalid, RegistryError

log = logging.getLogger("portside.api")

COPY_BLOCK = 1024 * 1024


def parse_digest(text: str) -> Digest:
    try:
        return Digest.parse(text)
    except DigestError as exc:
        raise DigestInvalid(str(exc), {"digest": text[:200]}) from None


async def get_blob(ctx: Context) -> web.StreamResponse:
    repo = ctx.repository()
    digest = parse_digest(ctx.params["digest"])
    content = await repo.blobs.open(digest, ctx.request.method)
    size = content.descriptor.size
    etag = f'"{digest}"'
    headers = {
        "Docker-Content-Digest": digest,
        "ETag": etag,
        "Cache-Control": "max-age=31536000",
        "Accept-Ranges": "bytes",
    }
    if content.warning:
        headers["Warning"] = content.warning
    if content.redirect_url and not ctx.settings.redirect_disabled:
        return web.Response(status=307, headers={**headers, "Location": content.redirect_url})
    if etag_matches(ctx.request.headers.get("If-None-Match"), etag):
        return web.Response(status=304, headers=headers)
    headers["Content-Type"] = "application/octet-stream"
    status, offset, count = 200, 0, size
    byte_range = parse_range(ctx.request.headers.get("Range"), size) if ctx.request.method == "GET" else None
    if byte_range is not None:
        status, offset, count = 206, byte_range.start, byte_range.length
        headers["Content-Range"] = f"bytes {byte_range.start}-{byte_range.end}/{size}"
    if ctx.request.method == "HEAD":
        return web.Response(status=200, headers={**headers, "Content-Length": str(size)})
    if ctx.events is not None:
        await repo.pulled({"mediaType": "application/octet-stream", "digest": digest, "size": size})
    if content.local_path is not None:
        return _sendfile(content, offset, count, status, headers)
    return await _stream(ctx, content, offset, count, status, headers)


def _sendfile(
    content: BlobContent, offset: int, count: int, status: int, headers: dict[str, str]
) -> web.StreamResponse:
    assert content.local_path is not None
    try:
        fd = os.open(content.local_path, os.O_RDONLY)
    except FileNotFoundError:
        raise BlobUnknown(f"blob {content.descriptor.digest} is missing from storage") from None
    return FileRangeResponse(fd, offset, count, status=status, headers=headers)


async def _stream(
    ctx: Context, content: BlobContent, offset: int, count: int, status: int, headers: dict[str, str]
) -> web.StreamResponse:
    """The bytes as the reader gives them. Once the status is sent, a reader that fails or ends early (a cache's
    upstream broke off, or sent bytes that are not the digest) can no longer be answered with an error: the
    connection is cut, so the client sees a short answer and never a whole one with the wrong bytes."""
    response = web.StreamResponse(status=status, headers=headers)
    response.content_length = count
    async with await content.reader(offset) as reader:
        await response.prepare(ctx.request)
        remaining = count
        try:
            while remaining:
                block = await reader.read(min(COPY_BLOCK, remaining))
                if not block:
                    raise BlobUnknown(f"blob {content.descriptor.digest}: {remaining} bytes short")
                await response.write(block)
                remaining -= len(block)
        except RegistryError as exc:
            log.warning("blob answer cut short: %s", exc)
            if ctx.request.transport is not None:
                ctx.request.transport.abort()
            return response  # aiohttp's write_eof on the cut connection fails quietly
    await response.write_eof()
    return response


async def delete_blob(ctx: Context) -> web.StreamResponse:
    repo = ctx.repository()
    digest = parse_digest(ctx.params["digest"])
    await repo.blobs.delete(digest)
    return web.Response(status=202, headers={"Docker-Content-Digest": digest})
