"""Shared fixtures: real Portside servers started as subprocesses and spoken to over HTTP."""

from __future__ import annotations

import copy
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def deep_merge(base: dict[str, Any], extra: dict[str, Any]) -> dict[str, Any]:
    """`extra` laid over `base`; a None value removes the key."""
    out = copy.deepcopy(base)
    for key, value in extra.items():
        if value is None:
            out.pop(key, None)
        elif isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = deep_merge(out[key], value)
        else:
            out[key] = copy.deepcopy(value)
    return out


STARTED: list[Registry] = []
"""Every server this test process started, so their logs can be checked once the session ends."""


@dataclass
class Registry:
    """A running `portside serve` process and where to reach it."""

    workdir: Path
    config: dict[str, Any]
    workers: int = 2
    env: dict[str, str] = field(default_factory=dict)
    process: subprocess.Popen[bytes] | None = None

    @property
    def host(self) -> str:
        return str(self.config["http"]["addr"])

    @property
    def url(self) -> str:
        return f"http://{self.host}"

    @property
    def root(self) -> Path:
        return Path(self.config["storage"]["filesystem"]["rootdirectory"])

    @property
    def config_path(self) -> Path:
        return self.workdir / "config.yml"

    @property
    def log_path(self) -> Path:
        return self.workdir / "server.log"

    def start(self, timeout: float = 30.0) -> None:
        STARTED.append(self)
        self.config_path.write_text(yaml.safe_dump(self.config))
        env = {**os.environ, **self.env}
        log = self.log_path.open("ab")
        self.process = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "portside",
                "serve",
                str(self.config_path),
                "--workers",
                str(self.workers),
            ],
            stdout=log,
            stderr=subprocess.STDOUT,
            env=env,
            cwd=self.workdir,  # defaults relative to the working directory (./data) stay in the test's directory
            start_new_session=True,
        )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"portside exited with {self.process.returncode}:\n{self.log_tail()}")
            try:
                # Any HTTP answer means the server is up (with http.prefix, /v2/ itself is 404).
                httpx.get(f"{self.url}/v2/", timeout=1.0)
                return
            except httpx.HTTPError:
                pass
            time.sleep(0.05)
        self.stop()
        raise RuntimeError(f"portside did not answer within {timeout}s:\n{self.log_tail()}")

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 15.0) -> None:
        if self.process is None or self.process.poll() is not None:
            return
        try:
            os.killpg(self.process.pid, sig)
        except ProcessLookupError:
            return
        try:
            self.process.wait(timeout)
        except subprocess.TimeoutExpired:
            os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait()

    def kill(self) -> None:
        """SIGKILL the whole process group: a crash, not a shutdown."""
        self.stop(signal.SIGKILL)

    def restart(self) -> None:
        self.stop()
        self.start()

    def undeclared_errors(self) -> list[str]:
        """Answers with an error code the route table does not declare for that route (the server logs each):
        the generated OpenAPI document and error table would then be wrong."""
        try:
            text = self.log_path.read_text(errors="replace")
        except FileNotFoundError:
            return []
        return [line for line in text.splitlines() if "undeclared error code" in line]

    def log_tail(self, lines: int = 40) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except FileNotFoundError:
            return ""


def default_config(workdir: Path, port: int) -> dict[str, Any]:
    return {
        "version": 0.1,
        "log": {"level": "warn", "accesslog": {"disabled": True}},
        "storage": {
            "filesystem": {"rootdirectory": str(workdir / "data")},
            "delete": {"enabled": True},
        },
        "http": {"addr": f"127.0.0.1:{port}"},
    }


@pytest.fixture(scope="session", autouse=True)
def _error_codes_are_declared() -> Iterator[None]:
    """Every error any test provoked must be one its route declares (api/routes.py)."""
    yield
    undeclared = sorted({line.split("undeclared error code ", 1)[1] for r in STARTED for line in r.undeclared_errors()})
    assert undeclared == [], "error codes answered that the route table does not declare"


CHECKOUT_DATA = Path(__file__).resolve().parents[1] / "data"
"""Where `portside serve` keeps everything when run from the checkout without a configuration."""


def _tree(root: Path) -> dict[str, tuple[int, int]] | None:
    if not root.exists():
        return None
    return {str(p): (p.stat().st_size, p.stat().st_mtime_ns) for p in root.rglob("*") if p.is_file()}


@pytest.fixture(scope="session", autouse=True)
def _checkout_data_is_left_alone() -> Iterator[None]:
    """Every test keeps its servers' data in a temporary directory of its own: the checkout's ./data (what
    `scripts/serve` uses) must be neither created nor changed by the suite."""
    before = _tree(CHECKOUT_DATA)
    yield
    assert _tree(CHECKOUT_DATA) == before, f"tests wrote into {CHECKOUT_DATA}"


RegistryFactory = Callable[..., Registry]


def starting_registries(
    tmp_path_factory: pytest.TempPathFactory, prefix: str = "portside", workers: int = 1
) -> Iterator[RegistryFactory]:
    """A factory of servers (with config overrides, `workers` by default), all stopped when it is closed: what
    the function- and module-scoped factory fixtures share."""
    started: list[Registry] = []
    default_workers = workers

    def start(
        overrides: dict[str, Any] | None = None,
        workers: int = default_workers,
        env: dict[str, str] | None = None,
        replace: dict[str, Any] | None = None,
    ) -> Registry:
        workdir = tmp_path_factory.mktemp(prefix)
        config = replace if replace is not None else default_config(workdir, free_port())
        if overrides:
            config = deep_merge(config, overrides)
        reg = Registry(workdir=workdir, config=config, workers=workers, env=env or {})
        started.append(reg)
        reg.start()
        return reg

    yield start
    for reg in started:
        reg.stop()


@pytest.fixture
def registry_factory(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RegistryFactory]:
    """Start extra servers with config overrides: `registry_factory({"storage": {...}}, workers=1)`."""
    yield from starting_registries(tmp_path_factory)


@pytest.fixture(scope="session")
def s3_endpoint(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """An S3-compatible server (moto) for the whole session."""
    from tests.object_storage import moto_server

    yield from moto_server(tmp_path_factory.mktemp("moto"))


@pytest.fixture(scope="session")
def azurite_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """Azurite, the Azure Storage emulator, for the whole session."""
    from tests.object_storage import azurite

    yield from azurite(tmp_path_factory.mktemp("azurite"))


@pytest.fixture(scope="session")
def gcs_endpoint(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A Google Cloud Storage emulator for the whole session."""
    from tests.object_storage import gcs_emulator

    yield from gcs_emulator(tmp_path_factory.mktemp("gcs"))


@pytest.fixture(scope="session")
def registry(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Registry]:
    """The shared server: filesystem storage, SQLite metadata, deletes enabled, two workers."""
    workdir = tmp_path_factory.mktemp("portside-shared")
    reg = Registry(workdir=workdir, config=default_config(workdir, free_port()), workers=2)
    reg.start()
    yield reg
    reg.stop()


@pytest.fixture
def client(registry: Registry) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=registry.url, timeout=60.0) as c:
        yield c
