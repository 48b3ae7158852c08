"""The policy file at the registry (docs/auth.md "The policy file", "Answers"), with `htpasswd`, and what a
refused request reveals, with `htpasswd` and `token`.

Rules of support.POLICY used here: `pushonly` may only push `po/**`; `robot` gets push from group `ci` and
pull from its own rule on `ci/**`; `patterns` may pull `team/*`, `deep/**`, `q/?`; any user may pull
`shared/**`; `anonymous` may pull `public/**`.
"""

from __future__ import annotations

import os
from collections.abc import Iterator

import httpx
import pytest

from tests.auth.routes import BasicAdmin, Stage, TokenAdmin
from tests.auth.support import (
    OCI_MANIFEST,
    SERVICE,
    USERS,
    WRONG_PASSWORD,
    assert_basic_challenge,
    assert_bearer_challenge,
    assert_detail,
    assert_error,
    basic,
    repo_need,
    sha256,
    unique,
)
from tests.conftest import Registry


@pytest.fixture(scope="module")
def client(htpasswd_registry: Registry) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=htpasswd_registry.url, timeout=30.0) as c:
        yield c


def as_user(user: str) -> dict[str, str]:
    return basic(user, USERS[user])


def test_push_does_not_imply_pull(client: httpx.Client) -> None:
    """`push` alone does not give `pull`: an upload (needs pull,push) and a read are 403 DENIED."""
    repo = unique("po")
    assert_error(client.post(f"/v2/{repo}/blobs/uploads/", headers=as_user("pushonly")), 403, "DENIED")
    assert_error(client.get(f"/v2/{repo}/tags/list", headers=as_user("pushonly")), 403, "DENIED")


def test_union_of_rules(client: httpx.Client) -> None:
    """A user gets the union of every matching rule: push through group `ci`, pull through its own rule."""
    r = client.post(f"/v2/{unique('ci')}/blobs/uploads/", headers=as_user("robot"))
    assert r.status_code == 202, r.text


@pytest.mark.parametrize(
    ("repo", "allowed"),
    [
        ("team/a", True),
        ("team/a/b", False),
        ("deep/a/b/c", True),
        ("deep/a", True),
        ("q/a", True),
        ("q/ab", False),
        ("q", False),
        ("teamx/a", False),
    ],
)
def test_repository_patterns(client: httpx.Client, repo: str, allowed: bool) -> None:
    """`*` matches within one path component, `**` across components, `?` one character. Allowed reads of a
    repository that does not exist get the handler's 404 NAME_UNKNOWN; refused ones 403 DENIED."""
    r = client.get(f"/v2/{repo}/tags/list", headers=as_user("patterns"))
    if allowed:
        assert_error(r, 404, "NAME_UNKNOWN")
    else:
        assert_error(r, 403, "DENIED")


def test_any_authenticated_subject(client: httpx.Client) -> None:
    """Subject `*` is any authenticated user, not an anonymous one."""
    assert_error(client.get("/v2/shared/x/tags/list", headers=as_user("puller")), 404, "NAME_UNKNOWN")
    assert_basic_challenge(client.get("/v2/shared/x/tags/list"))


@pytest.fixture(scope="module")
def public_stage(client: httpx.Client) -> Stage:
    return Stage(client, BasicAdmin(), prefix="public")


def test_anonymous_subject_may_pull(public_stage: Stage) -> None:
    """Subject `anonymous` (requests without credentials) may pull `public/**` without credentials."""
    c = public_stage.client
    r = c.get(f"/v2/{public_stage.repo}/manifests/v1", headers={"Accept": OCI_MANIFEST})
    assert r.status_code == 200, r.text
    assert r.content == public_stage.manifest
    assert c.get(f"/v2/{public_stage.repo}/tags/list").json()["tags"] == ["v1"]


def test_anonymous_may_not_push_public(public_stage: Stage) -> None:
    """Without credentials where some are needed (push): 401 with the challenge and the needed access."""
    r = public_stage.client.post(f"/v2/{public_stage.repo}/blobs/uploads/")
    assert_basic_challenge(r)
    assert_detail(r, [repo_need(public_stage.repo, "pull", "push")])


def test_authenticated_user_without_rule_for_public(public_stage: Stage) -> None:
    """The `anonymous` rule is for requests without credentials; `pusher` has no rule for `public/**`."""
    r = public_stage.client.get(f"/v2/{public_stage.repo}/tags/list", headers=as_user("pusher"))
    assert_error(r, 403, "DENIED")


# ---------------------------------------------------------------------------
# A refused request reveals nothing


def _same_refusal(a: httpx.Response, b: httpx.Response) -> None:
    assert (a.status_code, a.headers.get("www-authenticate") is not None) == (
        b.status_code,
        b.headers.get("www-authenticate") is not None,
    )
    assert [e["code"] for e in a.json()["errors"]] == [e["code"] for e in b.json()["errors"]]
    assert {k.lower() for k in a.headers} - {"date", "content-length"} == {k.lower() for k in b.headers} - {
        "date",
        "content-length",
    }


@pytest.mark.parametrize("who", ["anonymous", "wrong-password", "deleter"])
def test_htpasswd_refusal_does_not_reveal_existence(client: httpx.Client, who: str) -> None:
    """Refused requests for an existing repository, manifest and blob are answered like those for missing
    ones: 401 for missing or wrong credentials, 403 DENIED (never 404) for a user without pull."""
    stage = Stage(client, BasicAdmin())
    headers = {} if who == "anonymous" else basic("deleter", WRONG_PASSWORD if who == "wrong-password" else USERS[who])
    missing_repo = stage.fresh_repo()
    layer = "sha256:" + os.urandom(32).hex()
    pairs = [
        (f"/v2/{stage.repo}/manifests/v1", f"/v2/{missing_repo}/manifests/v1"),
        (f"/v2/{stage.repo}/manifests/v1", f"/v2/{stage.repo}/manifests/nope"),
        (f"/v2/{stage.repo}/blobs/{sha256(stage.layer)}", f"/v2/{stage.repo}/blobs/{layer}"),
        (f"/v2/{stage.repo}/tags/list", f"/v2/{missing_repo}/tags/list"),
    ]
    for existing, missing in pairs:
        a, b = client.get(existing, headers=headers), client.get(missing, headers=headers)
        assert a.status_code == (403 if who == "deleter" else 401), a.text
        _same_refusal(a, b)


@pytest.fixture(scope="module")
def token_client(token_registry: Registry) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=token_registry.url, timeout=30.0) as c:
        yield c


def test_token_refusal_does_not_reveal_existence(token_client: httpx.Client, token_realm: str) -> None:
    """With token auth, no token or a token without pull gets the same 401 whether the content exists or not."""
    stage = Stage(token_client, TokenAdmin(token_client, token_realm, SERVICE))
    missing_repo = stage.fresh_repo()
    for repo in (stage.repo, missing_repo):
        r = token_client.get(f"/v2/{repo}/manifests/v1")
        assert_bearer_challenge(r, token_realm, SERVICE, [repo_need(repo, "pull")])
        deleter = TokenAdmin(token_client, token_realm, SERVICE, user="deleter").headers(repo)
        r = token_client.get(f"/v2/{repo}/manifests/v1", headers=deleter)
        assert_bearer_challenge(r, token_realm, SERVICE, [repo_need(repo, "pull")], error="insufficient_scope")
