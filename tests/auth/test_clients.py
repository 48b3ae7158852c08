"""Real clients with credentials: `tests/clients/smoke.sh` (skopeo, podman, buildah, the docker CLI, oras-py)
with `REG_USER`/`REG_PASS` against `htpasswd` (Basic) and against the built-in token server (Bearer).
Every check must pass, none skipped."""

from __future__ import annotations

import pytest

from tests.auth.conftest import AuthFiles
from tests.auth.support import USERS, htpasswd_config, tokenserver_config
from tests.clients.test_smoke import run_smoke
from tests.conftest import Registry, RegistryFactory

pytestmark = [pytest.mark.clients, pytest.mark.slow]


def assert_smoke_passes(reg: Registry, user: str, password: str) -> None:
    result = run_smoke(reg.host, REG_USER=user, REG_PASS=password)
    lines = result.stdout.splitlines()
    failures = [line for line in lines if line.startswith(("FAIL", "SKIP"))]
    context = "\n".join([*failures, result.stdout[-3000:], result.stderr[-2000:], reg.log_tail()])
    assert result.returncode == 0, context
    assert failures == [], context
    assert lines[-2] == "skipped: 0", context
    assert lines[-1].endswith(" 0 failed"), context
    assert int(lines[-1].split()[0]) >= 38, context


def test_clients_with_htpasswd(registry_factory: RegistryFactory, auth_files: AuthFiles) -> None:
    """Basic auth: `docker login`, skopeo/podman/buildah `--creds`, oras-py basic auth; a wrong password is
    rejected."""
    reg = registry_factory({"log": {"level": "info"}, **htpasswd_config(auth_files.htpasswd)}, workers=2)
    assert_smoke_passes(reg, "smoke", USERS["smoke"])


def test_clients_with_token_server(
    registry_factory: RegistryFactory, auth_files: AuthFiles, tmp_path_factory: pytest.TempPathFactory
) -> None:
    """Bearer tokens from the built-in token server, fetched by each client after reading the challenge."""
    keydir = tmp_path_factory.mktemp("smoke-token-keys")
    overrides = {"log": {"level": "info"}, **tokenserver_config(auth_files.htpasswd, auth_files.policy, keydir)}
    reg = registry_factory(overrides, workers=2)
    assert_smoke_passes(reg, "smoke", USERS["smoke"])
