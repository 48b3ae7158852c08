"""The layering rules of docs/architecture.md, checked on the source: each layer imports only what is below it."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

SRC = Path(__file__).resolve().parents[2] / "src" / "portside"

# package -> module prefixes it must never import
FORBIDDEN = {
    "storage": ("portside.api", "portside.registry", "portside.manifest", "portside.metadata", "aiohttp", "sqlalchemy"),
    "manifest": ("portside.api", "portside.registry", "portside.metadata", "portside.storage", "aiohttp", "sqlalchemy"),
    "metadata": ("portside.api", "portside.registry", "portside.storage", "aiohttp"),
    "registry": ("portside.api", "aiohttp", "sqlalchemy", "alembic"),
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
