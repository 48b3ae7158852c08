"""The `silly` controller (docs/auth.md): any request with an `Authorization` header passes; one without gets
401 `UNAUTHORIZED` with `WWW-Authenticate: Bearer realm="<realm>",service="<service>",scope="<scope>"`."""

from __future__ import annotations

import os
from collections.abc import Iterator

import httpx
import pytest

from tests.auth.routes import ROUTES, AdminAuth, Route, Stage
from tests.auth.support import assert_bearer_challenge, assert_detail, launch
from tests.conftest import Registry

REALM = "https://auth.silly.test/token"
SERVICE = "silly.test"
ANY_AUTH = {"Authorization": "Bearer not-even-a-token"}


class AnyHeader(AdminAuth):
    def headers(self, repo: str | None) -> dict[str, str]:
        return ANY_AUTH


@pytest.fixture(scope="module")
def silly(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Registry]:
    reg = launch(tmp_path_factory.mktemp("silly"), {"auth": {"silly": {"realm": REALM, "service": SERVICE}}})
    yield reg
    reg.stop()


@pytest.fixture(scope="module")
def stage(silly: Registry) -> Iterator[Stage]:
    with httpx.Client(base_url=silly.url, timeout=30.0) as client:
        yield Stage(client, AnyHeader())


@pytest.mark.parametrize("route", ROUTES, ids=lambda r: r.id)
def test_without_authorization(stage: Stage, route: Route) -> None:
    """No `Authorization`: the Bearer challenge with the route's scope (none on `/v2/`) and the needed access
    in `detail`."""
    call = route.prepare(stage)
    r = call.send(stage.client)
    assert_bearer_challenge(r, REALM, SERVICE, call.needs, optional=call.optional)
    assert_detail(r, call.needs, call.optional)


@pytest.mark.parametrize(
    "authorization", ["Bearer not-even-a-token", "Basic Zm9vOmJhcg==", "whatever"], ids=["bearer", "basic", "other"]
)
@pytest.mark.parametrize("route", ROUTES, ids=lambda r: r.id)
def test_with_any_authorization(stage: Stage, route: Route, authorization: str) -> None:
    """Any `Authorization` header: the route answers as without access control."""
    call = route.prepare(stage)
    r = call.send(stage.client, {"Authorization": authorization})
    call.check_allowed(r)


def test_content_round_trip(stage: Stage) -> None:
    """A blob pushed with a header is read back with another."""
    repo = stage.fresh_repo()
    data = os.urandom(100)
    digest = stage.push_blob(repo, data)
    r = stage.client.get(f"/v2/{repo}/blobs/{digest}", headers={"Authorization": "x"})
    assert r.status_code == 200
    assert r.content == data
