"""Query parameters of the management APIs, checked as GitLab's container registry API v1 checks them: a value
of the wrong type is `INVALID_QUERY_PARAMETER_TYPE`, a value out of its range, set or pattern
`INVALID_QUERY_PARAMETER_VALUE`, with GitLab's sentence saying what the parameter takes as the detail."""

from __future__ import annotations

import base64
import binascii
import json
import re
from datetime import UTC, datetime

from aiohttp import web

from portside.api.context import Context
from portside.api.errors import ApiError, ErrorCode
from portside.registry.inventory import Inventory, TagMarker, TagQuery, TagSort

TAG_PATTERN = re.compile(r"^[a-zA-Z0-9_][a-zA-Z0-9._-]{0,127}$")
NAME_FILTER = re.compile(r"^[a-zA-Z0-9._-]{1,128}$")
MEDIA_TYPE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9!#$&^_.+-]{0,126}/[A-Za-z0-9][A-Za-z0-9!#$&^_.+-]{0,126}$")
# The repository name grammar (distribution's reference.NameRegexp), as GitLab's detail quotes it.
_COMPONENT = r"[a-z0-9]+(?:(?:[._]|__|[-]*)[a-z0-9]+)*"
REPOSITORY_PATTERN = f"{_COMPONENT}(?:/{_COMPONENT})*"
SORTS = ("name", "-name", "published_at", "-published_at")
DEFAULT_PAGE, MAX_PAGE = 100, 1000


def invalid(detail: str) -> ApiError:
    return ApiError(ErrorCode.INVALID_QUERY_PARAMETER_VALUE, detail=detail)


def one_of(parameter: str, values: list[str] | tuple[str, ...]) -> ApiError:
    return invalid(f"the '{parameter}' query parameter must be set to one of: {', '.join(values)}")


def matching(parameter: str, pattern: str) -> ApiError:
    return invalid(f"the '{parameter}' query parameter value must match the pattern '{pattern}'")


def page_size(ctx: Context, default: int = DEFAULT_PAGE, maximum: int = MAX_PAGE) -> int:
    raw = ctx.query("n")
    if raw is None or raw == "":
        return default
    if not re.fullmatch(r"[-+]?[0-9]{1,19}", raw):
        detail = "the 'n' query parameter value type must be one of: int"
        raise ApiError(ErrorCode.INVALID_QUERY_PARAMETER_TYPE, detail=detail)
    n = int(raw)
    if not 1 <= n <= maximum:
        raise invalid(f"the 'n' query parameter value must be between 1 and {maximum}")
    return n


def inventory(ctx: Context) -> Inventory:
    found = ctx.services.inventory
    assert found is not None  # every worker has one
    return found


def iso(when: datetime | None) -> str | None:
    """ISO 8601 in UTC with millisecond precision, as GitLab's API writes times (`2022-06-07T12:10:12.412Z`)."""
    if when is None:
        return None
    return when.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"


def encode_marker(marker: TagMarker, sort: TagSort) -> str:
    """A page marker: the tag name, or for `published_at` GitLab's base64("<time>|<name>")."""
    if sort == "name" or marker.published_at is None:
        return marker.name
    moment = marker.published_at.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
    return base64.b64encode(f"{moment}|{marker.name}".encode()).decode()


def decode_marker(parameter: str, raw: str, sort: TagSort) -> TagMarker:
    if sort == "name":
        if not TAG_PATTERN.match(raw):
            raise matching(parameter, TAG_PATTERN.pattern)
        return TagMarker(raw)
    try:
        moment, separator, name = base64.b64decode(raw, validate=False).decode().strip().partition("|")
        published = datetime.fromisoformat(moment.replace("Z", "+00:00"))
    except (binascii.Error, UnicodeDecodeError, ValueError):
        raise invalid(f"the '{parameter}' query parameter value must be base64 of '<time>|<tag>'") from None
    if not separator or not TAG_PATTERN.match(name):
        raise invalid(f"the '{parameter}' query parameter value must be base64 of '<time>|<tag>'")
    return TagMarker(name, published if published.tzinfo is not None else published.replace(tzinfo=UTC))


def tag_query(ctx: Context, limit: int, platforms: bool = False, default_sort: str = "name") -> TagQuery:
    """The tag listing a request asks for: `n`, `last` or `before`, `name`, `sort`, `referrers`,
    `referrer_type`."""
    raw_sort = ctx.query("sort") or default_sort
    if raw_sort not in SORTS:
        raise one_of("sort", SORTS)
    sort: TagSort = "name" if raw_sort.lstrip("-") == "name" else "published_at"
    last, before = ctx.query("last"), ctx.query("before")
    if last and before:
        raise invalid("only one of the 'last' and 'before' query parameters may be set")
    contains = ctx.query("name") or None
    if contains is not None and not NAME_FILTER.match(contains):
        raise matching("name", NAME_FILTER.pattern)
    types = tuple(t for t in (ctx.query("referrer_type") or "").split(",") if t)
    for media_type in types:
        if not MEDIA_TYPE.match(media_type):
            raise invalid("the 'referrer_type' query parameter value must be media types separated by commas")
    return TagQuery(
        limit=limit,
        sort=sort,
        descending=raw_sort.startswith("-"),
        last=decode_marker("last", last, sort) if last else None,
        before=decode_marker("before", before, sort) if before else None,
        name_contains=contains,
        referrers=ctx.query("referrers") == "true",
        referrer_types=types,
        platforms=platforms,
    )


def link_header(links: list[tuple[str, str]]) -> dict[str, str]:
    """`Link: <url>; rel="previous", <url>; rel="next"` (RFC 5988), or nothing."""
    if not links:
        return {}
    return {"Link": ", ".join(f'<{url}>; rel="{rel}"' for rel, url in links)}


def json_response(body: object, headers: dict[str, str] | None = None) -> web.Response:
    return web.Response(body=json.dumps(body).encode(), headers={"Content-Type": "application/json", **(headers or {})})
