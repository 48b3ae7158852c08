"""Image configurations (the OCI image spec's config.md, Docker's image v1 JSON): what an image runs and how
it was built, read leniently for display.

A registry stores configs as opaque blobs and never validates them, so anything may be in one: fields of the
wrong type are left out rather than failing the whole read.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

from portside.manifest import mediatypes as mt

CONFIG_MEDIA_TYPES = frozenset({mt.OCI_CONFIG, mt.DOCKER_CONFIG})


@dataclass(frozen=True)
class HistoryEntry:
    created: str | None = None
    created_by: str | None = None
    author: str | None = None
    comment: str | None = None
    empty_layer: bool = False


@dataclass(frozen=True)
class ImageConfig:
    created: str | None = None
    author: str | None = None
    architecture: str | None = None
    os: str | None = None
    variant: str | None = None
    os_version: str | None = None
    user: str | None = None
    working_dir: str | None = None
    entrypoint: tuple[str, ...] | None = None
    cmd: tuple[str, ...] | None = None
    env: tuple[str, ...] = ()
    labels: dict[str, str] = field(default_factory=dict)
    exposed_ports: tuple[str, ...] = ()
    volumes: tuple[str, ...] = ()
    stop_signal: str | None = None
    layers: int = 0
    """How many layers the root filesystem lists (`rootfs.diff_ids`)."""
    history: tuple[HistoryEntry, ...] = ()

    @property
    def platform(self) -> str | None:
        """`os/architecture[/variant]`, as clients write a platform."""
        if not self.os or not self.architecture:
            return None
        return "/".join(p for p in (self.os, self.architecture, self.variant) if p)


class ConfigError(ValueError):
    """The blob is not a JSON object."""


def _text(value: Any) -> str | None:
    return value if isinstance(value, str) else None


def _strings(value: Any) -> tuple[str, ...] | None:
    if isinstance(value, list) and all(isinstance(v, str) for v in value):
        return tuple(value)
    return None


def _keys(value: Any) -> tuple[str, ...]:
    return tuple(sorted(value)) if isinstance(value, dict) else ()


def _history(value: Any) -> tuple[HistoryEntry, ...]:
    if not isinstance(value, list):
        return ()
    return tuple(
        HistoryEntry(
            created=_text(item.get("created")),
            created_by=_text(item.get("created_by")),
            author=_text(item.get("author")),
            comment=_text(item.get("comment")),
            empty_layer=item.get("empty_layer") is True,
        )
        for item in value
        if isinstance(item, dict)
    )


def parse_image_config(data: bytes) -> ImageConfig:
    try:
        document = json.loads(data)
    except (UnicodeDecodeError, json.JSONDecodeError, RecursionError) as exc:
        raise ConfigError(f"image config is not JSON: {exc}") from None
    if not isinstance(document, dict):
        raise ConfigError("image config is not a JSON object")
    run = document.get("config")
    run = run if isinstance(run, dict) else {}
    labels = run.get("Labels")
    rootfs = document.get("rootfs")
    diff_ids = rootfs.get("diff_ids") if isinstance(rootfs, dict) else None
    return ImageConfig(
        created=_text(document.get("created")),
        author=_text(document.get("author")),
        architecture=_text(document.get("architecture")),
        os=_text(document.get("os")),
        variant=_text(document.get("variant")),
        os_version=_text(document.get("os.version")),
        user=_text(run.get("User")) or None,
        working_dir=_text(run.get("WorkingDir")) or None,
        entrypoint=_strings(run.get("Entrypoint")),
        cmd=_strings(run.get("Cmd")),
        env=_strings(run.get("Env")) or (),
        labels={k: v for k, v in labels.items() if isinstance(v, str)} if isinstance(labels, dict) else {},
        exposed_ports=_keys(run.get("ExposedPorts")),
        volumes=_keys(run.get("Volumes")),
        stop_signal=_text(run.get("StopSignal")) or None,
        layers=len(diff_ids) if isinstance(diff_ids, list) else 0,
        history=_history(document.get("history")),
    )
