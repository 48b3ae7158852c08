"""The web UI's pages (`ui.path`): repositories, a repository's tags, a manifest, storage, deleting a tag or a
manifest. Each page is rendered by the server from the same library calls as the management API, with the
access a client would need for the same data through `/v2/`; errors are pages too, and a page refused for
lack of credentials shows nothing but the request to sign in."""

from __future__ import annotations

from dataclasses import replace
from typing import Any
from urllib.parse import urlencode, urlsplit

from aiohttp import web

from portside.api.context import Context
from portside.api.errors import ApiError, ErrorCode
from portside.api.handlers.gitlab import page_links
from portside.api.handlers.params import REPOSITORY_PATTERN, invalid, inventory, matching, tag_query
from portside.auth.access import CATALOG_ACCESS, DELETE, repository_access
from portside.reference import ReferenceError, validate_repository_name
from portside.registry import parse_manifest_reference
from portside.registry.inventory import RepositoryInfo
from portside.ui.render import assets, render

PAGE = 50
SECURITY_HEADERS = {
    "Content-Security-Policy": "default-src 'none'; style-src 'self'; script-src 'self'; img-src 'self' data:; "
    "form-action 'self'; frame-ancestors 'none'; base-uri 'none'",
    "X-Content-Type-Options": "nosniff",
    "X-Frame-Options": "DENY",
    "Referrer-Policy": "same-origin",
    "Cache-Control": "no-store",
}
LOGIN_REALM = "sign in at the login page"
TITLES = {401: "Sign in required", 403: "Not allowed", 404: "Not found", 405: "Not possible here"}


def link(ctx: Context, route: str, query: dict[str, str] | None = None, **params: str) -> str:
    """A path on this site (pages link by path, so they work behind any proxy)."""
    path = ctx.settings.prefix + ctx.services.routes[route].path_for(**params)
    return f"{path}?{urlencode(query)}" if query else path


def registry_host(ctx: Context) -> str:
    """The host clients pull from, as this request reached the registry."""
    base = ctx.base_url()
    return urlsplit(base).netloc if "://" in base else ctx.request.host


def _may_delete(ctx: Context, name: str) -> bool:
    return (
        ctx.namespace.options.delete_enabled
        and not ctx.settings.read_only
        and ctx.may(repository_access(name, DELETE)[0])
    )


def _common(ctx: Context) -> dict[str, Any]:
    files = assets()

    def static(name: str) -> str:
        return link(ctx, "ui_static", {"v": files[name].version}, file=name)

    return {
        "home": link(ctx, "ui_home"),
        "storage_url": link(ctx, "ui_storage"),
        "static": static,
        "user": ctx.grant.user,
        "signed_in": ctx.services.controller is not None and ctx.grant.user is not None,
        "can_list": ctx.may(CATALOG_ACCESS[0]),
        "link": lambda route, query=None, **params: link(ctx, route, query, **params),
    }


def page(
    ctx: Context, template: str, status: int = 200, headers: dict[str, str] | None = None, **values: Any
) -> web.Response:
    body = render(template, **{**_common(ctx), **values})
    return web.Response(
        status=status,
        text=body,
        content_type="text/html",
        charset="utf-8",
        headers={**SECURITY_HEADERS, **(headers or {})},
    )


def _error_page(ctx: Context, error: ApiError, challenge: bool) -> web.Response:
    status = error.status or error.code.value.status
    values = {
        "title": TITLES.get(status, "Something went wrong" if status >= 500 else "Not possible"),
        "http_status": status,
        "code": error.code.value.value,
        "message": error.message or error.code.value.message,
        "challenge": status == 401,
        "here": ctx.request.path_qs if ctx.request.method == "GET" else link(ctx, "ui_home"),
    }
    if status in (401, 403):  # refused before the grant was known: offer nothing of the registry
        values.update(can_list=False, signed_in=False, user=None)
    if challenge:  # on the sign-in page itself: back to where it was asked for
        values["here"] = ctx.query("next") or link(ctx, "ui_home")
    headers = {k: v for k, v in (error.headers or {}).items() if k.lower() != "content-type"}
    if status == 401:
        values["message"] = "Sign in with your registry user name and password to see what is stored here."
        if not challenge:
            # A challenge a browser does not answer with its own dialog: the page offers to sign in instead.
            headers["WWW-Authenticate"] = f'Portside realm="{LOGIN_REALM}"'
    return page(ctx, "error.html", status=status, headers=headers, **values)


def error_page(ctx: Context, error: ApiError) -> web.Response:
    """The UI's answer for an error: a page with the status, code and message. Refused for lack of
    credentials, it shows nothing but a way to sign in (the sign-in page asks the browser for them)."""
    return _error_page(ctx, error, challenge=False)


def login_error_page(ctx: Context, error: ApiError) -> web.Response:
    """The sign-in page's errors keep the controller's challenge, so the browser asks for credentials."""
    return _error_page(ctx, error, challenge=True)


# ---------------------------------------------------------------------------------------------- pages


async def home(ctx: Context) -> web.StreamResponse:
    last = ctx.query("last") or None
    contains = (ctx.query("q") or "").strip()[:255] or None
    if last is not None:
        try:
            validate_repository_name(last)
        except ReferenceError:
            raise matching("last", REPOSITORY_PATTERN) from None
    found = inventory(ctx)
    repositories = await found.repositories(last, PAGE, contains)
    next_url = None
    if repositories.more:
        query = {"last": repositories.items[-1].name, **({"q": contains} if contains else {})}
        next_url = link(ctx, "ui_home", query)
    first_url = link(ctx, "ui_home", {"q": contains} if contains else None) if last else None
    return page(
        ctx,
        "repositories.html",
        title="Repositories",
        repositories=repositories.items,
        q=contains or "",
        totals=await found.totals(largest=0),
        next_url=next_url,
        first_url=first_url,
    )


def _pull(ctx: Context, info: RepositoryInfo, tag: str | None) -> str:
    reference = f":{tag}" if tag else ""
    return f"docker pull {registry_host(ctx)}/{info.name}{reference}"


async def repository(ctx: Context) -> web.StreamResponse:
    name = ctx.params["name"]
    query = replace(tag_query(ctx, PAGE, platforms=True, default_sort="-published_at"), referrers=True)
    found = inventory(ctx)
    info = await found.repository(name)
    tags = await found.tags(name, query)
    links = dict(page_links(ctx, "ui_repository", name, query, tags.items, tags.more, tags.previous))
    shown = [t.name for t in tags.items]
    pull_tag = "latest" if "latest" in shown else shown[0] if shown else None
    sort = ctx.query("sort") or "-published_at"

    def sort_url(key: str) -> str:
        chosen = f"-{key}" if sort == key else key
        return link(
            ctx,
            "ui_repository",
            {"sort": chosen, **({"name": query.name_contains} if query.name_contains else {})},
            name=name,
        )

    return page(
        ctx,
        "repository.html",
        title=name,
        repo=info,
        tags=tags.items,
        sort=sort,
        sort_url=sort_url,
        filter=query.name_contains or "",
        previous_url=_relative(links.get("previous")),
        next_url=_relative(links.get("next")),
        pull=_pull(ctx, info, pull_tag),
        host=registry_host(ctx),
        may_delete=_may_delete(ctx, name),
        deleted=ctx.query("deleted"),
    )


def _relative(url: str | None) -> str | None:
    """A page link made by `url_for` (absolute) as a path and query."""
    if url is None:
        return None
    parts = urlsplit(url)
    return f"{parts.path}?{parts.query}" if parts.query else parts.path


async def manifest(ctx: Context) -> web.StreamResponse:
    name, reference = ctx.params["name"], ctx.params["reference"]
    details = await inventory(ctx).manifest(name, reference)
    tag, _ = parse_manifest_reference(reference)
    host = registry_host(ctx)
    pulls = [f"docker pull {host}/{name}:{t}" for t in ([tag] if tag else details.tags[:1])]
    pulls.append(f"docker pull {host}/{name}@{details.digest}")
    return page(
        ctx,
        "manifest.html",
        title=f"{name}:{tag}" if tag else f"{name}@{details.digest}",
        repo_name=name,
        reference=reference,
        tag=tag,
        details=details,
        manifest=details.manifest,
        config=details.config,
        pulls=pulls,
        may_delete=_may_delete(ctx, name),
    )


async def storage(ctx: Context) -> web.StreamResponse:
    return page(ctx, "storage.html", title="Storage", totals=await inventory(ctx).totals(largest=20))


def _target(values: Any) -> tuple[str | None, str | None]:
    """What a delete names: a tag, or a manifest by digest (exactly one)."""
    tag, digest = values.get("tag") or None, values.get("digest") or None
    if (tag is None) == (digest is None):
        raise invalid("exactly one of 'tag' and 'digest' must be set")
    reference = str(tag or digest)
    parsed_tag, parsed_digest = parse_manifest_reference(reference)
    if (tag is not None) != (parsed_tag is not None):
        raise invalid(f"'{'tag' if tag else 'digest'}' must be a {'tag' if tag else 'digest'}")
    return parsed_tag, str(parsed_digest) if parsed_digest is not None else None


def _same_origin(ctx: Context) -> bool:
    """A form post from one of this site's own pages: browsers say where a request comes from."""
    headers = ctx.request.headers
    site = headers.get("Sec-Fetch-Site")
    if site is not None and site not in ("same-origin", "none"):
        return False
    origin = headers.get("Origin")
    if origin is None or origin == "null":
        return site is not None or origin is None
    host = headers.get("X-Forwarded-Host", ctx.request.host).split(",")[0].strip()
    return urlsplit(origin).netloc == host


async def delete(ctx: Context) -> web.StreamResponse:
    name = ctx.params["name"]
    if ctx.request.method == "GET":
        tag, digest = _target(ctx.request.rel_url.query)
        details = await inventory(ctx).manifest(name, tag or str(digest))
        if not ctx.namespace.options.delete_enabled:
            raise ApiError(ErrorCode.UNSUPPORTED, "deletes are disabled on this registry (storage.delete.enabled)")
        return page(ctx, "delete.html", title=f"Delete from {name}", repo_name=name, tag=tag, details=details)
    if not _same_origin(ctx):
        raise ApiError(ErrorCode.DENIED, "deletes are accepted only from this registry's own pages", status=403)
    tag, digest = _target(await ctx.request.post())
    repo = ctx.repository()
    if tag is not None:
        await repo.tags.untag(tag)
    else:
        assert digest is not None
        parsed = parse_manifest_reference(digest)[1]
        assert parsed is not None
        await repo.manifests.delete(parsed)
    return _see_other(link(ctx, "ui_repository", {"deleted": tag or str(digest)}, name=name))


async def login(ctx: Context) -> web.StreamResponse:
    """Reached once the browser has signed in (the route needs authentication): back where it came from."""
    target = ctx.query("next") or ""
    home = link(ctx, "ui_home")
    if not target.startswith(home) or target.startswith("//"):
        target = home
    return _see_other(target)


def _see_other(location: str) -> web.Response:
    return web.Response(status=303, headers={**SECURITY_HEADERS, "Location": location})


async def static(ctx: Context) -> web.StreamResponse:
    asset = assets().get(ctx.params["file"])
    if asset is None:
        raise ApiError(ErrorCode.UNSUPPORTED, "no such file", status=404)
    versioned = ctx.query("v") == asset.version
    cache = "public, max-age=31536000, immutable" if versioned else "public, max-age=300"
    headers = {"Cache-Control": cache, "X-Content-Type-Options": "nosniff", "ETag": f'"{asset.version}"'}
    if ctx.request.headers.get("If-None-Match") == headers["ETag"]:
        return web.Response(status=304, headers=headers)
    return web.Response(body=asset.body, headers={**headers, "Content-Type": asset.content_type})
