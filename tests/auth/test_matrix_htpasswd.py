"""Every route and method against `htpasswd`, with a policy and without one (docs/auth.md).

Answers: no credentials or wrong ones: 401 `UNAUTHORIZED` with `WWW-Authenticate: Basic realm="<realm>"`
(and, without credentials, the needed access in `detail`); authenticated but not allowed: 403 `DENIED`
(Docker Registry API "Access Denied", OCI `DENIED`); allowed: the route's own success status.
"""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import pytest

from tests.auth.routes import MATRIX_USERS, ROUTES, BasicAdmin, Route, Stage, allowed
from tests.auth.support import USERS, WRONG_PASSWORD, assert_basic_challenge, assert_detail, assert_error, basic
from tests.conftest import Registry


@pytest.fixture(scope="module")
def policy_stage(htpasswd_registry: Registry) -> Iterator[Stage]:
    with httpx.Client(base_url=htpasswd_registry.url, timeout=30.0) as client:
        yield Stage(client, BasicAdmin())


@pytest.fixture(scope="module")
def open_stage(open_htpasswd_registry: Registry) -> Iterator[Stage]:
    with httpx.Client(base_url=open_htpasswd_registry.url, timeout=30.0) as client:
        yield Stage(client, BasicAdmin("puller"))


def credentials(who: str) -> dict[str, str]:
    if who == "anonymous":
        return {}
    if who == "wrong-password":
        return basic("pusher", WRONG_PASSWORD)
    return basic(who, USERS[who])


@pytest.mark.parametrize("who", MATRIX_USERS)
@pytest.mark.parametrize("route", ROUTES, ids=lambda r: r.id)
def test_policy_matrix(policy_stage: Stage, route: Route, who: str) -> None:
    """With a policy: 401 + Basic challenge without valid credentials, 403 DENIED when the policy does not
    grant the route's access (table "What each route needs"), the route's success status when it does. A
    refused write changes nothing; an allowed one makes its change."""
    call = route.prepare(policy_stage)
    before = call.snapshot()
    r = call.send(policy_stage.client, credentials(who))
    ok = who not in ("anonymous", "wrong-password") and allowed(who, call)
    if who in ("anonymous", "wrong-password"):
        assert_basic_challenge(r)
        if who == "anonymous":
            assert_detail(r, call.needs, call.optional)
    elif ok:
        call.check_allowed(r)
    else:
        assert_error(r, 403, "DENIED")
    call.check_state(before, ok, r)


@pytest.mark.parametrize("who", ["anonymous", "wrong-password", "cataloger"])
@pytest.mark.parametrize("route", ROUTES, ids=lambda r: r.id)
def test_no_policy_matrix(open_stage: Stage, route: Route, who: str) -> None:
    """Without `policy`, every authenticated user may do everything (Docker Distribution's behaviour); the
    others get 401 with the Basic challenge, and their writes change nothing."""
    call = route.prepare(open_stage)
    before = call.snapshot()
    r = call.send(open_stage.client, credentials(who))
    refused = who in ("anonymous", "wrong-password")
    if refused:
        assert_basic_challenge(r)
        if who == "anonymous":
            assert_detail(r, call.needs, call.optional)
    else:
        call.check_allowed(r)
    call.check_state(before, not refused, r)
