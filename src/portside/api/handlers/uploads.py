"""`/v2/<name>/blobs/uploads/`: start, mount, stream, resume, check, finish and cancel blob uploads."""

from __future__ import annotations

import asyncio

from aiohttp import ClientPayloadError, web
from aiohttp.http_exceptions import HttpProcessingError

from portside.api.context import Context
from portside.api.errors import ApiError, ErrorCode
from portside.api.handlers.blobs import parse_digest
from portside.api.headers import ByteRange, parse_content_range, upload_range
from portside.auth.access import PULL, REPOSITORY, Access, Resource
from portside.digest import Digest
from portside.reference import ReferenceError, validate_repository_name
from portside.registry import BlobWriter, NameInvalid, Repository, SizeInvalid


def _created(ctx: Context, repo: Repository, digest: Digest) -> web.Response:
    return web.Response(
        status=201,
        headers={
            "Location": ctx.url_for("blob", name=repo.name, digest=digest),
            "Docker-Content-Digest": digest,
        },
    )


def _session_headers(ctx: Context, repo: Repository, upload_id: str, size: int) -> dict[str, str]:
    return {
        "Location": ctx.url_for("upload", name=repo.name, uuid=upload_id),
        "Range": upload_range(size),
        "Docker-Upload-UUID": upload_id,
    }


def _content_length(ctx: Context) -> int | None:
    return ctx.request.content_length


async def _receive(ctx: Context, writer: BlobWriter) -> int:
    """Stream the request body into the upload; the body must be as long as Content-Length says.

    Bytes that arrived before the client went away stay in the session, which can be resumed from there.
    """
    expected = _content_length(ctx)
    metrics = ctx.services.metrics
    metrics.upload_started()
    try:
        received = await writer.write_stream(ctx.request.content.iter_any())
    except (ConnectionError, ClientPayloadError, HttpProcessingError, asyncio.IncompleteReadError) as exc:
        raise ApiError(ErrorCode.BLOB_UPLOAD_INVALID, f"upload body interrupted: {exc}") from None
    finally:
        metrics.upload_finished()
    if expected is not None and received != expected:
        raise SizeInvalid(f"received {received} bytes, Content-Length said {expected}")
    return received


def _whole_body(ctx: Context) -> int | None:
    """The body's length when it can be taken in memory in one piece: small, declared, and not a chunk."""
    length = _content_length(ctx)
    limit = ctx.services.namespace.options.upload_block_size
    if length is None or not 0 < length <= limit or "Content-Range" in ctx.request.headers:
        return None
    return length


async def _receive_whole(ctx: Context, length: int) -> bytes:
    """The whole (small) body, exactly `length` bytes."""
    metrics = ctx.services.metrics
    metrics.upload_started()
    try:
        return await ctx.request.content.readexactly(length)
    except (ConnectionError, ClientPayloadError, HttpProcessingError, asyncio.IncompleteReadError) as exc:
        raise ApiError(ErrorCode.BLOB_UPLOAD_INVALID, f"upload body interrupted: {exc}") from None
    finally:
        metrics.upload_finished()


async def _check_chunk(ctx: Context, repo: Repository, writer: BlobWriter) -> ByteRange | None:
    """Validate `Content-Range` of a chunk against the upload's current end (416 when out of order)."""
    header = ctx.request.headers.get("Content-Range")
    if header is None:
        return None
    chunk = parse_content_range(header)
    length = _content_length(ctx)
    if length is not None and length != chunk.length:
        raise ApiError(
            ErrorCode.BLOB_UPLOAD_INVALID,
            f"Content-Range {header[:60]!r} covers {chunk.length} bytes but Content-Length is {length}",
        )
    if chunk.start != writer.size:
        raise ApiError(
            ErrorCode.RANGE_INVALID,
            f"chunk starts at {chunk.start} but the upload has {writer.size} bytes",
            {"size": writer.size},
            headers=_session_headers(ctx, repo, writer.id, writer.size),
        )
    return chunk


async def _mount(ctx: Context, repo: Repository, digest: Digest, source: str | None) -> bool:
    """Mount only from a repository the caller may pull; anything else looks exactly like a missing blob."""
    if source is not None:
        return (
            ctx.may(Access(Resource(REPOSITORY, source), PULL)) and await repo.blobs.mount(digest, source) is not None
        )
    for candidate in await ctx.namespace.repositories_with_blob(digest):
        if ctx.may(Access(Resource(REPOSITORY, candidate), PULL)):
            return await repo.blobs.mount(digest, candidate) is not None
    return False


async def start_upload(ctx: Context) -> web.StreamResponse:
    repo = ctx.repository()
    mount = ctx.query("mount")
    if mount is not None:
        digest = parse_digest(mount)
        source = ctx.query("from") or None
        if source is not None:
            try:
                validate_repository_name(source)
            except ReferenceError as exc:
                raise NameInvalid(str(exc), {"name": source[:300]}) from None
        if await _mount(ctx, repo, digest, source):
            return _created(ctx, repo, digest)
    digest_param = ctx.query("digest")
    if digest_param is not None:
        digest = parse_digest(digest_param)
        length = _whole_body(ctx)
        if length is not None:
            await repo.blobs.put(await _receive_whole(ctx, length), digest)
            return _created(ctx, repo, digest)
        writer = await repo.blobs.create(persist=False, algorithms=[digest.algorithm])
        try:
            await _receive(ctx, writer)
            await writer.commit(digest)
        except BaseException:
            await writer.cancel()
            raise
        finally:
            await writer.close()
        return _created(ctx, repo, digest)
    writer = await repo.blobs.create()
    await writer.close()
    return web.Response(status=202, headers=_session_headers(ctx, repo, writer.id, 0))


async def upload_status(ctx: Context) -> web.StreamResponse:
    repo = ctx.repository()
    writer = await repo.blobs.resume(ctx.params["uuid"])
    size = await writer.stored_size()
    return web.Response(status=204, headers=_session_headers(ctx, repo, writer.id, size))


async def upload_chunk(ctx: Context) -> web.StreamResponse:
    repo = ctx.repository()
    writer = await repo.blobs.resume(ctx.params["uuid"])
    await writer.will_store()
    try:
        await writer.open()
        await _check_chunk(ctx, repo, writer)
        await _receive(ctx, writer)
        size = writer.size
    finally:
        await writer.close()
    return web.Response(status=202, headers=_session_headers(ctx, repo, writer.id, size))


async def finish_upload(ctx: Context) -> web.StreamResponse:
    repo = ctx.repository()
    writer = await repo.blobs.resume(ctx.params["uuid"])
    try:
        digest_param = ctx.query("digest")
        if not digest_param:
            raise ApiError(ErrorCode.DIGEST_INVALID, "the digest query parameter is required to finish an upload")
        digest = parse_digest(digest_param)
        length = _whole_body(ctx)
        if length is not None and await writer.is_empty():
            await writer.commit_content(await _receive_whole(ctx, length), digest)
            return _created(ctx, repo, digest)
        await writer.open([digest.algorithm])
        await _check_chunk(ctx, repo, writer)
        await _receive(ctx, writer)
        await writer.commit(digest)
    finally:
        await writer.close()
    return _created(ctx, repo, digest)


async def cancel_upload(ctx: Context) -> web.StreamResponse:
    repo = ctx.repository()
    writer = await repo.blobs.resume(ctx.params["uuid"])
    await writer.cancel()
    return web.Response(status=204)
