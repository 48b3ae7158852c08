"""The OpenAPI 3.1 document and the error table of docs/http-behaviour.md, generated from the route table.

`portside openapi` prints the document; a worker serves it at `/openapi.json`. Both come from the same
descriptors the dispatcher runs on, so they cannot drift from what Portside answers.
"""

from __future__ import annotations

from collections import defaultdict
from typing import Any

from portside import __version__
from portside.api.errors import ErrorCode
from portside.api.routes import Route, RouteTable

HEADERS: dict[str, str] = {
    "Location": "Where the resource is, or where to continue.",
    "Docker-Content-Digest": "The digest of the content.",
    "Docker-Upload-UUID": "The upload session's id.",
    "Range": "The bytes the session holds: `0-<last byte>` (`0-0` when empty).",
    "Content-Range": "The bytes sent: `bytes <first>-<last>/<size>`.",
    "Content-Length": "The size of the content in bytes.",
    "Content-Type": "The media type of the content.",
    "ETag": 'The digest, quoted: `"<digest>"`.',
    "Accept-Ranges": "`bytes`: byte ranges may be asked for.",
    "Cache-Control": "Blobs never change: `max-age=31536000`.",
    "Link": 'The next page: `<url>; rel="next"`, when more entries follow.',
    "OCI-Subject": "The digest of the pushed manifest's `subject`.",
    "OCI-Filters-Applied": "`artifactType` when the listing was filtered by it.",
    "WWW-Authenticate": "How to authenticate: a Basic or Bearer challenge.",
    "Allow": "The methods the route serves.",
    "Warning": 'A pull-through cache serving a copy its upstream could not confirm: `110 - "..."`.',
    "Retry-After": "How long to wait before trying again (a throttled upstream).",
}

PATH_PARAMETERS: dict[str, str] = {
    "name": "A repository name; it may contain slashes (`library/alpine`).",
    "reference": "A tag, or a digest (`<algorithm>:<hex>`).",
    "digest": "A digest (`<algorithm>:<hex>`).",
    "uuid": "An upload session id, as given in `Location` and `Docker-Upload-UUID`.",
    "file": "A file name.",
}

_ERROR_BODY = {
    "type": "object",
    "required": ["errors"],
    "properties": {
        "errors": {
            "type": "array",
            "items": {
                "type": "object",
                "required": ["code", "message"],
                "properties": {
                    "code": {"type": "string", "enum": sorted(c.value.value for c in ErrorCode)},
                    "message": {"type": "string"},
                    "detail": {},
                },
            },
        }
    },
}
_STRINGS = {"type": "array", "items": {"type": "string"}}


def _object(required: list[str], **properties: Any) -> dict[str, Any]:
    return {"type": "object", "required": required, "properties": properties}


_S, _N, _TIME = {"type": "string"}, {"type": "integer"}, {"type": "string", "format": "date-time"}
_OPTIONAL_TIME = {"type": ["string", "null"], "format": "date-time"}
_GITLAB_REPOSITORY = _object(
    ["name", "path", "created_at"],
    name=_S,
    path=_S,
    size_bytes=_N,
    size_precision={"enum": ["default"]},
    created_at=_TIME,
    updated_at=_TIME,
)
_GITLAB_TAG = _object(
    ["name", "digest", "media_type", "size_bytes", "created_at", "published_at"],
    name=_S,
    digest=_S,
    config_digest=_S,
    media_type=_S,
    size_bytes=_N,
    created_at=_TIME,
    updated_at=_TIME,
    published_at=_TIME,
    referrers={"type": "array", "items": _object(["artifactType", "digest"], artifactType=_S, digest=_S)},
)
_PORTSIDE_REPOSITORY = _object(
    ["name", "created_at", "last_push_at", "tag_count", "manifest_count", "size_bytes"],
    name=_S,
    created_at=_TIME,
    last_push_at=_OPTIONAL_TIME,
    tag_count=_N,
    manifest_count=_N,
    size_bytes={**_N, "description": "The distinct blobs the repository links, each once."},
)
_COUNTED = _object(["count", "size_bytes"], count=_N, size_bytes=_N)
MANAGEMENT_SCHEMAS: dict[str, Any] = {
    "Html": {"type": "string", "description": "An HTML page."},
    "Form": {"type": "object", "properties": {"tag": _S, "digest": _S}},
    "GitLabRepository": _GITLAB_REPOSITORY,
    "GitLabRepositories": {"type": "array", "items": _GITLAB_REPOSITORY},
    "GitLabTags": {"type": "array", "items": _GITLAB_TAG},
    "PortsideVersion": _object(
        ["name", "version", "delete_enabled", "read_only"],
        name=_S,
        version=_S,
        delete_enabled={"type": "boolean"},
        read_only={"type": "boolean"},
    ),
    "PortsideRepository": _PORTSIDE_REPOSITORY,
    "PortsideRepositories": _object(["repositories"], repositories={"type": "array", "items": _PORTSIDE_REPOSITORY}),
    "PortsideTags": _object(
        ["name", "tags"],
        name=_S,
        tags={
            "type": "array",
            "items": {
                **_GITLAB_TAG,
                "properties": {**_GITLAB_TAG["properties"], "artifact_type": _S, "platforms": _STRINGS},
            },
        },
    ),
    "PortsideManifest": _object(
        ["repository", "digest", "media_type", "size_bytes", "total_size_bytes", "tags", "layers", "manifests"],
        repository=_S,
        digest=_S,
        media_type=_S,
        artifact_type={"type": ["string", "null"]},
        size_bytes=_N,
        total_size_bytes=_N,
        tags=_STRINGS,
        annotations={"type": "object"},
        subject={"type": ["object", "null"]},
        config={"type": ["object", "null"], "description": "The config descriptor, with the image config's fields."},
        layers={"type": "array", "items": {"type": "object"}},
        manifests={"type": "array", "items": {"type": "object"}, "description": "An index's manifests."},
        referrers={
            "type": "array",
            "items": _object(["artifact_type", "manifests"], artifact_type=_S, manifests={"type": "array"}),
        },
    ),
    "PortsideStorage": _object(
        ["repositories", "tags", "manifests", "blobs", "linked_bytes"],
        repositories=_N,
        tags=_N,
        manifests=_COUNTED,
        blobs={**_COUNTED, "description": "Each blob once, as storage holds it."},
        linked_bytes={**_N, "description": "Each blob once per repository linking it."},
        deduplicated_bytes=_N,
        uploads_in_progress=_N,
        largest_repositories={"type": "array", "items": _object(["name", "size_bytes"], name=_S, size_bytes=_N)},
    ),
}
SCHEMAS: dict[str, Any] = {
    "Error": _ERROR_BODY,
    "Empty": {"type": "object", "maxProperties": 0},
    "Object": {"type": "object"},
    "Text": {"type": "string"},
    "Blob": {"type": "string", "format": "binary"},
    "Manifest": {"type": "object", "description": "An image manifest, image index or artifact manifest."},
    "Catalog": {"type": "object", "required": ["repositories"], "properties": {"repositories": _STRINGS}},
    "TagList": {
        "type": "object",
        "required": ["name", "tags"],
        "properties": {"name": {"type": "string"}, "tags": _STRINGS},
    },
    "ImageIndex": {
        "type": "object",
        "required": ["schemaVersion", "mediaType", "manifests"],
        "properties": {
            "schemaVersion": {"const": 2},
            "mediaType": {"type": "string"},
            "manifests": {"type": "array", "items": {"type": "object"}},
        },
    },
    **MANAGEMENT_SCHEMAS,
    "Token": {
        "type": "object",
        "properties": {
            "token": {"type": "string"},
            "access_token": {"type": "string"},
            "expires_in": {"type": "integer"},
            "issued_at": {"type": "string"},
            "refresh_token": {"type": "string"},
        },
    },
}
_MEDIA = {
    "Blob": "application/octet-stream",
    "Text": "text/plain",
    "Manifest": "application/vnd.oci.image.manifest.v1+json",
    "Html": "text/html",
    "Form": "application/x-www-form-urlencoded",
}


def _content(schema: str) -> dict[str, Any]:
    return {_MEDIA.get(schema, "application/json"): {"schema": {"$ref": f"#/components/schemas/{schema}"}}}


def _headers(names: tuple[str, ...]) -> dict[str, Any]:
    return {name: {"description": HEADERS[name], "schema": {"type": "string"}} for name in names}


def _operation(route: Route, method: str) -> dict[str, Any]:
    operation = route.methods[method]
    responses: dict[str, Any] = {}
    for answer in operation.answers:
        response: dict[str, Any] = {"description": answer.description}
        if answer.headers:
            response["headers"] = _headers(answer.headers)
        if answer.body is not None and method != "HEAD":
            response["content"] = _content(answer.body)
        responses[str(answer.status)] = response
    by_status: dict[int, list[str]] = defaultdict(list)
    for code in route.errors(method):
        by_status[code.value.status].append(code.value.value)
    if method == "PUT" and route.name == "manifest":
        by_status[413].append(ErrorCode.MANIFEST_INVALID.value.value)
    if ErrorCode.UNAVAILABLE in route.errors(method):  # a cache's upstream: failing (502) or too slow (504)
        by_status[502].append(ErrorCode.UNAVAILABLE.value.value)
        by_status[504].append(ErrorCode.UNAVAILABLE.value.value)
    for status, codes in sorted(by_status.items()):
        response = {"description": ", ".join(codes), "content": _content("Error")}
        if status == 401:
            response["headers"] = _headers(("WWW-Authenticate",))
        if status == 405:
            response["headers"] = _headers(("Allow",))
        responses[str(status)] = response
    out: dict[str, Any] = {
        "operationId": f"{route.name}_{method.lower()}",
        "summary": operation.summary,
        "responses": responses,
    }
    if operation.query:
        out["parameters"] = [
            {
                "name": p.name,
                "in": "query",
                "required": p.required,
                "description": p.description,
                "schema": {"type": "string"},
            }
            for p in operation.query
        ]
    if operation.request_body is not None:
        out["requestBody"] = {"content": _content(operation.request_body)}
    if not route.public:
        out["security"] = [{"basic": []}, {"bearer": []}, {}]
    return out


def _path_item(route: Route, server: str | None = None) -> dict[str, Any]:
    item: dict[str, Any] = {"summary": route.description}
    if route.parameters:
        item["parameters"] = [
            {"name": p, "in": "path", "required": True, "description": PATH_PARAMETERS[p], "schema": {"type": "string"}}
            for p in route.parameters
        ]
    if server is not None:
        item["servers"] = [{"url": server, "description": "the debug server (http.debug.addr)"}]
    for method in route.methods:
        item[method.lower()] = _operation(route, method)
    return item


def document(routes: RouteTable, debug: RouteTable | None = None) -> dict[str, Any]:
    """The OpenAPI 3.1 document of `routes` (and the debug server's `debug` routes)."""
    paths = {route.path: _path_item(route) for route in routes.routes}
    for route in debug.routes if debug is not None else ():
        paths[route.path] = _path_item(route, server="/")
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "Portside",
            "version": __version__,
            "description": "The OCI Distribution Specification v1.1 and the Docker Registry HTTP API V2, as "
            "Portside answers them (docs/http-behaviour.md); GitLab's container registry API v1 where Portside "
            "implements it, Portside's management API and the web UI's pages.",
        },
        "paths": paths,
        "components": {
            "schemas": SCHEMAS,
            "securitySchemes": {
                "basic": {"type": "http", "scheme": "basic"},
                "bearer": {"type": "http", "scheme": "bearer", "bearerFormat": "JWT"},
            },
        },
    }


def error_table(routes: RouteTable) -> str:
    """The Markdown table of every route, method and the error codes it may answer with."""
    lines = ["| Route | Method | Error codes |", "|---|---|---|"]
    for route in routes.routes:
        for method in route.methods:
            codes = ", ".join(f"`{c.value.value}`" for c in route.errors(method)) or "none"
            lines.append(f"| `{route.path}` | {method} | {codes} |")
    return "\n".join(lines) + "\n"
