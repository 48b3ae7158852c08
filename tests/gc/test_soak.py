"""The soak of benchmarks/soak.py for one minute, as CI runs it: 16 clients pushing, pulling, tagging and deleting
while online collection runs with a short review delay and `portside garbage-collect` now and then. It must end
with no error, no acknowledged image lost, and storage holding exactly what the remaining manifests use."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest


@pytest.mark.slow
def test_one_minute_of_pushes_pulls_and_deletes_beside_collection() -> None:
    done = subprocess.run(
        [sys.executable, "-m", "benchmarks.soak", "--minutes", "1", "--clients", "16", "--collect-every", "15"],
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    result = json.loads(done.stdout.strip().splitlines()[-1])
    assert result["errors"] == 0, result["first_errors"]
    assert result["lost"] == 0
    assert result["stored_exact"], result
    assert result["fsck_healthy"]
    assert result["collections"] >= 2
    assert sum(result["operations"].values()) > 1000, "the clients did too little to tell anything"
    assert done.returncode == 0
