"""Health checks of what the registry depends on: the metadata store and the storage driver."""

from __future__ import annotations

import asyncio
import contextlib

from portside.registry import Namespace
from portside.storage import PathNotFound

CHECK_TIMEOUT = 5.0


async def _storage(namespace: Namespace) -> None:
    with contextlib.suppress(PathNotFound):
        await namespace.driver.stat("/")


async def check(namespace: Namespace) -> dict[str, str]:
    """Failing checks by name, with why; empty when everything answers."""
    checks = {
        "database": namespace.store.ping(),
        f"storagedriver_{namespace.driver.name}": _storage(namespace),
    }
    failures: dict[str, str] = {}
    for name, probe in checks.items():
        try:
            await asyncio.wait_for(probe, CHECK_TIMEOUT)
        except Exception as exc:
            failures[name] = f"{type(exc).__name__}: {exc}"[:500]
    return failures
