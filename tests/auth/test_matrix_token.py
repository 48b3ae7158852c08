"""Every route and method against `token` auth with the built-in token server, driven as a client would.

Each cell first calls the route without a token and reads the challenge (token.md "How to authenticate"),
asks the realm for a token for the challenge's scopes with the user's credentials (token.md "Requesting a
Token"), then calls the route again with it. Answers (docs/auth.md): without a token, 401 `UNAUTHORIZED`
with `Bearer realm,service,scope`; a token that lacks the access, 401 with `error="insufficient_scope"`;
wrong credentials are refused by the token server (401 with `Basic realm="<service>"`).
"""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import pytest

from tests.auth.routes import MATRIX_USERS, ROUTES, Route, Stage, TokenAdmin, allowed
from tests.auth.support import (
    SERVICE,
    WRONG_PASSWORD,
    assert_bearer_challenge,
    assert_detail,
    assert_error,
    bearer,
    fetch_token,
    parse_challenge,
    token_of,
)
from tests.conftest import Registry


@pytest.fixture(scope="module")
def stage(token_registry: Registry, token_realm: str) -> Iterator[Stage]:
    with httpx.Client(base_url=token_registry.url, timeout=30.0) as client:
        yield Stage(client, TokenAdmin(client, token_realm, SERVICE))


@pytest.mark.parametrize("who", MATRIX_USERS)
@pytest.mark.parametrize("route", ROUTES, ids=lambda r: r.id)
def test_token_matrix(stage: Stage, token_realm: str, route: Route, who: str) -> None:
    """Challenge without a token; a token scoped down by the policy; the route's success status when the token
    covers its access, else 401 `insufficient_scope` naming the needed scope. A refused write changes
    nothing; an allowed one makes its change."""
    call = route.prepare(stage)
    before = call.snapshot()
    first = call.send(stage.client)
    challenge = assert_bearer_challenge(first, token_realm, SERVICE, call.needs, optional=call.optional)
    assert_detail(first, call.needs, call.optional)
    call.check_state(before, False, first)

    _, params = parse_challenge(first.headers["www-authenticate"])
    scopes = params["scope"].split(" ") if "scope" in params else []
    if call.mount_source and f"repository:{call.mount_source}:pull" not in scopes:
        scopes.append(f"repository:{call.mount_source}:pull")  # as docker asks before a cross-repository mount

    if who == "wrong-password":
        refused = fetch_token(stage.client, challenge["realm"], challenge["service"], scopes, "pusher", WRONG_PASSWORD)
        assert_error(refused, 401, "UNAUTHORIZED")
        assert refused.headers.get("www-authenticate") == f'Basic realm="{SERVICE}"', refused.headers
        return
    user = None if who == "anonymous" else who
    token = token_of(fetch_token(stage.client, challenge["realm"], challenge["service"], scopes, user))
    r = call.send(stage.client, bearer(token))
    ok = not call.needs or (user is not None and allowed(user, call))
    if ok:
        call.check_allowed(r)
    else:
        assert_bearer_challenge(r, token_realm, SERVICE, call.needs, error="insufficient_scope", optional=call.optional)
    call.check_state(before, ok, r)
