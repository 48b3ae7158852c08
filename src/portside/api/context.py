"""What a handler gets: the request, the matched route parameters, the namespace and the URL builder."""

from __future__ import annotations

from dataclasses import dataclass, field
from urllib.parse import quote, urlencode

from aiohttp import web

from portside.registry import Namespace, Repository


@dataclass(frozen=True)
class ApiSettings:
    """The parts of configuration the HTTP layer needs."""

    prefix: str = ""
    host: str = ""
    relative_urls: bool = False
    redirect_disabled: bool = False
    headers: dict[str, list[str]] = field(default_factory=dict)
    debug_port: int | None = None


@dataclass
class Context:
    request: web.Request
    namespace: Namespace
    settings: ApiSettings
    params: dict[str, str]

    def repository(self) -> Repository:
        return self.namespace.repository(self.params["name"])

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

    def url(self, path: str, query: dict[str, str] | None = None) -> str:
        """A URL for `path` (already below /v2), absolute unless http.relativeurls is set."""
        out = self.base_url() + quote(path, safe="/:@-._~")
        return f"{out}?{urlencode(query)}" if query else out
