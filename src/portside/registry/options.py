"""Behaviour switches of the registry library, taken from configuration."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Literal

from portside.manifest.descriptor import Platform

MiB = 1024 * 1024


@dataclass(frozen=True)
class RegistryOptions:
    delete_enabled: bool = False
    max_manifest_size: int = 4 * MiB
    # validation.disabled: accept manifests without checking what they reference.
    validation_enabled: bool = True
    # validation.manifests.urls: layers fetched from URLs must match one allow and no deny pattern.
    url_allow: tuple[re.Pattern[str], ...] = ()
    url_deny: tuple[re.Pattern[str], ...] = ()
    # validation.manifests.indexes.platforms: which children of an index must exist.
    index_platforms: Literal["all", "none", "list"] = "all"
    index_platform_list: tuple[Platform, ...] = field(default_factory=tuple)
    catalog_max_entries: int = 1000
    # Bytes handed to the hashing and writing threads at a time while an upload streams in.
    upload_block_size: int = MiB
