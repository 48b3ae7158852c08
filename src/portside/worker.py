"""Portside's gunicorn worker: one asyncio event loop serving the aiohttp app on the inherited sockets.

It follows aiohttp's own gunicorn worker (signals through the loop, a heartbeat for the arbiter every second,
graceful stop on SIGTERM) and adds what a registry needs from its listener: TLS on the registry's socket only
(the debug socket stays plain), and on that socket a first look at each connection, so a plain-HTTP request
gets an HTTP 400 answer instead of a failed handshake. The module imports aiohttp only inside the worker
process, so the arbiter stays small.
"""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import gc
import os
import signal
import socket
import ssl
import sys
from types import FrameType
from typing import TYPE_CHECKING, Any

from gunicorn.workers import base

from portside.config import Config
from portside.config.schema import Tls

if TYPE_CHECKING:
    from aiohttp import web

PLAIN_HTTP_ON_TLS = (
    b"HTTP/1.0 400 Bad Request\r\nContent-Type: text/plain; charset=utf-8\r\nConnection: close\r\n\r\n"
    b"Client sent an HTTP request to an HTTPS server.\n"
)
TLS_HANDSHAKE_RECORD = 0x16
FIRST_BYTE_TIMEOUT = 30.0


DEFAULT_DRAIN = 30.0


def release_free_memory() -> None:
    """Give the C heap's free pages back to the system (glibc's malloc_trim): start-up builds and drops many
    temporary objects (statements, schemas), and the pages they leave free would otherwise stay resident."""
    try:
        libc = ctypes.CDLL(None)
        trim = libc.malloc_trim
    except (OSError, AttributeError):  # not glibc
        return
    trim(0)


def drain_seconds(config: Config) -> float:
    """How long requests in flight may run on after SIGTERM (http.draintimeout, 30 s when unset)."""
    return config.http.draintimeout or DEFAULT_DRAIN


class TlsError(ValueError):
    """A TLS file that cannot be used; the message names its key and path."""


def _pem(key: str, path: str, marker: bytes, what: str) -> None:
    """The file can be read and holds a PEM block of `marker` (`ssl` alone would only say "PEM lib")."""
    try:
        with open(path, "rb") as file:
            content = file.read()
    except OSError as exc:
        raise TlsError(f"{key} {path}: {exc.strerror}") from None
    if b"-----BEGIN " not in content or marker not in content:
        raise TlsError(f"{key} {path} is not a PEM {what}")


def _reason(exc: ssl.SSLError) -> str:
    return str(exc.reason or exc.strerror or exc).replace("_", " ").lower()


def tls_context(tls: Tls) -> ssl.SSLContext:
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.minimum_version = ssl.TLSVersion.TLSv1_3 if tls.minimumtls == "tls1.3" else ssl.TLSVersion.TLSv1_2
    _pem("http.tls.certificate", tls.certificate, b"CERTIFICATE-----", "certificate")
    _pem("http.tls.key", tls.key, b"PRIVATE KEY-----", "private key")
    try:
        context.load_cert_chain(tls.certificate, tls.key)
    except ssl.SSLError as exc:
        raise TlsError(
            f"http.tls.certificate {tls.certificate} and http.tls.key {tls.key} do not go together: {_reason(exc)}"
        ) from None
    if tls.clientcas:
        context.verify_mode = ssl.CERT_REQUIRED
        for path in tls.clientcas:
            _pem("http.tls.clientcas", path, b"CERTIFICATE-----", "certificate")
            try:
                context.load_verify_locations(cafile=path)
            except ssl.SSLError as exc:
                raise TlsError(f"http.tls.clientcas {path}: {_reason(exc)}") from None
    context.set_alpn_protocols(["http/1.1"])
    return context


class _Acceptor:
    """Accepts on a listening socket shared with the other workers, one connection per loop iteration.

    asyncio's own server accepts everything pending at once, so with several workers on one socket the
    first to wake takes a whole burst of connections and the others idle. Taking one and yielding lets an
    idle worker take the next, and a busy worker, whose loop turns slowly, takes fewer.

    With a TLS context, TLS connections are wrapped and plain HTTP ones get a 400 and are closed.
    """

    def __init__(self, sock: socket.socket, protocol_factory: Any, context: ssl.SSLContext | None) -> None:
        self._sock = sock
        self._factory = protocol_factory
        self._context = context
        self._task: asyncio.Task[None] | None = None
        self._connections: set[asyncio.Task[None]] = set()

    def start(self) -> None:
        self._sock.setblocking(False)
        self._task = asyncio.get_running_loop().create_task(self._accept())

    def close(self) -> None:
        if self._task is not None:
            self._task.cancel()
        for task in self._connections:
            task.cancel()

    async def wait_closed(self) -> None:
        """Wait for accepting to stop, then close this process's copy of the listening socket: once every
        process has closed it, new connections are refused instead of queueing in the backlog."""
        if self._task is not None:
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        self._sock.close()

    async def _accept(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            try:
                conn, _ = await loop.sock_accept(self._sock)
            except OSError:
                await asyncio.sleep(0.1)  # EMFILE and the like: back off instead of spinning
                continue
            task = loop.create_task(self._serve(conn))
            self._connections.add(task)
            task.add_done_callback(self._connections.discard)
            await asyncio.sleep(0)

    async def _first_byte(self, conn: socket.socket) -> bytes:
        loop = asyncio.get_running_loop()
        ready: asyncio.Future[None] = loop.create_future()

        def readable() -> None:
            if not ready.done():
                ready.set_result(None)

        loop.add_reader(conn.fileno(), readable)
        try:
            await asyncio.wait_for(ready, FIRST_BYTE_TIMEOUT)
        finally:
            loop.remove_reader(conn.fileno())
        return conn.recv(1, socket.MSG_PEEK)

    async def _serve(self, conn: socket.socket) -> None:
        loop = asyncio.get_running_loop()
        conn.setblocking(False)
        if self._context is None:
            try:
                await loop.connect_accepted_socket(self._factory, conn)
            except OSError:
                conn.close()
            return
        try:
            first = await self._first_byte(conn)
            if first and first[0] == TLS_HANDSHAKE_RECORD:
                await loop.connect_accepted_socket(
                    self._factory, conn, ssl=self._context, ssl_handshake_timeout=FIRST_BYTE_TIMEOUT
                )
                return
            if first:
                await self._refuse_plain_http(conn)
        except (OSError, ssl.SSLError, TimeoutError):
            pass
        conn.close()

    async def _refuse_plain_http(self, conn: socket.socket) -> None:
        """Answer 400 and close gently: read the request head first and drain what follows, so the client
        reads the answer instead of a reset."""
        loop = asyncio.get_running_loop()
        head = b""
        async with asyncio.timeout(FIRST_BYTE_TIMEOUT):
            while b"\r\n\r\n" not in head and len(head) < 65536:
                chunk = await loop.sock_recv(conn, 65536)
                if not chunk:
                    break
                head += chunk
        await loop.sock_sendall(conn, PLAIN_HTTP_ON_TLS)
        conn.shutdown(socket.SHUT_WR)
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(2.0):
                while await loop.sock_recv(conn, 65536):
                    pass


class PortsideWorker(base.Worker):  # type: ignore[misc]
    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.exit_code = 0
        self._wakeup: asyncio.Event | None = None
        self._at_once = False

    def init_process(self) -> None:
        # asyncio's own loop, not uvloop: only asyncio's loop can sendfile(2) to a transport, which blob pulls need.
        self.loop = asyncio.new_event_loop()
        asyncio.set_event_loop(self.loop)
        super().init_process()

    def run(self) -> None:
        self.booted = False
        task = self.loop.create_task(self._serve())
        try:
            self.loop.run_until_complete(task)
        finally:
            self.loop.run_until_complete(self.loop.shutdown_asyncgens())
            self.loop.close()
        sys.exit(self.exit_code)

    async def _serve(self) -> None:

        self._wakeup = asyncio.Event()
        runner: web.AppRunner = await self.wsgi()
        await runner.setup()
        gc.collect()
        release_free_memory()
        tls = self.app.config_model.http.tls
        acceptors: list[_Acceptor] = []
        assert runner.server is not None
        for index, sock in enumerate(self.sockets):
            context = tls_context(tls) if index == 0 and tls is not None else None
            acceptor = _Acceptor(sock.sock, runner.server, context)
            acceptor.start()
            acceptors.append(acceptor)
        self.booted = True
        pid = os.getpid()
        try:
            while self.alive:
                self.notify()
                if pid == os.getpid() and self.ppid != os.getppid():
                    self.log.info("Parent changed, shutting down: %s", self)
                    break
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._wakeup.wait(), 1.0)
        finally:
            for acceptor in acceptors:
                acceptor.close()
                await acceptor.wait_closed()
            if not self._at_once:
                await self._drain(runner)
            await runner.cleanup()

    async def _drain(self, runner: web.AppRunner) -> None:
        """Let requests in flight finish (aiohttp's own shutdown stops reading request bodies at once, which
        would cut uploads off), for at most http.draintimeout; new requests on open connections are answered
        with `Connection: close`."""
        from portside.api.app import SERVICES

        services = runner.app.get(SERVICES)
        if services is None:
            return
        services.draining = True
        limit = drain_seconds(self.app.config_model)
        if services.in_flight:
            self.log.info(
                "worker %d stopping: draining %d request(s) in flight for at most %.0f s",
                os.getpid(),
                services.in_flight,
                limit,
            )
        else:
            self.log.info("worker %d stopping: no request in flight", os.getpid())
        if services.in_flight:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(services.idle.wait(), limit)
        if services.in_flight:
            self.log.warning("%d request(s) still running after the drain time; closing them", services.in_flight)

    def _wake(self) -> None:
        if self._wakeup is not None:
            self._wakeup.set()

    def init_signals(self) -> None:
        add = self.loop.add_signal_handler
        add(signal.SIGQUIT, self.handle_quit, signal.SIGQUIT, None)
        add(signal.SIGTERM, self.handle_exit, signal.SIGTERM, None)
        add(signal.SIGINT, self.handle_quit, signal.SIGINT, None)
        add(signal.SIGWINCH, self.handle_winch, signal.SIGWINCH, None)
        add(signal.SIGUSR1, self.handle_usr1, signal.SIGUSR1, None)
        add(signal.SIGABRT, self.handle_abort, signal.SIGABRT, None)
        signal.siginterrupt(signal.SIGTERM, False)
        signal.siginterrupt(signal.SIGUSR1, False)
        signal.signal(signal.SIGCHLD, signal.SIG_DFL)

    def handle_exit(self, sig: int, frame: FrameType | None) -> None:
        self.alive = False
        self._wake()

    def handle_quit(self, sig: int, frame: FrameType | None) -> None:
        """SIGQUIT and SIGINT: stop at once, without waiting for requests in flight."""
        self.alive = False
        self._at_once = True
        self.cfg.worker_int(self)
        self._wake()

    def handle_abort(self, sig: int, frame: FrameType | None) -> None:
        self.alive = False
        self.exit_code = 1
        self.cfg.worker_abort(self)
        sys.exit(1)
