"""Prometheus metrics, summed over worker processes (prometheus_client's multiprocess mode).

The arbiter points `PROMETHEUS_MULTIPROC_DIR` at a fresh directory before it forks; each worker writes its
samples there and the scrape adds them up. Without `http.debug.prometheus.enabled` nothing is recorded and
prometheus_client is never imported.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Callable, Iterable
from typing import Any

MULTIPROC_ENV = "PROMETHEUS_MULTIPROC_DIR"
LATENCY_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60)


_OWNER_PID: int | None = None


def prepare_multiprocess_dir() -> str:
    """Called by the arbiter before workers start: a new, empty directory for this run's samples."""
    global _OWNER_PID
    path = tempfile.mkdtemp(prefix="portside-metrics-")
    os.environ[MULTIPROC_ENV] = path
    _OWNER_PID = os.getpid()
    return path


def remove_multiprocess_dir() -> None:
    """Remove the samples directory, from the arbiter only (workers unwind through the same code on exit)."""
    path = os.environ.get(MULTIPROC_ENV)
    if path and os.getpid() == _OWNER_PID and os.path.basename(path).startswith("portside-metrics-"):
        shutil.rmtree(path, ignore_errors=True)


def mark_process_dead(pid: int) -> None:
    """Drop a dead worker's live gauges (called from the arbiter when a worker exits)."""
    if os.environ.get(MULTIPROC_ENV):
        from prometheus_client import multiprocess

        multiprocess.mark_process_dead(pid)  # type: ignore[no-untyped-call]


class Metrics:
    """The recording side. The base class records nothing, so callers never need to check."""

    enabled = False

    def request(self, route: str, method: str, status: int, seconds: float, received: int, sent: int) -> None:
        return None

    def upload_started(self) -> None:
        return None

    def upload_finished(self) -> None:
        return None

    def storage(self, driver: str, operation: str, seconds: float) -> None:
        return None

    def query(self, operation: str, seconds: float) -> None:
        return None

    def notification(self, endpoint: str, delivered: int, failed: int) -> None:
        return None


class PrometheusMetrics(Metrics):
    enabled = True

    def __init__(self) -> None:
        from prometheus_client import Counter, Gauge, Histogram

        self.requests = Counter("portside_http_requests", "HTTP requests answered", ["route", "method", "status"])
        self.duration = Histogram(
            "portside_http_request_duration_seconds",
            "Time to answer a request",
            ["route", "method"],
            buckets=LATENCY_BUCKETS,
        )
        self.received = Counter("portside_http_request_bytes", "Request body bytes received", ["route"])
        self.sent = Counter("portside_http_response_bytes", "Response body bytes sent", ["route"])
        self.uploads = Gauge(
            "portside_upload_requests_in_progress", "Upload requests receiving bytes now", multiprocess_mode="livesum"
        )
        self.storage_duration = Histogram(
            "portside_storage_operation_duration_seconds",
            "Storage driver operation time",
            ["driver", "operation"],
            buckets=LATENCY_BUCKETS,
        )
        self.query_duration = Histogram(
            "portside_database_query_duration_seconds",
            "Metadata store statement time",
            ["operation"],
            buckets=LATENCY_BUCKETS,
        )
        self.delivered = Counter("portside_notifications_delivered", "Events delivered", ["endpoint"])
        self.failures = Counter("portside_notifications_failures", "Failed delivery attempts", ["endpoint"])

    def request(self, route: str, method: str, status: int, seconds: float, received: int, sent: int) -> None:
        self.requests.labels(route, method, str(status)).inc()
        self.duration.labels(route, method).observe(seconds)
        if received:
            self.received.labels(route).inc(received)
        if sent:
            self.sent.labels(route).inc(sent)

    def upload_started(self) -> None:
        self.uploads.inc()

    def upload_finished(self) -> None:
        self.uploads.dec()

    def storage(self, driver: str, operation: str, seconds: float) -> None:
        self.storage_duration.labels(driver, operation).observe(seconds)

    def query(self, operation: str, seconds: float) -> None:
        self.query_duration.labels(operation).observe(seconds)

    def notification(self, endpoint: str, delivered: int, failed: int) -> None:
        if delivered:
            self.delivered.labels(endpoint).inc(delivered)
        if failed:
            self.failures.labels(endpoint).inc(failed)


def exposition(extra: Callable[[], Iterable[Any]] | None = None) -> tuple[bytes, str]:
    """The text exposition of every worker's samples, plus `extra` metric families computed now."""
    from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest, multiprocess

    registry = CollectorRegistry()
    multiprocess.MultiProcessCollector(registry)  # type: ignore[no-untyped-call]
    if extra is not None:
        registry.register(_Computed(extra))
    return generate_latest(registry), CONTENT_TYPE_LATEST


class _Computed:
    """A collector whose metric families are computed at scrape time."""

    def __init__(self, families: Callable[[], Iterable[Any]]) -> None:
        self._families = families

    def collect(self) -> Iterable[Any]:
        return self._families()
