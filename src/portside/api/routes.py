"""The route table: every endpoint of the API as data (path pattern, methods, handler).

Patterns match the raw request path below `http.prefix`. A repository name may contain slashes, so names are
matched greedily and the fixed suffix decides the route; the order of the table settles the rest
(`/blobs/uploads/` before `/blobs/<digest>`).
"""

from __future__ import annotations

import re
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from urllib.parse import unquote

from aiohttp import web

from portside.api.context import Context
from portside.api.handlers import base, blobs, debug, listing, manifests, referrers, uploads

Handler = Callable[[Context], Awaitable[web.StreamResponse]]


@dataclass(frozen=True)
class Route:
    name: str
    pattern: re.Pattern[str]
    methods: Mapping[str, Handler]

    def match(self, path: str) -> dict[str, str] | None:
        found = self.pattern.match(path)
        if found is None:
            return None
        return {key: unquote(value) for key, value in found.groupdict().items()}


def _route(name: str, pattern: str, methods: Mapping[str, Handler]) -> Route:
    return Route(name, re.compile(f"^{pattern}$", re.DOTALL), methods)


NAME = r"(?P<name>.+)"

ROUTES: tuple[Route, ...] = (
    _route("base", r"/v2/?", {"GET": base.version_check, "HEAD": base.version_check}),
    _route("catalog", r"/v2/_catalog", {"GET": listing.catalog}),
    _route("tags", rf"/v2/{NAME}/tags/list", {"GET": listing.tags_list}),
    _route(
        "manifest",
        rf"/v2/{NAME}/manifests/(?P<reference>[^/]+)",
        {
            "GET": manifests.get_manifest,
            "HEAD": manifests.get_manifest,
            "PUT": manifests.put_manifest,
            "DELETE": manifests.delete_manifest,
        },
    ),
    _route("upload_start", rf"/v2/{NAME}/blobs/uploads/?", {"POST": uploads.start_upload}),
    _route(
        "upload",
        rf"/v2/{NAME}/blobs/uploads/(?P<uuid>[^/]+)",
        {
            "GET": uploads.upload_status,
            "PATCH": uploads.upload_chunk,
            "PUT": uploads.finish_upload,
            "DELETE": uploads.cancel_upload,
        },
    ),
    _route(
        "blob",
        rf"/v2/{NAME}/blobs/(?P<digest>[^/]+)",
        {"GET": blobs.get_blob, "HEAD": blobs.get_blob, "DELETE": blobs.delete_blob},
    ),
    _route("referrers", rf"/v2/{NAME}/referrers/(?P<digest>[^/]+)", {"GET": referrers.list_referrers}),
)


DEBUG_ROUTES: tuple[Route, ...] = (
    _route("health", r"/debug/health", {"GET": debug.health_status, "HEAD": debug.health_status}),
)


def resolve(path: str, routes: tuple[Route, ...] = ROUTES) -> tuple[Route, dict[str, str]] | None:
    for route in routes:
        params = route.match(path)
        if params is not None:
            return route, params
    return None
