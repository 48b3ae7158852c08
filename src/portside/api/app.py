"""The aiohttp application: one dispatcher over the route table, the error mapping, and common headers."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
from collections.abc import AsyncIterator
from datetime import timedelta

from aiohttp import web

from portside.api.context import ApiSettings, Context
from portside.api.errors import ApiError, ErrorCode, from_library
from portside.api.routes import DEBUG_ROUTES, ROUTES, resolve
from portside.auth import AccessController, AuthRequest, Challenge
from portside.auth.factory import build_controller, build_issuer
from portside.config import Config
from portside.config.schema import split_addr
from portside.registry import Namespace, RegistryError
from portside.service import open_namespace
from portside.tokenserver import TokenIssuer
from portside.tokenserver import http as token_http

log = logging.getLogger("portside.api")

NAMESPACE = web.AppKey("namespace", Namespace)
SETTINGS = web.AppKey("settings", ApiSettings)
CONTROLLER = web.AppKey("controller", AccessController)
TOKEN_ISSUER = web.AppKey("token_issuer", TokenIssuer)
API_VERSION_HEADER = ("Docker-Distribution-API-Version", "registry/2.0")


def settings_from(config: Config) -> ApiSettings:
    return ApiSettings(
        prefix=config.http.prefix,
        host=config.http.host,
        relative_urls=config.http.relativeurls,
        redirect_disabled=config.storage.redirect.disable,
        headers=dict(config.http.headers),
        debug_port=split_addr(config.http.debug.addr)[1] if config.http.debug.addr else None,
        token_path=config.tokenserver.path if config.tokenserver is not None else None,
    )


def _path(request: web.Request) -> str:
    raw = request.raw_path.split("?", 1)[0]
    if "://" in raw.split("/", 1)[0] + "/":
        raw = "/" + raw.split("://", 1)[1].partition("/")[2]
    return raw


def _on_debug_port(request: web.Request, debug_port: int | None) -> bool:
    if debug_port is None or request.transport is None:
        return False
    sockname = request.transport.get_extra_info("sockname")
    return isinstance(sockname, tuple) and sockname[1] == debug_port


def _challenge_response(challenge: Challenge) -> web.Response:
    headers = dict(challenge.headers)
    if challenge.www_authenticate:
        headers["WWW-Authenticate"] = challenge.www_authenticate
    code = ErrorCode.DENIED if challenge.code == ErrorCode.DENIED.value.value else ErrorCode.UNAUTHORIZED
    return ApiError(code, challenge.message, challenge.detail, status=challenge.status, headers=headers).response()


async def dispatch(request: web.Request) -> web.StreamResponse:
    settings = request.app[SETTINGS]
    path = _path(request)
    debug = _on_debug_port(request, settings.debug_port)
    routes = DEBUG_ROUTES if debug else ROUTES
    if not debug and settings.prefix:
        if not path.startswith(settings.prefix + "/"):
            return ApiError(ErrorCode.UNSUPPORTED, "route not found", status=404).response()
        path = path[len(settings.prefix) :]
    if not debug and settings.token_path and path == settings.token_path:
        return await token_http.handle(request, request.app[TOKEN_ISSUER])
    resolved = resolve(path, routes)
    if resolved is None:
        return ApiError(ErrorCode.UNSUPPORTED, "route not found", status=404).response()
    route, params = resolved
    handler = route.methods.get(request.method)
    if handler is None:
        allow = ", ".join(sorted(route.methods))
        return ApiError(
            ErrorCode.UNSUPPORTED, f"method {request.method} is not allowed here", headers={"Allow": allow}
        ).response()
    ctx = Context(request=request, namespace=request.app[NAMESPACE], settings=settings, params=params)
    try:
        if "name" in params:
            ctx.repo = ctx.namespace.repository(params["name"])
        controller = request.app.get(CONTROLLER)
        if controller is not None and not debug:
            auth_request = AuthRequest(request.headers.get("Authorization"), request.remote or "", ctx.base_url())
            ctx.grant = await controller.authorize(auth_request, route.access(params, request.method))
        return await handler(ctx)
    except ApiError as exc:
        return exc.response()
    except RegistryError as exc:
        return from_library(exc).response()
    except Challenge as exc:
        return _challenge_response(exc)
    except (ConnectionResetError, asyncio.CancelledError):
        raise
    except Exception:
        log.exception("%s %s failed", request.method, path[:300])
        return ApiError(ErrorCode.UNKNOWN).response()


async def _common_headers(request: web.Request, response: web.StreamResponse) -> None:
    response.headers[API_VERSION_HEADER[0]] = API_VERSION_HEADER[1]
    for name, values in request.app[SETTINGS].headers.items():
        if name not in response.headers:
            for value in values:
                response.headers.add(name, value)


async def _purge_loop(namespace: Namespace, config: Config) -> None:
    """Purge stale uploads now and then; every worker runs it, and purging is idempotent."""
    purging = config.storage.maintenance.uploadpurging
    age = timedelta(seconds=purging.age)
    await asyncio.sleep(random.uniform(1, min(60.0, purging.interval)))
    while True:
        try:
            await namespace.purge_uploads(age, purging.dryrun)
        except Exception:
            log.exception("upload purge failed")
        await asyncio.sleep(purging.interval * random.uniform(0.9, 1.1))


def create_app(config: Config, *, migrate: bool = False) -> web.Application:
    """The application for one worker process; its namespace opens when the app starts."""
    app = web.Application(client_max_size=1024**2)
    app[SETTINGS] = settings_from(config)
    controller = build_controller(config)
    if controller is not None:
        app[CONTROLLER] = controller
    issuer = build_issuer(config)
    if issuer is not None:
        app[TOKEN_ISSUER] = issuer

    async def lifecycle(app: web.Application) -> AsyncIterator[None]:
        namespace = await open_namespace(config, migrate=migrate)
        app[NAMESPACE] = namespace
        purge = None
        if config.storage.maintenance.uploadpurging.enabled:
            purge = asyncio.create_task(_purge_loop(namespace, config))
        yield
        if purge is not None:
            purge.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await purge
        await namespace.close()

    app.cleanup_ctx.append(lifecycle)
    app.on_response_prepare.append(_common_headers)
    app.router.add_route("*", "/{tail:.*}", dispatch)
    return app
