"""A real HTTP receiver for Portside's notifications and HTTP health checks.

It listens on 127.0.0.1 in a thread and records every request (path, headers, body, when it arrived and what
it was answered). Each path answers according to its mode:

- `ok`: 200; `fail`: 500; an integer: that status (a 3xx carries `Location: /redirected`);
- `hang`: accept the request and never answer until the mode changes (then 503), as a stuck endpoint does;
- the whole receiver can be `down()` (its port closed: connection refused) and `up()` again on the same port.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from email.message import Message
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

Mode = str | int

EVENTS_MEDIA_TYPE = "application/vnd.docker.distribution.events.v1+json"


@dataclass
class Delivery:
    """One request the receiver saw."""

    method: str
    path: str
    headers: Message
    body: bytes
    received: float  # time.monotonic() on arrival
    received_wall: float  # time.time() on arrival
    answered: int | None = None  # status sent back; None while hanging or when never answered
    answered_at: float | None = None

    @property
    def delivered(self) -> bool:
        """2xx and 3xx answers deliver the events (docs/operations.md, Notifications)."""
        return self.answered is not None and 200 <= self.answered < 400

    @property
    def events(self) -> list[dict[str, Any]]:
        try:
            doc = json.loads(self.body)
        except ValueError:
            return []
        if not isinstance(doc, dict) or not isinstance(doc.get("events"), list):
            return []
        return [e for e in doc["events"] if isinstance(e, dict)]


@dataclass
class Receiver:
    """The listening server, its per-path modes and everything it has recorded."""

    port: int = 0
    default_mode: Mode = "ok"
    modes: dict[str, Mode] = field(default_factory=dict)
    records: list[Delivery] = field(default_factory=list)
    _server: ThreadingHTTPServer | None = None
    _thread: threading.Thread | None = None
    _lock: threading.Condition = field(default_factory=threading.Condition)

    # -- lifecycle

    def up(self) -> Receiver:
        if self._server is not None:
            return self
        server = ThreadingHTTPServer(("127.0.0.1", self.port), _handler_for(self))
        server.daemon_threads = True
        self.port = int(server.server_address[1])
        self._server = server
        self._thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
        self._thread.start()
        return self

    def down(self) -> None:
        """Close the port: deliveries are refused until `up()`; hanging requests are released (503)."""
        server, self._server = self._server, None
        with self._lock:
            self._lock.notify_all()
        if server is not None:
            server.shutdown()
            server.server_close()

    def url(self, path: str = "/") -> str:
        return f"http://127.0.0.1:{self.port}{path}"

    # -- modes

    def set_mode(self, mode: Mode, path: str | None = None) -> None:
        with self._lock:
            if path is None:
                self.default_mode = mode
                self.modes.clear()
            else:
                self.modes[path] = mode
            self._lock.notify_all()

    def mode_for(self, path: str) -> Mode:
        return self.modes.get(path.split("?", 1)[0], self.default_mode)

    # -- what was recorded

    def requests(self, path: str | None = None) -> list[Delivery]:
        with self._lock:
            records = list(self.records)
        return [r for r in records if path is None or r.path.split("?", 1)[0] == path]

    def posts(self, path: str | None = None) -> list[Delivery]:
        return [r for r in self.requests(path) if r.method == "POST"]

    def delivered_events(self, path: str | None = None) -> list[dict[str, Any]]:
        """Events of every POST answered 2xx/3xx, in arrival order (duplicates kept)."""
        return [e for r in self.posts(path) if r.delivered for e in r.events]

    def wait_for(self, predicate: Callable[[], bool], timeout: float, what: str = "condition") -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if predicate():
                return
            time.sleep(0.05)
        if not predicate():
            raise AssertionError(f"receiver: timed out after {timeout}s waiting for {what}")

    # -- the handler's side

    def _record(self, delivery: Delivery) -> None:
        with self._lock:
            self.records.append(delivery)

    def _answer(self, path: str) -> int:
        """The status to send for `path`, blocking while its mode is `hang`."""
        with self._lock:
            hung = False
            while self.mode_for(path) == "hang" and self._server is not None:
                hung = True
                self._lock.wait(0.5)
            mode = self.mode_for(path)
        if hung or mode == "hang":
            return 503  # whoever sent it has given up long ago: never count it as delivered
        if mode == "ok":
            return 200
        if mode == "fail":
            return 500
        return int(mode)


def _handler_for(receiver: Receiver) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.0"  # one request per connection: nothing lingers when the port closes

        def log_message(self, format: str, *args: Any) -> None:
            pass

        def _serve(self) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            body = self.rfile.read(length) if length else b""
            record = Delivery(
                method=self.command,
                path=self.path,
                headers=self.headers,
                body=body,
                received=time.monotonic(),
                received_wall=time.time(),
            )
            receiver._record(record)
            status = receiver._answer(self.path)
            try:
                self.send_response(status)
                if 300 <= status < 400:
                    self.send_header("Location", "/redirected")
                self.send_header("Content-Length", "0")
                self.end_headers()
            except OSError:
                return
            record.answered = status
            record.answered_at = time.monotonic()

        do_POST = _serve
        do_GET = _serve
        do_HEAD = _serve
        do_PUT = _serve

    return Handler
