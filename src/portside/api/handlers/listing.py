"""Tag lists and the catalog, paged with `n`/`last` and RFC 5988 `Link` headers."""

from __future__ import annotations

import json

from aiohttp import web

from portside.api.context import Context
from portside.api.headers import link_next, parse_last, parse_page_size


def _json(body: object, headers: dict[str, str]) -> web.Response:
    return web.Response(body=json.dumps(body).encode(), headers={"Content-Type": "application/json", **headers})


async def tags_list(ctx: Context) -> web.StreamResponse:
    repo = ctx.repository()
    n = parse_page_size(ctx.query("n"))
    last = parse_last(ctx.query("last"))
    page = await repo.tags.page(last, n)
    headers: dict[str, str] = {}
    if page.more and n:
        headers["Link"] = link_next(ctx.url_for("tags", name=repo.name), page.items[-1], n)
    return _json({"name": repo.name, "tags": page.items}, headers)


async def catalog(ctx: Context) -> web.StreamResponse:
    cap = ctx.namespace.options.catalog_max_entries
    requested = parse_page_size(ctx.query("n"))
    n = cap if requested is None else min(requested, cap)
    page = await ctx.namespace.catalog(parse_last(ctx.query("last")), n)
    headers: dict[str, str] = {}
    if page.more:
        headers["Link"] = link_next(ctx.url_for("catalog"), page.items[-1], n)
    return _json({"repositories": page.items}, headers)
