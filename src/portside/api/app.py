"""The aiohttp application: one dispatcher over the route table, and the services it runs for a worker."""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import logging
import os
import random
import time
from collections.abc import AsyncIterator
from datetime import timedelta

from aiohttp import web

from portside.api.context import ApiSettings, Context, Services
from portside.api.errors import ApiError, ErrorCode, from_library
from portside.api.handlers import debug as debug_handlers
from portside.api.routes import DEBUG_ROUTES, ROUTES, Route, resolve
from portside.auth import AuthRequest, Challenge
from portside.auth.factory import build_controller, build_issuer
from portside.config import Config
from portside.config.schema import split_addr
from portside.health import HealthChecker
from portside.metadata.store import utcnow
from portside.metrics import Metrics, PrometheusMetrics
from portside.notifications import Dispatcher, NotificationSink, RequestRecord
from portside.registry import RegistryError
from portside.service import open_namespace

log = logging.getLogger("portside.api")
access_log = logging.getLogger("portside.access")

SERVICES = web.AppKey("services", Services)
REQUEST_ID = "X-Request-Id"
API_VERSION_HEADER = ("Docker-Distribution-API-Version", "registry/2.0")
READ_METHODS = ("GET", "HEAD")
DELIVERED_RETENTION = timedelta(days=7)


def settings_from(config: Config) -> ApiSettings:
    return ApiSettings(
        prefix=config.http.prefix,
        host=config.http.host,
        relative_urls=config.http.relativeurls,
        redirect_disabled=config.storage.redirect.disable,
        headers=dict(config.http.headers),
        debug_port=split_addr(config.http.debug.addr)[1] if config.http.debug.addr else None,
        token_path=config.tokenserver.path if config.tokenserver is not None else None,
        read_only=config.storage.maintenance.readonly.enabled,
        metrics_path=config.http.debug.prometheus.path if config.http.debug.prometheus.enabled else None,
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


class _RequestIds:
    """Unique request ids without a system call each: a random prefix per process and a counter.

    The prefix is drawn again in every forked child, so workers never share one."""

    def __init__(self) -> None:
        self._reset()
        os.register_at_fork(after_in_child=self._reset)

    def _reset(self) -> None:
        self._prefix = os.urandom(8).hex()
        self._count = itertools.count()

    def next(self) -> str:
        return f"{self._prefix}{next(self._count):016x}"


_REQUEST_IDS = _RequestIds()


def _request_id(request: web.Request) -> str:
    given = request.headers.get(REQUEST_ID, "")
    if 0 < len(given) <= 200 and given.isprintable():
        return given
    return _REQUEST_IDS.next()


def _challenge_response(challenge: Challenge) -> web.Response:
    headers = dict(challenge.headers)
    if challenge.www_authenticate:
        headers["WWW-Authenticate"] = challenge.www_authenticate
    code = ErrorCode.DENIED if challenge.code == ErrorCode.DENIED.value.value else ErrorCode.UNAUTHORIZED
    return ApiError(code, challenge.message, challenge.detail, status=challenge.status, headers=headers).response()


def _not_found() -> web.Response:
    return ApiError(ErrorCode.UNSUPPORTED, "route not found", status=404).response()


def _read_only(route: Route) -> web.Response:
    allow = ", ".join(m for m in sorted(route.methods) if m in READ_METHODS)
    return ApiError(ErrorCode.UNSUPPORTED, "registry is in read-only mode", headers={"Allow": allow}).response()


def _sink(ctx: Context) -> NotificationSink | None:
    notifications = ctx.services.config.notifications
    if not notifications.active:
        return None
    request = ctx.request
    record = RequestRecord(
        id=request[REQUEST_ID],
        addr=request.remote or "",
        host=request.host,
        method=request.method,
        useragent=request.headers.get("User-Agent", ""),
    )
    return NotificationSink(
        notifications.active,
        record,
        ctx.grant.user,
        ctx.base_url(),
        ctx.services.config.http.addr,
        notifications.events.includereferences,
    )


async def _route(request: web.Request, services: Services) -> web.StreamResponse:
    """Find the route, check access, run the handler, and turn every error into the API's answer."""
    settings = services.settings
    path = _path(request)
    debug = _on_debug_port(request, settings.debug_port)
    if debug:
        routes = DEBUG_ROUTES
        if settings.metrics_path and path == settings.metrics_path:
            request["route"] = "metrics"
            return await debug_handlers.metrics(Context(request=request, services=services, params={}))
    else:
        routes = ROUTES
        if settings.prefix:
            if not path.startswith(settings.prefix + "/"):
                return _not_found()
            path = path[len(settings.prefix) :]
        if settings.token_path and path == settings.token_path and services.issuer is not None:
            request["route"] = "token"
            from portside.tokenserver import http as token_http  # loaded with the issuer, not for every worker

            return await token_http.handle(request, services.issuer)
    resolved = resolve(path, routes)
    if resolved is None:
        return _not_found()
    route, params = resolved
    request["route"] = route.name
    handler = route.methods.get(request.method)
    if handler is None:
        allow = ", ".join(sorted(route.methods))
        return ApiError(
            ErrorCode.UNSUPPORTED, f"method {request.method} is not allowed here", headers={"Allow": allow}
        ).response()
    if settings.read_only and not debug and request.method not in READ_METHODS:
        return _read_only(route)
    ctx = Context(request=request, services=services, params=params)
    try:
        if "name" in params:
            request["repository"] = params["name"]
            services.namespace.check_name(params["name"])  # a malformed name is 400 before any challenge
        if services.controller is not None and not debug:
            auth = AuthRequest(request.headers.get("Authorization"), request.remote or "", ctx.base_url())
            ctx.grant = await services.controller.authorize(auth, route.access(params, request.method))
            request["user"] = ctx.grant.user
        ctx.events = _sink(ctx)
        response = await handler(ctx)
        if ctx.events is not None and services.dispatcher is not None:
            services.dispatcher.poke()
        return response
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


async def dispatch(request: web.Request) -> web.StreamResponse:
    """Every request: a request id, the route, then one access log line and the request metrics."""
    services = request.app[SERVICES]
    request[REQUEST_ID] = _request_id(request)
    started = time.perf_counter()
    status = 499
    response: web.StreamResponse | None = None
    services.in_flight += 1
    services.idle.clear()
    try:
        response = await _route(request, services)
        status = response.status
        if services.draining and not response.prepared:
            response.force_close()
        return response
    finally:
        services.in_flight -= 1
        if not services.in_flight:
            services.idle.set()
        seconds = time.perf_counter() - started
        route = request.get("route", "unknown")
        received = request.content.total_bytes if request.body_exists else 0
        sent = 0
        if response is not None:
            sent = response.content_length if response.content_length is not None else response.body_length
        services.metrics.request(route, request.method, status, seconds, received, sent)
        if not services.config.log.accesslog.disabled:
            _log_access(request, status, sent, seconds)


def _log_access(request: web.Request, status: int, sent: int, seconds: float) -> None:
    fields = {
        "request_id": request[REQUEST_ID],
        "method": request.method,
        "path": request.path_qs[:2000],
        "status": status,
        "bytes": sent,
        "duration": round(seconds, 6),
        "remote": request.remote or "",
        "user_agent": request.headers.get("User-Agent", ""),
        "user": request.get("user") or "",
        "repository": request.get("repository") or "",
    }
    access_log.info(
        '%s "%s %s" %d %d %.6f "%s" request_id=%s user=%s repository=%s',
        fields["remote"],
        fields["method"],
        fields["path"],
        status,
        sent,
        seconds,
        fields["user_agent"],
        fields["request_id"],
        fields["user"] or "-",
        fields["repository"] or "-",
        extra=fields,
    )


async def _common_headers(request: web.Request, response: web.StreamResponse) -> None:
    response.headers[API_VERSION_HEADER[0]] = API_VERSION_HEADER[1]
    if REQUEST_ID in request:
        response.headers[REQUEST_ID] = request[REQUEST_ID]
    for name, values in request.app[SERVICES].settings.headers.items():
        if name not in response.headers:
            for value in values:
                response.headers.add(name, value)


async def _maintenance_loop(services: Services) -> None:
    """Purge stale uploads and old delivered events now and then; every worker runs it, and it is idempotent."""
    purging = services.config.storage.maintenance.uploadpurging
    age = timedelta(seconds=purging.age)
    await asyncio.sleep(random.uniform(1, min(60.0, purging.interval)))
    while True:
        try:
            if not services.settings.read_only:
                await services.namespace.purge_uploads(age, purging.dryrun)
                await services.namespace.store.prune_delivered(utcnow() - DELIVERED_RETENTION)
        except Exception:
            log.exception("maintenance failed")
        await asyncio.sleep(purging.interval * random.uniform(0.9, 1.1))


def create_app(config: Config, *, migrate: bool = False) -> web.Application:
    """The application for one worker process; its services start when the app starts."""
    app = web.Application(client_max_size=1024**2)

    async def lifecycle(app: web.Application) -> AsyncIterator[None]:
        metrics: Metrics = PrometheusMetrics() if config.http.debug.prometheus.enabled else Metrics()
        namespace = await open_namespace(config, migrate=migrate, metrics=metrics)
        services = Services(
            config=config,
            settings=settings_from(config),
            namespace=namespace,
            controller=build_controller(config),
            issuer=build_issuer(config),
            metrics=metrics,
            health=HealthChecker(namespace, config.health),
        )
        if config.notifications.active:
            services.dispatcher = Dispatcher(namespace.store, config.notifications.active, metrics)
            services.dispatcher.start()
        app[SERVICES] = services
        await services.health.start()
        maintenance = None
        if config.storage.maintenance.uploadpurging.enabled:
            maintenance = asyncio.create_task(_maintenance_loop(services))
        yield
        if maintenance is not None:
            maintenance.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await maintenance
        if services.dispatcher is not None:
            await services.dispatcher.stop()
        await services.health.stop()
        await namespace.close()

    app.cleanup_ctx.append(lifecycle)
    app.on_response_prepare.append(_common_headers)
    app.router.add_route("*", "/{tail:.*}", dispatch)
    return app
