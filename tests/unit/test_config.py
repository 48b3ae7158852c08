"""Configuration: distribution's keys, REGISTRY_* overrides and the messages for bad settings."""

from __future__ import annotations

from pathlib import Path

import pytest

from portside.config import ConfigError, load_config
from portside.config.durations import parse_duration


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "config.yml"
    path.write_text(text)
    return path


def test_no_configuration_serves_port_5000_with_data_under_dot_data() -> None:
    config = load_config(None, {})
    assert config.listen() == ("", 5000)
    assert config.storage.driver == "filesystem"
    assert config.storage.parameters["rootdirectory"] == "./data"
    assert config.database_dsn().endswith("/data/portside.db")
    assert config.storage.delete.enabled is False


def test_distribution_config_file(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        """
version: 0.1
log:
  level: debug
  fields: {service: registry}
storage:
  cache: {blobdescriptor: inmemory}
  filesystem: {rootdirectory: /var/lib/registry}
  delete: {enabled: true}
  maintenance:
    uploadpurging: {enabled: true, age: 168h, interval: 24h, dryrun: false}
http:
  addr: :5000
  secret: asecretforlocaldevelopment
  headers:
    X-Content-Type-Options: [nosniff]
validation:
  manifests:
    urls:
      allow: ['^https?://([^/]+\\.)*example\\.com/']
""",
    )
    config = load_config(path, {})
    assert config.log.level == "debug"
    assert config.storage.parameters == {"rootdirectory": "/var/lib/registry", "maxthreads": 100}
    assert config.storage.delete.enabled
    assert config.storage.maintenance.uploadpurging.age == 168 * 3600
    assert config.http.headers == {"X-Content-Type-Options": ["nosniff"]}
    assert config.database_dsn() == "sqlite:////var/lib/registry/portside.db"


def test_environment_overrides(tmp_path: Path) -> None:
    path = write(tmp_path, "version: 0.1\nstorage:\n  filesystem: {rootdirectory: /a}\nhttp: {addr: ':5000'}\n")
    config = load_config(
        path,
        {
            "REGISTRY_HTTP_ADDR": "127.0.0.1:6000",
            "REGISTRY_STORAGE_FILESYSTEM_ROOTDIRECTORY": "/b",
            "REGISTRY_STORAGE_DELETE_ENABLED": "true",
            "REGISTRY_STORAGE_MAINTENANCE_UPLOADPURGING_AGE": "2h",
            "REGISTRY_AUTH_FILE": "/ignored/podman/auth.json",
        },
    )
    assert config.listen() == ("127.0.0.1", 6000)
    assert config.storage.parameters["rootdirectory"] == "/b"
    assert config.storage.delete.enabled is True
    assert config.storage.maintenance.uploadpurging.age == 7200


def test_environment_switches_storage_driver(tmp_path: Path) -> None:
    config = load_config(None, {"REGISTRY_STORAGE": "inmemory"})
    assert config.storage.driver == "inmemory"
    assert config.database_dsn() == "sqlite://"


def test_configuration_path_from_environment(tmp_path: Path) -> None:
    path = write(tmp_path, "version: 0.1\nhttp: {addr: ':7000'}\n")
    assert load_config(None, {"REGISTRY_CONFIGURATION_PATH": str(path)}).listen() == ("", 7000)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("http: {adr: ':5000'}", "http.adr: unknown key"),
        ("storage: {filesystem: {}, inmemory: {}}", "exactly one driver"),
        ("storage: {delete: {enabled: true}}", "exactly one driver"),
        ("storage: {s4: {}}", "unknown storage driver 's4'"),
        ("storage: {filesystem: {rootdir: /x}}", "unknown key"),
        ("http: {addr: 'nonsense'}", "http.addr"),
        ("log: {level: loud}", "log.level"),
        ("storage: {filesystem: {}, maintenance: {uploadpurging: {age: 7 days}}}", "invalid duration"),
        ("validation: {manifests: {urls: {allow: ['(']}}}", "invalid regular expression"),
        ("http: {host: 'registry.example.com'}", "absolute URL"),
        ("- a list", "must be a YAML mapping"),
        ("auth: {ldap: {}}", "auth.ldap: unknown key"),
        ("auth: {htpasswd: {path: /a}, silly: {realm: r, service: s}}", "exactly one of silly, htpasswd, token"),
        ("auth: {token: {service: s, issuer: i, realm: r}}", "rootcertbundle or jwks"),
        ("auth: {token: {service: s, issuer: i, rootcertbundle: /c}}", "needs a realm"),
        ("tokenserver: {htpasswd: /a}", "tokenserver needs auth.token"),
        ("http: {tls: {certificate: /c, key: /k, minimumtls: tls1.1}}", "http.tls.minimumtls"),
    ],
)
def test_bad_configuration_is_explained(tmp_path: Path, text: str, message: str) -> None:
    with pytest.raises(ConfigError, match=message.replace("(", r"\(")):
        load_config(write(tmp_path, text), {})


def test_unreadable_configuration(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="cannot read"):
        load_config(tmp_path / "missing.yml", {})


@pytest.mark.parametrize(
    ("text", "seconds"),
    [("168h", 604800.0), ("1m30s", 90.0), ("250ms", 0.25), ("1.5h", 5400.0), ("0", 0.0), (10**9, 1.0)],
)
def test_go_durations(text: str | int, seconds: float) -> None:
    assert parse_duration(text) == seconds


@pytest.mark.parametrize("text", ["", "h", "5", "1d", "1h 2m", True])
def test_bad_durations(text: object) -> None:
    with pytest.raises(ValueError, match="invalid duration"):
        parse_duration(text)


@pytest.mark.parametrize(
    "variable",
    [
        "REGISTRY_STORAGE_DELETE_ENABLED",
        "REGISTRY_STORAGE_REDIRECT_DISABLE",
        "REGISTRY_STORAGE_MAINTENANCE_READONLY_ENABLED",
        "REGISTRY_STORAGE_MAINTENANCE_UPLOADPURGING_DRYRUN",
        "REGISTRY_STORAGE_CACHE_BLOBDESCRIPTOR",
    ],
)
def test_overriding_a_storage_setting_alone_keeps_the_default_driver(variable: str) -> None:
    """README: `REGISTRY_STORAGE_DELETE_ENABLED=true portside serve` with no file serves from ./data."""
    value = "inmemory" if variable.endswith("BLOBDESCRIPTOR") else "true"
    config = load_config(None, {variable: value})
    assert config.storage.driver == "filesystem"
    assert config.storage.parameters["rootdirectory"] == "./data"


def test_a_file_storage_section_without_a_driver_is_still_an_error(tmp_path: Path) -> None:
    """Only overrides over no storage section at all fall back to the default driver."""
    with pytest.raises(ConfigError, match="exactly one driver section"):
        load_config(write(tmp_path, "storage:\n  delete: {enabled: true}\n"), {})


@pytest.mark.parametrize(
    ("environ", "key"),
    [
        ({"REGISTRY_STORAGE": "s3"}, "storage.s3.bucket"),
        (
            {"REGISTRY_STORAGE": "s3", "REGISTRY_STORAGE_S3_BUCKET": "b", "REGISTRY_STORAGE_S3_CHUNKSIZE": "5"},
            "storage.s3.chunksize",
        ),
        ({"REGISTRY_STORAGE": "azure"}, "storage.azure.accountname"),
        ({"REGISTRY_STORAGE": "gcs"}, "storage.gcs.bucket"),
    ],
)
def test_a_driver_key_is_named_under_its_driver(environ: dict[str, str], key: str) -> None:
    with pytest.raises(ConfigError, match=rf"{key}:"):
        load_config(None, environ)
