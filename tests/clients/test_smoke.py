"""Real clients against a real Portside: skopeo, podman, buildah, the docker CLI and oras-py.

`smoke.sh` pushes and pulls through each client and prints one PASS/FAIL/SKIP line per check. Every check
must pass: a missing client is a failure here, since CI installs them all (run with `-m clients` alone).
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import RegistryFactory

SMOKE = Path(__file__).with_name("smoke.sh")

pytestmark = [pytest.mark.clients, pytest.mark.slow]


def run_smoke(host: str, **extra: str) -> subprocess.CompletedProcess[str]:
    """smoke.sh against `host`; `extra` adds environment (REG_USER, REG_PASS)."""
    # podman refuses a run root longer than 50 characters, so the client state goes under /tmp.
    environ = {k: v for k, v in os.environ.items() if k != "TMPDIR"}
    env = {
        **environ,
        "REGISTRY": host,
        "ORAS_PYTHON": sys.executable,
        "REQUIRE_REFERRERS": "1",
        "VERBOSE": "1",
        "STEP_TIMEOUT": "120",
        **extra,
    }
    return subprocess.run(
        ["bash", str(SMOKE)], env=env, stdin=subprocess.DEVNULL, capture_output=True, text=True, timeout=900
    )


def test_every_client_pushes_and_pulls(registry_factory: RegistryFactory) -> None:
    reg = registry_factory({"log": {"level": "info"}}, workers=2)
    result = run_smoke(reg.host)
    lines = result.stdout.splitlines()
    failures = [line for line in lines if line.startswith(("FAIL", "SKIP"))]
    assert result.returncode == 0, "\n".join([*failures, result.stdout[-3000:], result.stderr[-2000:], reg.log_tail()])
    assert failures == [], "\n".join(failures)
    assert lines[-1].endswith(" 0 failed"), lines[-1]
    assert lines[-2] == "skipped: 0"
    assert int(lines[-1].split()[0]) >= 38
