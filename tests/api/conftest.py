"""Fixtures for the HTTP conformance tests."""

from __future__ import annotations

import pytest

from .oci import repo_name


@pytest.fixture
def repo() -> str:
    """A repository name of this test's own."""
    return repo_name()
