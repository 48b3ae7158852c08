"""The aiohttp application: one dispatcher over the route tables, and the services it runs for a worker.

A request passes these steps, each a small function below: the request id; which table (the registry's or the
debug server's) and the path inside `http.prefix`; the route and its operation; read-only mode; the
repository name; the access controller; the event sink; the handler; and last the mapping of whatever it
raised to the API's error answer, one access log line and the request metrics.
"""

from __future__ import annotations

import asyncio
import itertools
import json
import logging
import os
import time
from collections.abc import AsyncIterator

from aiohttp import web

from portside.api.browser import browser_controller
from portside.api.context import ApiSettings, Context, GaugeProbe, Services
from portside.api.errors import ApiError, ErrorCode, from_library
from portside.api.openapi import document
from portside.api.routes import Operation, Route, RouteTable, debug_routes, registry_routes
from portside.auth import AuthRequest, Challenge
from portside.auth.factory import build_controller, build_issuer
from portside.config import Config
from portside.config.schema import split_addr
from portside.health import HealthChecker
from portside.jobs import JobRunner
from portside.jobs.gc import gc_jobs, gc_queue_gauges
from portside.jobs.maintenance import maintenance_jobs, proxy_jobs
from portside.metrics import Gauge, Metrics, PrometheusMetrics
from portside.notifications import PENDING_EVENTS, Dispatcher, NotificationSink, RequestRecord
from portside.registry import LocalNamespace, RegistryError
from portside.registry.inventory import LocalInventory
from portside.service import open_namespace, serving_namespace

log = logging.getLogger("portside.api")
access_log = logging.getLogger("portside.access")

SERVICES = web.AppKey("services", Services)
REQUEST_ID = "X-Request-Id"
# What the dispatcher notes on a request for its access log line and metrics.
ID = web.RequestKey("request_id", str)
ROUTE = web.RequestKey("route", str)
REPOSITORY = web.RequestKey("repository", str)
USER = web.RequestKey("user", str)
API_VERSION_HEADER = ("Docker-Distribution-API-Version", "registry/2.0")
SERVER = "Portside"


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
        ui_path=config.ui.path if config.ui.enabled else None,
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


# ---------------------------------------------------------------------------------------------- the steps


def _table(request: web.Request, services: Services) -> tuple[RouteTable, str, bool] | None:
    """The route table the request is for, its path there, and whether it came to the debug server; None for
    a path outside `http.prefix`."""
    path = _path(request)
    if _on_debug_port(request, services.settings.debug_port):
        return services.debug_routes, path, True
    prefix = services.settings.prefix
    if prefix:
        if not path.startswith(prefix + "/"):
            return None
        path = path[len(prefix) :]
    return services.routes, path, False


def _not_found() -> web.Response:
    return ApiError(ErrorCode.UNSUPPORTED, "route not found", status=404).response()


def _method_not_allowed(route: Route, method: str) -> web.Response:
    allow = ", ".join(sorted(route.methods))
    return ApiError(ErrorCode.UNSUPPORTED, f"method {method} is not allowed here", headers={"Allow": allow}).response()


def _read_only(route: Route) -> web.Response:
    allow = ", ".join(m for m in sorted(route.methods) if not route.writes(m))
    return ApiError(ErrorCode.UNSUPPORTED, "registry is in read-only mode", headers={"Allow": allow}).response()


def _check_name(ctx: Context) -> None:
    """A malformed repository name is 400 before any challenge, as distribution answers."""
    name = ctx.params.get("name")
    if name is not None:
        ctx.request[REPOSITORY] = name
        ctx.namespace.check_name(name)


async def _authorize(ctx: Context, route: Route) -> None:
    """Ask the access controller once for what the route needs; it raises a Challenge to refuse."""
    controller = ctx.services.browser_controller if route.browser else ctx.services.controller
    if controller is None or route.public:
        return
    request = ctx.request
    auth = AuthRequest(request.headers.get("Authorization"), request.remote or "", ctx.base_url())
    ctx.grant = await controller.authorize(auth, route.access(ctx.params, request.method))
    request[USER] = ctx.grant.user or ""


def _sink(ctx: Context) -> NotificationSink | None:
    """Where the library hands the events of this request, when notification endpoints are configured."""
    notifications = ctx.services.config.notifications
    if not notifications.active:
        return None
    request = ctx.request
    record = RequestRecord(
        id=request[ID],
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


def _challenge_error(challenge: Challenge) -> ApiError:
    headers = dict(challenge.headers)
    if challenge.www_authenticate:
        headers["WWW-Authenticate"] = challenge.www_authenticate
    code = ErrorCode.DENIED if challenge.code == ErrorCode.DENIED.value.value else ErrorCode.UNAUTHORIZED
    return ApiError(code, challenge.message, challenge.detail, status=challenge.status, headers=headers)


def _answer(ctx: Context, route: Route, error: ApiError) -> web.StreamResponse:
    """The API's JSON error body, or the route's own error page (the UI's)."""
    if route.error_page is not None:
        try:
            return route.error_page(ctx, error)
        except Exception:  # the page is a nicety: the error itself must still be answered
            log.exception("error page of %s failed", route.name)
    return error.response()


def _error_answer(ctx: Context, route: Route, method: str, error: ApiError) -> web.StreamResponse:
    """The answer for an error, which the route should have declared (the descriptors are the documentation,
    so an undeclared code is a fault to fix there)."""
    declared = route.errors(method)
    for code in (error.code, *(extra[0] for extra in error.extra)):
        if code not in declared and code is not ErrorCode.UNKNOWN:
            log.warning("undeclared error code %s answered on %s %s", code.value.value, method, route.name)
    return _answer(ctx, route, error)


async def _run(ctx: Context, route: Route, operation: Operation) -> web.StreamResponse:
    """The steps inside the route: name, access, events, handler; every error becomes the API's answer."""
    request = ctx.request
    try:
        _check_name(ctx)
        await _authorize(ctx, route)
        ctx.events = _sink(ctx)
        response = await operation.handler(ctx)
        if ctx.events is not None and ctx.services.dispatcher is not None:
            ctx.services.dispatcher.poke()
        return response
    except ApiError as exc:
        return _error_answer(ctx, route, request.method, exc)
    except RegistryError as exc:
        return _error_answer(ctx, route, request.method, from_library(exc))
    except Challenge as exc:
        return _answer(ctx, route, _challenge_error(exc))
    except (ConnectionResetError, asyncio.CancelledError):
        raise
    except Exception:
        log.exception("%s %s failed", request.method, _path(request)[:300])
        return _answer(ctx, route, ApiError(ErrorCode.UNKNOWN))


async def _route(request: web.Request, services: Services) -> web.StreamResponse:
    located = _table(request, services)
    if located is None:
        return _not_found()
    table, path, debug = located
    resolved = table.resolve(path)
    if resolved is None:
        return _not_found()
    route, params = resolved
    request[ROUTE] = route.name
    operation = route.methods.get(request.method)
    if operation is None:
        return _method_not_allowed(route, request.method)
    if services.settings.read_only and not debug and route.writes(request.method):
        return _read_only(route)
    return await _run(Context(request=request, services=services, params=params), route, operation)


async def dispatch(request: web.Request) -> web.StreamResponse:
    """Every request: a request id, the route, then one access log line and the request metrics."""
    services = request.app[SERVICES]
    request[ID] = _request_id(request)
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
        route = request.get(ROUTE, "unknown")
        received = request.content.total_bytes if request.body_exists else 0
        sent = 0
        if response is not None:
            sent = response.content_length if response.content_length is not None else response.body_length
        services.metrics.request(route, request.method, status, seconds, received, sent)
        if not services.config.log.accesslog.disabled:
            _log_access(request, status, sent, seconds)


def _log_access(request: web.Request, status: int, sent: int, seconds: float) -> None:
    fields = {
        "request_id": request[ID],
        "method": request.method,
        "path": request.path_qs[:2000],
        "status": status,
        "bytes": sent,
        "duration": round(seconds, 6),
        "remote": request.remote or "",
        "user_agent": request.headers.get("User-Agent", ""),
        "user": request.get(USER) or "",
        "repository": request.get(REPOSITORY) or "",
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
    response.headers["Server"] = SERVER  # aiohttp's default names the Python and aiohttp versions
    if ID in request:
        response.headers[REQUEST_ID] = request[ID]
    for name, values in request.app[SERVICES].settings.headers.items():
        if name not in response.headers:
            for value in values:
                response.headers.add(name, value)


# ---------------------------------------------------------------------------------------------- the worker's services


def _uploads_gauge(namespace: LocalNamespace) -> GaugeProbe:
    async def probe() -> list[Gauge]:
        count = await namespace.uploads_in_progress()
        return [Gauge("portside_uploads_in_progress", "Upload sessions open (started, not finished)", (((), count),))]

    return probe


async def _no_notifications() -> list[Gauge]:
    return [PENDING_EVENTS]


def _services(config: Config, namespace: LocalNamespace, metrics: Metrics) -> Services:
    settings = settings_from(config)
    routes = registry_routes(settings.token_path, settings.ui_path)
    debug = debug_routes(settings.metrics_path)
    controller, issuer = build_controller(config), build_issuer(config)
    services = Services(
        config=config,
        settings=settings,
        namespace=namespace,
        controller=controller,
        issuer=issuer,
        metrics=metrics,
        health=HealthChecker(namespace, config.health),
        routes=routes,
        debug_routes=debug,
        openapi=json.dumps(document(routes, debug)).encode(),
        inventory=LocalInventory(namespace),
        browser_controller=browser_controller(config, controller, issuer),
    )
    services.gauges.append(_uploads_gauge(namespace))
    if config.gc.online:
        services.gauges.append(gc_queue_gauges(namespace))
    if config.notifications.active:
        services.dispatcher = Dispatcher(namespace.store.outbox, config.notifications.active, metrics)
        services.gauges.append(services.dispatcher.gauges)
    else:
        services.gauges.append(_no_notifications)
    return services


def create_app(config: Config, *, migrate: bool = False) -> web.Application:
    """The application for one worker process; its services start when the app starts."""
    app = web.Application(client_max_size=1024**2)

    async def lifecycle(app: web.Application) -> AsyncIterator[None]:
        metrics: Metrics = PrometheusMetrics() if config.http.debug.prometheus.enabled else Metrics()
        namespace = await open_namespace(config, migrate=migrate, metrics=metrics)
        served = serving_namespace(config, namespace, metrics)
        services = _services(config, namespace, metrics)
        services.namespace = served
        app[SERVICES] = services
        background = maintenance_jobs(config, namespace) + gc_jobs(config, namespace, metrics)
        background += proxy_jobs(config, served)
        jobs = JobRunner(background, namespace.store.leases, metrics)
        if services.dispatcher is not None:
            services.dispatcher.start()
        await services.health.start()
        jobs.start()
        yield
        await jobs.stop()
        if services.dispatcher is not None:
            await services.dispatcher.stop()
        await services.health.stop()
        await served.close()

    app.cleanup_ctx.append(lifecycle)
    app.on_response_prepare.append(_common_headers)
    # Every path, line breaks (`%0A` decoded) included, so each answer is the dispatcher's.
    app.router.add_route("*", "/{tail:(?s:.*)}", dispatch)
    return app
