"""Helpers for the access-control and TLS tests: users and policies, keys and certificates, JWTs, challenges.

Rules are quoted from Portside's `docs/auth.md` (the contract), the Docker token authentication specification
(`docs/spec/auth/{token,jwt,oauth,scope}.md` of distribution/distribution), the Docker Registry HTTP API V2 and
the OCI Distribution Specification v1.1.
"""

from __future__ import annotations

import base64
import datetime as dt
import hashlib
import hmac
import ipaddress
import json
import os
import re
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import bcrypt
import httpx
import jwt
import yaml
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from tests.conftest import Registry, deep_merge, default_config, free_port

API_VERSION_HEADER = "Docker-Distribution-API-Version"
OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
OCI_CONFIG = "application/vnd.oci.image.config.v1+json"
OCI_LAYER = "application/vnd.oci.image.layer.v1.tar+gzip"
OCI_EMPTY = "application/vnd.oci.empty.v1+json"
EMPTY_JSON = b"{}"

BASIC_REALM = "portside-test"
SERVICE = "registry.test"
ISSUER = "portside-test-issuer"
TOKEN_PATH = "/token"
TOKEN_LIFETIME = 300  # tokenserver.expiration: 5m

# ---------------------------------------------------------------------------
# Users and the policy


def _password(user: str) -> str:
    return f"{user}-Pw-{uuid.uuid4().hex[:16]}"


USERS: dict[str, str] = {
    name: _password(name)
    for name in (
        "admin",
        "smoke",
        "puller",
        "pusher",
        "deleter",
        "cataloger",
        "mounter",
        "robot",
        "pushonly",
        "patterns",
    )
}
WRONG_PASSWORD = f"Wrong-Secret-{uuid.uuid4().hex[:16]}"

# The contract's policy format (docs/auth.md "The policy file").
POLICY: dict[str, Any] = {
    "groups": {"admins": ["admin", "smoke"], "ci": ["robot"]},
    "rules": [
        {"subjects": ["group:admins"], "repositories": ["**"], "actions": ["*"], "catalog": True},
        {"subjects": ["puller"], "repositories": ["m/**"], "actions": ["pull"]},
        {"subjects": ["pusher"], "repositories": ["m/**"], "actions": ["pull", "push"]},
        {"subjects": ["deleter"], "repositories": ["m/**"], "actions": ["delete"]},
        {"subjects": ["cataloger"], "repositories": ["unused/**"], "actions": ["pull"], "catalog": True},
        {"subjects": ["mounter"], "repositories": ["mnt/target/**"], "actions": ["pull", "push"]},
        {"subjects": ["mounter"], "repositories": ["mnt/readable/**"], "actions": ["pull"]},
        {"subjects": ["mounter"], "repositories": ["mnt/pushable/**"], "actions": ["push"]},
        {"subjects": ["group:ci"], "repositories": ["ci/**"], "actions": ["push"]},
        {"subjects": ["robot"], "repositories": ["ci/**"], "actions": ["pull"]},
        {"subjects": ["pushonly"], "repositories": ["po/**"], "actions": ["push"]},
        {"subjects": ["patterns"], "repositories": ["team/*", "deep/**", "q/?"], "actions": ["pull"]},
        {"subjects": ["*"], "repositories": ["shared/**"], "actions": ["pull"]},
        {"subjects": ["anonymous"], "repositories": ["public/**"], "actions": ["pull"]},
    ],
}


def bcrypt_line(user: str, password: str) -> str:
    """An `htpasswd -B` line: bcrypt with the `$2y$` prefix (cost 4 keeps the tests fast)."""
    hashed = bcrypt.hashpw(password.encode(), bcrypt.gensalt(rounds=4)).decode()
    return f"{user}:$2y${hashed[4:]}"


def write_htpasswd(path: Path, users: Mapping[str, str], extra_lines: Sequence[str] = ()) -> Path:
    lines = [bcrypt_line(u, p) for u, p in users.items()] + list(extra_lines)
    path.write_text("\n".join(lines) + "\n")
    return path


def write_policy(path: Path, policy: Mapping[str, Any] = POLICY) -> Path:
    path.write_text(yaml.safe_dump(dict(policy), sort_keys=False))
    return path


def openssl_passwd(flag: str, password: str) -> str:
    """A non-bcrypt crypt hash (`-apr1`, `-6`, ...) as `openssl passwd` writes it."""
    out = subprocess.run(["openssl", "passwd", flag, password], check=True, capture_output=True, text=True)
    return out.stdout.strip()


def sha_htpasswd(password: str) -> str:
    """`htpasswd -s`: `{SHA}` and the base64 of the SHA-1 of the password."""
    return "{SHA}" + base64.b64encode(hashlib.sha1(password.encode()).digest()).decode()


def basic(user: str, password: str) -> dict[str, str]:
    return {"Authorization": "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()}


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


# ---------------------------------------------------------------------------
# Servers


class TLSRegistry(Registry):
    """A `portside serve` whose registry port speaks TLS (`http.tls`)."""

    @property
    def url(self) -> str:
        return f"https://{self.host}"

    def start(self, timeout: float = 30.0) -> None:
        self.config_path.write_text(yaml.safe_dump(self.config))
        log = self.log_path.open("ab")
        self.process = subprocess.Popen(
            [sys.executable, "-m", "portside", "serve", str(self.config_path), "--workers", str(self.workers)],
            stdout=log,
            stderr=subprocess.STDOUT,
            env={**os.environ, **self.env},
            cwd=self.workdir,  # defaults relative to the working directory (./data) stay in the test's directory
            start_new_session=True,
        )
        host, _, port = self.host.rpartition(":")
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"portside exited with {self.process.returncode}:\n{self.log_tail()}")
            try:
                with socket.create_connection((host, int(port)), timeout=1.0):
                    pass
            except OSError:
                time.sleep(0.05)
                continue
            time.sleep(0.3)  # the arbiter binds before its workers answer
            return
        self.stop()
        raise RuntimeError(f"portside did not listen within {timeout}s:\n{self.log_tail()}")


def launch(workdir: Path, overrides: Mapping[str, Any], workers: int = 2, tls: bool = False) -> Registry:
    """Start a server on a free port with `overrides` over the default test configuration."""
    config = deep_merge(default_config(workdir, free_port()), dict(overrides))
    reg = (TLSRegistry if tls else Registry)(workdir=workdir, config=config, workers=workers)
    reg.start()
    return reg


def info_logging() -> dict[str, Any]:
    """A production-like log setting: info level with the access log on."""
    return {"log": {"level": "info", "accesslog": {"disabled": False}}}


def htpasswd_config(htpasswd: Path, policy: Path | None = None) -> dict[str, Any]:
    section: dict[str, Any] = {"realm": BASIC_REALM, "path": str(htpasswd)}
    if policy is not None:
        section["policy"] = str(policy)
    return {"auth": {"htpasswd": section}}


def tokenserver_config(htpasswd: Path, policy: Path, keydir: Path, **extra: Any) -> dict[str, Any]:
    server: dict[str, Any] = {
        "path": TOKEN_PATH,
        "htpasswd": str(htpasswd),
        "policy": str(policy),
        "keydir": str(keydir),
        "expiration": "5m",
        "refreshexpiration": "720h",
        **extra,
    }
    return {"auth": {"token": {"service": SERVICE, "issuer": ISSUER}}, "tokenserver": server}


# ---------------------------------------------------------------------------
# Keys, certificates and JWTs


@dataclass
class Identity:
    """A key with its certificate (self-signed for a CA), and the chain above it."""

    key: Any
    cert: x509.Certificate
    chain: list[x509.Certificate] = field(default_factory=list)

    @property
    def public_key(self) -> Any:
        return self.key.public_key()

    def cert_pem(self) -> bytes:
        return self.cert.public_bytes(serialization.Encoding.PEM)

    def key_pem(self) -> bytes:
        return self.key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )

    def write(self, directory: Path, stem: str) -> tuple[Path, Path]:
        cert_path, key_path = directory / f"{stem}.pem", directory / f"{stem}-key.pem"
        cert_path.write_bytes(self.cert_pem())
        key_path.write_bytes(self.key_pem())
        return cert_path, key_path


def new_key(kind: str = "ec256") -> Any:
    if kind == "ec256":
        return ec.generate_private_key(ec.SECP256R1())
    if kind == "ec384":
        return ec.generate_private_key(ec.SECP384R1())
    if kind == "ec521":
        return ec.generate_private_key(ec.SECP521R1())
    if kind == "rsa":
        return rsa.generate_private_key(public_exponent=65537, key_size=2048)
    if kind == "ed25519":
        return ed25519.Ed25519PrivateKey.generate()
    raise ValueError(kind)


def _builder(subject: str, issuer: x509.Name, public_key: Any) -> x509.CertificateBuilder:
    now = dt.datetime.now(dt.UTC)
    return (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, subject)]))
        .issuer_name(issuer)
        .public_key(public_key)
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(hours=1))
        .not_valid_after(now + dt.timedelta(days=2))
    )


def _sign(builder: x509.CertificateBuilder, key: Any) -> x509.Certificate:
    algorithm = None if isinstance(key, ed25519.Ed25519PrivateKey) else hashes.SHA256()
    return builder.sign(key, algorithm)


def make_ca(name: str, kind: str = "ec256") -> Identity:
    key = new_key(kind)
    builder = _builder(name, x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)]), key.public_key())
    builder = builder.add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True).add_extension(
        x509.KeyUsage(
            digital_signature=True,
            content_commitment=False,
            key_encipherment=False,
            data_encipherment=False,
            key_agreement=False,
            key_cert_sign=True,
            crl_sign=True,
            encipher_only=False,
            decipher_only=False,
        ),
        critical=True,
    )
    return Identity(key, _sign(builder, key))


def self_signed(name: str, kind: str = "ec256") -> Identity:
    """A self-signed signing certificate, as a token issuer's `rootcertbundle` entry."""
    key = new_key(kind)
    builder = _builder(name, x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)]), key.public_key())
    return Identity(key, _sign(builder, key))


def issue(
    ca: Identity,
    name: str,
    *,
    ips: Iterable[str] = (),
    dns: Iterable[str] = (),
    client: bool = False,
    kind: str = "ec256",
) -> Identity:
    key = new_key(kind)
    builder = _builder(name, ca.cert.subject, key.public_key()).add_extension(
        x509.BasicConstraints(ca=False, path_length=None), critical=True
    )
    names: list[x509.GeneralName] = [x509.DNSName(d) for d in dns]
    names += [x509.IPAddress(ipaddress.ip_address(i)) for i in ips]
    if names:
        builder = builder.add_extension(x509.SubjectAlternativeName(names), critical=False)
    usage = ExtendedKeyUsageOID.CLIENT_AUTH if client else ExtendedKeyUsageOID.SERVER_AUTH
    builder = builder.add_extension(x509.ExtendedKeyUsage([usage]), critical=False)
    return Identity(key, _sign(builder, ca.key), chain=[ca.cert])


def libtrust_kid(public_key: Any) -> str:
    """The key ID of jwt.md: SHA-256 of the DER public key, truncated to 240 bits, base32 in 12 groups of 4."""
    der = public_key.public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
    encoded = base64.b32encode(hashlib.sha256(der).digest()[:30]).decode().rstrip("=")
    return ":".join(encoded[i : i + 4] for i in range(0, len(encoded), 4))


def b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).decode().rstrip("=")


def b64url_decode(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def claims(
    access: Sequence[Mapping[str, Any]] = (),
    *,
    sub: str = "tester",
    iss: str = ISSUER,
    aud: str | list[str] = SERVICE,
    lifetime: int = 300,
    now: float | None = None,
    **extra: Any,
) -> dict[str, Any]:
    """A jwt.md claim set valid for `lifetime` seconds from `now`."""
    now = int(time.time() if now is None else now)
    body: dict[str, Any] = {
        "iss": iss,
        "sub": sub,
        "aud": aud,
        "exp": now + lifetime,
        "nbf": now,
        "iat": now,
        "jti": uuid.uuid4().hex,
        "access": [dict(a) for a in access],
    }
    body.update(extra)
    return body


def access(name: str, *actions: str, type_: str = "repository") -> dict[str, Any]:
    return {"type": type_, "name": name, "actions": list(actions)}


def mint(payload: Mapping[str, Any], identity: Identity, algorithm: str, **header: Any) -> str:
    return jwt.encode(dict(payload), identity.key, algorithm=algorithm, headers=header or None)


def unsigned_token(payload: Mapping[str, Any]) -> str:
    """`alg: none`: a header and payload with an empty signature."""
    head = b64url(json.dumps({"typ": "JWT", "alg": "none"}).encode())
    return f"{head}.{b64url(json.dumps(dict(payload)).encode())}."


def hmac_token(payload: Mapping[str, Any], secret: bytes, kid: str | None = None) -> str:
    """HS256 keyed with `secret` (the algorithm-confusion attack when `secret` is a public key)."""
    header: dict[str, Any] = {"typ": "JWT", "alg": "HS256"}
    if kid:
        header["kid"] = kid
    signing_input = f"{b64url(json.dumps(header).encode())}.{b64url(json.dumps(dict(payload)).encode())}"
    signature = hmac.new(secret, signing_input.encode(), hashlib.sha256).digest()
    return f"{signing_input}.{b64url(signature)}"


def tamper(token: str, **changes: Any) -> str:
    """The token with its payload changed and its original signature kept."""
    head, payload, signature = token.split(".")
    body = json.loads(b64url_decode(payload))
    body.update(changes)
    return f"{head}.{b64url(json.dumps(body).encode())}.{signature}"


def jwt_header(token: str) -> dict[str, Any]:
    return dict(jwt.get_unverified_header(token))


def jwt_claims(token: str) -> dict[str, Any]:
    return dict(jwt.decode(token, options={"verify_signature": False}))


def granted(token: str, type_: str, name: str) -> set[str]:
    """The actions the token's `access` claim grants on one resource (empty when left out)."""
    actions: set[str] = set()
    for entry in jwt_claims(token).get("access") or []:
        if entry.get("type") == type_ and entry.get("name") == name:
            actions |= set(entry.get("actions") or [])
    return actions


# ---------------------------------------------------------------------------
# Challenges and error answers

_PARAM = re.compile(r'\s*([A-Za-z_][A-Za-z0-9_-]*)="((?:[^"\\]|\\.)*)"\s*(?:,|$)')


def parse_challenge(header: str) -> tuple[str, dict[str, str]]:
    """RFC 7235 challenge `Scheme k="v",k="v"` -> (scheme, params); fails on anything else."""
    scheme, _, rest = header.strip().partition(" ")
    params: dict[str, str] = {}
    pos = 0
    while pos < len(rest):
        m = _PARAM.match(rest, pos)
        assert m, f"malformed challenge {header!r} at {rest[pos:]!r}"
        assert m.group(1) not in params, f"duplicate {m.group(1)} in {header!r}"
        params[m.group(1)] = m.group(2)
        pos = m.end()
    return scheme, params


def error_codes(r: httpx.Response) -> list[str]:
    assert r.headers.get("content-type", "").split(";")[0].strip() == "application/json", r.headers
    body = r.json()
    assert isinstance(body.get("errors"), list), body
    return [e.get("code") for e in body["errors"]]


def assert_error(r: httpx.Response, status: int, code: str) -> None:
    """The status, and (when there is a body) `{"errors": [{"code": code, ...}]}` (http-behaviour.md)."""
    assert r.status_code == status, f"{r.request.method} {r.request.url}: {r.status_code} {r.text[:300]}"
    assert r.headers.get(API_VERSION_HEADER) == "registry/2.0", r.headers
    if r.request.method != "HEAD":
        assert error_codes(r) == [code], r.text


@dataclass(frozen=True)
class Need:
    """One access a route needs (docs/auth.md "What each route needs")."""

    type: str
    name: str
    actions: tuple[str, ...]

    @property
    def scope(self) -> str:
        return f"{self.type}:{self.name}:{','.join(self.actions)}"

    def detail(self) -> list[dict[str, str]]:
        return [{"Type": self.type, "Class": "", "Name": self.name, "Action": a} for a in self.actions]


def repo_need(name: str, *actions: str) -> Need:
    return Need("repository", name, actions)


CATALOG_NEED = Need("registry", "catalog", ("*",))


def _detail_key(entry: Mapping[str, Any]) -> str:
    return json.dumps(entry, sort_keys=True)


def assert_detail(r: httpx.Response, needs: Sequence[Need], optional: Sequence[Need] = ()) -> None:
    """A 401 for missing credentials lists the needed access as `[{"Type", "Class", "Name", "Action"}]`."""
    if r.request.method == "HEAD" or not needs:
        return
    detail = r.json()["errors"][0].get("detail")
    assert isinstance(detail, list), r.text
    got = sorted(_detail_key(e) for e in detail)
    want = sorted(_detail_key(e) for n in needs for e in n.detail())
    with_optional = sorted(want + [_detail_key(e) for n in optional for e in n.detail()])
    assert got in (want, with_optional), f"detail {detail}, want {want}"


def assert_basic_challenge(r: httpx.Response, realm: str = BASIC_REALM) -> None:
    """htpasswd: 401 UNAUTHORIZED with `WWW-Authenticate: Basic realm="<realm>"`."""
    assert_error(r, 401, "UNAUTHORIZED")
    assert r.headers.get("www-authenticate") == f'Basic realm="{realm}"', r.headers


def assert_bearer_challenge(
    r: httpx.Response,
    realm: str,
    service: str,
    needs: Sequence[Need],
    error: str | None = None,
    optional: Sequence[Need] = (),
) -> dict[str, str]:
    """silly/token: 401 UNAUTHORIZED with `Bearer realm=..,service=..,scope=..` (one scope per resource, none
    on `/v2/`) and, for a refused token, `error=...`; `optional` scopes may also be listed."""
    assert_error(r, 401, "UNAUTHORIZED")
    header = r.headers.get("www-authenticate", "")
    scheme, params = parse_challenge(header)
    assert scheme == "Bearer", header
    listed = params.pop("scope").split(" ") if "scope" in params else []
    required = [n.scope for n in needs]
    assert len(listed) == len(set(listed)), header
    assert set(required) <= set(listed), f"challenge {header!r} lacks scopes {required}"
    assert set(listed) - set(required) <= {o.scope for o in optional}, f"unexpected scopes in {header!r}"
    want: dict[str, str] = {"realm": realm, "service": service}
    if error:
        want["error"] = error
    assert params == want, f"challenge {header!r}, want {want} and scope {required}"
    if error is None and not optional:
        parts = [f'realm="{realm}"', f'service="{service}"'] + ([f'scope="{" ".join(required)}"'] if needs else [])
        assert header == "Bearer " + ",".join(parts), header
    params["scope"] = " ".join(listed)
    return params


# ---------------------------------------------------------------------------
# The server log


def new_log(reg: Registry, offset: int, needle: str, timeout: float = 5.0) -> str:
    deadline = time.monotonic() + timeout
    while True:
        text = reg.log_path.read_text(errors="replace")[offset:]
        if needle in text or time.monotonic() > deadline:
            return text
        time.sleep(0.1)


def assert_failed_login_logged(reg: Registry, offset: int, user: str) -> None:
    text = new_log(reg, offset, user)
    lines = [line for line in text.splitlines() if user in line]
    assert any("127.0.0.1" in line for line in lines), f"no failed login for {user} from 127.0.0.1 in:\n{text}"


def assert_not_in_log(reg: Registry, secrets: list[str]) -> None:
    log = reg.log_path.read_text(errors="replace")
    for secret in secrets:
        assert secret not in log, f"{secret[:12]}... is in the server log"


# ---------------------------------------------------------------------------
# Content


def sha256(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


def unique(prefix: str) -> str:
    return f"{prefix}/{uuid.uuid4().hex[:12]}"


def image_manifest(config: bytes, layers: Sequence[bytes], **fields: Any) -> bytes:
    body: dict[str, Any] = {
        "schemaVersion": 2,
        "mediaType": OCI_MANIFEST,
        "config": {"mediaType": OCI_CONFIG, "digest": sha256(config), "size": len(config)},
        "layers": [{"mediaType": OCI_LAYER, "digest": sha256(b), "size": len(b)} for b in layers],
        **fields,
    }
    return json.dumps(body).encode()


def config_blob() -> bytes:
    return json.dumps({"architecture": "amd64", "os": "linux", "nonce": uuid.uuid4().hex}).encode()


# ---------------------------------------------------------------------------
# The token server


def fetch_token(
    client: httpx.Client,
    realm: str,
    service: str,
    scopes: Sequence[str],
    user: str | None = None,
    password: str | None = None,
    **params: str,
) -> httpx.Response:
    """GET the realm as token.md describes: `service`, one `scope` parameter per scope, Basic credentials."""
    query: list[tuple[str, str]] = [("service", service)] + [("scope", s) for s in scopes]
    query += list(params.items())
    headers = basic(user, password if password is not None else USERS[user]) if user else {}
    return client.get(realm, params=query, headers=headers)


def token_of(r: httpx.Response) -> str:
    assert r.status_code == 200, f"token request {r.request.url}: {r.status_code} {r.text[:300]}"
    body = r.json()
    token = body.get("token") or body.get("access_token")
    assert isinstance(token, str), body
    assert token, body
    return token
