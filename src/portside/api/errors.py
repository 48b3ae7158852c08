"""Error codes of the OCI Distribution Spec and the Docker Registry API, the JSON error body, and the mapping
from library errors to codes."""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from enum import Enum
from typing import Any

from aiohttp import web

from portside import registry


@dataclass(frozen=True)
class Code:
    value: str
    status: int
    message: str


class ErrorCode(Enum):
    # The OCI Distribution Spec's codes.
    BLOB_UNKNOWN = Code("BLOB_UNKNOWN", 404, "blob unknown to registry")
    BLOB_UPLOAD_INVALID = Code("BLOB_UPLOAD_INVALID", 400, "blob upload invalid")
    BLOB_UPLOAD_UNKNOWN = Code("BLOB_UPLOAD_UNKNOWN", 404, "blob upload unknown to registry")
    DIGEST_INVALID = Code("DIGEST_INVALID", 400, "provided digest did not match uploaded content")
    MANIFEST_BLOB_UNKNOWN = Code(
        "MANIFEST_BLOB_UNKNOWN", 400, "manifest references a manifest or blob unknown to registry"
    )
    MANIFEST_INVALID = Code("MANIFEST_INVALID", 400, "manifest invalid")
    MANIFEST_UNKNOWN = Code("MANIFEST_UNKNOWN", 404, "manifest unknown to registry")
    NAME_INVALID = Code("NAME_INVALID", 400, "invalid repository name")
    NAME_UNKNOWN = Code("NAME_UNKNOWN", 404, "repository name not known to registry")
    SIZE_INVALID = Code("SIZE_INVALID", 400, "provided length did not match content length")
    UNAUTHORIZED = Code("UNAUTHORIZED", 401, "authentication required")
    DENIED = Code("DENIED", 403, "requested access to the resource is denied")
    UNSUPPORTED = Code("UNSUPPORTED", 405, "the operation is unsupported")
    TOOMANYREQUESTS = Code("TOOMANYREQUESTS", 429, "too many requests")
    # Docker Distribution's further codes.
    TAG_INVALID = Code("TAG_INVALID", 400, "manifest tag did not match URI")
    MANIFEST_UNVERIFIED = Code("MANIFEST_UNVERIFIED", 400, "manifest failed signature verification")
    PAGINATION_NUMBER_INVALID = Code("PAGINATION_NUMBER_INVALID", 400, "invalid number of results requested")
    RANGE_INVALID = Code("RANGE_INVALID", 416, "invalid content range")
    UNKNOWN = Code("UNKNOWN", 500, "unknown error")
    UNAVAILABLE = Code("UNAVAILABLE", 503, "service unavailable")
    # GitLab's container registry API v1 codes, for its query parameters (and Portside's management API).
    INVALID_QUERY_PARAMETER_VALUE = Code("INVALID_QUERY_PARAMETER_VALUE", 400, "invalid query parameter value")
    INVALID_QUERY_PARAMETER_TYPE = Code("INVALID_QUERY_PARAMETER_TYPE", 400, "invalid query parameter value type")


@dataclass
class ApiError(Exception):
    """An error to answer with: one or more codes, a status, and headers the response needs."""

    code: ErrorCode
    message: str | None = None
    detail: Any = None
    status: int | None = None
    headers: Mapping[str, str] | None = None
    extra: tuple[tuple[ErrorCode, str, Any], ...] = ()

    def response(self) -> web.Response:
        errors = [(self.code, self.message, self.detail), *self.extra]
        body = {
            "errors": [
                {"code": code.value.value, "message": message or code.value.message, "detail": detail}
                if detail is not None
                else {"code": code.value.value, "message": message or code.value.message}
                for code, message, detail in errors
            ]
        }
        headers = {"Content-Type": "application/json", **(self.headers or {})}
        return web.Response(
            status=self.status or self.code.value.status, body=json.dumps(body).encode(), headers=headers
        )


_LIBRARY_CODES: tuple[tuple[type[registry.RegistryError], ErrorCode, int | None], ...] = (
    (registry.NameInvalid, ErrorCode.NAME_INVALID, None),
    (registry.NameUnknown, ErrorCode.NAME_UNKNOWN, None),
    (registry.TagInvalid, ErrorCode.TAG_INVALID, None),
    (registry.DigestInvalid, ErrorCode.DIGEST_INVALID, None),
    (registry.SizeInvalid, ErrorCode.SIZE_INVALID, None),
    (registry.BlobUnknown, ErrorCode.BLOB_UNKNOWN, None),
    (registry.BlobUploadUnknown, ErrorCode.BLOB_UPLOAD_UNKNOWN, None),
    (registry.BlobUploadInvalid, ErrorCode.BLOB_UPLOAD_INVALID, None),
    (registry.RangeInvalid, ErrorCode.RANGE_INVALID, None),
    (registry.ManifestUnknown, ErrorCode.MANIFEST_UNKNOWN, None),
    (registry.ManifestTooLarge, ErrorCode.MANIFEST_INVALID, 413),
    (registry.ManifestInvalid, ErrorCode.MANIFEST_INVALID, None),
    (registry.Unsupported, ErrorCode.UNSUPPORTED, None),
)


_UPSTREAM_STATUS = {"throttled": 503, "timeout": 504, "unreachable": 503, "failing": 502}


def _upstream(exc: registry.UpstreamUnavailable | registry.UpstreamError) -> ApiError:
    """A cache's upstream failed it: a gateway status, with the upstream's Retry-After when it gave one. A 429
    upstream is a 503 here: the upstream throttled the cache, not this client."""
    if isinstance(exc, registry.UpstreamError):
        return ApiError(ErrorCode.UNAVAILABLE, exc.message, status=502)
    status = _UPSTREAM_STATUS.get(exc.reason, 502)
    headers = {"Retry-After": str(max(1, round(exc.retry_after)))} if exc.retry_after is not None else None
    return ApiError(ErrorCode.UNAVAILABLE, exc.message, status=status, headers=headers)


def from_library(exc: registry.RegistryError, headers: Mapping[str, str] | None = None) -> ApiError:
    """The API error for a library error; raises TypeError for a class with no mapping (a programming error)."""
    if isinstance(exc, registry.UpstreamUnavailable | registry.UpstreamError):
        return _upstream(exc)
    if isinstance(exc, registry.ManifestBlobUnknown):
        first, *rest = exc.digests
        extra = tuple((ErrorCode.MANIFEST_BLOB_UNKNOWN, f"blob unknown to registry: {d}", {"digest": d}) for d in rest)
        return ApiError(
            ErrorCode.MANIFEST_BLOB_UNKNOWN,
            f"blob unknown to registry: {first}",
            {"digest": first},
            headers=headers,
            extra=extra,
        )
    for cls, code, status in _LIBRARY_CODES:
        if isinstance(exc, cls):
            return ApiError(code, exc.message, exc.detail, status=status, headers=headers)
    raise TypeError(f"no error code for {type(exc).__name__}")
