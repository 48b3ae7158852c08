"""Graceful shutdown.

docs/operations.md, Shutdown: "On SIGTERM Portside stops accepting connections, lets requests in flight finish
for up to `http.draintimeout` (default 30s) ... and exits. SIGQUIT or SIGINT stop at once." (configuration.md:
`draintimeout` is the time to wait for HTTP connections to drain after SIGTERM.)

No wall-clock bounds: each upload is held by the client until the test releases it, so what the registry
does meanwhile (refuse connections, keep running, exit) is seen in order.
"""

from __future__ import annotations

import hashlib
import os
import signal
import socket
import subprocess
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field

import httpx
import pytest

from tests.conftest import Registry, RegistryFactory
from tests.operations.support import OCTET_STREAM, unique_repo

DRAIN = 120.0  # long enough that no draining registry reaches it while a test waits
EXIT_DEADLINE = 60.0  # how long a test waits for an exit it expects: only a hang reaches it
CHUNK = os.urandom(256 * 1024)
CHUNKS = 96  # 24 MiB
HELD_AFTER = 8  # chunks sent before the upload waits to be released
DIGEST = "sha256:" + hashlib.sha256(CHUNK * CHUNKS).hexdigest()


@dataclass
class HeldUpload:
    """`PUT <location>?digest=` of 24 MiB from a thread: the first 2 MiB at once, the rest once `release()` is
    called, so the request stays in flight for as long as the test needs."""

    registry: Registry
    location: str = ""
    sending: threading.Event = field(default_factory=threading.Event)
    released: threading.Event = field(default_factory=threading.Event)
    status: int | None = None
    error: BaseException | None = None
    finished: threading.Event = field(default_factory=threading.Event)
    thread: threading.Thread | None = None

    def body(self) -> Iterator[bytes]:
        for i in range(CHUNKS):
            if i == HELD_AFTER:
                self.sending.set()
                self.released.wait(300)
            yield CHUNK

    def run(self) -> None:
        try:
            with httpx.Client(timeout=httpx.Timeout(300.0)) as c:
                r = c.put(
                    self.location,
                    params={"digest": DIGEST},
                    content=self.body(),
                    headers={"Content-Type": OCTET_STREAM, "Content-Length": str(len(CHUNK) * CHUNKS)},
                )
                self.status = r.status_code
        except Exception as exc:
            self.error = exc
        finally:
            self.finished.set()

    def start(self) -> HeldUpload:
        with httpx.Client(base_url=self.registry.url, timeout=30) as c:
            r = c.post(f"/v2/{unique_repo('drain')}/blobs/uploads/")
        assert r.status_code == 202
        self.location = r.headers["Location"]
        self.thread = threading.Thread(target=self.run, daemon=True)
        self.thread.start()
        assert self.sending.wait(60), "the upload did not start"
        return self

    def release(self) -> None:
        """Send the rest and wait for the answer (or the failure)."""
        self.released.set()
        assert self.finished.wait(300), "the upload neither finished nor failed"


def refused(host: str, port: int) -> bool:
    try:
        with socket.create_connection((host, port), timeout=1.0):
            return False
    except ConnectionRefusedError:
        return True
    except OSError:
        return False


def signal_registry(reg: Registry, sig: int, whole_group: bool) -> None:
    assert reg.process is not None
    if whole_group:
        os.killpg(reg.process.pid, sig)
    else:
        os.kill(reg.process.pid, sig)


def wait_exit(reg: Registry, what: str) -> None:
    assert reg.process is not None
    try:
        reg.process.wait(timeout=EXIT_DEADLINE)
    except subprocess.TimeoutExpired:
        raise AssertionError(f"the registry did not exit {what}") from None


@pytest.mark.parametrize("whole_group", [False, True], ids=["main process", "process group"])
def test_sigterm_lets_an_upload_in_flight_finish(registry_factory: RegistryFactory, whole_group: bool) -> None:
    """An upload in flight at SIGTERM completes with 201 while the registry drains; new connections are
    refused meanwhile and the registry keeps running until the upload is done; it then exits and the blob is
    there at the next start."""
    reg = registry_factory({"http": {"draintimeout": f"{int(DRAIN)}s"}}, workers=2)
    upload = HeldUpload(reg).start()
    signal_registry(reg, signal.SIGTERM, whole_group)

    host, port = reg.host.rsplit(":", 1)
    deadline = time.monotonic() + EXIT_DEADLINE
    while not refused(host, int(port)):
        assert time.monotonic() < deadline, "new connections were still accepted long after SIGTERM"
        time.sleep(0.1)
    assert not upload.finished.is_set(), f"the upload in flight was cut off: {upload.status or upload.error!r}"
    assert reg.process is not None
    assert reg.process.poll() is None, "the registry exited with an upload in flight"

    upload.release()
    assert upload.error is None, f"the upload in flight failed: {upload.error!r}"
    assert upload.status == 201
    wait_exit(reg, "once the upload in flight had finished")

    reg.start()
    r = httpx.head(upload.location.split("/blobs/uploads/")[0] + f"/blobs/{DIGEST}", timeout=10)
    assert r.status_code == 200
    assert int(r.headers["Content-Length"]) == len(CHUNK) * CHUNKS


@pytest.mark.parametrize(
    ("sig", "whole_group"), [(signal.SIGINT, True), (signal.SIGQUIT, False)], ids=["SIGINT", "SIGQUIT"]
)
def test_sigint_and_sigquit_stop_at_once(registry_factory: RegistryFactory, sig: int, whole_group: bool) -> None:
    """SIGINT or SIGQUIT stop at once: the registry exits while an upload is still in flight (held by the
    client, so a draining registry would wait for it up to the drain time), and the upload fails."""
    reg = registry_factory({"http": {"draintimeout": f"{int(DRAIN)}s"}}, workers=2)
    upload = HeldUpload(reg).start()
    signal_registry(reg, sig, whole_group)
    wait_exit(reg, f"on {signal.Signals(sig).name} while an upload was in flight: it drained")
    upload.release()
    assert upload.status != 201, "the upload finished although the registry had stopped"


def test_sigterm_waits_no_longer_than_the_drain_time(registry_factory: RegistryFactory) -> None:
    """Requests in flight may finish "for up to `http.draintimeout`": with 2s, the registry exits although an
    upload is still in flight (held by the client for as long as it takes), and the upload is cut off."""
    reg = registry_factory({"http": {"draintimeout": "2s"}}, workers=2)
    upload = HeldUpload(reg).start()
    signal_registry(reg, signal.SIGTERM, whole_group=False)
    wait_exit(reg, "after its drain time with an upload held in flight")
    upload.release()
    assert upload.status != 201, "the upload finished although it was held past the drain time"
