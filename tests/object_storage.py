"""S3-compatible, Azure and GCS servers for tests, started once per test session on 127.0.0.1.

Each is taken from an environment variable when set (PORTSIDE_TEST_S3, ...); otherwise the emulator is
started here: moto's server for S3.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import httpx

ACCESS_KEY = "portside-test"
SECRET_KEY = "portside-test-secret"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _wait(url: str, process: subprocess.Popen[bytes], timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"{process.args} exited with {process.returncode}")
        try:
            httpx.get(url, timeout=1.0)
            return
        except httpx.HTTPError:
            time.sleep(0.1)
    process.kill()
    raise RuntimeError(f"{process.args} did not answer at {url}")


def _stop(process: subprocess.Popen[bytes]) -> None:
    process.terminate()
    try:
        process.wait(5)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait(5)


def moto_server(workdir: Path) -> Iterator[str]:
    """The endpoint of an S3-compatible server."""
    if os.environ.get("PORTSIDE_TEST_S3"):
        yield os.environ["PORTSIDE_TEST_S3"]
        return
    port = _free_port()
    binary = shutil.which("moto_server", path=os.path.dirname(sys.executable)) or "moto_server"
    log = (workdir / "moto.log").open("ab")
    process = subprocess.Popen(
        [binary, "-H", "127.0.0.1", "-p", str(port)], stdout=log, stderr=subprocess.STDOUT, start_new_session=True
    )
    endpoint = f"http://127.0.0.1:{port}"
    try:
        _wait(endpoint, process)
        yield endpoint
    finally:
        _stop(process)


def create_bucket(endpoint: str) -> str:
    import boto3

    name = f"portside-{uuid.uuid4().hex[:16]}"
    client = boto3.client(
        "s3",
        endpoint_url=endpoint,
        aws_access_key_id=ACCESS_KEY,
        aws_secret_access_key=SECRET_KEY,
        region_name="us-east-1",
    )
    client.create_bucket(Bucket=name)
    return name


def s3_parameters(endpoint: str, bucket: str, **extra: object) -> dict[str, object]:
    return {
        "bucket": bucket,
        "region": "us-east-1",
        "regionendpoint": endpoint,
        "accesskey": ACCESS_KEY,
        "secretkey": SECRET_KEY,
        "forcepathstyle": True,
        "secure": False,
        **extra,
    }


AZURITE_ACCOUNT = "devstoreaccount1"
AZURITE_KEY = "Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw=="
TOOLS = Path(__file__).resolve().parent.parent / ".tools" / "node_modules" / ".bin"


def azurite(workdir: Path) -> Iterator[str]:
    """The blob service URL of Azurite (the Azure Storage emulator, from npm)."""
    if os.environ.get("PORTSIDE_TEST_AZURITE"):
        yield os.environ["PORTSIDE_TEST_AZURITE"]
        return
    binary = shutil.which("azurite-blob", path=str(TOOLS)) or shutil.which("azurite-blob")
    if binary is None:
        raise RuntimeError("azurite-blob is not installed (scripts/test installs it with npm into .tools)")
    port = _free_port()
    log = (workdir / "azurite.log").open("ab")
    process = subprocess.Popen(
        [
            binary,
            "--blobHost",
            "127.0.0.1",
            "--blobPort",
            str(port),
            "--location",
            str(workdir / "azurite"),
            "--skipApiVersionCheck",
            "--loose",
            "--silent",
        ],
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    url = f"http://127.0.0.1:{port}/{AZURITE_ACCOUNT}"
    try:
        _wait(url, process)
        yield url
    finally:
        _stop(process)


def azure_parameters(service_url: str, **extra: object) -> dict[str, object]:
    return {
        "accountname": AZURITE_ACCOUNT,
        "accountkey": AZURITE_KEY,
        "container": f"portside-{uuid.uuid4().hex[:16]}",
        "serviceurl": service_url,
        **extra,
    }


def gcs_emulator(workdir: Path) -> Iterator[str]:
    """The endpoint of a Google Cloud Storage emulator (gcp-storage-emulator, from PyPI)."""
    if os.environ.get("PORTSIDE_TEST_GCS"):
        yield os.environ["PORTSIDE_TEST_GCS"]
        return
    binary = shutil.which("gcp-storage-emulator", path=os.path.dirname(sys.executable)) or "gcp-storage-emulator"
    port = _free_port()
    log = (workdir / "gcs.log").open("ab")
    process = subprocess.Popen(
        [binary, "start", "--host=127.0.0.1", f"--port={port}", "--in-memory"],
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    endpoint = f"http://127.0.0.1:{port}"
    try:
        _wait(endpoint, process)
        yield endpoint
    finally:
        _stop(process)


def create_gcs_bucket(endpoint: str) -> str:
    from google.auth.credentials import AnonymousCredentials
    from google.cloud import storage

    client = storage.Client(
        project="portside", credentials=AnonymousCredentials(), client_options={"api_endpoint": endpoint}
    )
    name = f"portside-{uuid.uuid4().hex[:16]}"
    client.create_bucket(name)
    return name
