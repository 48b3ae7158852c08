"""Servers shared by the access-control tests: one per configuration and test process."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.auth.support import (
    TOKEN_PATH,
    USERS,
    htpasswd_config,
    info_logging,
    launch,
    tokenserver_config,
    write_htpasswd,
    write_policy,
)
from tests.conftest import Registry, deep_merge


@dataclass
class AuthFiles:
    htpasswd: Path
    policy: Path
    directory: Path


@pytest.fixture(scope="session")
def auth_files(tmp_path_factory: pytest.TempPathFactory) -> AuthFiles:
    """The test users (bcrypt) and the policy of support.POLICY."""
    directory = tmp_path_factory.mktemp("auth-files")
    return AuthFiles(
        htpasswd=write_htpasswd(directory / "htpasswd", USERS),
        policy=write_policy(directory / "policy.yml"),
        directory=directory,
    )


@pytest.fixture(scope="session")
def htpasswd_registry(tmp_path_factory: pytest.TempPathFactory, auth_files: AuthFiles) -> Iterator[Registry]:
    """`auth.htpasswd` with the policy file."""
    reg = launch(tmp_path_factory.mktemp("htpasswd-policy"), htpasswd_config(auth_files.htpasswd, auth_files.policy))
    yield reg
    reg.stop()


@pytest.fixture(scope="session")
def open_htpasswd_registry(tmp_path_factory: pytest.TempPathFactory, auth_files: AuthFiles) -> Iterator[Registry]:
    """`auth.htpasswd` without a policy: every valid user may do everything."""
    reg = launch(tmp_path_factory.mktemp("htpasswd-open"), htpasswd_config(auth_files.htpasswd))
    yield reg
    reg.stop()


@pytest.fixture(scope="session")
def token_registry(tmp_path_factory: pytest.TempPathFactory, auth_files: AuthFiles) -> Iterator[Registry]:
    """`auth.token` with the built-in token server on `/token` (realm and trust left to their defaults)."""
    workdir = tmp_path_factory.mktemp("tokenserver")
    overrides = deep_merge(
        info_logging(), tokenserver_config(auth_files.htpasswd, auth_files.policy, workdir / "token-keys")
    )
    reg = launch(workdir, overrides)
    yield reg
    reg.stop()


def realm_of(reg: Registry) -> str:
    """The default realm: the registry's own URL and `tokenserver.path`."""
    return reg.url + TOKEN_PATH


@pytest.fixture(scope="session")
def token_realm(token_registry: Registry) -> str:
    return realm_of(token_registry)
