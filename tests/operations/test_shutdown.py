"""Graceful shutdown.

docs/operations.md, Shutdown: "On SIGTERM Portside stops accepting connections, lets requests in flight finish
for up to `http.draintimeout` (default 30s) ... and exits. SIGQUIT or SIGINT stop at once." (configuration.md:
`draintimeout` is the time to wait for HTTP connections to drain after SIGTERM.)
"""

from __future__ import annotations

import contextlib
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

DRAIN = 20.0
CHUNK = os.urandom(256 * 1024)
CHUNKS = 96  # 24 MiB
PAUSE = 0.06  # between chunks: the upload takes about six seconds
DIGEST = "sha256:" + hashlib.sha256(CHUNK * CHUNKS).hexdigest()


@dataclass
class SlowUpload:
    """`PUT <location>?digest=` of 24 MiB, sent slowly from a thread."""

    registry: Registry
    location: str = ""
    sending: threading.Event = field(default_factory=threading.Event)
    status: int | None = None
    error: BaseException | None = None
    finished: float | None = None
    thread: threading.Thread | None = None

    def body(self) -> Iterator[bytes]:
        for i in range(CHUNKS):
            if i == 8:
                self.sending.set()
            yield CHUNK
            time.sleep(PAUSE)

    def run(self) -> None:
        try:
            with httpx.Client(timeout=httpx.Timeout(60.0)) as c:
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
            self.finished = time.monotonic()

    def start(self) -> SlowUpload:
        with httpx.Client(base_url=self.registry.url, timeout=30) as c:
            r = c.post(f"/v2/{unique_repo('drain')}/blobs/uploads/")
        assert r.status_code == 202
        self.location = r.headers["Location"]
        self.thread = threading.Thread(target=self.run, daemon=True)
        self.thread.start()
        assert self.sending.wait(15), "the upload did not start"
        return self

    def join(self, timeout: float) -> None:
        assert self.thread is not None
        self.thread.join(timeout)


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


@pytest.mark.parametrize("whole_group", [False, True], ids=["main process", "process group"])
def test_sigterm_lets_an_upload_in_flight_finish(registry_factory: RegistryFactory, whole_group: bool) -> None:
    """A 24 MiB upload in flight at SIGTERM completes with 201 within the drain time; new connections are
    refused meanwhile; the process then exits and the blob is there at the next start."""
    reg = registry_factory({"http": {"draintimeout": f"{int(DRAIN)}s"}}, workers=2)
    upload = SlowUpload(reg).start()
    signalled = time.monotonic()
    signal_registry(reg, signal.SIGTERM, whole_group)

    host, port = reg.host.rsplit(":", 1)
    refused_at = None
    deadline = signalled + 3.0
    while time.monotonic() < deadline:
        if refused(host, int(port)):
            refused_at = time.monotonic()
            break
        time.sleep(0.1)
    assert refused_at is not None, "new connections were still accepted 3s after SIGTERM"
    assert upload.finished is None, "the upload ended before new connections were refused: too quick to tell"

    upload.join(DRAIN + 10)
    assert upload.error is None, f"the upload in flight failed: {upload.error!r}"
    assert upload.status == 201
    assert upload.finished is not None
    assert upload.finished - signalled < DRAIN
    assert reg.process is not None
    reg.process.wait(timeout=10)

    reg.start()
    r = httpx.head(upload.location.split("/blobs/uploads/")[0] + f"/blobs/{DIGEST}", timeout=10)
    assert r.status_code == 200
    assert int(r.headers["Content-Length"]) == len(CHUNK) * CHUNKS


@pytest.mark.parametrize(
    ("sig", "whole_group"), [(signal.SIGINT, True), (signal.SIGQUIT, False)], ids=["SIGINT", "SIGQUIT"]
)
def test_sigint_and_sigquit_stop_at_once(registry_factory: RegistryFactory, sig: int, whole_group: bool) -> None:
    """SIGINT or SIGQUIT stop at once: the process is gone long before the upload in flight could finish."""
    reg = registry_factory({"http": {"draintimeout": f"{int(DRAIN)}s"}}, workers=2)
    upload = SlowUpload(reg).start()
    signalled = time.monotonic()
    signal_registry(reg, sig, whole_group)
    assert reg.process is not None
    with contextlib.suppress(subprocess.TimeoutExpired):
        reg.process.wait(timeout=DRAIN + 10)
    stopped = time.monotonic() - signalled
    upload.join(30)
    name = signal.Signals(sig).name
    assert stopped < 3, (
        f"{name}: the registry took {stopped:.1f}s to exit; the upload in flight got "
        f"{upload.status or repr(upload.error)} after {(upload.finished or 0) - signalled:.1f}s"
    )
    assert upload.status != 201, f"the upload finished although the registry stopped after {stopped:.1f}s"


def test_sigterm_waits_no_longer_than_the_drain_time(registry_factory: RegistryFactory) -> None:
    """Requests in flight may finish "for up to `http.draintimeout`": with 2s, an upload that needs about six
    more seconds is cut off and the registry exits soon after the drain time."""
    reg = registry_factory({"http": {"draintimeout": "2s"}}, workers=2)
    upload = SlowUpload(reg).start()
    signalled = time.monotonic()
    signal_registry(reg, signal.SIGTERM, whole_group=False)
    assert reg.process is not None
    with contextlib.suppress(subprocess.TimeoutExpired):
        reg.process.wait(timeout=DRAIN)
    stopped = time.monotonic() - signalled
    upload.join(30)
    assert stopped < 2 + 3, f"the registry exited {stopped:.1f}s after SIGTERM with a 2s drain time"
    assert upload.status != 201, "the upload finished although it needed longer than the drain time"
