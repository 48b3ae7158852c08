"""What keeps a server's memory down at rest (docs/performance.md, "Memory at rest"): workers fork from an
arbiter whose objects the collector no longer walks, and storage drivers nobody configured cost nothing."""

from __future__ import annotations

import gc
import subprocess
import sys

from portside.config import load_config
from portside.server import PortsideServer


def test_workers_fork_from_an_arbiter_whose_objects_are_frozen() -> None:
    """gunicorn's pre_fork hook freezes the arbiter's objects: collections in a worker then leave the pages
    those objects share with the arbiter alone instead of copying them (PSS of two idle workers: 117 to
    99 MiB)."""
    server = PortsideServer(load_config(None, {}), 2)
    gc.unfreeze()
    try:
        server.cfg.pre_fork(server, None)
        assert gc.get_freeze_count() > 0
    finally:
        gc.unfreeze()


PROBE = """
import json
from portside.storage import factory
models = {name: factory.parameters_model(name) for name in factory.names()}
before = {name: bool(model.__pydantic_complete__) for name, model in models.items()}
models["filesystem"].model_validate({})
after = {name: bool(model.__pydantic_complete__) for name, model in models.items()}
print(json.dumps([before, after]))
"""


def test_a_driver_parameter_model_is_built_when_first_used() -> None:
    """Every driver registers its parameter model, but only the configured one's validator is built."""
    import json

    out = subprocess.run([sys.executable, "-c", PROBE], capture_output=True, text=True, timeout=60, check=True)
    before, after = json.loads(out.stdout)
    assert not any(before.values()), before
    assert after["filesystem"]
    assert not any(built for name, built in after.items() if name != "filesystem"), after
