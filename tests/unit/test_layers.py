"""The layering rules of docs/architecture.md, checked on the source: each layer imports only what is below it."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

SRC = Path(__file__).resolve().parents[2] / "src" / "portside"

# package -> module prefixes it must never import (docs/architecture.md has the layers)
_ABOVE_STORAGE = ("portside.api", "portside.registry", "portside.jobs", "portside.notifications", "portside.service")
FORBIDDEN = {
    "storage": (
        *_ABOVE_STORAGE,
        "portside.manifest",
        "portside.metadata",
        "portside.auth",
        "portside.config",
        "portside.tokenserver",
        "aiohttp",
        "sqlalchemy",
    ),
    "manifest": (
        *_ABOVE_STORAGE,
        "portside.metadata",
        "portside.storage",
        "portside.auth",
        "portside.config",
        "aiohttp",
        "sqlalchemy",
    ),
    "metadata": (
        *_ABOVE_STORAGE,
        "portside.storage",
        "portside.manifest",
        "portside.auth",
        "portside.config",
        "portside.tokenserver",
        "aiohttp",
    ),
    "registry": (
        "portside.api",
        "portside.jobs",
        "portside.notifications",
        "portside.service",
        "portside.auth",
        "portside.config",
        "portside.tokenserver",
        "aiohttp",
        "sqlalchemy",
        "alembic",
    ),
    "config": (
        *_ABOVE_STORAGE,
        "portside.metadata",
        "portside.manifest",
        "portside.auth",
        "portside.tokenserver",
        "aiohttp",
        "sqlalchemy",
    ),
    "auth": (*_ABOVE_STORAGE, "portside.metadata", "portside.storage", "portside.manifest", "sqlalchemy"),
    "tokenserver": (*_ABOVE_STORAGE, "portside.metadata", "portside.storage", "portside.manifest", "sqlalchemy"),
    "notifications": (
        "portside.api",
        "portside.registry",
        "portside.jobs",
        "portside.service",
        "portside.storage",
        "portside.auth",
        "portside.tokenserver",
        "sqlalchemy",
    ),
    "jobs": ("portside.api", "portside.auth", "portside.tokenserver", "aiohttp", "sqlalchemy"),
    # A client of another registry implements the library's interfaces; it knows nothing of this one's store.
    "client": (
        "portside.api",
        "portside.jobs",
        "portside.notifications",
        "portside.service",
        "portside.metadata",
        "portside.storage",
        "portside.proxy",
        "portside.auth",
        "portside.tokenserver",
        "sqlalchemy",
    ),
    "proxy": (
        "portside.api",
        "portside.jobs",
        "portside.service",
        "portside.auth",
        "portside.tokenserver",
        "portside.storage",
        "sqlalchemy",
        "aiohttp",
    ),
    # The HTTP layer speaks to the library only: never to the metadata store or to storage directly.
    "api": ("portside.metadata", "portside.storage", "sqlalchemy", "alembic"),
    # The web UI's templates and their rendering: what pages look like, nothing of where the data comes from.
    "ui": (
        "portside.api",
        "portside.registry",
        "portside.metadata",
        "portside.storage",
        "portside.auth",
        "portside.config",
        "sqlalchemy",
        "aiohttp",
    ),
}


def imports(path: Path) -> set[str]:
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module:
            found.add(node.module)
    return found


@pytest.mark.parametrize("package", sorted(FORBIDDEN))
def test_package_imports_only_layers_below(package: str) -> None:
    offences = [
        f"{path.relative_to(SRC)} imports {name}"
        for path in sorted((SRC / package).rglob("*.py"))
        for name in imports(path)
        if name.startswith(FORBIDDEN[package])
    ]
    assert offences == []


def test_sql_lives_only_in_the_metadata_store() -> None:
    users = sorted(
        str(path.relative_to(SRC))
        for path in SRC.rglob("*.py")
        if any(name.startswith("sqlalchemy") for name in imports(path))
        and path.parts[-2] != "metadata"
        and "migrations" not in path.parts
    )
    assert users == []


def test_every_package_has_layering_rules() -> None:
    packages = sorted(p.name for p in SRC.iterdir() if (p / "__init__.py").exists())
    assert packages == sorted(FORBIDDEN)
