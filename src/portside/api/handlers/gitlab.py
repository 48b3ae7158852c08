"""GitLab's container registry API v1 (`/gitlab/v1/`), where Portside can answer it: the compliance check,
repository details with deduplicated sizes, detailed tag lists, and the repositories under a path.

Field names, formats and parameters are GitLab's (docs/http-behaviour.md says where Portside differs), so
integrations written for GitLab's registry work against Portside.
"""

from __future__ import annotations

from typing import Any

from aiohttp import web

from portside.api.context import Context
from portside.api.handlers.params import (
    REPOSITORY_PATTERN,
    encode_marker,
    inventory,
    iso,
    json_response,
    link_header,
    matching,
    one_of,
    page_size,
    tag_query,
)
from portside.auth import AuthRequest
from portside.auth.access import CATALOG_ACCESS, PULL, repository_access
from portside.reference import ReferenceError, validate_repository_name
from portside.registry import NameUnknown
from portside.registry.inventory import RepositoryInfo, TagInfo, TagMarker, TagQuery

SIZES = ("self", "self_with_descendants")


async def compliance(ctx: Context) -> web.StreamResponse:
    """200 with an empty body: this registry implements the API."""
    return web.Response(status=200)


async def _descendants_allowed(ctx: Context, path: str) -> None:
    """What lies below `path` needs `pull` on `<path>/*` (GitLab's rule) or the catalog; otherwise the
    controller answers as it answers any lack of access."""
    below = repository_access(f"{path}/*", PULL)
    if ctx.may(below[0]) or ctx.may(CATALOG_ACCESS[0]):
        return
    controller = ctx.services.controller
    if controller is not None:
        request = AuthRequest(ctx.request.headers.get("Authorization"), ctx.request.remote or "", ctx.base_url())
        await controller.authorize(request, below)


def _last_segment(name: str) -> str:
    return name.rsplit("/", 1)[-1]


def _repository(info: RepositoryInfo) -> dict[str, Any]:
    body: dict[str, Any] = {"name": _last_segment(info.name), "path": info.name, "created_at": iso(info.created_at)}
    if info.last_push is not None and info.last_push > info.created_at:
        body["updated_at"] = iso(info.last_push)
    return body


async def repository_details(ctx: Context) -> web.StreamResponse:
    name = ctx.params["name"]
    size = ctx.query("size")
    if size is not None and size not in SIZES:
        raise one_of("size", SIZES)
    descendants = size == "self_with_descendants"
    found = inventory(ctx)
    try:
        body = _repository(await found.repository(name))
    except NameUnknown:
        # GitLab's rule: a path with repositories below it but none of its own (a project whose images all
        # live in sub-repositories) still has a size with descendants, when its namespace exists.
        if not descendants or not await found.namespace_exists(name):
            raise
        body = {"name": _last_segment(name), "path": name, "created_at": ""}
    if size is not None:
        if descendants:
            await _descendants_allowed(ctx, name)
        body = {
            "name": body["name"],
            "path": body["path"],
            "size_bytes": await found.tagged_size(name, descendants),
            "size_precision": "default",
            **{k: v for k, v in body.items() if k not in ("name", "path")},
        }
    return json_response(body)


def tag_json(tag: TagInfo) -> dict[str, Any]:
    body: dict[str, Any] = {"name": tag.name, "digest": str(tag.digest)}
    if tag.config_digest is not None:
        body["config_digest"] = str(tag.config_digest)
    body["media_type"] = tag.media_type
    body["size_bytes"] = tag.size
    body["created_at"] = iso(tag.created_at)
    if tag.updated_at is not None:
        body["updated_at"] = iso(tag.updated_at)
    body["published_at"] = iso(tag.published_at)
    if tag.referrers:
        body["referrers"] = [{"artifactType": r.artifact_type or "", "digest": str(r.digest)} for r in tag.referrers]
    return body


def page_links(
    ctx: Context, route: str, name: str, query: TagQuery, items: list[TagInfo], more: bool, previous: bool
) -> list[tuple[str, str]]:
    """`previous` and `next` links of a tag page, keeping its size, sort and filter."""
    keep: dict[str, str] = {"n": str(query.limit)}
    raw_sort = ctx.query("sort")
    if raw_sort:
        keep["sort"] = raw_sort
    if query.name_contains:
        keep["name"] = query.name_contains
    links: list[tuple[str, str]] = []
    if not items:
        return links
    first, final = items[0], items[-1]
    if previous:
        marker = encode_marker(TagMarker(first.name, first.published_at), query.sort)
        links.append(("previous", ctx.url_for(route, query={**keep, "before": marker}, name=name)))
    if more:
        marker = encode_marker(TagMarker(final.name, final.published_at), query.sort)
        links.append(("next", ctx.url_for(route, query={**keep, "last": marker}, name=name)))
    return links


async def tags_list(ctx: Context) -> web.StreamResponse:
    name = ctx.params["name"]
    query = tag_query(ctx, page_size(ctx))
    page = await inventory(ctx).tags(name, query)
    links = page_links(ctx, "gitlab_tags", name, query, page.items, page.more, page.previous)
    return json_response([tag_json(tag) for tag in page.items], link_header(links))


async def repositories_under(ctx: Context) -> web.StreamResponse:
    path = ctx.params["name"]
    n = page_size(ctx)
    last = ctx.query("last") or None
    if last is not None:
        try:
            validate_repository_name(last)
        except ReferenceError:
            raise matching("last", REPOSITORY_PATTERN) from None
    await _descendants_allowed(ctx, path)
    found = inventory(ctx)
    page = await found.repositories_under(path, last, n)
    if not page.items and last is None and not await found.namespace_exists(path):
        namespace = path.split("/", 1)[0]
        raise NameUnknown(f"the namespace {namespace} is not known to registry", {"namespace": namespace})
    links: list[tuple[str, str]] = []
    if page.more:
        query = {"n": str(n), "last": page.items[-1].name}
        links.append(("next", ctx.url_for("gitlab_repositories", query=query, name=path)))
    return json_response([_repository(info) for info in page.items], link_header(links))
