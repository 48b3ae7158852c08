"""Prometheus metrics, summed over worker processes (prometheus_client's multiprocess mode).

The arbiter points `PROMETHEUS_MULTIPROC_DIR` at a fresh directory before it forks; each worker writes its
samples there and the scrape adds them up. Without `http.debug.prometheus.enabled` nothing is recorded and
prometheus_client is never imported.
"""

from __future__ import annotations

import os
import shutil
import tempfile
import time
from collections.abc import Iterable
from dataclasses import dataclass
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


@dataclass(frozen=True)
class Gauge:
    """A metric family computed when scraped, from what the metadata store holds now (the same for every
    worker, so not summed across them)."""

    name: str
    help: str
    samples: tuple[tuple[tuple[str, ...], float], ...]
    labels: tuple[str, ...] = ()


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

    def job(self, name: str, seconds: float, error: str | None) -> None:
        """A background job ran (error is None when it succeeded)."""
        return None

    def gc_reviewed(self, queue: str, count: int) -> None:
        """Garbage collection looked at `count` items of `queue` (manifests, links, blobs, repositories)."""
        return None

    def gc_deleted(self, kind: str, count: int, size: int = 0) -> None:
        """Garbage collection removed `count` items of `kind` (and, for blobs, `size` bytes)."""
        return None

    def gc_failed(self, queue: str, count: int) -> None:
        return None

    def proxy_request(self, kind: str, result: str) -> None:
        """A pull-through cache answered a manifest or blob request: hit, miss, stale or error."""
        return None

    def proxy_upstream_bytes(self, count: int) -> None:
        return None

    def proxy_upstream_error(self, status: object) -> None:
        """An upstream failed: its HTTP status, or why it could not be asked (unreachable, timeout)."""
        return None

    def proxy_join(self) -> None:
        """A request for a blob being fetched joined that fetch instead of starting another."""
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
        self.gc_reviews = Counter("portside_gc_reviews", "Garbage collection reviews done", ["queue"])
        self.gc_deletes = Counter("portside_gc_deleted", "Items garbage collection removed", ["kind"])
        self.gc_bytes = Counter("portside_gc_reclaimed_bytes", "Blob bytes garbage collection removed")
        self.gc_failures = Counter("portside_gc_failures", "Garbage collection removals that failed", ["queue"])
        self.proxy_requests = Counter("portside_proxy_requests", "Pull-through cache answers", ["kind", "result"])
        self.proxy_bytes = Counter("portside_proxy_upstream_bytes", "Blob bytes fetched from upstream")
        self.proxy_errors = Counter("portside_proxy_upstream_errors", "Upstream failures", ["status"])
        self.proxy_joins = Counter("portside_proxy_single_flight_joins", "Requests that joined a fetch in flight")
        self.job_runs = Counter("portside_job_runs", "Background job runs", ["job", "outcome"])
        self.job_duration = Histogram(
            "portside_job_duration_seconds",
            "Time a background job run took",
            ["job"],
            buckets=(0.001, 0.01, 0.1, 1, 10, 60, 600, 3600),
        )
        self.job_success = Gauge(
            "portside_job_last_success_timestamp_seconds",
            "When a background job last succeeded (Unix time)",
            ["job"],
            multiprocess_mode="max",
        )

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

    def gc_reviewed(self, queue: str, count: int) -> None:
        if count:
            self.gc_reviews.labels(queue).inc(count)

    def gc_deleted(self, kind: str, count: int, size: int = 0) -> None:
        if count:
            self.gc_deletes.labels(kind).inc(count)
        if size:
            self.gc_bytes.inc(size)

    def gc_failed(self, queue: str, count: int) -> None:
        if count:
            self.gc_failures.labels(queue).inc(count)

    def proxy_request(self, kind: str, result: str) -> None:
        self.proxy_requests.labels(kind, result).inc()

    def proxy_upstream_bytes(self, count: int) -> None:
        self.proxy_bytes.inc(count)

    def proxy_upstream_error(self, status: object) -> None:
        self.proxy_errors.labels(str(status)).inc()

    def proxy_join(self) -> None:
        self.proxy_joins.inc()

    def job(self, name: str, seconds: float, error: str | None) -> None:
        self.job_runs.labels(name, "failure" if error is not None else "success").inc()
        self.job_duration.labels(name).observe(seconds)
        if error is None:
            self.job_success.labels(name).set(time.time())


def exposition(gauges: Iterable[Gauge] = ()) -> tuple[bytes, str]:
    """The text exposition of every worker's samples, plus `gauges` computed now."""
    from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest, multiprocess

    registry = CollectorRegistry()
    multiprocess.MultiProcessCollector(registry)  # type: ignore[no-untyped-call]
    registry.register(_Computed(list(gauges)))
    return generate_latest(registry), CONTENT_TYPE_LATEST


class _Computed:
    """A collector of metric families computed at scrape time."""

    def __init__(self, gauges: list[Gauge]) -> None:
        self._gauges = gauges

    def collect(self) -> Iterable[Any]:
        from prometheus_client.core import GaugeMetricFamily

        for gauge in self._gauges:
            family = GaugeMetricFamily(gauge.name, gauge.help, labels=list(gauge.labels))
            for labels, value in gauge.samples:
                family.add_metric(list(labels), value)
            yield family
