"""The route table: every endpoint of the API as data (path pattern, methods, handler, access it needs).

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
from portside.auth.access import CATALOG_ACCESS, DELETE, PULL, PUSH, Access, repository_access

Handler = Callable[[Context], Awaitable[web.StreamResponse]]
# The access a request needs, from the route's parameters and the method (docs/auth.md).
AccessRule = Callable[[Mapping[str, str], str], list[Access]]


def no_access(params: Mapping[str, str], method: str) -> list[Access]:
    """Authentication only."""
    return []


def catalog_access(params: Mapping[str, str], method: str) -> list[Access]:
    return list(CATALOG_ACCESS)


def repository_rule(params: Mapping[str, str], method: str) -> list[Access]:
    """Docker Distribution's rule: reads need pull, writes pull and push, deletes delete."""
    if method in ("GET", "HEAD"):
        return repository_access(params["name"], PULL)
    if method == "DELETE":
        return repository_access(params["name"], DELETE)
    return repository_access(params["name"], PULL, PUSH)


def upload_rule(params: Mapping[str, str], method: str) -> list[Access]:
    """Every step of an upload, its status and its cancellation are part of a push."""
    return repository_access(params["name"], PULL, PUSH)


@dataclass(frozen=True)
class Route:
    name: str
    pattern: re.Pattern[str]
    methods: Mapping[str, Handler]
    access: AccessRule

    def match(self, path: str) -> dict[str, str] | None:
        found = self.pattern.match(path)
        if found is None:
            return None
        return {key: unquote(value) for key, value in found.groupdict().items()}


def _route(name: str, pattern: str, methods: Mapping[str, Handler], access: AccessRule) -> Route:
    return Route(name, re.compile(f"^{pattern}$", re.DOTALL), methods, access)


NAME = r"(?P<name>.+)"

ROUTES: tuple[Route, ...] = (
    _route("base", r"/v2/?", {"GET": base.version_check, "HEAD": base.version_check}, no_access),
    _route("catalog", r"/v2/_catalog", {"GET": listing.catalog}, catalog_access),
    _route("tags", rf"/v2/{NAME}/tags/list", {"GET": listing.tags_list}, repository_rule),
    _route(
        "manifest",
        rf"/v2/{NAME}/manifests/(?P<reference>[^/]+)",
        {
            "GET": manifests.get_manifest,
            "HEAD": manifests.get_manifest,
            "PUT": manifests.put_manifest,
            "DELETE": manifests.delete_manifest,
        },
        repository_rule,
    ),
    _route("upload_start", rf"/v2/{NAME}/blobs/uploads/?", {"POST": uploads.start_upload}, upload_rule),
    _route(
        "upload",
        rf"/v2/{NAME}/blobs/uploads/(?P<uuid>[^/]+)",
        {
            "GET": uploads.upload_status,
            "PATCH": uploads.upload_chunk,
            "PUT": uploads.finish_upload,
            "DELETE": uploads.cancel_upload,
        },
        upload_rule,
    ),
    _route(
        "blob",
        rf"/v2/{NAME}/blobs/(?P<digest>[^/]+)",
        {"GET": blobs.get_blob, "HEAD": blobs.get_blob, "DELETE": blobs.delete_blob},
        repository_rule,
    ),
    _route("referrers", rf"/v2/{NAME}/referrers/(?P<digest>[^/]+)", {"GET": referrers.list_referrers}, repository_rule),
)


DEBUG_ROUTES: tuple[Route, ...] = (
    _route("health", r"/debug/health", {"GET": debug.health_status, "HEAD": debug.health_status}, no_access),
)


def resolve(path: str, routes: tuple[Route, ...] = ROUTES) -> tuple[Route, dict[str, str]] | None:
    for route in routes:
        params = route.match(path)
        if params is not None:
            return route, params
    return None
