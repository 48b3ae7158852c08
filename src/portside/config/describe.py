"""What a configuration runs, in words for the operator: the start-up summary line, where storage and metadata
are, and the effective configuration with its secrets hidden (`portside config check`).

Only the configuration is read here, so the arbiter can say what it starts without importing the registry.
"""

from __future__ import annotations

import os
from typing import Any
from urllib.parse import urlsplit, urlunsplit

from pydantic import BaseModel, BeforeValidator

from portside.config.durations import parse_duration
from portside.config.schema import Config

HIDDEN = "***"
# Keys whose values are secrets wherever they appear (distribution's names, the drivers' and Portside's).
SECRET_KEYS = frozenset({"password", "secret", "secretkey", "accesskey", "accountkey", "credentials", "private_key"})


def redact_dsn(dsn: str) -> str:
    """A database URL with its password replaced: `postgresql://user:***@host/db`."""
    parts = urlsplit(dsn)
    if parts.password is None:
        return dsn
    host = parts.hostname or ""
    if ":" in host:
        host = f"[{host}]"
    netloc = f"{parts.username or ''}:{HIDDEN}@{host}" + (f":{parts.port}" if parts.port else "")
    return urlunsplit(parts._replace(netloc=netloc))


def storage_location(config: Config) -> str:
    """Where the blobs are: a directory, a bucket or a container (and the root inside it)."""
    driver, params = config.storage.driver, config.storage.parameters
    if driver == "filesystem":
        return os.path.abspath(str(params.get("rootdirectory", "./data")))
    if driver == "inmemory":
        return "memory of the worker process"
    place = params.get("bucket") or "/".join(str(params[k]) for k in ("accountname", "container") if k in params)
    scheme = {"s3": "s3", "gcs": "gs", "azure": "azure"}.get(driver, driver)
    root = str(params.get("rootdirectory", "")).strip("/")
    where = f"{scheme}://{place}" + (f"/{root}" if root else "")
    endpoint = params.get("regionendpoint")
    return f"{where} at {endpoint}" if endpoint else where


def database_location(config: Config) -> str:
    """The metadata database, password hidden; a SQLite file as its absolute path."""
    dsn = config.database_dsn()
    if dsn == "sqlite://":
        return "SQLite in memory"
    path = sqlite_path(config)
    if path is not None:
        return f"SQLite {path}"
    return redact_dsn(dsn)


def sqlite_path(config: Config) -> str | None:
    """The SQLite database file (an absolute path), when the metadata store is one on disk."""
    dsn = config.database_dsn()
    if dsn.startswith("sqlite") and ":///" in dsn:
        path = dsn.split(":///", 1)[1].split("?", 1)[0]
        return os.path.abspath(path) if path else None
    return None


def _auth(config: Config) -> str:
    auth = config.auth
    if auth is None:
        return "none (anyone may push and pull)"
    if auth.htpasswd is not None:
        return f"htpasswd {os.path.abspath(auth.htpasswd.path)}"
    if auth.silly is not None:
        return "silly"
    if config.tokenserver is not None:
        return f"token, built-in token server at {config.tokenserver.path}"
    assert auth.token is not None
    return f"token from {auth.token.realm}"


def summary(config: Config, version: str, workers: int) -> str:
    """One line saying what starts: version, address, storage, metadata, access, switches, workers."""
    http = config.http
    if http.net == "unix":
        listen = f"unix:{http.addr}"
    else:
        host, port = config.listen()
        scheme = "https" if http.tls is not None else "http"
        listen = f"{scheme}://{f'[{host}]' if ':' in host else host or '0.0.0.0'}:{port}{http.prefix}"
    parts = [
        f"portside {version} listening on {listen}" + (" (TLS)" if http.tls is not None else ""),
        f"storage {config.storage.driver} {storage_location(config)}",
        f"metadata {database_location(config)}",
        f"auth {_auth(config)}",
        f"delete {'on' if config.storage.delete.enabled else 'off'}",
        f"read-only {'on' if config.storage.maintenance.readonly.enabled else 'off'}",
        f"workers {workers}",
    ]
    if http.debug.addr:
        parts.append(f"debug server {http.debug.addr}")
    return "; ".join(parts)


def _redacted(value: Any, key: str = "") -> Any:
    if key.lower() in SECRET_KEYS and value:
        return HIDDEN
    if key == "dsn" and isinstance(value, str):
        return redact_dsn(value)
    if isinstance(value, dict):
        return {k: _redacted(v, str(k)) for k, v in value.items()}
    if isinstance(value, list):
        return [_redacted(v, key) for v in value]
    return value


def _seconds(value: float) -> str:
    """A duration as the configuration reads it back (a bare number would be nanoseconds)."""
    return f"{value:.9f}".rstrip("0").rstrip(".") + "s"


def _plain(model: BaseModel) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for name, field in type(model).model_fields.items():
        value = getattr(model, name)
        if any(isinstance(m, BeforeValidator) and m.func is parse_duration for m in field.metadata):
            out[name] = _seconds(value)
        elif isinstance(value, BaseModel):
            out[name] = _plain(value)
        elif isinstance(value, list):
            out[name] = [_plain(v) if isinstance(v, BaseModel) else v for v in value]
        else:
            out[name] = value
    return out


def effective(config: Config) -> dict[str, Any]:
    """The whole configuration as Portside reads it (defaults filled in), in the file's own form, so it loads
    back the same; secrets replaced by `***`."""
    tree = _plain(config)
    storage = tree.pop("storage")
    driver, parameters = storage.pop("driver"), storage.pop("parameters")
    tree["storage"] = {driver: parameters, **storage}
    redacted: dict[str, Any] = _redacted(tree)
    # Header values may carry credentials (an Authorization header for a notification endpoint, say).
    for endpoint in redacted.get("notifications", {}).get("endpoints", []):
        endpoint["headers"] = {name: [HIDDEN] for name in endpoint.get("headers", {})}
    return redacted
