"""`/v2/<name>/manifests/<reference>`: push, pull, check and delete manifests and tags."""

from __future__ import annotations

import json

from aiohttp import web

from portside.api.context import Context
from portside.api.errors import ApiError, ErrorCode
from portside.api.headers import accepted_media_types, accepts, etag_matches
from portside.digest import Digest
from portside.manifest import mediatypes as mt
from portside.registry import ManifestContent, ManifestTooLarge, Repository, parse_manifest_reference


async def _negotiate(repo: Repository, record: ManifestContent, accepted: list[str] | None) -> ManifestContent:
    """The manifest to answer with, given what the client accepts (as Docker Distribution negotiates)."""
    if accepts(accepted, record.media_type):
        return record
    if record.media_type == mt.DOCKER_MANIFEST_LIST and accepts(accepted, mt.DOCKER_MANIFEST):
        # A client that cannot read lists gets the linux/amd64 image of the list, if it has one.
        for entry in json.loads(record.payload).get("manifests", []):
            platform = entry.get("platform") or {}
            if platform.get("os") == "linux" and platform.get("architecture") == "amd64":
                child = await repo.manifests.get(Digest.parse(entry["digest"]))
                if accepts(accepted, child.media_type):
                    return child
    if record.media_type in (mt.OCI_MANIFEST, mt.OCI_INDEX):
        kind = "OCI manifest" if record.media_type == mt.OCI_MANIFEST else "OCI index"
        raise ApiError(
            ErrorCode.MANIFEST_UNKNOWN,
            f"{kind} found, but the Accept header does not allow {record.media_type}",
            {"mediaType": record.media_type},
        )
    return record


async def get_manifest(ctx: Context) -> web.StreamResponse:
    repo = ctx.repository()
    tag, digest = parse_manifest_reference(ctx.params["reference"], lookup=True)
    record = await (repo.manifests.get(digest) if digest is not None else repo.manifests.get_by_tag(str(tag)))
    record = await _negotiate(repo, record, accepted_media_types(ctx.request.headers.getall("Accept", [])))
    etag = f'"{record.digest}"'
    headers = {
        "Content-Type": record.media_type,
        "Docker-Content-Digest": record.digest,
        "ETag": etag,
    }
    if record.warning:
        headers["Warning"] = record.warning
    if etag_matches(ctx.request.headers.get("If-None-Match"), etag):
        return web.Response(status=304, headers=headers)
    if ctx.request.method == "HEAD":
        return web.Response(headers={**headers, "Content-Length": str(record.size)})
    if ctx.events is not None:
        target = {"mediaType": record.media_type, "digest": record.digest, "size": record.size}
        await repo.pulled({**target, "tag": tag} if tag is not None else target)
    return web.Response(body=record.payload, headers=headers)


async def _read_body(ctx: Context, limit: int) -> bytes:
    declared = ctx.request.content_length
    if declared is not None and declared > limit:
        raise ManifestTooLarge(f"manifest is larger than {limit} bytes")
    body = bytearray()
    async for chunk in ctx.request.content.iter_any():
        body += chunk
        if len(body) > limit:
            raise ManifestTooLarge(f"manifest is larger than {limit} bytes")
    return bytes(body)


async def put_manifest(ctx: Context) -> web.StreamResponse:
    repo = ctx.repository()
    tag, digest = parse_manifest_reference(ctx.params["reference"])
    payload = await _read_body(ctx, ctx.namespace.options.max_manifest_size)
    manifest = await repo.manifests.put(payload, ctx.request.headers.get("Content-Type"), tag=tag, digest=digest)
    headers = {
        "Location": ctx.url_for("manifest", name=repo.name, reference=manifest.digest),
        "Docker-Content-Digest": manifest.digest,
    }
    if manifest.subject is not None:
        headers["OCI-Subject"] = manifest.subject.digest
    return web.Response(status=201, headers=headers)


async def delete_manifest(ctx: Context) -> web.StreamResponse:
    repo = ctx.repository()
    tag, digest = parse_manifest_reference(ctx.params["reference"])
    if digest is not None:
        await repo.manifests.delete(digest)
    else:
        await repo.tags.untag(str(tag))
    return web.Response(status=202)
