"""The registry's checks of Bearer tokens, with tokens minted here (no token server).

docs/auth.md `token`: RS/ES/EdDSA signatures by a key in the `x5c` chain rooted in `rootcertbundle`, named by
`kid` in `jwks`, or one of the bundle's certificates' keys (by libtrust key ID, or tried directly); `iss` must
equal `issuer`, `aud` contain `service`, `exp`/`nbf` are enforced with 60 s leeway, `access` must cover the
route (`*` is every action). A refused token: 401 `UNAUTHORIZED` with `error="invalid_token"`; a valid token
without the access: 401 with `error="insufficient_scope"` (RFC 6750 3.1, jwt.md "Verifying the token").
"""

from __future__ import annotations

import base64
import json
import os
import time
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import httpx
import jwt
import pytest
from cryptography.hazmat.primitives import serialization

from tests.auth.support import (
    ISSUER,
    OCI_MANIFEST,
    SERVICE,
    Identity,
    Need,
    access,
    assert_bearer_challenge,
    bearer,
    claims,
    config_blob,
    hmac_token,
    image_manifest,
    info_logging,
    issue,
    launch,
    libtrust_kid,
    make_ca,
    mint,
    new_key,
    repo_need,
    self_signed,
    sha256,
    tamper,
    unique,
    unsigned_token,
)
from tests.conftest import Registry

REALM = "https://auth.example.test/token"
JWKS_KID = "jwks-key-1"


@dataclass
class Trust:
    es256: Identity
    es384: Identity
    es521: Identity
    rsa: Identity
    ed25519: Identity
    root: Identity
    leaf: Identity
    jwks_key: Any
    evil: Identity
    evil_leaf: Identity


@dataclass
class World:
    reg: Registry
    client: httpx.Client
    trust: Trust
    repo: str
    manifest: bytes
    config: bytes
    layer: bytes

    def token(
        self, *entries: dict[str, Any], signer: Identity | None = None, alg: str = "ES256", kid: bool = True, **c: Any
    ) -> str:
        signer = signer or self.trust.es256
        header = {"kid": libtrust_kid(signer.public_key)} if kid else {}
        return mint(claims(entries, **c), signer, alg, **header)

    def pull(self) -> dict[str, Any]:
        return access(self.repo, "pull")


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    workdir = tmp_path_factory.mktemp("token-checks")
    root = make_ca("token root")
    evil_root = make_ca("token root")  # the same name, another key
    trust = Trust(
        es256=self_signed("signer es256"),
        es384=self_signed("signer es384", "ec384"),
        es521=self_signed("signer es521", "ec521"),
        rsa=self_signed("signer rsa", "rsa"),
        ed25519=self_signed("signer ed25519", "ed25519"),
        root=root,
        leaf=issue(root, "x5c leaf"),
        jwks_key=new_key("ec256"),
        evil=self_signed("signer es256"),
        evil_leaf=issue(evil_root, "x5c leaf"),
    )
    bundle = workdir / "bundle.pem"
    bundle.write_bytes(
        b"".join(i.cert_pem() for i in (trust.es256, trust.es384, trust.es521, trust.rsa, trust.ed25519, trust.root))
    )
    jwk = json.loads(jwt.algorithms.ECAlgorithm.to_jwk(trust.jwks_key.public_key()))
    jwks = workdir / "jwks.json"
    jwks.write_text(json.dumps({"keys": [{**jwk, "kid": JWKS_KID, "use": "sig", "alg": "ES256"}]}))
    reg = launch(
        workdir,
        info_logging()
        | {
            "auth": {
                "token": {
                    "realm": REALM,
                    "service": SERVICE,
                    "issuer": ISSUER,
                    "rootcertbundle": str(bundle),
                    "jwks": str(jwks),
                }
            }
        },
    )
    with httpx.Client(base_url=reg.url, timeout=30.0) as client:
        repo = unique("tv")
        config, layer = config_blob(), os.urandom(500)
        setup = World(reg, client, trust, repo, b"", config, layer)
        auth = bearer(setup.token(access(repo, "*")))
        for blob in (config, layer):
            r = client.post(f"/v2/{repo}/blobs/uploads/", params={"digest": sha256(blob)}, content=blob, headers=auth)
            assert r.status_code == 201, f"setup: {r.status_code} {r.text}"
        setup.manifest = image_manifest(config, [layer])
        r = client.put(
            f"/v2/{repo}/manifests/v1", content=setup.manifest, headers={**auth, "Content-Type": OCI_MANIFEST}
        )
        assert r.status_code == 201, f"setup: {r.status_code} {r.text}"
        yield setup
    reg.stop()


def get_manifest(w: World, token: str) -> httpx.Response:
    return w.client.get(f"/v2/{w.repo}/manifests/v1", headers={**bearer(token), "Accept": OCI_MANIFEST})


def assert_ok(w: World, token: str) -> None:
    r = get_manifest(w, token)
    assert r.status_code == 200, f"{r.status_code} {r.headers.get('www-authenticate')} {r.text}"
    assert r.content == w.manifest


def assert_invalid(w: World, token: str) -> None:
    """401 UNAUTHORIZED, `Bearer realm,service,scope="repository:<name>:pull",error="invalid_token"`."""
    r = get_manifest(w, token)
    assert_bearer_challenge(r, REALM, SERVICE, [repo_need(w.repo, "pull")], error="invalid_token")
    assert token not in r.text


# ---------------------------------------------------------------------------
# Accepted signatures


def test_es256_by_libtrust_kid(world: World) -> None:
    """A bundle certificate's key named by its libtrust key ID (jwt.md "Headers")."""
    assert_ok(world, world.token(world.pull()))


def test_without_kid_bundle_keys_are_tried(world: World) -> None:
    """Without `kid`, the bundle certificates' keys are tried directly."""
    assert_ok(world, world.token(world.pull(), kid=False))


@pytest.mark.parametrize(
    ("signer", "alg", "kid"),
    [
        ("es384", "ES384", True),
        ("es384", "ES384", False),
        ("es521", "ES512", True),
        ("es521", "ES512", False),
        ("rsa", "RS256", True),
        ("rsa", "RS384", True),
        ("rsa", "RS512", False),
        ("ed25519", "EdDSA", True),
        ("ed25519", "EdDSA", False),
    ],
)
def test_other_algorithms(world: World, signer: str, alg: str, kid: bool) -> None:
    """RS256/384/512, ES256/384/512 and EdDSA are accepted."""
    assert_ok(world, world.token(world.pull(), signer=getattr(world.trust, signer), alg=alg, kid=kid))


def x5c(*identities: Identity) -> list[str]:
    certs = [identities[0].cert, *identities[0].chain]
    return [base64.b64encode(c.public_bytes(serialization.Encoding.DER)).decode() for c in certs]


def test_x5c_chain_rooted_in_bundle(world: World) -> None:
    """A key in the `x5c` certificate chain, rooted in `rootcertbundle`."""
    token = mint(claims([world.pull()]), world.trust.leaf, "ES256", x5c=x5c(world.trust.leaf))
    assert_ok(world, token)


def test_jwks_kid(world: World) -> None:
    """A key named by `kid` in `jwks`."""
    signer = Identity(world.trust.jwks_key, world.trust.es256.cert)
    assert_ok(world, mint(claims([world.pull()]), signer, "ES256", kid=JWKS_KID))


def test_audience_list_containing_service(world: World) -> None:
    """`aud` must contain `service`: a list with it is accepted."""
    assert_ok(world, world.token(world.pull(), aud=["elsewhere.example", SERVICE]))


def test_leeway(world: World) -> None:
    """`exp` and `nbf` are enforced with 60 s leeway: 20 s past `exp`, 20 s before `nbf` still pass."""
    now = time.time()
    assert_ok(world, world.token(world.pull(), now=now - 320))  # expired 20 s ago
    assert_ok(world, world.token(world.pull(), now=now + 20))  # valid from 20 s on


# ---------------------------------------------------------------------------
# Refused tokens: invalid_token


def test_expired(world: World) -> None:
    """`exp` more than the leeway in the past."""
    assert_invalid(world, world.token(world.pull(), now=time.time() - 600))


def test_not_yet_valid(world: World) -> None:
    """`nbf` more than the leeway in the future."""
    assert_invalid(world, world.token(world.pull(), now=time.time() + 600))


def test_wrong_issuer(world: World) -> None:
    assert_invalid(world, world.token(world.pull(), iss="someone-else"))


def test_wrong_audience(world: World) -> None:
    assert_invalid(world, world.token(world.pull(), aud="other.example"))


@pytest.mark.parametrize("claim", ["iss", "aud"])
def test_missing_claim(world: World, claim: str) -> None:
    """`iss` must equal `issuer` and `aud` contain `service`: a token without them is refused."""
    body = claims([world.pull()])
    del body[claim]
    assert_invalid(world, mint(body, world.trust.es256, "ES256", kid=libtrust_kid(world.trust.es256.public_key)))


def test_untrusted_key_claiming_trusted_kid(world: World) -> None:
    """Signed by a key outside the bundle, with the trusted key's `kid`."""
    header = {"kid": libtrust_kid(world.trust.es256.public_key)}
    assert_invalid(world, mint(claims([world.pull()]), world.trust.evil, "ES256", **header))


def test_untrusted_key_without_kid(world: World) -> None:
    assert_invalid(world, world.token(world.pull(), signer=world.trust.evil, kid=False))


def test_untrusted_key_with_own_kid(world: World) -> None:
    assert_invalid(world, world.token(world.pull(), signer=world.trust.evil))


def test_x5c_chain_from_untrusted_root(world: World) -> None:
    """An `x5c` chain whose root is not in the bundle (same subject name, different key)."""
    leaf = world.trust.evil_leaf
    assert_invalid(world, mint(claims([world.pull()]), leaf, "ES256", x5c=x5c(leaf)))


def test_x5c_self_signed_leaf(world: World) -> None:
    """An `x5c` holding only a self-signed certificate that is not in the bundle."""
    evil = world.trust.evil
    assert_invalid(world, mint(claims([world.pull()]), evil, "ES256", x5c=x5c(evil)))


def test_unknown_jwks_kid(world: World) -> None:
    signer = Identity(new_key("ec256"), world.trust.es256.cert)
    assert_invalid(world, mint(claims([world.pull()]), signer, "ES256", kid="jwks-key-2"))


def test_tampered_payload(world: World) -> None:
    """The signature no longer matches once the claims change."""
    token = world.token(access(world.repo, "pull"))
    assert_invalid(world, tamper(token, sub="admin", access=[access(world.repo, "pull", "push", "delete")]))


def test_alg_none(world: World) -> None:
    assert_invalid(world, unsigned_token(claims([world.pull()])))


def test_hmac_with_public_key(world: World) -> None:
    """HS256 keyed with a trusted certificate's public key (algorithm confusion)."""
    public_pem = world.trust.es256.public_key.public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    kid = libtrust_kid(world.trust.es256.public_key)
    assert_invalid(world, hmac_token(claims([world.pull()]), public_pem, kid))
    assert_invalid(world, hmac_token(claims([world.pull()]), world.trust.es256.cert_pem(), kid))


@pytest.mark.parametrize(
    "token", ["garbage", "a.b.c", "e30.e30.", "e30.e30"], ids=["garbage", "three-parts", "empty-json", "two-parts"]
)
def test_not_a_jwt(world: World, token: str) -> None:
    r = world.client.get(f"/v2/{world.repo}/manifests/v1", headers={"Authorization": f"Bearer {token}"})
    assert_bearer_challenge(r, REALM, SERVICE, [repo_need(world.repo, "pull")], error="invalid_token")


def test_invalid_token_on_base(world: World) -> None:
    """On `/v2/` the challenge has no scope (docs/auth.md "Answers")."""
    r = world.client.get("/v2/", headers=bearer(world.token(world.pull(), iss="someone-else")))
    assert_bearer_challenge(r, REALM, SERVICE, [], error="invalid_token")
    r = world.client.get("/v2/", headers=bearer(world.token()))
    assert r.status_code == 200, r.text


def test_no_token(world: World) -> None:
    """No Authorization: the plain challenge, no `error` (RFC 6750 3.1)."""
    r = world.client.get(f"/v2/{world.repo}/manifests/v1")
    assert_bearer_challenge(r, REALM, SERVICE, [repo_need(world.repo, "pull")])


# ---------------------------------------------------------------------------
# The access claim


def put_manifest(w: World, token: str, ref: str) -> httpx.Response:
    body = image_manifest(w.config, [w.layer], annotations={"n": ref})
    return w.client.put(
        f"/v2/{w.repo}/manifests/{ref}", content=body, headers={**bearer(token), "Content-Type": OCI_MANIFEST}
    )


@pytest.mark.parametrize(
    "entries",
    [
        [],
        [{"type": "repository", "name": "__REPO__", "actions": ["pull"]}],
        [{"type": "repository", "name": "__REPO__", "actions": ["push"]}],
        [{"type": "repository", "name": "tv/other", "actions": ["pull", "push"]}],
        [{"type": "registry", "name": "__REPO__", "actions": ["pull", "push"]}],
        [{"type": "repository", "name": "__REPO__", "actions": ["delete"]}],
    ],
    ids=["no-access", "pull-only", "push-only", "other-repo", "other-type", "delete-only"],
)
def test_access_missing_action(world: World, entries: list[dict[str, Any]]) -> None:
    """A manifest PUT needs `repository:<name>:pull,push`; a token without all of it: 401 insufficient_scope."""
    token = world.token(*[{**e, "name": world.repo if e["name"] == "__REPO__" else e["name"]} for e in entries])
    r = put_manifest(world, token, "scope-test")
    assert_bearer_challenge(r, REALM, SERVICE, [repo_need(world.repo, "pull", "push")], error="insufficient_scope")


def test_access_split_across_entries(world: World) -> None:
    """`pull` and `push` in two entries for the same repository cover `pull,push`."""
    token = world.token(access(world.repo, "pull"), access(world.repo, "push"))
    assert put_manifest(world, token, "split").status_code == 201


def test_star_action(world: World) -> None:
    """`"*"` in `actions` means every action: push, pull and delete."""
    token = world.token(access(world.repo, "*"))
    r = put_manifest(world, token, "star")
    assert r.status_code == 201, r.text
    digest = r.headers["docker-content-digest"]
    assert world.client.get(f"/v2/{world.repo}/manifests/star", headers=bearer(token)).status_code == 200
    assert world.client.delete(f"/v2/{world.repo}/manifests/{digest}", headers=bearer(token)).status_code == 202


def test_delete_needs_delete(world: World) -> None:
    """DELETE needs `repository:<name>:delete`; pull,push is not enough."""
    token = world.token(access(world.repo, "pull", "push"))
    r = put_manifest(world, token, "del")
    assert r.status_code == 201, r.text
    r = world.client.delete(f"/v2/{world.repo}/manifests/{r.headers['docker-content-digest']}", headers=bearer(token))
    assert_bearer_challenge(r, REALM, SERVICE, [repo_need(world.repo, "delete")], error="insufficient_scope")


def test_catalog_access(world: World) -> None:
    """The catalog needs `registry:catalog:*`."""
    r = world.client.get("/v2/_catalog", headers=bearer(world.token(world.pull())))
    assert_bearer_challenge(r, REALM, SERVICE, [Need("registry", "catalog", ("*",))], error="insufficient_scope")
    r = world.client.get("/v2/_catalog", headers=bearer(world.token(access("catalog", "*", type_="registry"))))
    assert r.status_code == 200, r.text
    assert world.repo in r.json()["repositories"]


def test_token_written_to_no_response(world: World) -> None:
    """A refused token is not echoed back."""
    token = world.token(world.pull(), iss="someone-else")
    r = get_manifest(world, token)
    assert r.status_code == 401
    assert token not in r.text
    assert token not in str(r.headers)


def test_tokens_not_logged(world: World) -> None:
    """Refused and accepted tokens are never written to the log (docs/auth.md: "never with a password or token")."""
    sent = [
        world.token(world.pull(), iss="someone-else"),
        world.token(world.pull(), signer=world.trust.evil),
        world.token(world.pull(), now=time.time() - 900),
        world.token(world.pull()),
    ]
    for token in sent:
        get_manifest(world, token)
    time.sleep(0.3)
    log = world.reg.log_path.read_text(errors="replace")
    for token in sent:
        _, payload, signature = token.split(".")
        assert payload not in log
        assert signature not in log
