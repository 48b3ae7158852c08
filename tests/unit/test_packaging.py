"""pyproject.toml in the current packaging form, so installing Portside prints no deprecation warnings."""

from __future__ import annotations

import re
import tomllib
from pathlib import Path

PYPROJECT = Path(__file__).resolve().parents[2] / "pyproject.toml"


def test_license_is_an_spdx_expression() -> None:
    """PEP 639: `project.license` is an SPDX expression string; the table form (`{text = ...}`) is deprecated
    by setuptools, which supports the string from version 77."""
    data = tomllib.loads(PYPROJECT.read_text())
    assert data["project"]["license"] == "Apache-2.0"
    assert not any(c.startswith("License ::") for c in data["project"].get("classifiers", []))
    (setuptools,) = [r for r in data["build-system"]["requires"] if r.startswith("setuptools")]
    minimum = re.fullmatch(r"setuptools>=(\d+)(?:\.\d+)*", setuptools)
    assert minimum is not None, setuptools
    assert int(minimum[1]) >= 77
