"""The route table: every endpoint as data (after distribution's `registry/api/v2/descriptors.go`).

Each route has a path template, a one-line description, the access its methods need, and per method the
handler, its success responses with their headers, its query parameters and the error codes it may answer
with. The dispatcher matches and dispatches from it, handlers build URLs from it by name, and the OpenAPI
document (api/openapi.py) and the error table of docs/http-behaviour.md are generated from it.

Templates match the raw request path below `http.prefix`. `{name}` is a repository name, which may contain
slashes, so it is matched greedily and the fixed suffix decides the route; any other `{param}` is one path
segment. The order of the table settles the rest (`/blobs/uploads/` before `/blobs/<digest>`). A template
ending in `/` also matches without it.
"""

from __future__ import annotations

import re
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from urllib.parse import quote, unquote

from aiohttp import web

from portside.api.context import Context
from portside.api.errors import ApiError, ErrorCode
from portside.api.handlers import (
    base,
    blobs,
    debug,
    gitlab,
    inventory,
    listing,
    manifests,
    openapi,
    referrers,
    token,
    ui,
    uploads,
)
from portside.auth.access import CATALOG_ACCESS, DELETE, PULL, PUSH, Access, repository_access

Handler = Callable[[Context], Awaitable[web.StreamResponse]]
# How a route answers an error when not with the API's JSON body (the UI's pages answer with a page).
ErrorPage = Callable[[Context, ApiError], web.StreamResponse]
# The access a request needs, from the route's parameters and the method (docs/auth.md).
AccessRule = Callable[[Mapping[str, str], str], list[Access]]
READ_METHODS = frozenset({"GET", "HEAD"})

E = ErrorCode


def no_access(params: Mapping[str, str], method: str) -> list[Access]:
    """Authentication only."""
    return []


def catalog_access(params: Mapping[str, str], method: str) -> list[Access]:
    return list(CATALOG_ACCESS)


def repository_rule(params: Mapping[str, str], method: str) -> list[Access]:
    """Docker Distribution's rule: reads need pull, writes pull and push, deletes delete."""
    if method in READ_METHODS:
        return repository_access(params["name"], PULL)
    if method == "DELETE":
        return repository_access(params["name"], DELETE)
    return repository_access(params["name"], PULL, PUSH)


def upload_rule(params: Mapping[str, str], method: str) -> list[Access]:
    """Every step of an upload, its status and its cancellation are part of a push."""
    return repository_access(params["name"], PULL, PUSH)


@dataclass(frozen=True)
class Param:
    name: str
    description: str
    required: bool = False


@dataclass(frozen=True)
class Answer:
    """A success response: its status, what it means, the headers it carries and what its body is."""

    status: int
    description: str
    headers: tuple[str, ...] = ()
    body: str | None = None  # a schema name of api/openapi.py, or None for no body


@dataclass(frozen=True)
class Operation:
    handler: Handler
    summary: str
    answers: tuple[Answer, ...]
    errors: tuple[ErrorCode, ...] = ()
    query: tuple[Param, ...] = ()
    request_body: str | None = None
    writes: bool | None = None  # refused in read-only mode; by default every method but GET and HEAD


@dataclass(frozen=True)
class Route:
    name: str
    path: str
    description: str
    methods: Mapping[str, Operation]
    access: AccessRule = no_access
    public: bool = False  # answered without asking the access controller
    browser: bool = False  # a page for browsers: access through Services.browser_controller (api/browser.py)
    error_page: ErrorPage | None = None
    pattern: re.Pattern[str] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "pattern", _compile(self.path))

    @property
    def parameters(self) -> list[str]:
        return re.findall(r"{(\w+)}", self.path)

    def match(self, path: str) -> dict[str, str] | None:
        found = self.pattern.match(path)
        if found is None:
            return None
        return {key: unquote(value) for key, value in found.groupdict().items()}

    def path_for(self, **params: str) -> str:
        """The path of this route with `params` filled in, each quoted (a name keeps its slashes)."""
        out = self.path
        for key in self.parameters:
            out = out.replace(f"{{{key}}}", quote(params[key], safe="/:@-._~" if key == "name" else ":@-._~"))
        return out

    def writes(self, method: str) -> bool:
        declared = self.methods[method].writes
        return method not in READ_METHODS if declared is None else declared

    def errors(self, method: str) -> tuple[ErrorCode, ...]:
        """Every code `method` may answer with: its own, and those the dispatcher adds for this route."""
        codes = list(self.methods[method].errors)
        if "name" in self.parameters:
            codes.append(E.NAME_INVALID)
        if not self.public:
            codes += [E.UNAUTHORIZED, E.DENIED]
        if self.writes(method):
            codes.append(E.UNSUPPORTED)  # read-only mode
        return tuple(sorted(set(codes), key=lambda c: c.value.value))


def _compile(template: str) -> re.Pattern[str]:
    optional_slash = template.endswith("/") and template != "/"
    body = template[:-1] if optional_slash else template
    # A name that ends the template leaves the optional slash outside it.
    last_name = "(?P<name>.+?)" if optional_slash and body.endswith("{name}") else "(?P<name>.+)"
    regex = ""
    for piece in re.split(r"({\w+})", body):
        if piece.startswith("{"):
            key = piece[1:-1]
            regex += last_name if key == "name" else f"(?P<{key}>[^/]+)"
        else:
            regex += re.escape(piece)
    return re.compile(f"^{regex}{'/?' if optional_slash else ''}\\Z", re.DOTALL)


@dataclass(frozen=True)
class RouteTable:
    routes: tuple[Route, ...]

    def resolve(self, path: str) -> tuple[Route, dict[str, str]] | None:
        for route in self.routes:
            params = route.match(path)
            if params is not None:
                return route, params
        return None

    def __getitem__(self, name: str) -> Route:
        for route in self.routes:
            if route.name == name:
                return route
        raise KeyError(name)


# ---------------------------------------------------------------------------------------------- the registry API

PAGE = (
    Param("n", "Page size: at most this many entries (a non-negative integer)."),
    Param("last", "Start after this entry (the last one of the previous page)."),
)
BLOB_HEADERS = ("Content-Length", "Content-Type", "Docker-Content-Digest", "ETag", "Accept-Ranges", "Cache-Control")
MANIFEST_HEADERS = ("Content-Type", "Content-Length", "Docker-Content-Digest", "ETag")
SESSION_HEADERS = ("Location", "Range", "Docker-Upload-UUID")
# What a pull-through cache answers when its upstream cannot: throttled (429) or unavailable (502, 503, 504).
UPSTREAM = (E.TOOMANYREQUESTS, E.UNAVAILABLE)
CREATED_BLOB = Answer(201, "The blob is stored and linked into the repository.", ("Location", "Docker-Content-Digest"))

REGISTRY_ROUTES = (
    Route(
        "base",
        "/v2/",
        "The API version check.",
        {
            method: Operation(
                base.version_check, "Check that the endpoint speaks this API.", (Answer(200, "Yes.", (), "Empty"),)
            )
            for method in ("GET", "HEAD")
        },
    ),
    Route(
        "catalog",
        "/v2/_catalog",
        "The repositories of the registry, in byte order.",
        {
            "GET": Operation(
                listing.catalog,
                "List repositories; at most `catalog.maxentries` a page.",
                (Answer(200, "A page of repository names.", ("Link",), "Catalog"),),
                (E.PAGINATION_NUMBER_INVALID,),
                query=PAGE,
            )
        },
        catalog_access,
    ),
    Route(
        "tags",
        "/v2/{name}/tags/list",
        "A repository's tags, in byte order.",
        {
            "GET": Operation(
                listing.tags_list,
                "List tags.",
                (Answer(200, "A page of tags.", ("Link",), "TagList"),),
                (E.NAME_UNKNOWN, E.PAGINATION_NUMBER_INVALID, *UPSTREAM),
                query=PAGE,
            )
        },
        repository_rule,
    ),
    Route(
        "manifest",
        "/v2/{name}/manifests/{reference}",
        "A manifest by tag or digest.",
        {
            "GET": Operation(
                manifests.get_manifest,
                "Fetch a manifest, as pushed, in a media type the client accepts.",
                (
                    Answer(200, "The manifest.", MANIFEST_HEADERS, "Manifest"),
                    Answer(304, "The client's copy (If-None-Match) is current.", ("Docker-Content-Digest", "ETag")),
                ),
                (E.DIGEST_INVALID, E.MANIFEST_UNKNOWN, E.NAME_UNKNOWN, *UPSTREAM),
            ),
            "HEAD": Operation(
                manifests.get_manifest,
                "Check that a manifest exists, and learn its digest, type and size.",
                (
                    Answer(200, "The manifest exists.", MANIFEST_HEADERS),
                    Answer(304, "The client's copy (If-None-Match) is current.", ("Docker-Content-Digest", "ETag")),
                ),
                (E.DIGEST_INVALID, E.MANIFEST_UNKNOWN, E.NAME_UNKNOWN, *UPSTREAM),
            ),
            "PUT": Operation(
                manifests.put_manifest,
                "Push a manifest; by tag, the tag moves to it.",
                (Answer(201, "The manifest is stored.", ("Location", "Docker-Content-Digest", "OCI-Subject")),),
                (E.DIGEST_INVALID, E.MANIFEST_BLOB_UNKNOWN, E.MANIFEST_INVALID, E.TAG_INVALID),
                request_body="Manifest",
            ),
            "DELETE": Operation(
                manifests.delete_manifest,
                "Delete a manifest by digest (with every tag on it), or only a tag.",
                (Answer(202, "Deleted."),),
                (E.DIGEST_INVALID, E.MANIFEST_UNKNOWN, E.NAME_UNKNOWN, E.TAG_INVALID),
            ),
        },
        repository_rule,
    ),
    Route(
        "upload_start",
        "/v2/{name}/blobs/uploads/",
        "Start a blob upload, push a whole blob, or mount one from another repository.",
        {
            "POST": Operation(
                uploads.start_upload,
                "With `digest`, the body is the whole blob; with `mount`, link an existing blob; otherwise open a "
                "session.",
                (
                    CREATED_BLOB,
                    Answer(202, "A session is open; continue at Location.", SESSION_HEADERS),
                ),
                (E.BLOB_UPLOAD_INVALID, E.DIGEST_INVALID, E.SIZE_INVALID),
                query=(
                    Param("digest", "The digest of the blob sent as the body (a monolithic upload)."),
                    Param("mount", "The digest of a blob to link from another repository."),
                    Param("from", "The repository to mount from (any readable one holding the blob when absent)."),
                ),
                request_body="Blob",
            )
        },
        upload_rule,
    ),
    Route(
        "upload",
        "/v2/{name}/blobs/uploads/{uuid}",
        "An upload session.",
        {
            "GET": Operation(
                uploads.upload_status,
                "How much the session holds.",
                (Answer(204, "The session's state.", SESSION_HEADERS),),
                (E.BLOB_UPLOAD_UNKNOWN,),
            ),
            "PATCH": Operation(
                uploads.upload_chunk,
                "Append a chunk (`Content-Range` says where it starts).",
                (Answer(202, "The chunk is stored.", SESSION_HEADERS),),
                (E.BLOB_UPLOAD_INVALID, E.BLOB_UPLOAD_UNKNOWN, E.RANGE_INVALID, E.SIZE_INVALID),
                request_body="Blob",
            ),
            "PUT": Operation(
                uploads.finish_upload,
                "Finish the upload, with an optional last chunk, against `digest`.",
                (CREATED_BLOB,),
                (E.BLOB_UPLOAD_INVALID, E.BLOB_UPLOAD_UNKNOWN, E.DIGEST_INVALID, E.RANGE_INVALID, E.SIZE_INVALID),
                query=(Param("digest", "The digest of the whole blob.", required=True),),
                request_body="Blob",
            ),
            "DELETE": Operation(
                uploads.cancel_upload,
                "Cancel the upload.",
                (Answer(204, "Cancelled."),),
                (E.BLOB_UPLOAD_UNKNOWN,),
            ),
        },
        upload_rule,
    ),
    Route(
        "blob",
        "/v2/{name}/blobs/{digest}",
        "A blob of a repository.",
        {
            "GET": Operation(
                blobs.get_blob,
                "Fetch a blob, or one byte range of it.",
                (
                    Answer(200, "The blob.", BLOB_HEADERS, "Blob"),
                    Answer(206, "The range asked for.", (*BLOB_HEADERS, "Content-Range"), "Blob"),
                    Answer(304, "The client's copy (If-None-Match) is current.", ("Docker-Content-Digest", "ETag")),
                    Answer(307, "Fetch it from the storage backend directly.", ("Location", "Docker-Content-Digest")),
                ),
                (E.BLOB_UNKNOWN, E.DIGEST_INVALID, E.NAME_UNKNOWN, E.RANGE_INVALID, *UPSTREAM),
            ),
            "HEAD": Operation(
                blobs.get_blob,
                "Check that a blob exists and learn its size.",
                (
                    Answer(200, "The blob exists.", BLOB_HEADERS),
                    Answer(304, "The client's copy (If-None-Match) is current.", ("Docker-Content-Digest", "ETag")),
                    Answer(307, "Check it at the storage backend directly.", ("Location", "Docker-Content-Digest")),
                ),
                (E.BLOB_UNKNOWN, E.DIGEST_INVALID, E.NAME_UNKNOWN, *UPSTREAM),
            ),
            "DELETE": Operation(
                blobs.delete_blob,
                "Unlink a blob from the repository.",
                (Answer(202, "Unlinked.", ("Docker-Content-Digest",)),),
                (E.BLOB_UNKNOWN, E.DIGEST_INVALID, E.NAME_UNKNOWN),
            ),
        },
        repository_rule,
    ),
    Route(
        "referrers",
        "/v2/{name}/referrers/{digest}",
        "The manifests whose `subject` is a given manifest.",
        {
            "GET": Operation(
                referrers.list_referrers,
                "List referrers as an image index, optionally of one artifact type.",
                (
                    Answer(
                        200, "An image index of the referrers.", ("Content-Type", "OCI-Filters-Applied"), "ImageIndex"
                    ),
                ),
                (E.DIGEST_INVALID, *UPSTREAM),
                query=(Param("artifactType", "Only referrers of this artifact type."),),
            )
        },
        repository_rule,
    ),
    Route(
        "openapi",
        "/openapi.json",
        "This document: the OpenAPI description of every route.",
        {
            "GET": Operation(
                openapi.document, "The OpenAPI 3.1 document.", (Answer(200, "The document.", (), "Object"),)
            )
        },
        public=True,
    ),
)


def token_route(path: str) -> Route:
    """The built-in token server's endpoint (tokenserver.path), when it runs inside the registry."""
    answers = (Answer(200, "A token.", (), "Token"),)
    return Route(
        "token",
        path,
        "The built-in token server: Docker's token flow (GET) and OAuth2 (POST).",
        {
            "GET": Operation(token.token, "Issue a token for `scope` to the Basic-authenticated user.", answers),
            "HEAD": Operation(token.token, "As GET, without the body.", answers),
            "POST": Operation(
                token.token, "Issue a token (grant_type password or refresh_token).", answers, writes=False
            ),
        },
        public=True,
    )


def debug_routes(metrics_path: str | None) -> RouteTable:
    """The routes of the debug server (`http.debug.addr`): health, and metrics when enabled."""
    health = Operation(
        debug.health_status,
        "Health of the storage driver, the database and the configured checks.",
        (Answer(200, "Healthy.", (), "Object"), Answer(503, "Failing checks, by name, with why.", (), "Object")),
    )
    routes = [Route("health", "/debug/health", "Health checks.", {"GET": health, "HEAD": health}, public=True)]
    if metrics_path:
        exposition = Operation(debug.metrics, "Prometheus text exposition.", (Answer(200, "The metrics.", (), "Text"),))
        routes.append(Route("metrics", metrics_path, "Prometheus metrics.", {"GET": exposition}, public=True))
    return RouteTable(tuple(routes))


# ---------------------------------------------------------------------------------------------- management APIs

QUERY_ERRORS = (E.INVALID_QUERY_PARAMETER_TYPE, E.INVALID_QUERY_PARAMETER_VALUE)
GITLAB_PAGE = (
    Param("n", "Page size: an integer from 1 to 1000 (default 100)."),
    Param("last", "Start after this entry (a tag; with sort=published_at, base64 of `<time>|<tag>`)."),
)
TAG_LIST_QUERY = (
    *GITLAB_PAGE,
    Param("before", "End before this entry (as `last`); not together with `last`."),
    Param("name", "Only tags whose name contains this (any case; a-z A-Z 0-9 . _ -, at most 128)."),
    Param("sort", "`name`, `-name`, `published_at` or `-published_at` (default `name`)."),
    Param("referrers", "`true`: each tag lists the referrers of its manifest."),
    Param("referrer_type", "With referrers: only these artifact types (comma-separated media types)."),
)
MANIFEST_READ_ERRORS = (E.DIGEST_INVALID, E.MANIFEST_UNKNOWN, E.NAME_UNKNOWN, E.TAG_INVALID)


def _get(
    handler: Handler, summary: str, answer: Answer, *errors: ErrorCode, query: tuple[Param, ...] = ()
) -> dict[str, Operation]:
    return {"GET": Operation(handler, summary, (answer,), errors, query)}


MANAGEMENT_ROUTES = (
    Route(
        "gitlab_base",
        "/gitlab/v1/",
        "GitLab's container registry API v1: the compliance check.",
        _get(gitlab.compliance, "Check that the registry implements GitLab's API v1.", Answer(200, "It does.")),
    ),
    Route(
        "gitlab_tags",
        "/gitlab/v1/repositories/{name}/tags/list/",
        "GitLab API v1: a repository's tags with their manifests, paged, filtered and sorted.",
        _get(
            gitlab.tags_list,
            "List tags in detail (GitLab's List Repository Tags).",
            Answer(200, "A page of tags.", ("Link",), "GitLabTags"),
            E.NAME_UNKNOWN,
            *QUERY_ERRORS,
            query=TAG_LIST_QUERY,
        ),
        repository_rule,
    ),
    Route(
        "gitlab_repositories",
        "/gitlab/v1/repository-paths/{name}/repositories/list/",
        "GitLab API v1: the repositories with at least one tag at and below a path.",
        _get(
            gitlab.repositories_under,
            "List the repositories under a path (GitLab's List Sub Repositories); needs `pull` on `<path>/*` "
            "or the catalog as well.",
            Answer(200, "A page of repositories.", ("Link",), "GitLabRepositories"),
            E.NAME_UNKNOWN,
            *QUERY_ERRORS,
            query=GITLAB_PAGE,
        ),
        repository_rule,
    ),
    Route(
        "gitlab_repository",
        "/gitlab/v1/repositories/{name}/",
        "GitLab API v1: a repository's details.",
        _get(
            gitlab.repository_details,
            "Repository details (GitLab's Get repository details); `size=self_with_descendants` needs `pull` "
            "on `<path>/*` or the catalog as well.",
            Answer(200, "The repository.", (), "GitLabRepository"),
            E.NAME_UNKNOWN,
            E.INVALID_QUERY_PARAMETER_VALUE,
            query=(Param("size", "`self` or `self_with_descendants`: include the deduplicated size."),),
        ),
        repository_rule,
    ),
    Route(
        "portside_base",
        "/portside/v1/",
        "Portside's management API: its version and what this registry allows.",
        _get(inventory.version, "Version and settings.", Answer(200, "Version and settings.", (), "PortsideVersion")),
    ),
    Route(
        "portside_storage",
        "/portside/v1/storage",
        "Storage totals: each blob counted once for the registry, and once per repository linking it.",
        _get(inventory.storage, "Storage totals.", Answer(200, "The totals.", (), "PortsideStorage")),
        catalog_access,
    ),
    Route(
        "portside_repositories",
        "/portside/v1/repositories/",
        "Repositories with tag counts, deduplicated sizes and last pushes, in byte order.",
        _get(
            inventory.repositories,
            "List repositories.",
            Answer(200, "A page of repositories.", ("Link",), "PortsideRepositories"),
            *QUERY_ERRORS,
            query=(
                Param("n", "Page size: an integer from 1 to 1000 (default 100)."),
                Param("last", "Start after this repository."),
                Param("name", "Only repositories whose name contains this (any case)."),
            ),
        ),
        catalog_access,
    ),
    Route(
        "portside_tags",
        "/portside/v1/repositories/{name}/tags/",
        "A repository's tags with their manifests, sizes, platforms and referrers.",
        _get(
            inventory.tags,
            "List tags in detail (GitLab's parameters, and `platforms`).",
            Answer(200, "A page of tags.", ("Link",), "PortsideTags"),
            E.NAME_UNKNOWN,
            *QUERY_ERRORS,
            query=(
                *TAG_LIST_QUERY,
                Param("platforms", "`true`: also read each single-platform image's config for its platform."),
            ),
        ),
        repository_rule,
    ),
    Route(
        "portside_manifest",
        "/portside/v1/repositories/{name}/manifests/{reference}",
        "A manifest in detail: layers, image config and history, an index's platforms, referrers by type.",
        _get(
            inventory.manifest,
            "Describe a manifest by tag or digest.",
            Answer(200, "The manifest's details.", (), "PortsideManifest"),
            *MANIFEST_READ_ERRORS,
        ),
        repository_rule,
    ),
    Route(
        "portside_repository",
        "/portside/v1/repositories/{name}/",
        "A repository: tag and manifest counts, deduplicated size, last push.",
        _get(
            inventory.repository,
            "Describe a repository.",
            Answer(200, "The repository.", (), "PortsideRepository"),
            E.NAME_UNKNOWN,
        ),
        repository_rule,
    ),
)


# ---------------------------------------------------------------------------------------------- the web UI


def delete_rule(params: Mapping[str, str], method: str) -> list[Access]:
    """Asking to delete and deleting: `delete` on the repository, and `pull`, since the page shows what goes."""
    return repository_access(params["name"], PULL, DELETE)


def ui_routes(path: str) -> tuple[Route, ...]:
    """The web UI's pages below `path` (`ui.path`, ending in `/`). Repository names never contain a `-`
    segment, so `/-/` ends a name."""
    page = Answer(200, "The page.", (), "Html")
    moved = Answer(303, "Where to go next.", ("Location",))
    errors = (E.UNAVAILABLE,)  # a token server that does not answer (auth.token.realm)

    def pages(
        name: str, template: str, description: str, operations: dict[str, Operation], access: AccessRule
    ) -> Route:
        shown = ui.login_error_page if name == "ui_login" else ui.error_page
        return Route(name, path + template, description, operations, access, browser=True, error_page=shown)

    return (
        pages(
            "ui_home",
            "",
            "The web UI: repositories.",
            _get(ui.home, "Repositories, searchable.", page, *errors, E.INVALID_QUERY_PARAMETER_VALUE),
            catalog_access,
        ),
        pages(
            "ui_login",
            "login",
            "The web UI: sign in (the browser asks for a user name and password).",
            _get(ui.login, "Sign in, then go back.", moved, *errors),
            no_access,
        ),
        pages(
            "ui_storage",
            "storage",
            "The web UI: storage totals.",
            _get(ui.storage, "Storage totals.", page, *errors),
            catalog_access,
        ),
        pages(
            "ui_manifest",
            "repositories/{name}/-/manifests/{reference}",
            "The web UI: a manifest.",
            _get(
                ui.manifest,
                "A manifest: layers, config, history, platforms, referrers.",
                page,
                *errors,
                *MANIFEST_READ_ERRORS,
            ),
            repository_rule,
        ),
        pages(
            "ui_delete",
            "repositories/{name}/-/delete",
            "The web UI: delete a tag or a manifest, after confirmation.",
            {
                "GET": Operation(
                    ui.delete,
                    "Ask to confirm deleting `tag` or `digest`.",
                    (page,),
                    (*errors, *MANIFEST_READ_ERRORS, E.INVALID_QUERY_PARAMETER_VALUE, E.UNSUPPORTED),
                    query=(Param("tag", "The tag to delete."), Param("digest", "The manifest to delete.")),
                ),
                "POST": Operation(
                    ui.delete,
                    "Delete the tag or manifest the form names (from this site's own pages only).",
                    (moved,),
                    (*errors, *MANIFEST_READ_ERRORS, E.INVALID_QUERY_PARAMETER_VALUE),
                    request_body="Form",
                ),
            },
            delete_rule,
        ),
        pages(
            "ui_repository",
            "repositories/{name}",
            "The web UI: a repository's tags.",
            _get(ui.repository, "Tags, filtered and sorted.", page, *errors, E.NAME_UNKNOWN, *QUERY_ERRORS),
            repository_rule,
        ),
        Route(
            "ui_static",
            path + "-/static/{file}",
            "The web UI's stylesheet and script.",
            {
                "GET": Operation(
                    ui.static,
                    "A static file.",
                    (
                        Answer(200, "The file.", ("Content-Type", "Cache-Control", "ETag"), "Text"),
                        Answer(304, "The client's copy (If-None-Match) is current.", ("ETag",)),
                    ),
                    (E.UNSUPPORTED,),
                    query=(Param("v", "The file's version: with the current one, it may be cached for good."),),
                )
            },
            public=True,
        ),
    )


def registry_routes(token_path: str | None, ui_path: str | None = "/") -> RouteTable:
    """The routes of the registry's own address: the token server's when it runs inside, the registry API,
    the management APIs, and the web UI's pages below `ui_path` unless that is None."""
    routes = REGISTRY_ROUTES if token_path is None else (token_route(token_path), *REGISTRY_ROUTES)
    return RouteTable((*routes, *MANAGEMENT_ROUTES, *(ui_routes(ui_path) if ui_path is not None else ())))


ROUTES = registry_routes(None)
