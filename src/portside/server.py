"""The worker model: a gunicorn arbiter forks worker processes, each running the aiohttp app on its own
asyncio event loop and sharing the listening socket. Blob bytes move in the kernel (sendfile) or on
threads that release the GIL, so one loop per core is the cheapest way to use every core.

The arbiter stays small: it never imports the registry, the database toolkit or the migrations (those run
in a short-lived child process before workers start); each worker imports what it serves with.
"""

from __future__ import annotations

import gc
import logging
import multiprocessing
import os
import socket
from typing import TYPE_CHECKING, Any

from gunicorn import glogging
from gunicorn.app.base import BaseApplication

from portside import __version__
from portside.config import Config, ConfigError
from portside.config.describe import summary
from portside.config.schema import split_addr
from portside.worker import drain_seconds, release_free_memory

if TYPE_CHECKING:
    from multiprocessing.connection import Connection

    from aiohttp import web

log = logging.getLogger("portside")


def default_workers() -> int:
    return max(1, len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1)


def _tcp(host: str, port: int) -> str:
    return f"[{host}]:{port}" if ":" in host else f"{host or '0.0.0.0'}:{port}"


def bind_addresses(config: Config) -> list[str]:
    """The registry's address, and the debug server's when `http.debug.addr` is set."""
    main = f"unix:{config.http.addr}" if config.http.net == "unix" else _tcp(*config.listen())
    if config.http.debug.addr:
        return [main, _tcp(*split_addr(config.http.debug.addr))]
    return [main]


class GunicornLogger(glogging.Logger):  # type: ignore[misc]
    """gunicorn's own messages go through Portside's log set-up (formatter, fields, level)."""

    def setup(self, cfg: Any) -> None:
        self.error_log.handlers = []
        self.error_log.propagate = True
        self.access_log.handlers = []
        self.access_log.propagate = False


class PortsideServer(BaseApplication):  # type: ignore[misc]
    def __init__(self, config: Config, workers: int) -> None:
        self.config_model = config
        self.workers = workers
        super().__init__()

    def load_config(self) -> None:
        settings: dict[str, Any] = {
            "bind": bind_addresses(self.config_model),
            "workers": self.workers,
            "worker_class": "portside.worker.PortsideWorker",
            "graceful_timeout": int(drain_seconds(self.config_model)) + 5,
            "timeout": 120,
            "keepalive": 75,
            "accesslog": None,
            "loglevel": {"warn": "warning"}.get(self.config_model.log.level, self.config_model.log.level),
            "proc_name": "portside",
            "control_socket_disable": True,
            "child_exit": _child_exit,
            "pre_fork": _pre_fork,
            "logger_class": GunicornLogger,
        }
        for key, value in settings.items():
            self.cfg.set(key, value)

    def load(self) -> Any:
        config = self.config_model
        migrate_in_worker = config.database_dsn() == "sqlite://"

        async def make_runner() -> web.AppRunner:
            from aiohttp import web

            from portside.api.app import create_app

            app = create_app(config, migrate=migrate_in_worker)
            return web.AppRunner(
                app,
                access_log=None,  # the dispatcher writes the access log, with request id, user and repository
                handle_signals=False,
                keepalive_timeout=75,
                shutdown_timeout=1.0,  # the worker drains requests itself before the runner's shutdown
            )

        return make_runner


def _prepare(config: Config, errors: Connection) -> None:
    """Everything that must be right before workers start: writable paths, the metadata schema, storage
    answering a write, the token server's key, the auth files and the TLS certificate. Runs in a child
    process; an error is sent to the arbiter in one line and ends it with 1."""
    import asyncio

    from portside import startup
    from portside.auth.factory import build_controller, build_issuer
    from portside.service import prepare_database, warn_if_not_imported
    from portside.worker import tls_context

    try:
        startup.check_local_paths(config)
        if config.http.tls is not None:
            tls_context(config.http.tls)
        startup.check_htpasswd(config)
        if config.database_dsn() != "sqlite://":
            asyncio.run(prepare_database(config))
        asyncio.run(startup.probe_storage(config))
        if config.database_dsn() != "sqlite://":
            warn_if_not_imported(config)
            startup.check_blobs_present(config)
        startup.warn_if_metadata_is_local(config)
        build_controller(config)
        build_issuer(config)
    except Exception as exc:
        errors.send(" ".join(str(exc).split()) or type(exc).__name__)
        raise SystemExit(1) from None


def prepare(config: Config) -> None:
    """Run `_prepare` in a child process, so the arbiter never loads the database, auth or TLS toolkits."""
    context = multiprocessing.get_context("fork")
    received, sent = context.Pipe(duplex=False)
    child = context.Process(target=_prepare, args=(config, sent), name="portside-prepare")
    child.start()
    sent.close()
    child.join()
    if child.exitcode != 0:
        reason = received.recv() if received.poll() else f"the preparation process ended with {child.exitcode}"
        raise ConfigError(f"cannot start: {reason}")


def _pre_fork(server: Any, worker: Any) -> None:
    """Before each fork: what the arbiter holds moves out of the collector's reach, so collections in the
    worker never write to those objects' pages and the worker keeps sharing them instead of copying them."""
    gc.collect()
    release_free_memory()
    gc.freeze()


def _child_exit(server: Any, worker: Any) -> None:
    """A worker ended: its live metrics (uploads in progress) must not count any more."""
    from portside.metrics import mark_process_dead

    mark_process_dead(worker.pid)


def check_listen(config: Config) -> None:
    """Bind each TCP address once before gunicorn does: gunicorn retries a busy port for five seconds, in a
    dozen lines; this says it at once, in one."""
    addresses = [("http.addr", config.listen())] if config.http.net == "tcp" else []
    if config.http.debug.addr:
        addresses.append(("http.debug.addr", split_addr(config.http.debug.addr)))
    for key, (host, port) in addresses:
        with socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET) as probe:
            probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            try:
                probe.bind((host or "0.0.0.0", port))
            except OSError as exc:
                raise ConfigError(f"cannot listen on {_tcp(host, port)} ({key}): {exc.strerror}") from None


def serve(config: Config, workers: int | None = None) -> None:
    workers = workers or default_workers()
    if config.storage.driver == "inmemory" and workers > 1:
        log.warning(
            "storage.inmemory keeps blobs in the memory of one process: starting 1 worker instead of %d", workers
        )
        workers = 1
    log.info("%s", summary(config, __version__, workers))
    check_listen(config)
    prepare(config)
    if config.http.debug.prometheus.enabled:
        from portside.metrics import prepare_multiprocess_dir, remove_multiprocess_dir

        prepare_multiprocess_dir()
        try:
            PortsideServer(config, workers).run()
        finally:
            remove_multiprocess_dir()
    else:
        PortsideServer(config, workers).run()
