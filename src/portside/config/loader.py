"""Reading configuration: a YAML file, then `REGISTRY_*` environment overrides, then validation.

`REGISTRY_STORAGE_FILESYSTEM_ROOTDIRECTORY=/srv` sets `storage.filesystem.rootdirectory`; values are read as
YAML scalars (`true`, `5000`). `REGISTRY_STORAGE=inmemory` switches the storage driver. Variables that name
no configuration key are ignored with a warning, as distribution does (podman's REGISTRY_AUTH_FILE, say).
"""

from __future__ import annotations

import logging
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any, get_args, get_origin

import yaml
from pydantic import BaseModel, ValidationError

from portside.config.schema import STORAGE_SETTINGS, Config, Storage
from portside.storage import factory

log = logging.getLogger(__name__)
PREFIX = "REGISTRY_"
CONFIG_PATH_VARIABLE = "REGISTRY_CONFIGURATION_PATH"


class ConfigError(ValueError):
    """The configuration cannot be used; the message says which key and why."""


def _model_of(annotation: Any) -> type[BaseModel] | None:
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return annotation
    for arg in get_args(annotation):
        model = _model_of(arg)
        if model is not None:
            return model
    return None


def _is_mapping(annotation: Any) -> bool:
    return get_origin(annotation) is dict or any(_is_mapping(a) for a in get_args(annotation))


def _known(model: type[BaseModel], segments: list[str]) -> list[str] | None:
    """The key path for env segments if it names a configuration key (names matched case-insensitively)."""
    if not segments:
        return []
    if model is Storage:
        head = segments[0]
        if head in STORAGE_SETTINGS:
            sub = _model_of(Storage.model_fields[head].annotation)
            rest = _known(sub, segments[1:]) if sub else None
            return None if rest is None else [head, *rest]
        if head in factory.names():
            rest = _known(factory.parameters_model(head), segments[1:])
            return None if rest is None else [head, *rest]
        return None
    field = model.model_fields.get(segments[0])
    if field is None:
        return None
    sub = _model_of(field.annotation)
    if sub is not None and not _is_mapping(field.annotation):
        rest = _known(sub, segments[1:])
        return None if rest is None else [segments[0], *rest]
    if _is_mapping(field.annotation) and len(segments) == 2:
        return segments
    return segments if len(segments) == 1 else None


def _set(tree: dict[str, Any], path: list[str], value: Any) -> None:
    node = tree
    for key in path[:-1]:
        child = node.get(key)
        if not isinstance(child, dict):
            child = node[key] = {}
        node = child
    node[path[-1]] = value


def _switch_driver(tree: dict[str, Any], driver: str) -> None:
    storage = tree.get("storage") or {}
    kept = {k: v for k, v in storage.items() if k in STORAGE_SETTINGS}
    previous = next((v for k, v in storage.items() if k == driver), None)
    tree["storage"] = {**kept, driver: previous or {}}


def apply_environment(tree: dict[str, Any], environ: Mapping[str, str]) -> dict[str, Any]:
    configured_storage = bool(tree.get("storage"))
    for name in sorted(environ):
        if not name.startswith(PREFIX) or name == CONFIG_PATH_VARIABLE:
            continue
        segments = name[len(PREFIX) :].lower().split("_")
        try:
            value = yaml.safe_load(environ[name]) if environ[name] else ""
        except yaml.YAMLError:
            value = environ[name]
        if segments == ["storage"]:
            _switch_driver(tree, str(value))
            continue
        path = _known(Config, segments)
        if path is None:
            log.warning("ignoring unrecognized environment variable %s", name)
            continue
        if path[0] == "storage" and path[1] in factory.names() and path[1] not in (tree.get("storage") or {}):
            _switch_driver(tree, path[1])
        if path[-1] == "version":
            value = environ[name]
        _set(tree, path, value)
    storage = tree.get("storage")
    if not configured_storage and isinstance(storage, dict) and not set(storage) - set(STORAGE_SETTINGS):
        # Overrides of shared settings alone (REGISTRY_STORAGE_DELETE_ENABLED) keep the default driver.
        storage["filesystem"] = {}
    return tree


def _describe(error: ValidationError) -> str:
    lines = []
    for item in error.errors():
        where = ".".join(str(p) for p in item["loc"]) or "configuration"
        message = item["msg"].removeprefix("Value error, ")
        if item["type"] == "extra_forbidden":
            message = "unknown key"
        lines.append(f"{where}: {message}")
    return "; ".join(lines)


def load_config(path: str | os.PathLike[str] | None = None, environ: Mapping[str, str] | None = None) -> Config:
    """Read, override and validate. No file at all gives the defaults: `:5000`, data under `./data`."""
    environ = os.environ if environ is None else environ
    path = path or environ.get(CONFIG_PATH_VARIABLE) or None
    tree: dict[str, Any] = {}
    if path is not None:
        try:
            text = Path(path).read_text()
        except OSError as exc:
            raise ConfigError(f"cannot read configuration {path}: {exc.strerror}") from None
        try:
            loaded = yaml.safe_load(text)
        except yaml.YAMLError as exc:
            raise ConfigError(f"configuration {path} is not valid YAML: {exc}") from None
        if loaded is not None and not isinstance(loaded, dict):
            raise ConfigError(f"configuration {path} must be a YAML mapping")
        tree = loaded or {}
    tree = apply_environment(tree, environ)
    try:
        return Config.model_validate(tree)
    except ValidationError as exc:
        raise ConfigError(f"invalid configuration: {_describe(exc)}") from None
