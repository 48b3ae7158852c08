"""TLS (docs/auth.md "TLS"): `http.tls` certificate and key, `clientcas` for mutual TLS, `minimumtls`, the
answers to plain HTTP on a TLS port and to a TLS ClientHello on a plain port, a plain debug server."""

from __future__ import annotations

import os
import socket
import ssl
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
from cryptography.hazmat.primitives import serialization

from tests.auth.support import Identity, issue, launch, make_ca
from tests.conftest import Registry, free_port
from tests.helpers import push_blob, unique_repo


@dataclass
class PKI:
    ca: Path
    cert: Path
    key: Path
    client: tuple[Path, Path]
    foreign_client: tuple[Path, Path]
    server: Identity


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> PKI:
    d = tmp_path_factory.mktemp("pki")
    ca, other = make_ca("portside test CA"), make_ca("another CA")
    (d / "ca.pem").write_bytes(ca.cert_pem())
    server = issue(ca, "127.0.0.1", ips=["127.0.0.1"], dns=["localhost"])
    cert, key = server.write(d, "server")
    return PKI(
        ca=d / "ca.pem",
        cert=cert,
        key=key,
        client=issue(ca, "client", client=True).write(d, "client"),
        foreign_client=issue(other, "client", client=True).write(d, "foreign-client"),
        server=server,
    )


def tls_server(tmp_path_factory: pytest.TempPathFactory, pki: PKI, **tls: Any) -> Registry:
    return launch(
        tmp_path_factory.mktemp("tls"),
        {"http": {"tls": {"certificate": str(pki.cert), "key": str(pki.key), **tls}}},
        tls=True,
    )


@pytest.fixture(scope="module")
def tls_reg(tmp_path_factory: pytest.TempPathFactory, pki: PKI) -> Iterator[Registry]:
    reg = launch(
        tmp_path_factory.mktemp("tls"),
        {
            "http": {
                "tls": {"certificate": str(pki.cert), "key": str(pki.key)},
                "debug": {"addr": f"127.0.0.1:{free_port()}"},
            }
        },
        tls=True,
    )
    yield reg
    reg.stop()


@pytest.fixture(scope="module")
def mtls_reg(tmp_path_factory: pytest.TempPathFactory, pki: PKI) -> Iterator[Registry]:
    reg = tls_server(tmp_path_factory, pki, clientcas=[str(pki.ca)])
    yield reg
    reg.stop()


@pytest.fixture(scope="module")
def tls13_reg(tmp_path_factory: pytest.TempPathFactory, pki: PKI) -> Iterator[Registry]:
    reg = tls_server(tmp_path_factory, pki, minimumtls="tls1.3")
    yield reg
    reg.stop()


def context(pki: PKI, client: tuple[Path, Path] | None = None, maximum: ssl.TLSVersion | None = None) -> ssl.SSLContext:
    ctx = ssl.create_default_context(cafile=str(pki.ca))
    if client:
        ctx.load_cert_chain(str(client[0]), str(client[1]))
    if maximum:
        ctx.maximum_version = maximum
    return ctx


def get(reg: Registry, ctx: ssl.SSLContext, path: str = "/v2/") -> httpx.Response:
    with httpx.Client(verify=ctx, timeout=20.0) as c:
        return c.get(f"https://{reg.host}{path}")


# How a TLS server refuses in the handshake: a bare close (asyncio's TLS drops the alert) or the alert itself.
HANDSHAKE_REFUSALS = {
    "UNEXPECTED_EOF_WHILE_READING",
    "SSLV3_ALERT_HANDSHAKE_FAILURE",
    "SSLV3_ALERT_BAD_CERTIFICATE",
    "TLSV1_ALERT_UNKNOWN_CA",
    "TLSV13_ALERT_CERTIFICATE_REQUIRED",
    "TLSV1_ALERT_PROTOCOL_VERSION",
}


def handshake(reg: Registry, ctx: ssl.SSLContext) -> tuple[ssl.SSLSocket | None, str]:
    """A TLS handshake with the server: the connected socket, or None and the reason it was refused."""
    address, _, port = reg.host.rpartition(":")
    raw = socket.create_connection((address, int(port)), timeout=20)
    tls = ctx.wrap_socket(raw, server_hostname="127.0.0.1", do_handshake_on_connect=False)
    try:
        tls.do_handshake()
    except ssl.SSLError as exc:
        tls.close()
        return None, str(exc.reason)
    return tls, ""


def assert_serves_good_clients(reg: Registry, ctx: ssl.SSLContext) -> None:
    """Several fresh connections with a correct client are all served: the refusal cost no worker."""
    for _ in range(4):
        assert get(reg, ctx).status_code == 200


def refused(reg: Registry, ctx: ssl.SSLContext, good: ssl.SSLContext) -> str:
    """The client certificate is refused at the TLS layer, and correct clients are still served afterwards.

    With TLS 1.2 the server checks the client's certificate before the handshake ends: the handshake fails.
    With TLS 1.3 the client finishes its handshake first; the server then ends the connection without a byte
    of HTTP. An HTTP status, a timeout or a refused connection is not a TLS refusal and fails."""
    tls, reason = handshake(reg, ctx)
    if tls is None:
        assert reason in HANDSHAKE_REFUSALS, f"handshake failed with {reason}, not a refusal of the certificate"
        how = f"handshake: {reason}"
    else:
        with tls:
            assert tls.version() == "TLSv1.3", f"a {tls.version()} handshake completed without a valid certificate"
            try:
                tls.sendall(f"GET /v2/ HTTP/1.1\r\nHost: {reg.host}\r\nConnection: close\r\n\r\n".encode())
                answer = tls.recv(65536)
            except ssl.SSLError as exc:
                answer, how = b"", str(exc.reason)
            except (ConnectionResetError, BrokenPipeError) as exc:
                answer, how = b"", type(exc).__name__
            else:
                how = "closed"
            assert answer == b"", f"served without a valid client certificate: {answer[:200]!r}"
            assert how in {"closed", "ConnectionResetError", "BrokenPipeError", *HANDSHAKE_REFUSALS}, how
            how = f"after the handshake: {how}"
    assert_serves_good_clients(reg, good)
    return how


def raw_exchange(host: str, data: bytes, timeout: float = 10.0) -> bytes:
    """Send bytes on a fresh TCP connection and read the reply until the server closes or goes quiet."""
    address, _, port = host.rpartition(":")
    chunks: list[bytes] = []
    with socket.create_connection((address, int(port)), timeout=timeout) as s:
        s.sendall(data)
        try:
            while chunk := s.recv(65536):
                chunks.append(chunk)
                s.settimeout(1.0)
        except (TimeoutError, ConnectionResetError):
            pass
    return b"".join(chunks)


def client_hello() -> bytes:
    """The first flight of a TLS handshake, as Python's ssl module sends it."""
    ctx = ssl.create_default_context()
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    incoming, outgoing = ssl.MemoryBIO(), ssl.MemoryBIO()
    tls = ctx.wrap_bio(incoming, outgoing, server_hostname="127.0.0.1")
    with pytest.raises(ssl.SSLWantReadError):
        tls.do_handshake()
    return outgoing.read()


# ---------------------------------------------------------------------------


def test_https(tls_reg: Registry, pki: PKI) -> None:
    """The registry answers over TLS with the configured certificate."""
    r = get(tls_reg, context(pki))
    assert r.status_code == 200, r.text
    assert r.headers.get("docker-distribution-api-version") == "registry/2.0"
    address, _, port = tls_reg.host.rpartition(":")
    with (
        socket.create_connection((address, int(port)), timeout=10) as raw,
        context(pki).wrap_socket(raw, server_hostname="127.0.0.1") as s,
    ):
        assert s.getpeercert(binary_form=True) == pki.server.cert.public_bytes(serialization.Encoding.DER)


def test_blob_bytes_over_tls(tls_reg: Registry, pki: PKI) -> None:
    """A blob pulled over TLS from this host comes back whole and exact, and so does a range of it: blob bodies
    to loopback peers bypass the transport for speed, and that must never send the raw bytes past TLS."""
    data = os.urandom(3 * 1024 * 1024 + 17)
    repo = unique_repo("tls")
    with httpx.Client(base_url=f"https://{tls_reg.host}", verify=context(pki), timeout=30.0) as c:
        digest = push_blob(c, repo, data)
        r = c.get(f"/v2/{repo}/blobs/{digest}")
        assert r.status_code == 200, r.text
        assert r.content == data
        r = c.get(f"/v2/{repo}/blobs/{digest}", headers={"Range": "bytes=1000-2000999"})
        assert r.status_code == 206, r.text
        assert r.content == data[1000:2001000]


def test_tls12_accepted_by_default(tls_reg: Registry, pki: PKI) -> None:
    """`minimumtls` defaults to tls1.2: a client limited to TLS 1.2 is served."""
    assert get(tls_reg, context(pki, maximum=ssl.TLSVersion.TLSv1_2)).status_code == 200


def test_plain_http_to_tls_port(tls_reg: Registry) -> None:
    """Plain HTTP to the TLS port: `HTTP/1.0 400 Bad Request`, "Client sent an HTTP request to an HTTPS
    server."."""
    reply = raw_exchange(tls_reg.host, f"GET /v2/ HTTP/1.1\r\nHost: {tls_reg.host}\r\n\r\n".encode())
    status_line = reply.split(b"\r\n", 1)[0]
    assert status_line == b"HTTP/1.0 400 Bad Request", reply[:200]
    assert b"Client sent an HTTP request to an HTTPS server." in reply, reply[:300]
    r = httpx.get(f"http://{tls_reg.host}/v2/", timeout=10.0)
    assert r.status_code == 400


def test_tls_hello_to_plain_port(htpasswd_registry: Registry) -> None:
    """A TLS ClientHello to a plain-HTTP port gets an `HTTP/1.x 400` status line (what makes the docker CLI
    fall back to plain HTTP)."""
    reply = raw_exchange(htpasswd_registry.host, client_hello())
    status_line = reply.split(b"\r\n", 1)[0]
    assert status_line.startswith((b"HTTP/1.0 400", b"HTTP/1.1 400")), reply[:200]


def test_tls_client_sees_http_answer_on_plain_port(htpasswd_registry: Registry) -> None:
    """A TLS client on the plain port fails its handshake: the answer is HTTP, which is no TLS record (OpenSSL's
    WRONG_VERSION_NUMBER). The port goes on serving plain HTTP."""
    ctx = ssl.create_default_context()
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    tls, reason = handshake(htpasswd_registry, ctx)
    assert tls is None, "a TLS handshake completed on the plain-HTTP port"
    assert reason == "WRONG_VERSION_NUMBER", reason
    assert httpx.get(f"http://{htpasswd_registry.host}/v2/", timeout=10.0).status_code == 401


def test_debug_server_is_plain_http(tls_reg: Registry) -> None:
    """`http.debug.addr` serves plain HTTP even when the registry uses TLS."""
    debug = tls_reg.config["http"]["debug"]["addr"]
    r = httpx.get(f"http://{debug}/debug/health", timeout=10.0)
    assert r.status_code == 200, r.text


def test_mtls_without_client_certificate(mtls_reg: Registry, pki: PKI) -> None:
    """`clientcas`: a client without a certificate is refused."""
    refused(mtls_reg, context(pki), context(pki, client=pki.client))


def test_mtls_with_client_certificate(mtls_reg: Registry, pki: PKI) -> None:
    """A client certificate signed by a `clientcas` CA is served."""
    r = get(mtls_reg, context(pki, client=pki.client))
    assert r.status_code == 200, r.text


def test_mtls_with_foreign_client_certificate(mtls_reg: Registry, pki: PKI) -> None:
    """A client certificate from another CA is refused."""
    refused(mtls_reg, context(pki, client=pki.foreign_client), context(pki, client=pki.client))


def test_mtls_tls12_client(mtls_reg: Registry, pki: PKI) -> None:
    """Mutual TLS over TLS 1.2: with a good certificate served, without one refused."""
    good = context(pki, client=pki.client, maximum=ssl.TLSVersion.TLSv1_2)
    assert get(mtls_reg, good).status_code == 200
    assert refused(mtls_reg, context(pki, maximum=ssl.TLSVersion.TLSv1_2), good).startswith("handshake")
    foreign = context(pki, client=pki.foreign_client, maximum=ssl.TLSVersion.TLSv1_2)
    assert refused(mtls_reg, foreign, good).startswith("handshake")


def test_minimum_tls13_refuses_tls12(tls13_reg: Registry, pki: PKI) -> None:
    """`minimumtls: tls1.3`: a client limited to TLS 1.2 fails its handshake; a TLS 1.3 client is served."""
    tls, reason = handshake(tls13_reg, context(pki, maximum=ssl.TLSVersion.TLSv1_2))
    assert tls is None, f"a {tls and tls.version()} handshake completed with minimumtls tls1.3"
    assert reason in HANDSHAKE_REFUSALS, reason
    ctx = context(pki)
    ctx.minimum_version = ssl.TLSVersion.TLSv1_3
    assert_serves_good_clients(tls13_reg, ctx)
