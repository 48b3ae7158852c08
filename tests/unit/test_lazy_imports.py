"""Libraries that only some deployments need stay out of the others' worker processes (docs/performance.md,
"Memory against blob size"): each costs every worker megabytes of memory."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from tests.auth.support import bcrypt_line

OPTIONAL = ("asyncpg", "sqlalchemy.ext.asyncio", "sqlalchemy.dialects.postgresql", "jwt", "cryptography")

PROBE = """
import asyncio, json, sys
from aiohttp import web
from portside.api.app import create_app
from portside.config.loader import load_config
from portside.server import prepare

config = load_config(sys.argv[1])
prepare(config)  # migrations and keys, in a child process as `portside serve` does

async def start_and_stop():
    runner = web.AppRunner(create_app(config))
    await runner.setup()  # opens the metadata store and storage, builds the access controller
    await runner.cleanup()

asyncio.run(start_and_stop())
print(json.dumps(sorted(m for m in {optional!r} if m in sys.modules)))
"""


def loaded(config: Path) -> list[str]:
    """Which of the optional modules a process that started the app for `config` has imported."""
    out = subprocess.run(
        [sys.executable, "-c", PROBE.format(optional=OPTIONAL), str(config)],
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    ).stdout
    result: list[str] = json.loads(out.strip().splitlines()[-1])
    return result


def write_config(tmp_path: Path, extra: str = "") -> Path:
    config = tmp_path / "config.yml"
    config.write_text(
        f"version: 0.1\nstorage:\n  filesystem: {{rootdirectory: {tmp_path / 'data'}}}\n"
        f"http: {{addr: 127.0.0.1:0}}\n{extra}"
    )
    return config


def test_embedded_default_imports_no_optional_library(tmp_path: Path) -> None:
    assert loaded(write_config(tmp_path)) == []


@pytest.mark.parametrize(
    ("section", "expected"),
    [
        ("auth:\n  token: {realm: 'https://auth.example/token', service: s, issuer: i, jwks: JWKS}\n", "jwt"),
        ("auth:\n  htpasswd: {realm: r, path: HTPASSWD}\n", None),
    ],
    ids=["token", "htpasswd"],
)
def test_token_auth_loads_its_libraries_and_htpasswd_does_not(
    tmp_path: Path, section: str, expected: str | None
) -> None:
    (tmp_path / "jwks.json").write_text('{"keys": []}')
    (tmp_path / "htpasswd").write_text(bcrypt_line("alice", "a-password") + "\n")  # nobody could log in without one
    section = section.replace("JWKS", str(tmp_path / "jwks.json")).replace("HTPASSWD", str(tmp_path / "htpasswd"))
    modules = loaded(write_config(tmp_path, section))
    assert (expected in modules) if expected else modules == []
