"""Access to what lies below a path in GitLab's API v1, and to the web UI's pages, under each controller.

GitLab's rule: a size with descendants, and the list of repositories under a path, need `pull` on
`<path>/*`; Portside also accepts the catalog (`registry:catalog:*`), which sees every name. The UI's pages
need what the same data needs through `/v2/` (docs/auth.md); a browser signs in with Basic credentials, which
with `token` authentication become a token from the token server, scoped down by its policy.
"""

from __future__ import annotations

import base64
import re
from collections.abc import Iterator

import httpx
import pytest

from tests.auth.routes import BasicAdmin, Stage, TokenAdmin
from tests.auth.support import BASIC_REALM, SERVICE, USERS, WRONG_PASSWORD, assert_error, basic
from tests.conftest import Registry


@pytest.fixture(scope="module")
def stage(htpasswd_registry: Registry) -> Iterator[Stage]:
    with httpx.Client(base_url=htpasswd_registry.url, timeout=30.0) as client:
        yield Stage(client, BasicAdmin())


@pytest.fixture(scope="module")
def token_stage(token_registry: Registry, token_realm: str) -> Iterator[Stage]:
    with httpx.Client(base_url=token_registry.url, timeout=30.0) as client:
        yield Stage(client, TokenAdmin(client, token_realm, SERVICE))


def as_user(who: str) -> dict[str, str]:
    return basic(who, USERS[who])


def assert_sign_in_page(r: httpx.Response, realm: str, stage: Stage, login: bool = False) -> None:
    """401 and a page that shows nothing stored but a link to sign in; that link's page (`login`) carries the
    Basic challenge, so the browser asks for credentials there (and sends them below its path after)."""
    assert r.status_code == 401, r.text[:300]
    challenge = f'Basic realm="{realm}"' if login else 'Portside realm="sign in at the login page"'
    assert r.headers["WWW-Authenticate"] == challenge
    assert r.headers["Content-Type"].startswith("text/html")
    assert "Sign in" in r.text
    assert re.search(r'href="/login\?next=[^"]+"', r.text), r.text
    assert stage.repo not in r.text
    assert stage.manifest_digest not in r.text
    assert stage.manifest_digest.split(":")[1][:12] not in r.text


# ---------------------------------------------------------------------------------------------- GitLab, below a path


def test_descendants_need_pull_below_the_path_or_the_catalog(stage: Stage) -> None:
    """`puller` may pull `m/**`, so `m/<id>/*` too; `patterns` may pull `team/*` but nothing below it; the
    administrators' group has the catalog."""
    team = "team/ui"
    stage.push_blob(team, stage.config)
    stage.push_blob(team, stage.layer)
    stage.put_manifest(team, "v1", stage.manifest)
    client = stage.client
    own = client.get(f"/gitlab/v1/repositories/{team}/", params={"size": "self"}, headers=as_user("patterns"))
    assert own.status_code == 200, own.text
    below = client.get(
        f"/gitlab/v1/repositories/{team}/", params={"size": "self_with_descendants"}, headers=as_user("patterns")
    )
    assert_error(below, 403, "DENIED")
    listing = client.get(f"/gitlab/v1/repository-paths/{team}/repositories/list/", headers=as_user("patterns"))
    assert_error(listing, 403, "DENIED")

    for who, path in (("puller", stage.repo), ("admin", team)):
        r = client.get(
            f"/gitlab/v1/repositories/{path}/", params={"size": "self_with_descendants"}, headers=as_user(who)
        )
        assert r.status_code == 200, (who, r.text)
        r = client.get(f"/gitlab/v1/repository-paths/{path}/repositories/list/", headers=as_user(who))
        assert r.status_code == 200, (who, r.text)
        assert [e["path"] for e in r.json()] == [path]


# ---------------------------------------------------------------------------------------------- the UI with htpasswd


@pytest.mark.parametrize("page", ["/", "/storage", "/repositories/{repo}", "/repositories/{repo}/-/manifests/v1"])
def test_ui_shows_nothing_before_signing_in(stage: Stage, page: str) -> None:
    r = stage.client.get(page.format(repo=stage.repo))
    assert_sign_in_page(r, BASIC_REALM, stage)
    wrong = stage.client.get(page.format(repo=stage.repo), headers=basic("puller", WRONG_PASSWORD))
    assert_sign_in_page(wrong, BASIC_REALM, stage)


def test_ui_login_challenges_then_returns_home(stage: Stage) -> None:
    assert_sign_in_page(stage.client.get("/login"), BASIC_REALM, stage, login=True)
    wrong = stage.client.get("/login", headers=basic("puller", WRONG_PASSWORD))
    assert_sign_in_page(wrong, BASIC_REALM, stage, login=True)
    r = stage.client.get("/login", params={"next": f"/repositories/{stage.repo}"}, headers=as_user("puller"))
    assert r.status_code == 303
    assert r.headers["Location"] == f"/repositories/{stage.repo}"
    elsewhere = stage.client.get("/login", params={"next": "https://example.com/"}, headers=as_user("puller"))
    assert elsewhere.headers["Location"] == "/"


def test_ui_pages_follow_the_policy(stage: Stage) -> None:
    client, repo = stage.client, stage.repo
    page = client.get(f"/repositories/{repo}", headers=as_user("puller"))
    assert page.status_code == 200
    assert "v1" in page.text
    assert "/-/delete" not in page.text  # no delete offered without the right to it
    denied = client.get("/", headers=as_user("puller"))  # the catalog is not the puller's
    assert denied.status_code == 403
    assert repo not in denied.text
    assert "Not allowed" in denied.text
    admin = client.get(f"/repositories/{repo}", headers=as_user("admin"))
    assert f"/repositories/{repo}/-/delete?tag=v1" in admin.text
    home = client.get("/", headers=as_user("admin"))
    assert home.status_code == 200
    assert f'href="/repositories/{repo}"' in home.text
    # Deleting needs delete, and pull to see what goes.
    assert (
        client.get(f"/repositories/{repo}/-/delete", params={"tag": "v1"}, headers=as_user("deleter")).status_code
        == 403
    )
    assert (
        client.get(f"/repositories/{repo}/-/delete", params={"tag": "v1"}, headers=as_user("puller")).status_code == 403
    )


def test_ui_delete_is_accepted_from_its_own_pages_only(stage: Stage) -> None:
    client, repo = stage.client, stage.repo
    stage.put_manifest(repo, "doomed", stage.manifest)
    form = {"tag": "doomed"}
    url = f"/repositories/{repo}/-/delete"
    confirm = client.get(url, params=form, headers=as_user("admin"))
    assert confirm.status_code == 200
    assert "Delete tag doomed?" in confirm.text
    forged = client.post(url, data=form, headers={**as_user("admin"), "Origin": "https://evil.example"})
    assert forged.status_code == 403
    cross = client.post(url, data=form, headers={**as_user("admin"), "Sec-Fetch-Site": "cross-site"})
    assert cross.status_code == 403
    assert client.head(f"/v2/{repo}/manifests/doomed", headers=as_user("admin")).status_code == 200
    origin = f"http://{client.base_url.host}:{client.base_url.port}"
    done = client.post(url, data=form, headers={**as_user("admin"), "Origin": origin, "Sec-Fetch-Site": "same-origin"})
    assert done.status_code == 303
    assert done.headers["Location"] == f"/repositories/{repo}?deleted=doomed"
    assert client.head(f"/v2/{repo}/manifests/doomed", headers=as_user("admin")).status_code == 404
    again = client.post(url, data=form, headers={**as_user("admin"), "Origin": origin})
    assert again.status_code == 404
    assert again.headers["Content-Type"].startswith("text/html")


def test_ui_static_files_need_no_credentials(stage: Stage) -> None:
    page = stage.client.get("/")
    stylesheet = re.search(r'href="(/-/static/app\.css\?v=[0-9a-f]+)"', page.text)
    assert stylesheet is not None, page.text
    css = stage.client.get(stylesheet[1])
    assert css.status_code == 200
    assert css.headers["Content-Type"].startswith("text/css")
    assert "immutable" in css.headers["Cache-Control"]
    assert stage.client.get("/-/static/nothing.js").status_code == 404


# ---------------------------------------------------------------------------------------------- the UI with tokens


def test_ui_with_token_auth_signs_in_through_the_token_server(token_stage: Stage) -> None:
    """The browser's Basic credentials become a token with the page's scopes (and delete), which the policy
    scopes down: `puller` sees the repository but no delete button and no catalog; `admin` sees all."""
    client, repo = token_stage.client, token_stage.repo
    assert_sign_in_page(client.get(f"/repositories/{repo}"), SERVICE, token_stage)
    assert_sign_in_page(
        client.get(f"/repositories/{repo}", headers=basic("puller", WRONG_PASSWORD)), SERVICE, token_stage
    )
    page = client.get(f"/repositories/{repo}", headers=as_user("puller"))
    assert page.status_code == 200, page.text[:300]
    assert "v1" in page.text
    assert "/-/delete" not in page.text
    manifest = client.get(f"/repositories/{repo}/-/manifests/v1", headers=as_user("puller"))
    assert manifest.status_code == 200
    assert "application/vnd.example.signature" in manifest.text  # the referrer
    assert client.get("/", headers=as_user("puller")).status_code == 403
    assert client.get(f"/repositories/{repo}", headers=as_user("cataloger")).status_code == 403
    home = client.get("/", headers=as_user("admin"))
    assert home.status_code == 200
    assert f'href="/repositories/{repo}"' in home.text
    assert "/-/delete" in client.get(f"/repositories/{repo}", headers=as_user("admin")).text
    # A token in the browser's place is no Basic credential: the page asks for one.
    bearer = {"Authorization": "Bearer " + base64.b64encode(b"not-a-token").decode()}
    assert client.get(f"/repositories/{repo}", headers=bearer).status_code == 401
