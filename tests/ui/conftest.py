"""A real browser for the web UI's tests: Playwright driving Debian's chromium (`apt-get install chromium`;
Playwright's own browser builds are never downloaded). Screenshots go to each test's tmp dir; with
`PORTSIDE_UI_SCREENSHOTS=<dir>` the named ones are also written there (docs/images holds a few)."""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

CHROMIUM = "/usr/bin/chromium"
ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
WAIT_MS = 30_000
"""How long a page may take to reach a state: generous, a deadline to wait within, never a time to meet."""


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    """Module-scoped, not session-scoped: Playwright's sync API keeps an event loop running on this thread
    while it is open, and the asyncio tests that may follow in the same process need the thread free."""
    from playwright.sync_api import sync_playwright

    if not os.path.exists(CHROMIUM):
        pytest.fail(f"{CHROMIUM} is missing: scripts/test installs Debian's chromium")
    from playwright.sync_api import expect

    expect.set_options(timeout=WAIT_MS)
    with sync_playwright() as playwright:
        launched = playwright.chromium.launch(executable_path=CHROMIUM, args=ARGS)
        yield launched
        launched.close()


class Shots:
    """Screenshots of a test: `shots.take(page, "name")`."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        self.published = os.environ.get("PORTSIDE_UI_SCREENSHOTS")

    def take(self, page: Any, name: str, full_page: bool = True) -> Path:
        path = self.directory / f"{name}.png"
        page.screenshot(path=str(path), full_page=full_page)
        if self.published:
            Path(self.published).mkdir(parents=True, exist_ok=True)
            shutil.copy(path, Path(self.published) / path.name)
        return path


@pytest.fixture
def shots(tmp_path: Path) -> Shots:
    directory = tmp_path / "screenshots"
    directory.mkdir()
    return Shots(directory)
