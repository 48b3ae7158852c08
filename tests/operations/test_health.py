"""`/debug/health` on the debug server.

docs/operations.md, Health: 200 `{}` when every check passes, 503 `{"<check name>": "<error>"}` for each failing
one; checks run in the background at their interval. `storagedriver_<name>` writes, reads back and deletes a
small file; Distribution's `health:` keys add `file` (unhealthy while the file exists), `http` and `tcp` checks,
named `file:<path>`, `http:<uri>`, `tcp:<addr>`.
"""

from __future__ import annotations

import shutil
import socket
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.conftest import Registry, RegistryFactory, free_port
from tests.operations.receiver import Receiver
from tests.operations.support import debug_addr, wait_until


def health(debug: str) -> tuple[int, dict[str, Any]]:
    r = httpx.get(f"http://{debug}/debug/health", timeout=10.0)
    body = r.json()
    assert isinstance(body, dict), r.text
    return r.status_code, body


def wait_health(debug: str, predicate: Any, what: str, timeout: float = 15.0) -> tuple[int, dict[str, Any]]:
    seen: list[tuple[int, dict[str, Any]]] = []

    def probe() -> tuple[int, dict[str, Any]] | None:
        try:
            seen.append(health(debug))
        except httpx.TransportError as exc:
            seen.append((0, {"no answer from the debug server": repr(exc)}))
            return None
        return seen[-1] if predicate(*seen[-1]) else None

    try:
        return wait_until(probe, timeout=timeout, what=what, interval=0.2)
    except AssertionError:
        raise AssertionError(f"timed out after {timeout}s waiting for {what}; last answer: {seen[-1]}") from None


@dataclass
class Checked:
    registry: Registry
    debug: str
    flag: Path


@pytest.fixture(scope="module")
def checked(module_registry_factory: RegistryFactory, tmp_path_factory: pytest.TempPathFactory) -> Checked:
    """The storage driver check and a file check, every second; the metadata store outside the storage root."""
    outside = tmp_path_factory.mktemp("health-outside")
    flag = outside / "out-of-rotation"
    debug = debug_addr()
    reg = module_registry_factory(
        {
            "http": {"debug": {"addr": debug}},
            "database": {"dsn": f"sqlite:///{outside / 'metadata.db'}"},
            "health": {
                "storagedriver": {"enabled": True, "interval": "1s", "threshold": 1},
                "file": [{"file": str(flag), "interval": "1s"}],
            },
        }
    )
    return Checked(reg, debug, flag)


def test_healthy_registry_answers_200_empty_object(checked: Checked) -> None:
    _, body = wait_health(checked.debug, lambda s, b: s == 200, "200 from a healthy registry")
    assert body == {}


def test_file_check_fails_while_the_file_exists(checked: Checked) -> None:
    """`health.file`: unhealthy while the file exists, named `file:<path>`."""
    name = f"file:{checked.flag}"
    wait_health(checked.debug, lambda s, b: s == 200, "200 before the file exists")
    checked.flag.write_text("maintenance")
    try:
        _, body = wait_health(checked.debug, lambda s, b: s == 503 and name in b, f"503 naming {name}")
        assert isinstance(body[name], str)
        assert body[name]
        assert set(body) == {name}, body
    finally:
        checked.flag.unlink()
    _, body = wait_health(checked.debug, lambda s, b: s == 200, "200 once the file is gone")
    assert body == {}


def test_storagedriver_check_fails_while_the_root_cannot_be_written(checked: Checked) -> None:
    """`storagedriver_filesystem` writes, reads back and deletes a file under the root: with the root directory
    replaced by a regular file it fails (503 naming it), and passes again once the root is back."""
    root = checked.registry.root
    aside = root.with_name(root.name + ".aside")
    wait_health(checked.debug, lambda s, b: s == 200, "200 before the root is broken")
    root.rename(aside)
    try:
        root.write_text("not a directory")
        _, body = wait_health(
            checked.debug, lambda s, b: s == 503 and "storagedriver_filesystem" in b, "503 naming the storage driver"
        )
        assert isinstance(body["storagedriver_filesystem"], str)
        assert body["storagedriver_filesystem"]
        assert "database" not in body, "the metadata store lives outside the storage root and still answers"
    finally:
        if root.is_file():
            root.unlink()
        elif root.is_dir():
            shutil.rmtree(root)
        aside.rename(root)
    _, body = wait_health(checked.debug, lambda s, b: s == 200, "200 once the root is repaired")
    assert body == {}


def test_metrics_are_not_served_unless_enabled(checked: Checked) -> None:
    """Metrics only "with `http.debug.prometheus.enabled: true`"."""
    assert httpx.get(f"http://{checked.debug}/metrics", timeout=10.0).status_code == 404


def test_tcp_and_http_checks(registry_factory: RegistryFactory, receiver: Receiver) -> None:
    """`health.tcp` fails against a closed port (`tcp:<addr>`) and passes once something listens; `health.http`
    fails on an unexpected status (`http:<uri>`), passes on the expected one (200 unless `statuscode` says
    otherwise) and sends its `headers`. With `health.storagedriver.enabled: false` there is no storage driver
    check. Metrics at a configured path."""
    receiver.set_mode("fail", "/down")
    receiver.set_mode(202, "/accepted")
    closed = f"127.0.0.1:{free_port()}"
    down, up, accepted = receiver.url("/down"), receiver.url("/up"), receiver.url("/accepted")
    debug = debug_addr()
    registry_factory(
        {
            "http": {"debug": {"addr": debug, "prometheus": {"enabled": True, "path": "/custom/metrics"}}},
            "health": {
                "storagedriver": {"enabled": False},
                "tcp": [{"addr": closed, "timeout": "1s", "interval": "1s"}],
                "http": [
                    {"uri": down, "statuscode": 200, "timeout": "1s", "interval": "1s"},
                    {
                        "uri": up,
                        "timeout": "1s",
                        "interval": "1s",
                        "headers": {"Authorization": ["Basic b3BzOnRlc3Q="]},
                    },
                    {"uri": accepted, "statuscode": 202, "timeout": "1s", "interval": "1s"},
                ],
            },
        },
        workers=2,
    )
    tcp_name, down_name, _up_name = f"tcp:{closed}", f"http:{down}", f"http:{up}"
    _, body = wait_health(debug, lambda s, b: s == 503 and {tcp_name, down_name} <= set(b), "503 naming both")
    assert set(body) == {tcp_name, down_name}, body
    assert all(isinstance(v, str) and v for v in body.values()), body
    assert any(r.headers.get("Authorization") == "Basic b3BzOnRlc3Q=" for r in receiver.requests("/up"))
    assert receiver.requests("/accepted"), "the check with statuscode 202 never ran"

    host, port = closed.rsplit(":", 1)
    with socket.socket() as listener:
        listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        listener.bind((host, int(port)))
        listener.listen(16)
        _, body = wait_health(debug, lambda s, b: tcp_name not in b, "the tcp check to pass")
        assert set(body) == {down_name}, body
        receiver.set_mode("ok", "/down")
        _, body = wait_health(debug, lambda s, b: s == 200, "200 with every check passing")
        assert body == {}

    r = httpx.get(f"http://{debug}/custom/metrics", timeout=10.0)
    assert r.status_code == 200
    assert "portside_http_requests_total" in r.text
    assert httpx.get(f"http://{debug}/metrics", timeout=10.0).status_code == 404


def test_a_check_reports_unhealthy_only_after_threshold_failures_in_a_row(
    registry_factory: RegistryFactory, receiver: Receiver
) -> None:
    """`threshold: 3`: "failures in a row before the check reports unhealthy" (configuration.md: "the number of
    times the check must fail before the state is marked as unhealthy"); one success makes it healthy again.
    One worker: each worker probes on its own, so with two the probes the receiver sees would add up."""
    uri = receiver.url("/flaky")
    name = f"http:{uri}"
    debug = debug_addr()
    registry_factory(
        {
            "http": {"debug": {"addr": debug}},
            "health": {"http": [{"uri": uri, "statuscode": 200, "timeout": "1s", "interval": "1s", "threshold": 3}]},
        },
        workers=1,
    )
    wait_health(debug, lambda s, b: s == 200 and receiver.requests("/flaky"), "200 after a passing probe")
    receiver.set_mode("fail", "/flaky")
    _, body = wait_health(debug, lambda s, b: s == 503, f"503 naming {name}")
    seen = time.monotonic()
    # The probes that can have made the check fail: those that arrived before the 503 did and were not passed.
    failed = [r for r in receiver.requests("/flaky") if r.received < seen and r.answered != 200]
    assert set(body) == {name}, body
    assert len(failed) >= 3, f"unhealthy after {len(failed)} failed probe(s), threshold 3"
    receiver.set_mode("ok", "/flaky")
    _, body = wait_health(debug, lambda s, b: s == 200, "200 after a passing probe")
    assert body == {}


def test_health_answers_at_once_from_the_latest_results(registry_factory: RegistryFactory, receiver: Receiver) -> None:
    """ "Checks run in the background at their interval; the answer reflects their latest results": while a
    probe hangs (its timeout is 60s), `/debug/health` answers with the check's last result, a pass, instead
    of waiting for the probe; the check is reported once that probe fails. A probe that never answers fails
    at its `timeout` and is reported."""
    receiver.set_mode("hang", "/stuck")
    slow, stuck = receiver.url("/slow"), receiver.url("/stuck")
    debug = debug_addr()
    registry_factory(
        {
            "http": {"debug": {"addr": debug}},
            "health": {
                "http": [
                    {"uri": slow, "timeout": "60s", "interval": "1s", "threshold": 1},
                    {"uri": stuck, "timeout": "1s", "interval": "1s", "threshold": 1},
                ]
            },
        },
        workers=1,
    )
    slow_name, stuck_name = f"http:{slow}", f"http:{stuck}"
    _, body = wait_health(debug, lambda s, b: stuck_name in b, f"{stuck_name}, whose probes time out")
    assert slow_name not in body, body
    receiver.set_mode("hang", "/slow")
    switched = time.monotonic()
    receiver.wait_for(
        lambda: any(r.received > switched and r.answered is None for r in receiver.requests("/slow")),
        timeout=15,
        what="a probe of /slow hanging",
    )
    status, body = health(debug)
    assert (status, set(body)) == (503, {stuck_name}), "/debug/health waited for the hanging probe"
    assert any(r.received > switched and r.answered is None for r in receiver.requests("/slow"))
    receiver.set_mode("fail", "/slow")  # the hanging probe gets its answer now: a failure
    _, body = wait_health(debug, lambda s, b: slow_name in b, f"503 naming {slow_name} once its probe failed")
    assert set(body) == {slow_name, stuck_name}, body
