"""Portside's management API (`/portside/v1/`): what GitLab's API lacks. Repositories with their sizes and last
pushes, detailed tag pages, a manifest's layers, config, platforms and referrers grouped by artifact type,
and the registry's storage totals. Times are ISO 8601 with milliseconds and sizes bytes, as in GitLab's."""

from __future__ import annotations

import re
from dataclasses import asdict
from typing import Any

from aiohttp import web

from portside import __version__
from portside.api.context import Context
from portside.api.handlers.gitlab import page_links, tag_json
from portside.api.handlers.params import inventory, iso, json_response, link_header, matching, page_size, tag_query
from portside.manifest.descriptor import Descriptor
from portside.registry.inventory import ManifestDetails, ReferrerGroup, RepositoryInfo, StorageTotals, TagInfo

REPOSITORY_FILTER = re.compile(r"^[a-z0-9._/-]{1,255}$")


def repository_json(info: RepositoryInfo) -> dict[str, Any]:
    return {
        "name": info.name,
        "created_at": iso(info.created_at),
        "last_push_at": iso(info.last_push),
        "tag_count": info.tag_count,
        "manifest_count": info.manifest_count,
        "size_bytes": info.size,
    }


async def version(ctx: Context) -> web.StreamResponse:
    return json_response(
        {
            "name": "Portside",
            "version": __version__,
            "delete_enabled": ctx.namespace.options.delete_enabled,
            "read_only": ctx.settings.read_only,
        }
    )


async def repositories(ctx: Context) -> web.StreamResponse:
    n = page_size(ctx)
    last = ctx.query("last") or None
    contains = ctx.query("name") or None
    if contains is not None and not REPOSITORY_FILTER.match(contains):
        raise matching("name", REPOSITORY_FILTER.pattern)
    page = await inventory(ctx).repositories(last, n, contains)
    links: list[tuple[str, str]] = []
    if page.more:
        query = {"n": str(n), "last": page.items[-1].name, **({"name": contains} if contains else {})}
        links.append(("next", ctx.url_for("portside_repositories", query=query)))
    return json_response({"repositories": [repository_json(r) for r in page.items]}, link_header(links))


async def repository(ctx: Context) -> web.StreamResponse:
    return json_response(repository_json(await inventory(ctx).repository(ctx.params["name"])))


def _tag(tag: TagInfo) -> dict[str, Any]:
    body = tag_json(tag)
    if tag.artifact_type:
        body["artifact_type"] = tag.artifact_type
    body["platforms"] = list(tag.platforms)
    body["referrers"] = [
        {
            "digest": str(r.digest),
            "media_type": r.media_type,
            "artifact_type": r.artifact_type,
            "size_bytes": r.size,
        }
        for r in tag.referrers
    ]
    return body


async def tags(ctx: Context) -> web.StreamResponse:
    name = ctx.params["name"]
    query = tag_query(ctx, page_size(ctx), platforms=ctx.query("platforms") == "true")
    page = await inventory(ctx).tags(name, query)
    links = page_links(ctx, "portside_tags", name, query, page.items, page.more, page.previous)
    return json_response({"name": name, "tags": [_tag(t) for t in page.items]}, link_header(links))


def descriptor_json(d: Descriptor) -> dict[str, Any]:
    body: dict[str, Any] = {"media_type": d.media_type, "digest": str(d.digest), "size_bytes": d.size}
    if d.artifact_type:
        body["artifact_type"] = d.artifact_type
    if d.platform is not None:
        body["platform"] = {k: v for k, v in asdict(d.platform).items() if v is not None}
    if d.annotations:
        body["annotations"] = d.annotations
    if d.urls:
        body["urls"] = list(d.urls)
    return body


def _referrers(groups: tuple[ReferrerGroup, ...]) -> list[dict[str, Any]]:
    return [
        {
            "artifact_type": group.artifact_type,
            "manifests": [
                {**descriptor_json(node.descriptor), "referrers": _referrers(node.referrers)}
                for node in group.referrers
            ],
        }
        for group in groups
    ]


def manifest_json(details: ManifestDetails) -> dict[str, Any]:
    manifest = details.manifest
    body: dict[str, Any] = {
        "repository": details.repository,
        "digest": str(details.digest),
        "media_type": details.media_type,
        "artifact_type": manifest.artifact_type if manifest is not None else None,
        "size_bytes": details.size,
        "total_size_bytes": details.total_size,
        "tags": details.tags,
        "annotations": (manifest.annotations if manifest is not None else None) or {},
        "subject": descriptor_json(manifest.subject) if manifest is not None and manifest.subject else None,
        "config": None,
        "layers": [descriptor_json(d) for d in manifest.layers] if manifest is not None else [],
        "manifests": [descriptor_json(d) for d in manifest.manifests] if manifest is not None else [],
        "referrers": _referrers(details.referrers),
    }
    if manifest is not None and manifest.config is not None:
        config: dict[str, Any] = descriptor_json(manifest.config)
        if details.config is not None:
            image = asdict(details.config)
            config.update(image, platform=details.config.platform)
        body["config"] = config
    return body


async def manifest(ctx: Context) -> web.StreamResponse:
    details = await inventory(ctx).manifest(ctx.params["name"], ctx.params["reference"])
    return json_response(manifest_json(details))


def totals_json(totals: StorageTotals) -> dict[str, Any]:
    return {
        "repositories": totals.repositories,
        "tags": totals.tags,
        "manifests": {"count": totals.manifests, "size_bytes": totals.manifest_bytes},
        "blobs": {"count": totals.blobs, "size_bytes": totals.blob_bytes},
        "linked_bytes": totals.linked_bytes,
        "deduplicated_bytes": totals.linked_bytes - totals.blob_bytes,
        "uploads_in_progress": totals.uploads,
        "largest_repositories": [{"name": name, "size_bytes": size} for name, size in totals.largest],
    }


async def storage(ctx: Context) -> web.StreamResponse:
    return json_response(totals_json(await inventory(ctx).totals()))
