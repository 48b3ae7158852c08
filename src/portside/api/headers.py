"""Parsing and building the HTTP headers of the registry API: Range, Content-Range, Link, Accept."""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Final
from urllib.parse import urlencode

from portside.api.errors import ApiError, ErrorCode

_CONTENT_RANGE: Final = re.compile(r"^(?:bytes[ =])?\s*(\d{1,19})-(\d{1,19})(?:/(?:\d{1,19}|\*))?\Z")
_RANGE_SPEC: Final = re.compile(r"^(\d{0,19})-(\d{0,19})\Z")
_CONTROL: Final = re.compile(r"[\x00-\x1f\x7f-\x9f]")


@dataclass(frozen=True)
class ByteRange:
    start: int
    end: int  # inclusive

    @property
    def length(self) -> int:
        return self.end - self.start + 1


def parse_content_range(value: str) -> ByteRange:
    """A chunk's `Content-Range: <start>-<end>` (inclusive); also accepted with a `bytes ` prefix."""
    match = _CONTENT_RANGE.match(value.strip())
    if match is None:
        raise ApiError(ErrorCode.BLOB_UPLOAD_INVALID, f"malformed Content-Range {value[:100]!r}")
    start, end = int(match[1]), int(match[2])
    if end < start:
        raise ApiError(ErrorCode.BLOB_UPLOAD_INVALID, f"Content-Range {value[:100]!r} ends before it starts")
    return ByteRange(start, end)


def unsatisfiable(size: int, why: str) -> ApiError:
    return ApiError(ErrorCode.RANGE_INVALID, why, headers={"Content-Range": f"bytes */{size}"})


def parse_range(value: str | None, size: int) -> ByteRange | None:
    """The single byte range a `Range` header asks of a `size`-byte blob; None means the whole blob.

    Several ranges at once are answered with the whole blob, which RFC 9110 allows; a range unit other than
    bytes is ignored, as RFC 9110 14.2 requires of a unit the server does not understand.
    """
    if value is None:
        return None
    unit, equals, specs = value.strip().partition("=")
    if equals and unit.strip() and unit.strip().lower() != "bytes":
        return None
    if not equals or unit.strip().lower() != "bytes" or not specs.strip():
        raise unsatisfiable(size, f"malformed Range {value[:100]!r}")
    parts = [p.strip() for p in specs.split(",")]
    if len(parts) > 1:
        if any(not _RANGE_SPEC.match(p) or p == "-" for p in parts):
            raise unsatisfiable(size, f"malformed Range {value[:100]!r}")
        return None
    match = _RANGE_SPEC.match(parts[0])
    if match is None or parts[0] == "-":
        raise unsatisfiable(size, f"malformed Range {value[:100]!r}")
    first, last = match[1], match[2]
    if not first:  # suffix: the last N bytes
        length = int(last)
        if length == 0 or size == 0:
            raise unsatisfiable(size, "empty suffix range")
        return ByteRange(max(0, size - length), size - 1)
    start = int(first)
    end = int(last) if last else size - 1
    if last and end < start:
        raise unsatisfiable(size, f"malformed Range {value[:100]!r}")
    if start >= size:
        raise unsatisfiable(size, f"range starts at {start}, past the end of a {size}-byte blob")
    return ByteRange(start, min(end, size - 1))


def upload_range(size: int) -> str:
    """The `Range` of an upload: `0-<last byte>`, and `0-0` while it is empty, as distribution reports it."""
    return f"0-{max(size - 1, 0)}"


def parse_page_size(value: str | None) -> int | None:
    if value is None:
        return None
    if not (value.isascii() and value.isdigit()) or len(value) > 1000:
        raise ApiError(ErrorCode.PAGINATION_NUMBER_INVALID, f"n must be a non-negative integer, got {value[:40]!r}")
    return int(value)


def parse_last(value: str | None) -> str | None:
    """A listing's `last`: any text but control characters, which no name or tag has and PostgreSQL cannot
    even compare (NUL), so they are refused before the store."""
    if value is not None and _CONTROL.search(value):
        raise ApiError(ErrorCode.PAGINATION_NUMBER_INVALID, "last must not contain control characters")
    return value


def link_next(url: str, last: str, n: int) -> str:
    return f'<{url}?{urlencode({"last": last, "n": n})}>; rel="next"'


def accepted_media_types(values: list[str]) -> list[str] | None:
    """Media types from every `Accept` header, without q=0 entries; None when no Accept header was sent."""
    if not values:
        return None
    out: list[str] = []
    for value in values:
        for item in value.split(","):
            media, *params = (p.strip() for p in item.split(";"))
            if not media:
                continue
            if any(p.replace(" ", "").lower() in ("q=0", "q=0.0", "q=0.00", "q=0.000") for p in params):
                continue
            out.append(media.lower())
    return out


def accepts(accepted: list[str] | None, media_type: str) -> bool:
    if accepted is None:
        return True
    kind = media_type.split("/", 1)[0]
    return any(a in (media_type, "*/*", f"{kind}/*") for a in accepted)


def etag_matches(if_none_match: str | None, etag: str) -> bool:
    """Whether an `If-None-Match` header names `etag` (or `*`), so the answer can be 304."""
    if if_none_match is None:
        return False
    return any(v.strip() in (etag, "*", f"W/{etag}") for v in if_none_match.split(","))
