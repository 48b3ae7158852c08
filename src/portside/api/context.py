"""What a handler gets: the request, the matched route parameters, the worker's services and the URL builder."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING
from urllib.parse import urlencode

from aiohttp import web

from portside.auth import Access, AccessController, AllowAll, Grant
from portside.config import Config
from portside.health import HealthChecker
from portside.metrics import Gauge, Metrics
from portside.notifications import Dispatcher, NotificationSink
from portside.registry import Namespace, Repository
from portside.registry.inventory import Inventory

if TYPE_CHECKING:
    from portside.api.routes import RouteTable
    from portside.tokenserver import TokenIssuer

GaugeProbe = Callable[[], Awaitable[list[Gauge]]]


@dataclass(frozen=True)
class ApiSettings:
    """The parts of configuration the HTTP layer needs on every request."""

    prefix: str = ""
    host: str = ""
    relative_urls: bool = False
    redirect_disabled: bool = False
    headers: dict[str, list[str]] = field(default_factory=dict)
    debug_port: int | None = None
    token_path: str | None = None
    read_only: bool = False
    metrics_path: str | None = None
    ui_path: str | None = None  # where the web UI's pages are (None: off)


@dataclass
class Services:
    """One worker's long-lived parts, built when its app starts."""

    config: Config
    settings: ApiSettings
    namespace: Namespace
    controller: AccessController | None
    issuer: TokenIssuer | None
    metrics: Metrics
    health: HealthChecker
    routes: RouteTable
    debug_routes: RouteTable
    openapi: bytes = b"{}"
    # Metric families computed at scrape time by the parts that know them (upload sessions, the outbox, jobs).
    gauges: list[GaugeProbe] = field(default_factory=list)
    dispatcher: Dispatcher | None = None
    # What is stored (the management API and the UI), and who a browser is (the UI's pages: api/browser.py).
    inventory: Inventory | None = None
    browser_controller: AccessController | None = None
    # Requests being handled now, and whether the worker is shutting down (answers then close connections).
    in_flight: int = 0
    idle: asyncio.Event = field(default_factory=asyncio.Event)
    draining: bool = False


@dataclass
class Context:
    request: web.Request
    services: Services
    params: dict[str, str]
    grant: Grant = field(default_factory=AllowAll)
    events: NotificationSink | None = None
    repo: Repository | None = None

    @property
    def namespace(self) -> Namespace:
        return self.services.namespace

    @property
    def settings(self) -> ApiSettings:
        return self.services.settings

    def repository(self) -> Repository:
        if self.repo is None:
            self.repo = self.namespace.repository(self.params["name"], self.events)
        return self.repo

    def may(self, access: Access) -> bool:
        """Whether the caller may also do `access` (beyond what the route itself needed)."""
        return self.grant.allows(access)

    def query(self, key: str) -> str | None:
        return self.request.rel_url.query.get(key)

    def base_url(self) -> str:
        if self.settings.relative_urls:
            return self.settings.prefix
        if self.settings.host:
            return self.settings.host + self.settings.prefix
        headers = self.request.headers
        scheme = headers.get("X-Forwarded-Proto", self.request.scheme).split(",")[0].strip()
        host = headers.get("X-Forwarded-Host", self.request.host).split(",")[0].strip()
        return f"{scheme}://{host}{self.settings.prefix}"

    def url_for(self, route: str, query: dict[str, str] | None = None, **params: str) -> str:
        """The URL of the route named `route` with `params`, absolute unless http.relativeurls is set."""
        out = self.base_url() + self.services.routes[route].path_for(**params)
        return f"{out}?{urlencode(query)}" if query else out
