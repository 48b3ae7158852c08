"""`htpasswd` specifics (docs/auth.md "htpasswd"): bcrypt only, the file re-read when it changes, and secrets
kept out of answers and logs ("Failed logins are logged with the user name, the remote address and the
reason, never with a password or token")."""

from __future__ import annotations

import base64
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.auth.support import (
    assert_basic_challenge,
    assert_failed_login_logged,
    assert_not_in_log,
    basic,
    bcrypt_line,
    htpasswd_config,
    info_logging,
    launch,
    openssl_passwd,
    sha_htpasswd,
    write_htpasswd,
)
from tests.conftest import Registry, RegistryFactory, deep_merge

LEGACY = {
    "md5user": "apr1-Secret-1",
    "shauser": "sha1-Secret-2",
    "plainuser": "plain-Secret-3",
    "cryptuser": "sha512crypt-Secret-4",
}
LOCAL = {"alpha": "alpha-Secret-5", "logger": "logger-Secret-6", "colon": "pass:with:colons"}


@pytest.fixture(scope="module")
def legacy(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Registry]:
    """An htpasswd file mixing one bcrypt entry with other formats, comments and junk."""
    workdir = tmp_path_factory.mktemp("htpasswd-legacy")
    extra = [
        f"md5user:{openssl_passwd('-apr1', LEGACY['md5user'])}",
        f"shauser:{sha_htpasswd(LEGACY['shauser'])}",
        f"plainuser:{LEGACY['plainuser']}",
        f"cryptuser:{openssl_passwd('-6', LEGACY['cryptuser'])}",
        "# a comment",
        "",
        "no-colon-here",
    ]
    path = write_htpasswd(workdir / "htpasswd", LOCAL, extra)
    reg = launch(workdir, deep_merge(info_logging(), htpasswd_config(path)))
    yield reg
    reg.stop()


@pytest.fixture(scope="module")
def client(legacy: Registry) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=legacy.url, timeout=30.0, headers={"User-Agent": "auth-tests"}) as c:
        yield c


def test_bcrypt_entry_accepted(client: httpx.Client) -> None:
    """A `$2y$` bcrypt entry (as `htpasswd -B` writes it) authenticates."""
    assert client.get("/v2/", headers=basic("alpha", LOCAL["alpha"])).status_code == 200


def test_password_with_colons(client: httpx.Client) -> None:
    """Basic credentials split at the first colon only (RFC 7617): a password may contain colons."""
    assert client.get("/v2/", headers=basic("colon", LOCAL["colon"])).status_code == 200
    assert_basic_challenge(client.get("/v2/", headers=basic("colon", "pass")))


@pytest.mark.parametrize("user", sorted(LEGACY))
def test_non_bcrypt_entries_ignored(client: httpx.Client, user: str) -> None:
    """Only bcrypt entries are accepted; other lines are ignored (the server still starts): right password,
    still 401 with the Basic challenge."""
    assert_basic_challenge(client.get("/v2/", headers=basic(user, LEGACY[user])))


def test_ignored_lines_are_warned_about(legacy: Registry) -> None:
    """Non-bcrypt lines are "ignored with a warning": the log names each ignored entry."""
    log = legacy.log_path.read_text(errors="replace")
    for user in LEGACY:
        assert any(user in line for line in log.splitlines()), f"no warning about {user}:\n{log[-2000:]}"


def test_unknown_user_answered_like_wrong_password(client: httpx.Client) -> None:
    """An unknown user and a wrong password get the same answer."""
    wrong = client.get("/v2/", headers=basic("alpha", "not-it"))
    unknown = client.get("/v2/", headers=basic("nobody-here", "not-it"))
    assert_basic_challenge(wrong)
    assert_basic_challenge(unknown)
    assert wrong.json() == unknown.json()


@pytest.mark.parametrize(
    "header", ["Basic", "Basic !!!", "Basic " + base64.b64encode(b"no-colon").decode(), "Bearer x"]
)
def test_malformed_authorization(client: httpx.Client, header: str) -> None:
    """Credentials that cannot be read are no credentials: 401 with the Basic challenge."""
    assert_basic_challenge(client.get("/v2/", headers={"Authorization": header}))


def test_secrets_not_in_answers(client: httpx.Client) -> None:
    """A wrong password never comes back in the body or headers of the answer."""
    secret = "Leak-Me-Not-0f3a9c"
    creds = basic("alpha", secret)
    for method, path in [("GET", "/v2/"), ("GET", "/v2/x/y/manifests/latest"), ("POST", "/v2/x/y/blobs/uploads/")]:
        r = client.request(method, path, headers=creds)
        assert r.status_code == 401
        text = r.text + str(r.headers)
        assert secret not in text
        assert creds["Authorization"].split()[1] not in text


def test_log_records_failed_login_without_secrets(legacy: Registry, client: httpx.Client) -> None:
    """A failed login is logged with the user name and the remote address; no password (right or wrong) and
    no Authorization value is logged."""
    wrong = "Wrong-For-Logger-7d1e"
    offset = len(legacy.log_path.read_text(errors="replace"))
    assert client.get("/v2/", headers=basic("logger", wrong)).status_code == 401
    assert_failed_login_logged(legacy, offset, "logger")
    assert client.get("/v2/_catalog", headers=basic("logger", LOCAL["logger"])).status_code == 200
    secrets = [wrong, *LOCAL.values(), *LEGACY.values()]
    secrets += [basic("logger", p)["Authorization"].split()[1] for p in (wrong, LOCAL["logger"])]
    assert_not_in_log(legacy, secrets)


# ---------------------------------------------------------------------------
# Reloading the file


def wait_for(reg: Registry, user: str, password: str, status: int, timeout: float = 30.0) -> None:
    """Until `status` is answered, then on six fresh connections in a row (every worker re-read the file); the
    deadline only bounds how long a state that never comes is waited for."""
    deadline = time.monotonic() + timeout
    streak = 0
    last = 0
    while time.monotonic() < deadline:
        r = httpx.get(f"{reg.url}/v2/", headers={**basic(user, password), "Connection": "close"}, timeout=10.0)
        last = r.status_code
        streak = streak + 1 if last == status else 0
        if streak >= 6:
            return
        time.sleep(0.1)
    raise AssertionError(f"{user}: still {last}, want {status} after {timeout}s")


def test_file_reread_when_changed(registry_factory: RegistryFactory, tmp_path: Path) -> None:
    """The htpasswd file is read again when it changes: an added user can log in, a removed one cannot, a
    changed password takes effect (on every worker)."""
    path = tmp_path / "htpasswd"
    users = {"first": "first-Pw-1"}
    write_htpasswd(path, users)
    reg = registry_factory(htpasswd_config(path), workers=2)
    wait_for(reg, "first", "first-Pw-1", 200)
    wait_for(reg, "second", "second-Pw-2", 401)

    path.write_text(path.read_text() + bcrypt_line("second", "second-Pw-2") + "\n")
    wait_for(reg, "second", "second-Pw-2", 200)

    path.write_text(bcrypt_line("second", "second-Pw-2") + "\n")
    wait_for(reg, "first", "first-Pw-1", 401)
    wait_for(reg, "second", "second-Pw-2", 200)

    path.write_text(bcrypt_line("second", "second-Pw-3") + "\n")
    wait_for(reg, "second", "second-Pw-3", 200)
    wait_for(reg, "second", "second-Pw-2", 401)
