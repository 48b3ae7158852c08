"""The built-in token server (docs/auth.md "The built-in token server"; token.md, jwt.md, oauth.md, scope.md).

Users and rights are those of support.POLICY; the server runs on the registry's own address at `/token`.
"""

from __future__ import annotations

import datetime as dt
import os
import re
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import jwt
import pytest
import yaml
from cryptography import x509
from cryptography.hazmat.primitives import serialization

from tests.auth.conftest import AuthFiles, realm_of
from tests.auth.support import (
    ISSUER,
    SERVICE,
    TOKEN_LIFETIME,
    TOKEN_PATH,
    USERS,
    WRONG_PASSWORD,
    assert_bearer_challenge,
    assert_error,
    assert_failed_login_logged,
    assert_not_in_log,
    bearer,
    fetch_token,
    granted,
    jwt_claims,
    jwt_header,
    libtrust_kid,
    repo_need,
    self_signed,
    sha256,
    token_of,
    tokenserver_config,
    unique,
)
from tests.conftest import Registry, RegistryFactory, deep_merge, default_config, free_port

FORM = {"Content-Type": "application/x-www-form-urlencoded"}


@pytest.fixture(scope="module")
def ts(token_registry: Registry) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=token_registry.url, timeout=30.0) as client:
        yield client


@pytest.fixture(scope="module")
def realm(token_registry: Registry) -> str:
    return realm_of(token_registry)


def get(client: httpx.Client, realm: str, scopes: list[str], user: str | None = None, **params: str) -> httpx.Response:
    return fetch_token(client, realm, SERVICE, scopes, user, client_id="portside-tests", **params)


def post(client: httpx.Client, realm: str, **form: str) -> httpx.Response:
    return client.post(realm, data={"service": SERVICE, "client_id": "portside-tests", **form}, headers=FORM)


def certificates_in(directory: Path) -> list[x509.Certificate]:
    certs: list[x509.Certificate] = []
    for path in sorted(p for p in directory.rglob("*") if p.is_file()):
        data = path.read_bytes()
        if b"-----BEGIN CERTIFICATE-----" in data:
            certs.extend(x509.load_pem_x509_certificates(data))
    return certs


def parse_rfc3339(text: str) -> dt.datetime:
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?(Z|[+-]\d\d:\d\d)", text), f"not RFC 3339: {text!r}"
    return dt.datetime.fromisoformat(text)


# ---------------------------------------------------------------------------
# GET


def test_get_response_fields(ts: httpx.Client, realm: str) -> None:
    """200 `{"token", "access_token", "expires_in", "issued_at"}`: the two tokens equal (token.md), `expires_in`
    the configured 5m, `issued_at` RFC 3339; no `refresh_token` without `offline_token=true`."""
    r = get(ts, realm, ["repository:m/fields:pull"], "pusher")
    assert r.status_code == 200, r.text
    assert r.headers["content-type"].split(";")[0] == "application/json"
    body = r.json()
    assert body["token"] == body["access_token"]
    assert body["expires_in"] == TOKEN_LIFETIME
    issued = parse_rfc3339(body["issued_at"])
    assert abs(issued.timestamp() - time.time()) < 60
    assert "refresh_token" not in body


def test_token_claims(ts: httpx.Client, realm: str) -> None:
    """jwt.md claim set: `iss` = issuer, `aud` = service, `sub` = user, `nbf`/`iat` now, `exp` = `iat` +
    lifetime, a unique `jti`, the `access` claim as `[{"type", "name", "actions"}]`."""
    before = time.time()
    token = token_of(get(ts, realm, ["repository:m/claims:pull,push"], "pusher"))
    other = token_of(get(ts, realm, ["repository:m/claims:pull,push"], "pusher"))
    c = jwt_claims(token)
    assert c["iss"] == ISSUER
    assert c["aud"] == SERVICE or (isinstance(c["aud"], list) and SERVICE in c["aud"])
    assert c["sub"] == "pusher"
    assert c["exp"] > c["nbf"]
    assert c["exp"] > c["iat"]
    assert c["exp"] - c["iat"] == TOKEN_LIFETIME
    assert before - 120 <= c["iat"] <= time.time() + 5
    assert c["nbf"] <= time.time() + 5
    assert isinstance(c["jti"], str)
    assert c["jti"]
    assert c["jti"] != jwt_claims(other)["jti"]
    assert len(c["access"]) == 1, c["access"]
    assert set(c["access"][0]) == {"type", "name", "actions"}, c["access"]
    assert granted(token, "repository", "m/claims") == {"pull", "push"}


def test_token_signed_by_keydir_certificate(ts: httpx.Client, realm: str, token_registry: Registry) -> None:
    """The token is ES256 by default (`tokenserver.algorithm`), its `kid` is the libtrust ID of the key
    (jwt.md "Headers") and the signature verifies with the certificate kept in `tokenserver.keydir`."""
    token = token_of(get(ts, realm, ["repository:m/sig:pull"], "puller"))
    header = jwt_header(token)
    assert header["alg"] == "ES256"
    certs = certificates_in(token_registry.workdir / "token-keys")
    assert certs, "no certificate in tokenserver.keydir"
    matching = [c for c in certs if libtrust_kid(c.public_key()) == header.get("kid")]
    assert matching, f"kid {header.get('kid')!r} names no certificate in keydir"
    jwt.decode(token, matching[0].public_key(), algorithms=["ES256"], audience=SERVICE, issuer=ISSUER)  # type: ignore[arg-type]


def test_several_scope_parameters(ts: httpx.Client, realm: str) -> None:
    """One `scope` parameter per scope (token.md); each becomes an `access` entry."""
    token = token_of(
        get(ts, realm, ["repository:m/a:pull", "repository:m/b:pull,push,delete", "registry:catalog:*"], "admin")
    )
    assert granted(token, "repository", "m/a") == {"pull"}
    assert granted(token, "repository", "m/b") == {"pull", "push", "delete"}
    assert granted(token, "registry", "catalog") == {"*"}


def test_no_scope_gives_token_without_access(ts: httpx.Client, realm: str) -> None:
    """The scope may be empty (token.md, as `docker login` asks): 200, no access."""
    token = token_of(get(ts, realm, [], "puller"))
    assert not jwt_claims(token).get("access")
    assert jwt_claims(token)["sub"] == "puller"


@pytest.mark.parametrize(
    ("user", "scope", "want"),
    [
        ("admin", "repository:m/p:pull,push,delete", {"pull", "push", "delete"}),
        ("pusher", "repository:m/p:pull,push,delete", {"pull", "push"}),
        ("puller", "repository:m/p:pull,push,delete", {"pull"}),
        ("deleter", "repository:m/p:pull,push,delete", {"delete"}),
        ("cataloger", "repository:m/p:pull,push,delete", set()),
        ("pusher", "repository:other/p:pull,push", set()),
        ("pushonly", "repository:po/x:pull,push", {"push"}),
        ("robot", "repository:ci/x:pull,push,delete", {"pull", "push"}),
        ("puller", "repository:shared/x/y:pull,push", {"pull"}),
        ("patterns", "repository:team/a:pull", {"pull"}),
        ("patterns", "repository:team/a/b:pull", set()),
        ("patterns", "repository:deep/a/b/c:pull", {"pull"}),
        ("patterns", "repository:q/a:pull", {"pull"}),
        ("patterns", "repository:q/ab:pull", set()),
        ("cataloger", "registry:catalog:*", {"*"}),
        ("pusher", "registry:catalog:*", set()),
        (None, "repository:public/x:pull,push", {"pull"}),
        (None, "repository:m/p:pull", set()),
        (None, "repository:shared/x:pull", set()),
    ],
)
def test_scoped_down(ts: httpx.Client, realm: str, user: str | None, scope: str, want: set[str]) -> None:
    """Each requested scope gets only what the policy allows (the union of matching rules; `push` does not
    imply `pull`; `*` one component, `**` across, `?` one character; `*` subject any user, `anonymous` none),
    never an error for asking too much (token.md "it must not be considered an error")."""
    r = get(ts, realm, [scope], user)
    token = token_of(r)
    type_, _, rest = scope.partition(":")
    name = rest.rpartition(":")[0]
    assert granted(token, type_, name) == want


def test_anonymous_token(ts: httpx.Client, realm: str) -> None:
    """Without credentials: 200, `sub` empty (jwt.md), what the policy grants `anonymous`; no refresh token
    even with `offline_token=true`."""
    r = get(ts, realm, ["repository:public/anon:pull"], offline_token="true")
    token = token_of(r)
    assert jwt_claims(token).get("sub", "") == ""
    assert granted(token, "repository", "public/anon") == {"pull"}
    assert "refresh_token" not in r.json()


def test_offline_token(ts: httpx.Client, realm: str) -> None:
    """`offline_token=true` with credentials adds a `refresh_token`."""
    r = get(ts, realm, ["repository:m/off:pull"], "puller", offline_token="true")
    assert r.status_code == 200, r.text
    assert isinstance(r.json().get("refresh_token"), str)
    assert r.json()["refresh_token"]


def test_account_parameter(ts: httpx.Client, realm: str) -> None:
    """`account` naming the authenticated user is accepted; `sub` is that user."""
    token = token_of(get(ts, realm, ["repository:m/acc:pull"], "puller", account="puller"))
    assert jwt_claims(token)["sub"] == "puller"


@pytest.mark.parametrize("user", ["pusher", "nobody"])
def test_wrong_credentials(ts: httpx.Client, realm: str, user: str) -> None:
    """Wrong password or unknown user: 401 `UNAUTHORIZED` with `WWW-Authenticate: Basic realm="<service>"`."""
    r = fetch_token(ts, realm, SERVICE, ["repository:m/x:pull"], user, WRONG_PASSWORD)
    assert_error(r, 401, "UNAUTHORIZED")
    assert r.headers.get("www-authenticate") == f'Basic realm="{SERVICE}"'
    assert WRONG_PASSWORD not in r.text


def test_wrong_service(ts: httpx.Client, realm: str) -> None:
    """A `service` other than the configured one: 400 `UNSUPPORTED`."""
    r = fetch_token(ts, realm, "other.example", ["repository:m/x:pull"], "puller")
    assert_error(r, 400, "UNSUPPORTED")


def test_scope_name_with_port(ts: httpx.Client, realm: str) -> None:
    """A resource name may hold a `host:port` component (scope.md NOTE), so the scope is not split at its
    first colons."""
    token = token_of(get(ts, realm, ["repository:localhost:5000/team/app:pull,push"], "admin"))
    assert granted(token, "repository", "localhost:5000/team/app") == {"pull", "push"}


@pytest.mark.parametrize("scope", ["garbage", "repository:m/x", "repository::pull", "repository:a//b:pull"])
def test_malformed_scope(ts: httpx.Client, realm: str, scope: str) -> None:
    """A scope outside the grammar of scope.md: 400 `UNSUPPORTED`."""
    r = get(ts, realm, [scope], "puller")
    assert_error(r, 400, "UNSUPPORTED")


# ---------------------------------------------------------------------------
# POST (OAuth2)


def granted_scopes(text: str) -> dict[tuple[str, str], set[str]]:
    """The response's `scope`: space-separated `type:name:actions` entries (scope.md grammar)."""
    out: dict[tuple[str, str], set[str]] = {}
    for item in text.split():
        head, _, actions = item.rpartition(":")
        type_, _, name = head.partition(":")
        out.setdefault((type_, name), set()).update(a for a in actions.split(",") if a)
    return {k: v for k, v in out.items() if v}


def test_post_password_grant(ts: httpx.Client, realm: str) -> None:
    """`grant_type=password`: 200 `{"access_token", "token_type": "Bearer", "scope", "expires_in",
    "issued_at"}`, scoped down; `scope` names what was granted; no refresh token unless `access_type=offline`
    (oauth.md)."""
    r = post(
        ts,
        realm,
        grant_type="password",
        username="pusher",
        password=USERS["pusher"],
        scope="repository:m/post:pull,push,delete repository:m/post2:pull",
    )
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["token_type"] == "Bearer"
    assert body["expires_in"] == TOKEN_LIFETIME
    parse_rfc3339(body["issued_at"])
    assert "refresh_token" not in body
    token = body["access_token"]
    assert jwt_claims(token)["sub"] == "pusher"
    assert granted(token, "repository", "m/post") == {"pull", "push"}
    assert granted(token, "repository", "m/post2") == {"pull"}
    assert granted_scopes(body["scope"]) == {
        ("repository", "m/post"): {"pull", "push"},
        ("repository", "m/post2"): {"pull"},
    }


def refresh_token_for(ts: httpx.Client, realm: str, user: str) -> str:
    r = post(ts, realm, grant_type="password", username=user, password=USERS[user], access_type="offline")
    assert r.status_code == 200, r.text
    token = r.json().get("refresh_token")
    assert isinstance(token, str), r.json()
    assert token, r.json()
    return token


def test_post_refresh_token_grant(ts: httpx.Client, realm: str) -> None:
    """`access_type=offline` gives a refresh token; `grant_type=refresh_token` then gives access tokens for
    the same subject, scoped down by the policy (scope.md "Refresh Tokens")."""
    refresh = refresh_token_for(ts, realm, "pusher")
    r = post(ts, realm, grant_type="refresh_token", refresh_token=refresh, scope="repository:m/ref:pull,push,delete")
    assert r.status_code == 200, r.text
    token = r.json()["access_token"]
    assert jwt_claims(token)["sub"] == "pusher"
    assert granted(token, "repository", "m/ref") == {"pull", "push"}


def test_get_refresh_token_works_with_post(ts: httpx.Client, realm: str) -> None:
    """A refresh token from `GET ...&offline_token=true` is accepted by the refresh-token grant."""
    r = get(ts, realm, [], "deleter", offline_token="true")
    refresh = r.json()["refresh_token"]
    r = post(ts, realm, grant_type="refresh_token", refresh_token=refresh, scope="repository:m/g:pull,delete")
    assert r.status_code == 200, r.text
    assert jwt_claims(r.json()["access_token"])["sub"] == "deleter"
    assert granted(r.json()["access_token"], "repository", "m/g") == {"delete"}


@pytest.mark.parametrize(
    "form",
    [
        {"grant_type": "refresh_token", "refresh_token": "not-a-refresh-token"},
        {"grant_type": "password", "username": "pusher", "password": WRONG_PASSWORD},
        {"grant_type": "password", "username": "nobody", "password": WRONG_PASSWORD},
    ],
    ids=["bad-refresh-token", "wrong-password", "unknown-user"],
)
def test_post_invalid_grant(ts: httpx.Client, realm: str, form: dict[str, str]) -> None:
    """Bad credentials or an invalid refresh token: 401 `{"error": "invalid_grant", "error_description"}`."""
    r = post(ts, realm, scope="repository:m/x:pull", **form)
    assert r.status_code == 401, r.text
    body = r.json()
    assert body["error"] == "invalid_grant"
    assert "error_description" in body
    assert WRONG_PASSWORD not in r.text
    assert "not-a-refresh-token" not in r.text


def test_access_token_is_not_a_refresh_token(ts: httpx.Client, realm: str) -> None:
    """An access token is not accepted as a refresh token (oauth.md: the refresh token is its own token)."""
    access_token = token_of(get(ts, realm, ["repository:m/x:pull"], "puller"))
    r = post(ts, realm, grant_type="refresh_token", refresh_token=access_token, scope="repository:m/x:pull")
    assert r.status_code == 401, r.text
    assert r.json()["error"] == "invalid_grant"


def test_post_unsupported_grant_type(ts: httpx.Client, realm: str) -> None:
    """A grant type other than password and refresh_token: 400 `unsupported_grant_type` (RFC 6749 5.2)."""
    r = post(ts, realm, grant_type="client_credentials", scope="repository:m/x:pull")
    assert r.status_code == 400, r.text
    assert r.json()["error"] == "unsupported_grant_type"


def test_post_without_grant_type(ts: httpx.Client, realm: str) -> None:
    """A missing required parameter: 400 `invalid_request` (RFC 6749 5.2)."""
    r = post(ts, realm, username="pusher", password=USERS["pusher"])
    assert r.status_code == 400, r.text
    assert r.json()["error"] == "invalid_request"


@pytest.mark.parametrize(
    "form",
    [
        {"grant_type": "password", "password": USERS["pusher"]},
        {"grant_type": "password", "username": "pusher"},
        {"grant_type": "refresh_token"},
    ],
    ids=["password-without-username", "password-without-password", "refresh-without-refresh_token"],
)
def test_post_missing_parameter(ts: httpx.Client, realm: str, form: dict[str, str]) -> None:
    """docs/auth.md: "a missing parameter (`grant_type`, `username`, `password`, `refresh_token`): 400
    `invalid_request`" (RFC 6749 section 5.2), never a token."""
    r = post(ts, realm, scope="repository:m/x:pull", **form)
    assert r.status_code == 400, r.text
    body = r.json()
    assert body["error"] == "invalid_request", body
    assert "access_token" not in body
    assert USERS["pusher"] not in r.text


@pytest.mark.parametrize("scope", ["garbage", "repository:m/x", "repository::pull", "repository:a//b:pull"])
def test_post_malformed_scope(ts: httpx.Client, realm: str, scope: str) -> None:
    """docs/auth.md: "a malformed scope: 400 `invalid_scope`" (RFC 6749 section 5.2), with good credentials,
    also when it comes after a good scope."""
    for requested in (scope, f"repository:m/ok:pull {scope}"):
        r = post(ts, realm, grant_type="password", username="pusher", password=USERS["pusher"], scope=requested)
        assert r.status_code == 400, r.text
        assert r.json()["error"] == "invalid_scope", r.json()
        assert "access_token" not in r.json()


def test_token_server_log(token_registry: Registry, realm: str) -> None:
    """The token server logs a failed login with user and address, and never a password or a token."""
    with httpx.Client(timeout=30.0, headers={"User-Agent": "auth-tests"}) as http:
        wrong = "Wrong-For-Cataloger-44c2"
        offset = len(token_registry.log_path.read_text(errors="replace"))
        r = fetch_token(http, realm, SERVICE, ["registry:catalog:*"], "cataloger", wrong)
        assert r.status_code == 401
        assert_failed_login_logged(token_registry, offset, "cataloger")
        r = fetch_token(http, realm, SERVICE, ["registry:catalog:*"], "cataloger", offline_token="true")
        token, refresh = token_of(r), r.json()["refresh_token"]
        assert http.get(token_registry.url + "/v2/_catalog", headers={"Authorization": f"Bearer {token}"}).is_success
        form = {"grant_type": "refresh_token", "refresh_token": refresh, "service": SERVICE, "client_id": "t"}
        second = http.post(realm, data=form).json()["access_token"]
        password_form = {
            "grant_type": "password",
            "username": "cataloger",
            "password": USERS["cataloger"],
            "service": SERVICE,
            "client_id": "t",
        }
        assert http.post(realm, data=password_form).status_code == 200
        time.sleep(0.5)
    assert_not_in_log(token_registry, [wrong, *USERS.values(), token, refresh, second])


# ---------------------------------------------------------------------------
# Tokens at the registry


def test_token_from_server_opens_the_registry(ts: httpx.Client, realm: str) -> None:
    """A token for `pull,push` lets the user push and read back, scoped to that repository only."""
    repo = unique("m")
    token = token_of(get(ts, realm, [f"repository:{repo}:pull,push"], "pusher"))
    data = b"token-server-blob"
    digest = sha256(data)
    r = ts.post(f"/v2/{repo}/blobs/uploads/", params={"digest": digest}, content=data, headers=bearer(token))
    assert r.status_code == 201, r.text
    assert ts.get(f"/v2/{repo}/blobs/{digest}", headers=bearer(token)).content == data
    other = ts.get(f"/v2/{unique('m')}/tags/list", headers=bearer(token))
    assert other.status_code == 401


def test_tokens_valid_on_every_worker(ts: httpx.Client, realm: str, token_registry: Registry) -> None:
    """Access and refresh tokens issued by one worker are accepted by all (fresh connections land anywhere)."""
    r = get(ts, realm, ["repository:m/workers:pull,push"], "pusher", offline_token="true")
    token, refresh = token_of(r), r.json()["refresh_token"]
    for _ in range(8):
        with httpx.Client(base_url=token_registry.url, timeout=30.0, headers={"Connection": "close"}) as fresh:
            upload = fresh.post("/v2/m/workers/blobs/uploads/", headers=bearer(token))
            assert upload.status_code == 202, upload.text
            again = post(fresh, realm, grant_type="refresh_token", refresh_token=refresh, scope="repository:m/w:pull")
            assert again.status_code == 200, again.text


def test_refresh_token_is_not_an_access_token(ts: httpx.Client, realm: str) -> None:
    """A refresh token is for the token server only (scope.md "Refresh Tokens"): the registry refuses it as
    a Bearer token with `error="invalid_token"`."""
    refresh = get(ts, realm, ["repository:m/rt:pull"], "puller", offline_token="true").json()["refresh_token"]
    r = ts.get("/v2/m/rt/tags/list", headers=bearer(refresh))
    assert_bearer_challenge(r, realm, SERVICE, [repo_need("m/rt", "pull")], error="invalid_token")


def test_algorithm_expiration_and_kept_key(
    registry_factory: RegistryFactory, auth_files: AuthFiles, tmp_path: Path
) -> None:
    """`algorithm: RS256` signs with RSA; `expiration: 2m` gives `expires_in: 120`; `refreshexpiration` ends
    refresh tokens; the key generated in `keydir` is kept, so tokens signed before a restart still open the
    registry after it."""
    keydir = tmp_path / "rs-keys"
    reg = registry_factory(
        tokenserver_config(
            auth_files.htpasswd,
            auth_files.policy,
            keydir,
            algorithm="RS256",
            expiration="2m",
            refreshexpiration="3s",
        ),
        workers=1,
    )
    realm = realm_of(reg)
    with httpx.Client(base_url=reg.url, timeout=30.0) as client:
        r = get(client, realm, [], "puller", offline_token="true")
        issued = time.monotonic()
        token, refresh = token_of(r), r.json()["refresh_token"]
        assert r.json()["expires_in"] == 120
        c: dict[str, Any] = jwt_claims(token)
        assert c["exp"] - c["iat"] == 120
        assert jwt_header(token)["alg"] == "RS256"
        assert client.get("/v2/", headers=bearer(token)).status_code == 200
        assert post(client, realm, grant_type="refresh_token", refresh_token=refresh).status_code == 200
    certs_before = [cert.public_bytes(serialization.Encoding.PEM) for cert in certificates_in(keydir)]
    assert certs_before, "no certificate in tokenserver.keydir"
    reg.restart()
    with httpx.Client(base_url=reg.url, timeout=30.0) as client:
        assert client.get("/v2/", headers=bearer(token)).status_code == 200
        assert jwt_header(token_of(get(client, realm, [], "puller")))["kid"] == jwt_header(token)["kid"]
        time.sleep(max(0.0, issued + 4.5 - time.monotonic()))
        expired = post(client, realm, grant_type="refresh_token", refresh_token=refresh)
        assert expired.status_code == 401, expired.text
        assert expired.json()["error"] == "invalid_grant"
    assert [cert.public_bytes(serialization.Encoding.PEM) for cert in certificates_in(keydir)] == certs_before


def test_eddsa_algorithm(registry_factory: RegistryFactory, auth_files: AuthFiles, tmp_path: Path) -> None:
    """`algorithm: EdDSA`: the generated key is Ed25519, tokens are signed EdDSA with the libtrust `kid` of the
    certificate kept in `keydir`, verify with it, and open the registry."""
    keydir = tmp_path / "ed-keys"
    reg = registry_factory(
        tokenserver_config(auth_files.htpasswd, auth_files.policy, keydir, algorithm="EdDSA"), workers=1
    )
    realm = realm_of(reg)
    repo = unique("m")
    with httpx.Client(base_url=reg.url, timeout=30.0) as client:
        token = token_of(get(client, realm, [f"repository:{repo}:pull,push"], "pusher"))
        header = jwt_header(token)
        assert header["alg"] == "EdDSA", header
        certs = certificates_in(keydir)
        assert [c.public_key().__class__.__name__ for c in certs] == ["Ed25519PublicKey"]
        assert header.get("kid") == libtrust_kid(certs[0].public_key())
        jwt.decode(token, certs[0].public_key(), algorithms=["EdDSA"], audience=SERVICE, issuer=ISSUER)  # type: ignore[arg-type]
        data = b"signed with ed25519"
        r = client.post(
            f"/v2/{repo}/blobs/uploads/", params={"digest": sha256(data)}, content=data, headers=bearer(token)
        )
        assert r.status_code == 201, r.text
        refresh = token_of(get(client, realm, [], "pusher", offline_token="true"))
        assert jwt_header(refresh)["alg"] == "EdDSA"


def test_autoredirect_realm(registry_factory: RegistryFactory, tmp_path: Path) -> None:
    """`autoredirect: true`: the realm is this registry's own URL plus `autoredirectpath`."""
    bundle = tmp_path / "bundle.pem"
    bundle.write_bytes(self_signed("unused signer").cert_pem())
    token = {
        "realm": "https://ignored.example/token",
        "service": SERVICE,
        "issuer": ISSUER,
        "rootcertbundle": str(bundle),
        "autoredirect": True,
        "autoredirectpath": "/auth/token",
    }
    reg = registry_factory({"auth": {"token": token}}, workers=1)
    r = httpx.get(f"{reg.url}/v2/x/y/tags/list", timeout=10.0)
    assert_bearer_challenge(r, f"{reg.url}/auth/token", SERVICE, [repo_need("x/y", "pull")])


def test_standalone_token_server(registry_factory: RegistryFactory, auth_files: AuthFiles, tmp_path: Path) -> None:
    """`portside token-server CONFIG` serves the same endpoint alone on `tokenserver.addr`; a registry elsewhere
    trusts it with `auth.token.rootcertbundle: <keydir>/cert.pem` and `realm` set to its URL."""
    addr = f"127.0.0.1:{free_port()}"
    realm = f"http://{addr}{TOKEN_PATH}"
    keydir = tmp_path / "keys"
    config = deep_merge(
        default_config(tmp_path, free_port()),
        tokenserver_config(auth_files.htpasswd, auth_files.policy, keydir, addr=addr),
    )
    (tmp_path / "token-server.yml").write_text(yaml.safe_dump(config))
    log = (tmp_path / "token-server.log").open("ab")
    proc = subprocess.Popen(
        [sys.executable, "-m", "portside", "token-server", str(tmp_path / "token-server.yml")],
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    try:
        deadline = time.monotonic() + 20
        while True:
            assert proc.poll() is None, (tmp_path / "token-server.log").read_text()
            try:
                with httpx.Client(timeout=5.0) as client:
                    r = get(client, realm, ["repository:m/alone:pull,push"], "pusher")
                break
            except httpx.TransportError:
                assert time.monotonic() < deadline, "token-server did not answer"
                time.sleep(0.1)
        token = token_of(r)
        assert granted(token, "repository", "m/alone") == {"pull", "push"}
        trust = {"realm": realm, "service": SERVICE, "issuer": ISSUER, "rootcertbundle": str(keydir / "cert.pem")}
        reg = registry_factory({"auth": {"token": trust}}, workers=1)
        challenge = httpx.get(f"{reg.url}/v2/m/alone/tags/list", timeout=10.0)
        assert_bearer_challenge(challenge, realm, SERVICE, [repo_need("m/alone", "pull")])
        upload = httpx.post(f"{reg.url}/v2/m/alone/blobs/uploads/", headers=bearer(token), timeout=10.0)
        assert upload.status_code == 202, upload.text
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        proc.wait(10)
        log.close()
