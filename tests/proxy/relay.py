"""A fault-injecting HTTP relay in front of an upstream registry: it counts the requests it passes on, and on
demand refuses connections, answers a status of its own (429 with `Retry-After`, 503), stalls, holds a blob's
body part-way until released, cuts it off, or sends other bytes in its place.

It runs an aiohttp server on its own event loop in a thread, so synchronous tests drive it; every body is
streamed through as it comes, never buffered whole.
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections import Counter
from dataclasses import dataclass, field

import aiohttp
from aiohttp import web

from tests.conftest import free_port

HOP_HEADERS = {"connection", "keep-alive", "transfer-encoding", "te", "trailer", "upgrade", "host"}
CHUNK = 16 * 1024


@dataclass
class Rule:
    """What the relay does to requests whose path contains `match` (and whose method is in `methods`)."""

    match: str
    methods: tuple[str, ...] = ("GET", "HEAD")
    status: int | None = None
    """Answer this status itself instead of asking upstream."""
    headers: dict[str, str] = field(default_factory=dict)
    times: int | None = None
    """Apply this many times, then pass requests through; None for always."""
    drop: bool = False
    """Close the connection without an answer (the upstream is down)."""
    stall: float = 0.0
    """Seconds to wait before doing anything else (the upstream is slow)."""
    cut_after: int | None = None
    """Send this many bytes of the body, then break the connection (the upstream died mid-blob)."""
    hold_after: int | None = None
    """Send this many bytes of the body, then wait until `release` is set."""
    release: threading.Event = field(default_factory=threading.Event)
    held: threading.Event = field(default_factory=threading.Event)
    """Set once the body has reached `hold_after`."""
    corrupt: bool = False
    """Flip one byte of the body (same length, other digest)."""
    body: bytes | None = None
    """Send this body (with upstream's status and headers, Content-Length adjusted)."""
    strip_auth: bool = False
    """Pass the request on without its Authorization header (so upstream answers 401)."""
    applied: int = 0


class Relay:
    """The relay. `rules` are tried in order; the first that matches (and has uses left) applies."""

    def __init__(self, target: str = "") -> None:
        self.target = target.rstrip("/")
        self.port = free_port()
        self.rules: list[Rule] = []
        self.counts: Counter[tuple[str, str]] = Counter()
        self.challenged: Counter[tuple[str, str]] = Counter()
        self.arrivals: list[tuple[float, str, str]] = []
        """(time.monotonic(), method, path) of every request, in order."""
        self.bytes_sent = 0
        self._lock = threading.Lock()
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, name=f"relay-{self.port}", daemon=True)
        self._runner: web.AppRunner | None = None
        self._session: aiohttp.ClientSession | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def host(self) -> str:
        return f"127.0.0.1:{self.port}"

    # ---------------------------------------------------------------- control (from the test's thread)

    def start(self) -> Relay:
        self._thread.start()
        asyncio.run_coroutine_threadsafe(self._start(), self._loop).result(10)
        return self

    def stop(self) -> None:
        for rule in self.rules:
            rule.release.set()
        asyncio.run_coroutine_threadsafe(self._stop(), self._loop).result(10)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(10)

    def add(self, rule: Rule) -> Rule:
        with self._lock:
            self.rules.append(rule)
        return rule

    def clear(self) -> None:
        with self._lock:
            for rule in self.rules:
                rule.release.set()
            self.rules.clear()

    def count(self, method: str, contains: str) -> int:
        """Requests with `method` whose path contains `contains`, but for those upstream turned away with a 401
        (the challenge that precedes an authenticated request)."""
        with self._lock:
            asked = sum(n for (m, p), n in self.counts.items() if m == method and contains in p)
            challenged = sum(n for (m, p), n in self.challenged.items() if m == method and contains in p)
            return asked - challenged

    def times(self, method: str, contains: str) -> list[float]:
        with self._lock:
            return [t for t, m, p in self.arrivals if m == method and contains in p]

    def reset_counts(self) -> None:
        with self._lock:
            self.counts.clear()
            self.challenged.clear()
            self.arrivals.clear()

    # ---------------------------------------------------------------- the server (on the relay's loop)

    async def _start(self) -> None:
        self._session = aiohttp.ClientSession(auto_decompress=False, timeout=aiohttp.ClientTimeout(total=None))
        app = web.Application(client_max_size=1024**3)
        app.router.add_route("*", "/{path:.*}", self._handle)
        self._runner = web.AppRunner(app, access_log=None, handler_cancellation=True)
        await self._runner.setup()
        await web.TCPSite(self._runner, "127.0.0.1", self.port).start()

    async def _stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
        if self._session is not None:
            await self._session.close()

    def _rule(self, method: str, path: str) -> Rule | None:
        with self._lock:
            self.counts[(method, path)] += 1
            self.arrivals.append((time.monotonic(), method, path))
            for rule in self.rules:
                if rule.match in path and method in rule.methods and (rule.times is None or rule.applied < rule.times):
                    rule.applied += 1
                    return rule
        return None

    async def _handle(self, request: web.Request) -> web.StreamResponse:
        rule = self._rule(request.method, request.path)
        if rule is not None and rule.stall:
            await asyncio.sleep(rule.stall)
        if rule is not None and rule.drop:
            self._break(request)
            return web.Response(status=500)  # never sent: the connection is gone
        if rule is not None and rule.status is not None:
            body = rule.body or b""
            headers = {"Content-Length": str(len(body)), **rule.headers}
            response = web.StreamResponse(status=rule.status, headers=headers)
            await response.prepare(request)
            if request.method != "HEAD":
                await response.write(body)
            await response.write_eof()
            return response
        headers = {k: v for k, v in request.headers.items() if k.lower() not in HOP_HEADERS}
        if rule is not None and rule.strip_auth:
            headers.pop("Authorization", None)
        assert self._session is not None
        data = await request.read() if request.body_exists else None
        async with self._session.request(
            request.method, self.target + request.path_qs, headers=headers, data=data, allow_redirects=False
        ) as upstream:
            if upstream.status == 401:
                with self._lock:
                    self.challenged[(request.method, request.path)] += 1
            out = {k: v for k, v in upstream.headers.items() if k.lower() not in HOP_HEADERS}
            if rule is not None and rule.body is not None:
                out["Content-Length"] = str(len(rule.body))
            out.update(rule.headers if rule is not None else {})
            response = web.StreamResponse(status=upstream.status, headers=out)
            await response.prepare(request)
            if request.method == "HEAD":
                return response
            if rule is not None and rule.body is not None:
                await response.write(rule.body)
                await response.write_eof()
                return response
            try:
                await self._stream(request, response, upstream, rule)
            except (aiohttp.ClientError, ConnectionError):  # the upstream broke off: so does the relay
                self._break(request)
        return response

    async def _stream(
        self, request: web.Request, response: web.StreamResponse, upstream: aiohttp.ClientResponse, rule: Rule | None
    ) -> None:
        sent = 0
        async for chunk in upstream.content.iter_chunked(CHUNK):
            if rule is not None and rule.corrupt and sent == 0 and chunk:
                chunk = bytes([chunk[0] ^ 0xFF]) + chunk[1:]
            limit = _first(rule.cut_after, rule.hold_after) if rule is not None else None
            if limit is not None and sent + len(chunk) >= limit:
                head, chunk = chunk[: limit - sent], chunk[limit - sent :]
                await response.write(head)
                sent += len(head)
                self.bytes_sent += len(head)
                assert rule is not None
                if rule.cut_after is not None:
                    await asyncio.sleep(0.05)  # let the bytes leave before the connection breaks
                    self._break(request)
                    return
                rule.held.set()
                await asyncio.to_thread(rule.release.wait)
                rule.hold_after = None
            await response.write(chunk)
            sent += len(chunk)
            self.bytes_sent += len(chunk)
        await response.write_eof()

    @staticmethod
    def _break(request: web.Request) -> None:
        transport = request.transport
        if transport is not None:
            transport.abort()


def _first(*values: int | None) -> int | None:
    return next((v for v in values if v is not None), None)
