"""Prometheus metrics on the debug server, summed over both worker processes.

docs/operations.md, Metrics: with `http.debug.prometheus.enabled: true` the debug server serves, at
`http.debug.prometheus.path` (default `/metrics`), the table's metrics "summed over all worker processes";
`route` is the route table's name.
"""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass

import httpx
import pytest

from tests.conftest import Registry, RegistryFactory
from tests.operations.receiver import Receiver
from tests.operations.support import (
    OCI_MANIFEST,
    OCTET_STREAM,
    Client,
    Scrape,
    debug_addr,
    push_image,
    scrape,
    sha256,
    unique_repo,
    wait_until,
)

TYPES = {
    "portside_http_requests_total": "counter",
    "portside_http_request_duration_seconds": "histogram",
    "portside_http_request_bytes_total": "counter",
    "portside_http_response_bytes_total": "counter",
    "portside_uploads_in_progress": "gauge",
    "portside_upload_requests_in_progress": "gauge",
    "portside_storage_operation_duration_seconds": "histogram",
    "portside_database_query_duration_seconds": "histogram",
    "portside_notifications_pending": "gauge",
    "portside_notifications_delivered_total": "counter",
    "portside_notifications_failures_total": "counter",
}

LABELS = {
    "portside_http_requests_total": {"route", "method", "status"},
    "portside_http_request_duration_seconds": {"route", "method"},
    "portside_http_request_bytes_total": {"route"},
    "portside_http_response_bytes_total": {"route"},
    "portside_uploads_in_progress": set(),
    "portside_upload_requests_in_progress": set(),
    "portside_storage_operation_duration_seconds": {"driver", "operation"},
    "portside_database_query_duration_seconds": {"operation"},
    "portside_notifications_pending": {"endpoint"},
    "portside_notifications_delivered_total": {"endpoint"},
    "portside_notifications_failures_total": {"endpoint"},
}


@dataclass
class Metered:
    registry: Registry
    debug: str
    receiver: Receiver

    def scrape(self) -> Scrape:
        return scrape(self.debug)


@pytest.fixture(scope="module")
def metered(module_registry_factory: RegistryFactory, module_receiver: Receiver) -> Metered:
    """Two workers, Prometheus on the debug server, one endpoint that answers and one that always fails."""
    module_receiver.set_mode("fail", "/bad")
    debug = debug_addr()
    endpoint = {"timeout": "1s", "threshold": 1, "backoff": "1s"}
    reg = module_registry_factory(
        {
            "http": {"debug": {"addr": debug, "prometheus": {"enabled": True}}},
            "notifications": {
                "endpoints": [
                    {"name": "metrics-hook", "url": module_receiver.url("/hook"), **endpoint},
                    {"name": "metrics-bad", "url": module_receiver.url("/bad"), **endpoint},
                ]
            },
        },
        workers=2,
    )
    return Metered(reg, debug, module_receiver)


def wait_for_delta(m: Metered, before: Scrape, name: str, want: float, **labels: str) -> Scrape:
    """Scrape until the metric has moved by exactly `want` (workers may report a moment late)."""
    deadline = time.monotonic() + 10
    while True:
        now = m.scrape()
        delta = now.value(name, **labels) - before.value(name, **labels)
        if delta == want or time.monotonic() > deadline:
            assert delta == want, f"{name}{labels}: moved by {delta}, expected {want}"
            return now
        time.sleep(0.2)


def scrape_with_every_metric(m: Metered) -> Scrape:
    """A scrape once every metric of the table has series: labelled series exist once something happened to
    them, so push an image and wait for a delivery and a failed attempt."""
    c = Client(m.registry.url)
    image = push_image(c, unique_repo("types"), tag="t")
    c.close()
    rec = m.receiver
    rec.wait_for(
        lambda: (
            image.digest in {(e.get("target") or {}).get("digest") for e in rec.delivered_events("/hook")}
            and bool(rec.posts("/bad"))
        ),
        timeout=15,
        what="a delivery to metrics-hook and an attempt at metrics-bad",
    )
    deadline = time.monotonic() + 10
    s = m.scrape()
    while not all(s.type_of(n) for n in TYPES) and time.monotonic() < deadline:
        time.sleep(0.2)
        s = m.scrape()
    return s


def test_every_metric_has_its_documented_type(metered: Metered) -> None:
    """The table's metric names and types."""
    s = scrape_with_every_metric(metered)
    for name, kind in TYPES.items():
        assert s.type_of(name) == kind, f"{name}: declared {s.type_of(name)!r}, expected {kind}"


def test_every_metric_has_its_documented_labels(metered: Metered) -> None:
    """The table's labels, no more and no fewer (histogram buckets add `le`)."""
    s = scrape_with_every_metric(metered)
    wrong = {}
    for name, labels in LABELS.items():
        kind = TYPES[name]
        sample = f"{name}_count" if kind == "histogram" else name
        found = {frozenset(k for k, _ in ls) for (n, ls) in s.samples if n == sample}
        if found != {frozenset(labels)}:
            wrong[name] = sorted(sorted(f) for f in found)
    assert not wrong, f"label names differ from the table ({LABELS}): {wrong}"


def test_requests_are_counted_by_route_method_and_status_over_both_workers(metered: Metered) -> None:
    """`portside_http_requests_total{route, method, status}` and the duration histogram's count move by exactly
    the requests made, each on its own connection so that both workers serve some."""
    before = metered.scrape()
    c = Client(metered.registry.url, fresh_connections=True)
    repo = unique_repo("routes")
    for _ in range(40):
        assert c.request("GET", "/v2/").status == 200
    image = push_image(c, repo, tag="v1")  # upload_start POST 201 x2, manifest PUT 201
    made = {
        ("catalog", "GET", "200"): [c.request("GET", "/v2/_catalog") for _ in range(2)],
        ("tags", "GET", "200"): [c.request("GET", f"/v2/{repo}/tags/list") for _ in range(2)],
        ("tags", "GET", "404"): [c.request("GET", f"/v2/{unique_repo('none')}/tags/list")],
        ("manifest", "GET", "200"): [
            c.request("GET", f"/v2/{repo}/manifests/v1", headers={"Accept": OCI_MANIFEST}) for _ in range(2)
        ],
        ("manifest", "HEAD", "200"): [c.request("HEAD", f"/v2/{repo}/manifests/v1")],
        ("manifest", "GET", "404"): [c.request("GET", f"/v2/{repo}/manifests/nothere")],
        ("blob", "GET", "200"): [c.request("GET", f"/v2/{repo}/blobs/{image.blob_digests[1]}")],
        ("blob", "HEAD", "200"): [c.request("HEAD", f"/v2/{repo}/blobs/{image.blob_digests[1]}")],
        ("blob", "GET", "404"): [c.request("GET", f"/v2/{repo}/blobs/{sha256(b'absent')}")],
        ("referrers", "GET", "200"): [c.request("GET", f"/v2/{repo}/referrers/{image.digest}")],
        ("unknown", "GET", "404"): [c.request("GET", "/v2/no/such/route/here"), c.request("GET", f"/v2/{repo}/what")],
    }
    start = c.request("POST", f"/v2/{repo}/blobs/uploads/")
    data = os.urandom(3000)
    patch = c.request("PATCH", start.response.headers["Location"], content=data, headers={"Content-Type": OCTET_STREAM})
    put = c.request("PUT", patch.response.headers["Location"], params={"digest": sha256(data)})
    made[("upload_start", "POST", "202")] = [start]
    made[("upload", "PATCH", "202")] = [patch]
    made[("upload", "PUT", "201")] = [put]
    c.close()
    for (route, method, status), calls in made.items():
        assert all(str(call.status) == status for call in calls), (route, method, [x.status for x in calls])

    wait_for_delta(metered, before, "portside_http_requests_total", 40, route="base", method="GET", status="200")
    wait_for_delta(
        metered, before, "portside_http_requests_total", 2, route="upload_start", method="POST", status="201"
    )
    wait_for_delta(metered, before, "portside_http_requests_total", 1, route="manifest", method="PUT", status="201")
    for (route, method, status), calls in made.items():
        wait_for_delta(
            metered, before, "portside_http_requests_total", len(calls), route=route, method=method, status=status
        )
    wait_for_delta(metered, before, "portside_http_request_duration_seconds_count", 40, route="base", method="GET")


def test_route_labels_are_the_route_table_names(metered: Metered) -> None:
    """ "`route` is the route table's name (`base`, `catalog`, `tags`, `manifest`, `upload_start`, `upload`,
    `blob`, `referrers`, `token`, `unknown`; on the debug server `health` and `metrics`)"."""
    c = Client(metered.registry.url)
    push_image(c, unique_repo("labels"), tag="t")
    c.request("GET", "/v2/no/such/route/here")
    c.close()
    metered.scrape()  # a scrape counted as a request shows in the next one
    s = metered.scrape()
    known = {"base", "catalog", "tags", "manifest", "upload_start", "upload", "blob", "referrers", "token", "unknown"}
    known |= {"health", "metrics"}
    for name in (
        "portside_http_requests_total",
        "portside_http_request_duration_seconds_count",
        "portside_http_request_bytes_total",
        "portside_http_response_bytes_total",
    ):
        routes = s.label_values(name, "route")
        assert routes, name
        assert routes <= known, f"{name}: route labels outside the route table: {sorted(routes - known)}"


def test_duration_histogram_is_consistent(metered: Metered) -> None:
    """`portside_http_request_duration_seconds{route, method}`: a histogram whose +Inf bucket equals its count
    and whose buckets never decrease."""
    before = metered.scrape()
    c = Client(metered.registry.url, fresh_connections=True)
    for _ in range(10):
        c.request("GET", "/v2/_catalog")
    c.close()
    s = wait_for_delta(
        metered, before, "portside_http_request_duration_seconds_count", 10, route="catalog", method="GET"
    )
    assert s.value("portside_http_request_duration_seconds_sum", route="catalog", method="GET") > before.value(
        "portside_http_request_duration_seconds_sum", route="catalog", method="GET"
    )
    buckets = sorted(
        (float(dict(ls)["le"]), v)
        for (n, ls), v in s.samples.items()
        if n == "portside_http_request_duration_seconds_bucket"
        and dict(ls).get("route") == "catalog"
        and dict(ls).get("method") == "GET"
    )
    assert buckets, "no buckets for route=catalog, method=GET"
    values = [v for _, v in buckets]
    assert values == sorted(values)
    assert buckets[-1][0] == float("inf")
    assert buckets[-1][1] == s.value("portside_http_request_duration_seconds_count", route="catalog", method="GET")


def test_request_and_response_bytes(metered: Metered) -> None:
    """`portside_http_request_bytes_total{route}` and `portside_http_response_bytes_total{route}` count at
    least the bodies sent and received."""
    before = metered.scrape()
    c = Client(metered.registry.url)
    repo = unique_repo("bytes")
    data = os.urandom(64 * 1024)
    c.push_blob(repo, data)
    got = c.request("GET", f"/v2/{repo}/blobs/{sha256(data)}")
    c.close()
    assert got.status == 200
    assert got.response.content == data

    def moved() -> bool:
        now = metered.scrape()
        up = now.value("portside_http_request_bytes_total", route="upload_start")
        down = now.value("portside_http_response_bytes_total", route="blob")
        return up - before.value("portside_http_request_bytes_total", route="upload_start") >= len(data) and (
            down - before.value("portside_http_response_bytes_total", route="blob") >= len(data)
        )

    wait_until(moved, timeout=10, what="request bytes on upload_start and response bytes on blob")


def test_upload_requests_in_progress_while_bytes_arrive(metered: Metered) -> None:
    """`portside_upload_requests_in_progress` is one more while an upload request is receiving data, and back
    where it was once the request is done."""
    base = metered.scrape().value("portside_upload_requests_in_progress")
    c = Client(metered.registry.url, fresh_connections=True)
    repo = unique_repo("inprogress")
    start = c.request("POST", f"/v2/{repo}/blobs/uploads/")
    assert start.status == 202
    chunk = os.urandom(64 * 1024)
    sending = threading.Event()
    release = threading.Event()
    result: dict[str, httpx.Response] = {}

    def body() -> Iterator[bytes]:
        yield chunk
        sending.set()
        release.wait(20)
        yield chunk

    def patch() -> None:
        with httpx.Client(timeout=60) as h:
            result["patch"] = h.patch(
                start.response.headers["Location"],
                content=body(),
                headers={"Content-Type": OCTET_STREAM, "Content-Length": str(2 * len(chunk))},
            )

    t = threading.Thread(target=patch)
    t.start()
    try:
        assert sending.wait(10)
        wait_until(
            lambda: metered.scrape().value("portside_upload_requests_in_progress") == base + 1,
            timeout=10,
            what="upload_requests_in_progress to count the streaming PATCH",
        )
    finally:
        release.set()
        t.join(30)
    assert result["patch"].status_code == 202, result["patch"].text
    put = c.request("PUT", result["patch"].headers["Location"], params={"digest": sha256(chunk + chunk)})
    assert put.status == 201, put.response.text
    c.close()
    wait_until(
        lambda: metered.scrape().value("portside_upload_requests_in_progress") == base,
        timeout=10,
        what="upload_requests_in_progress back to its value before the upload",
    )


def test_uploads_in_progress_counts_open_upload_sessions(metered: Metered) -> None:
    """`portside_uploads_in_progress`: an upload opened (`POST .../blobs/uploads/`, 202) and not yet finished is
    in progress, between its requests too; finishing it (`PUT ?digest=`, 201) or cancelling it (`DELETE`, 204)
    ends it. Requests on separate connections, so both workers see part of it."""
    base = metered.scrape().value("portside_uploads_in_progress")
    c = Client(metered.registry.url, fresh_connections=True)
    repo = unique_repo("sessions")
    opened = [c.request("POST", f"/v2/{repo}/blobs/uploads/") for _ in range(2)]
    assert [o.status for o in opened] == [202, 202]
    wait_until(
        lambda: metered.scrape().value("portside_uploads_in_progress") == base + 2,
        timeout=5,
        what="two open upload sessions counted as in progress",
    )
    data = os.urandom(100)
    put = c.request("PUT", opened[0].response.headers["Location"], params={"digest": sha256(data)}, content=data)
    assert put.status == 201
    assert c.request("DELETE", opened[1].response.headers["Location"]).status == 204
    c.close()
    wait_until(
        lambda: metered.scrape().value("portside_uploads_in_progress") == base,
        timeout=10,
        what="uploads_in_progress back once both sessions ended",
    )


def test_storage_and_database_histograms_move(metered: Metered) -> None:
    """`portside_storage_operation_duration_seconds{driver, operation}` and
    `portside_database_query_duration_seconds{operation}` (select/insert/update/delete, other for the rest)
    count the work a push and a pull do."""
    before = metered.scrape()
    c = Client(metered.registry.url)
    repo = unique_repo("work")
    image = push_image(c, repo, tag="v1")
    assert c.request("GET", f"/v2/{repo}/manifests/v1", headers={"Accept": OCI_MANIFEST}).status == 200
    assert c.request("GET", f"/v2/{repo}/blobs/{image.blob_digests[1]}").status == 200
    c.close()

    def moved() -> Scrape | None:
        now = metered.scrape()
        storage = now.value("portside_storage_operation_duration_seconds_count", driver="filesystem") - before.value(
            "portside_storage_operation_duration_seconds_count", driver="filesystem"
        )
        inserts = now.value("portside_database_query_duration_seconds_count", operation="insert") - before.value(
            "portside_database_query_duration_seconds_count", operation="insert"
        )
        selects = now.value("portside_database_query_duration_seconds_count", operation="select") - before.value(
            "portside_database_query_duration_seconds_count", operation="select"
        )
        return now if storage > 0 and inserts > 0 and selects > 0 else None

    now = wait_until(moved, timeout=10, what="storage operations and database inserts and selects")
    ops = now.label_values("portside_database_query_duration_seconds_count", "operation")
    assert ops <= {"select", "insert", "update", "delete", "other"}, ops
    assert now.label_values("portside_storage_operation_duration_seconds_count", "operation")
    assert now.label_values("portside_storage_operation_duration_seconds_count", "driver") == {"filesystem"}


def test_notification_metrics(metered: Metered) -> None:
    """`portside_notifications_delivered_total{endpoint}` counts delivered events, `..._failures_total{endpoint}`
    failed attempts (POSTs) (docs/operations.md: "per event and per POST respectively"): the endpoint fails
    while six events are pushed, until an attempt of several events has failed, then answers, and the
    backlog arrives in fewer POSTs than events. `portside_notifications_pending{endpoint}` is what waits for
    each endpoint: nothing for the one that answers, every event so far for the one that always fails
    (counted once, not once per worker)."""
    rec = metered.receiver
    before = metered.scrape()
    start = len(rec.posts("/hook"))
    rec.set_mode("fail", "/hook")
    try:
        c = Client(metered.registry.url, fresh_connections=True)
        repo = unique_repo("notify")
        blobs = [os.urandom(200 + i) for i in range(6)]
        for b in blobs:
            c.push_blob(repo, b)
        c.close()
        wanted = {sha256(b) for b in blobs}
        rec.wait_for(
            lambda: any(p.answered == 500 and len(p.events) > 1 for p in rec.posts("/hook")[start:]),
            timeout=30,
            what="a failed attempt of several events at metrics-hook",
        )
    finally:
        rec.set_mode("ok", "/hook")
    rec.wait_for(
        lambda: wanted <= {(e.get("target") or {}).get("digest") for e in rec.delivered_events("/hook")},
        timeout=30,
        what="the push events at metrics-hook",
    )

    def counts() -> dict[str, int]:
        posts = rec.posts("/hook")[start:]
        return {
            "delivered posts": len([p for p in posts if p.delivered]),
            "delivered events": len([e for p in posts if p.delivered for e in p.events]),
            "failed posts": len([p for p in posts if p.answered is not None and not p.delivered]),
        }

    def moved(now: Scrape, name: str, endpoint: str) -> float:
        metric = f"portside_notifications_{name}_total"
        return now.value(metric, endpoint=endpoint) - before.value(metric, endpoint=endpoint)

    def report(now: Scrape) -> dict[str, float]:
        return {
            **counts(),
            "delivered_total(hook) delta": moved(now, "delivered", "metrics-hook"),
            "failures_total(hook) delta": moved(now, "failures", "metrics-hook"),
            "failures_total(bad) delta": moved(now, "failures", "metrics-bad"),
            "pending(hook)": now.value("portside_notifications_pending", endpoint="metrics-hook"),
            "pending(bad)": now.value("portside_notifications_pending", endpoint="metrics-bad"),
            "events so far": len({e.get("id") for e in rec.delivered_events("/hook")}),
        }

    def settled() -> Scrape | None:
        now = metered.scrape()
        r = report(now)
        ok = r["delivered_total(hook) delta"] == r["delivered events"]
        ok = ok and r["failures_total(hook) delta"] == r["failed posts"]
        ok = ok and r["pending(hook)"] == 0 and r["pending(bad)"] == r["events so far"]
        ok = ok and r["failures_total(bad) delta"] > 0
        return now if ok else None

    try:
        now = wait_until(settled, timeout=15, what="the notification metrics to match the deliveries")
    except AssertionError:
        raise AssertionError(f"notification metrics do not match the deliveries: {report(metered.scrape())}") from None
    r = report(now)
    assert r["delivered posts"] < r["delivered events"], f"the backlog came one event per POST: {r}"
    assert r["failed posts"] >= 1, r
