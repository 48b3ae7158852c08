"""Starting and stopping a worker's application: a stop that comes right after the start (a SIGTERM during
boot) must not wait on background checks that were just starting."""

from __future__ import annotations

import asyncio
from pathlib import Path

from aiohttp import web

from portside.api.app import create_app
from portside.config.loader import load_config


async def test_stop_right_after_start_returns_promptly(tmp_path: Path) -> None:
    """The checks run every hour here, so a stop that waits for a check's next turn hangs; the deadline only
    bounds how long the test waits to see that. asyncio.wait, not asyncio.timeout: the failure this guards
    against swallows cancellations, and a timeout would cancel."""
    config = tmp_path / "config.yml"
    config.write_text(
        f"version: 0.1\nstorage:\n  filesystem: {{rootdirectory: {tmp_path / 'data'}}}\nhttp: {{addr: 127.0.0.1:0}}\n"
        "health:\n  storagedriver: {interval: 1h}\n"
    )
    for _ in range(3):
        runner = web.AppRunner(create_app(load_config(config), migrate=True))
        await runner.setup()  # starts the health checks, which probe storage on threads
        cleanup = asyncio.ensure_future(runner.cleanup())
        done, _ = await asyncio.wait({cleanup}, timeout=120)
        assert cleanup in done, "stopping the application waited for the next health check (interval 1h)"
        await cleanup
