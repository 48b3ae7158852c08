"""`portside serve` as an operator first meets it: overrides without a file, what the start says, and every
start that cannot work failing at once, with exit status 1 and one line naming the key and the path.

docs/operations.md, "Starting": the checks before the workers start. A start that must fail runs under a
generous overall timeout: a hang or a retry loop fails the test there, without any wall-clock assertion.
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml

from tests.auth.support import bcrypt_line, issue, make_ca
from tests.conftest import free_port
from tests.helpers import push_blob, sha256, unique_repo
from tests.operations.support import wait_until

FAILING_START_TIMEOUT = 120.0  # generous: a start that hangs or retries fails the test here


def environment(extra: Mapping[str, str] | None = None) -> dict[str, str]:
    """This process's environment without REGISTRY_* (and AWS) settings, plus `extra`."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("REGISTRY_", "AWS_"))}
    env["AWS_EC2_METADATA_DISABLED"] = "true"  # no instance-metadata lookups for credentials
    env.update(extra or {})
    return env


def portside(*args: str) -> list[str]:
    return [sys.executable, "-m", "portside", *args]


def failed_start(
    command: list[str], cwd: Path, env: Mapping[str, str] | None = None
) -> tuple[subprocess.CompletedProcess[str], str]:
    """Run a start that must fail; its exit status and its one error line (asserted to be the only one)."""
    result = subprocess.run(
        command,
        cwd=cwd,
        env=dict(env or environment()),
        capture_output=True,
        text=True,
        timeout=FAILING_START_TIMEOUT,
        check=False,
    )
    output = result.stdout + result.stderr
    assert result.returncode == 1, output
    assert "Traceback" not in output, output
    errors = [line for line in output.splitlines() if line.startswith("Error:") or " ERROR " in line]
    assert len(errors) == 1, output
    assert "gunicorn" not in output, output  # stopped before gunicorn started
    return result, errors[0]


def write_config(directory: Path, config: Mapping[str, Any]) -> Path:
    path = directory / "config.yml"
    path.write_text(yaml.safe_dump(dict(config)))
    return path


def base_config(directory: Path, **sections: Any) -> dict[str, Any]:
    config: dict[str, Any] = {
        "version": 0.1,
        "log": {"level": "info"},
        "storage": {"filesystem": {"rootdirectory": str(directory / "data")}},
        "http": {"addr": f"127.0.0.1:{free_port()}"},
    }
    for name, value in sections.items():
        config[name] = {**config.get(name, {}), **value}
    return config


@contextlib.contextmanager
def serving(
    command: list[str], cwd: Path, url: str, env: Mapping[str, str] | None = None
) -> Iterator[tuple[subprocess.Popen[bytes], Path]]:
    """A `portside serve` that answers at `url`; its output file; stopped with SIGTERM afterwards."""
    output = cwd / "serve.log"
    with output.open("ab") as log:
        process = subprocess.Popen(
            command,
            cwd=cwd,
            env=dict(env or environment()),
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    try:

        def answering() -> bool:
            assert process.poll() is None, output.read_text()
            try:
                httpx.get(f"{url}/v2/", timeout=1.0)
            except httpx.HTTPError:
                return False
            return True

        wait_until(answering, 60, f"portside at {url}")
        yield process, output
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGTERM)
        try:
            process.wait(30)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()


def read_only(path: Path, command: list[str]) -> list[str]:
    """`command` with `path` read-only. As root (who writes whatever the permission bits say) in a mount
    namespace of its own where `path` is a read-only bind mount; otherwise by its permission bits."""
    if os.geteuid() == 0:
        script = 'mount --bind "$1" "$1" && mount -o remount,bind,ro "$1" "$1" && shift && exec "$@"'
        return ["unshare", "--mount", "sh", "-c", script, "sh", str(path), *command]
    path.chmod(0o555)
    return command


@pytest.fixture
def writable_again(tmp_path: Path) -> Iterator[None]:
    """Give back write permission that `read_only` took (as non-root), so the test directory can be removed."""
    yield
    for directory, _, _ in os.walk(tmp_path):
        with contextlib.suppress(OSError):
            Path(directory).chmod(0o755)


# ---------------------------------------------------------------------------
# Configuration from the environment alone


@pytest.mark.parametrize(
    ("variable", "value"),
    [
        ("REGISTRY_STORAGE_DELETE_ENABLED", "true"),
        ("REGISTRY_STORAGE_MAINTENANCE_READONLY_ENABLED", "true"),
        ("REGISTRY_STORAGE_MAINTENANCE_UPLOADPURGING_ENABLED", "false"),
        ("REGISTRY_STORAGE_CACHE_BLOBDESCRIPTOR", "inmemory"),
    ],
)
def test_an_override_of_a_storage_setting_keeps_the_default_driver(tmp_path: Path, variable: str, value: str) -> None:
    """README "Running it": `REGISTRY_STORAGE_DELETE_ENABLED=true portside serve`, with no file, serves on
    the default filesystem driver under ./data with the setting applied."""
    port = free_port()
    env = environment({variable: value, "REGISTRY_HTTP_ADDR": f"127.0.0.1:{port}"})
    url = f"http://127.0.0.1:{port}"
    with serving(portside("serve", "--workers", "1"), tmp_path, url, env), httpx.Client(base_url=url, timeout=30) as c:
        repo = unique_repo("env")
        if variable.endswith("READONLY_ENABLED"):
            assert c.post(f"/v2/{repo}/blobs/uploads/").status_code == 405
            return
        digest = push_blob(c, repo, os.urandom(64))
        assert (tmp_path / "data" / "docker/registry/v2/blobs/sha256" / digest[7:9] / digest[7:]).is_dir()
        deleted = c.delete(f"/v2/{repo}/blobs/{digest}")
        assert deleted.status_code == (202 if variable.endswith("DELETE_ENABLED") else 405), deleted.text


# ---------------------------------------------------------------------------
# Writable paths


def test_a_storage_root_that_cannot_be_created_fails_naming_it(tmp_path: Path, writable_again: None) -> None:
    parent = tmp_path / "readonly"
    parent.mkdir()
    config = write_config(
        tmp_path, base_config(tmp_path, storage={"filesystem": {"rootdirectory": str(parent / "data")}})
    )
    _, error = failed_start(read_only(parent, portside("serve", str(config))), tmp_path)
    assert "storage.filesystem.rootdirectory" in error
    assert str(parent / "data") in error


def test_a_read_only_storage_root_with_the_database_in_it_fails_naming_the_database(
    tmp_path: Path, writable_again: None
) -> None:
    root = tmp_path / "data"
    root.mkdir()
    config = write_config(tmp_path, base_config(tmp_path))
    _, error = failed_start(read_only(root, portside("serve", str(config))), tmp_path)
    assert "metadata database" in error
    assert str(root / "portside.db") in error


def test_a_read_only_storage_root_with_metadata_elsewhere_fails_naming_the_storage(
    tmp_path: Path, writable_again: None
) -> None:
    root = tmp_path / "data"
    root.mkdir()
    settings = base_config(tmp_path, database={"dsn": f"sqlite:///{tmp_path / 'meta' / 'portside.db'}"})
    _, error = failed_start(read_only(root, portside("serve", str(write_config(tmp_path, settings)))), tmp_path)
    assert "storage.filesystem" in error
    assert str(root) in error


def test_a_read_only_database_directory_fails_naming_it(tmp_path: Path, writable_again: None) -> None:
    meta = tmp_path / "meta"
    meta.mkdir()
    settings = base_config(tmp_path, database={"dsn": f"sqlite:///{meta / 'portside.db'}"})
    _, error = failed_start(read_only(meta, portside("serve", str(write_config(tmp_path, settings)))), tmp_path)
    assert "database.dsn" in error
    assert str(meta / "portside.db") in error


def test_read_only_mode_serves_a_read_only_storage_root(tmp_path: Path, writable_again: None) -> None:
    """With `storage.maintenance.readonly.enabled` storage is only read at start (a listing): a read-only
    root serves pulls; here with a SQLite file named relative to the working directory."""
    root = tmp_path / "data"
    root.mkdir()
    port = free_port()
    settings = base_config(
        tmp_path,
        storage={"maintenance": {"readonly": {"enabled": True}}},
        database={"dsn": "sqlite:///metadata.db"},
        http={"addr": f"127.0.0.1:{port}"},
    )
    command = read_only(root, portside("serve", str(write_config(tmp_path, settings)), "-w", "1"))
    url = f"http://127.0.0.1:{port}"
    with serving(command, tmp_path, url), httpx.Client(base_url=url, timeout=30) as c:
        assert c.get("/v2/_catalog").json() == {"repositories": []}
        assert c.post(f"/v2/{unique_repo('ro')}/blobs/uploads/").status_code == 405
    assert (tmp_path / "metadata.db").is_file()


# ---------------------------------------------------------------------------
# TLS files


def tls_files(directory: Path) -> tuple[Path, Path, Path]:
    """A certificate, its key, and another key that does not belong to it."""
    ca = make_ca("start-up test CA")
    cert, key = issue(ca, "localhost", ips=["127.0.0.1"]).write(directory, "server")
    _, other = issue(ca, "other", dns=["other"]).write(directory, "other")
    return cert, key, other


@pytest.mark.parametrize(
    "case", ["missing-certificate", "missing-key", "certificate-not-pem", "key-not-pem", "mismatch"]
)
def test_unusable_tls_files_fail_naming_the_key_and_file(tmp_path: Path, case: str) -> None:
    cert, key, other = tls_files(tmp_path)
    junk = tmp_path / "junk.pem"
    junk.write_text("not a PEM file\n")
    tls, key_name, path = {
        "missing-certificate": (
            {"certificate": str(tmp_path / "absent.pem"), "key": str(key)},
            "certificate",
            "absent.pem",
        ),
        "missing-key": ({"certificate": str(cert), "key": str(tmp_path / "absent.pem")}, "key", "absent.pem"),
        "certificate-not-pem": ({"certificate": str(junk), "key": str(key)}, "certificate", "junk.pem"),
        "key-not-pem": ({"certificate": str(cert), "key": str(junk)}, "key", "junk.pem"),
        "mismatch": ({"certificate": str(cert), "key": str(other)}, "key", "other-key.pem"),
    }[case]
    config = write_config(tmp_path, base_config(tmp_path, http={"tls": tls}))
    _, error = failed_start(portside("serve", str(config)), tmp_path)
    assert f"http.tls.{key_name}" in error
    assert path in error


# ---------------------------------------------------------------------------
# Object storage


def test_s3_without_a_bucket_names_the_driver_key(tmp_path: Path) -> None:
    """The missing key is `storage.s3.bucket`, where the operator writes it."""
    _, error = failed_start(portside("serve"), tmp_path, environment({"REGISTRY_STORAGE": "s3"}))
    assert "storage.s3.bucket" in error


def s3_environment(endpoint: str, bucket: str, credentials: bool = True) -> dict[str, str]:
    from tests.object_storage import s3_parameters

    parameters = s3_parameters(endpoint, bucket)
    if not credentials:
        del parameters["accesskey"], parameters["secretkey"]
    env = {
        f"REGISTRY_STORAGE_S3_{k.upper()}": str(v).lower() if isinstance(v, bool) else str(v)
        for k, v in parameters.items()
    }
    return environment({"REGISTRY_STORAGE": "s3", **env})


@pytest.mark.parametrize("case", ["no-credentials", "no-such-bucket"])
def test_object_storage_that_cannot_be_written_fails_with_the_sdks_reason(
    tmp_path: Path, s3_endpoint: str, case: str
) -> None:
    """A start-up probe (a small write, read and delete under the root) instead of a 500 on every push."""
    from tests.object_storage import create_bucket

    if case == "no-credentials":
        env, reason = s3_environment(s3_endpoint, create_bucket(s3_endpoint), credentials=False), "credentials"
    else:
        env, reason = s3_environment(s3_endpoint, "portside-no-such-bucket"), "NoSuchBucket"
    env["REGISTRY_DATABASE_DSN"] = f"sqlite:///{tmp_path / 'portside.db'}"
    _, error = failed_start(portside("serve"), tmp_path, env)
    assert "storage.s3" in error
    assert reason in error


def test_object_storage_with_local_sqlite_warns_where_the_metadata_is(tmp_path: Path, s3_endpoint: str) -> None:
    from tests.object_storage import create_bucket

    port = free_port()
    env = s3_environment(s3_endpoint, create_bucket(s3_endpoint))
    env["REGISTRY_HTTP_ADDR"] = f"127.0.0.1:{port}"
    with serving(portside("serve", "--workers", "1"), tmp_path, f"http://127.0.0.1:{port}", env) as (_, output):
        lines = [line for line in output.read_text().splitlines() if "metadata is in SQLite on local disk" in line]
        assert len(lines) == 1, output.read_text()
        assert "WARNING" in lines[0]
        assert str(tmp_path / "data" / "portside.db") in lines[0]


# ---------------------------------------------------------------------------
# Listening


@pytest.mark.parametrize("key", ["http.addr", "http.debug.addr"])
def test_a_port_in_use_fails_at_once_in_one_line(tmp_path: Path, key: str) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        busy = f"127.0.0.1:{taken.getsockname()[1]}"
        http = {"addr": busy} if key == "http.addr" else {"debug": {"addr": busy}}
        config = write_config(tmp_path, base_config(tmp_path, http=http))
        result, error = failed_start(portside("serve", str(config)), tmp_path)
    assert f"cannot listen on {busy} ({key})" in error
    assert "Retrying" not in result.stderr


# ---------------------------------------------------------------------------
# Access and workers


@pytest.mark.parametrize("content", ["", "# only a comment\n", "alice:plaintext\n", "bob\n"])
def test_an_htpasswd_file_nobody_can_log_in_with_is_refused(tmp_path: Path, content: str) -> None:
    htpasswd = tmp_path / "htpasswd"
    htpasswd.write_text(content)
    config = base_config(tmp_path, auth={"htpasswd": {"realm": "r", "path": str(htpasswd)}})
    _, error = failed_start(portside("serve", str(write_config(tmp_path, config))), tmp_path)
    assert "auth.htpasswd.path" in error
    assert str(htpasswd) in error


def test_inmemory_storage_starts_one_worker_and_says_why(tmp_path: Path) -> None:
    """README: `REGISTRY_STORAGE=inmemory` works on a machine with several CPUs: one worker, and a warning."""
    port = free_port()
    env = environment({"REGISTRY_STORAGE": "inmemory", "REGISTRY_HTTP_ADDR": f"127.0.0.1:{port}"})
    with serving(portside("serve", "--workers", "2"), tmp_path, f"http://127.0.0.1:{port}", env) as (_, output):
        with httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=30) as c:
            repo = unique_repo("mem")
            data = os.urandom(2048)
            digest = push_blob(c, repo, data)
            for _ in range(8):  # every request reaches the one process that holds the blob
                assert c.get(f"/v2/{repo}/blobs/{digest}").content == data
        text = output.read_text()
        warning = [line for line in text.splitlines() if "starting 1 worker instead of 2" in line]
        assert len(warning) == 1, text
        assert "WARNING" in warning[0]
        assert text.count("Booting worker") == 1, text


# ---------------------------------------------------------------------------
# What runs


def test_the_start_says_what_runs_in_one_line_first(tmp_path: Path) -> None:
    """docs/operations.md "Starting": one line with the version, address, storage, metadata (password
    hidden), access, delete and read-only switches and workers, before gunicorn's own lines; no Alembic
    plugin lines."""
    import asyncio

    from sqlalchemy.engine import make_url

    from portside import __version__
    from tests.metadata.conftest import _admin, postgres_admin_dsn

    name = f"portside_start_{os.urandom(5).hex()}"
    asyncio.run(_admin(f'CREATE DATABASE "{name}"'))
    try:
        url = make_url(postgres_admin_dsn()).set(database=name)
        htpasswd = tmp_path / "htpasswd"
        htpasswd.write_text(bcrypt_line("alice", "secret-password") + "\n")
        config = base_config(
            tmp_path,
            storage={"delete": {"enabled": True}},
            database={"dsn": url.render_as_string(hide_password=False)},
            auth={"htpasswd": {"realm": "r", "path": str(htpasswd)}},
        )
        port = config["http"]["addr"].rsplit(":", 1)[1]
        command = portside("serve", str(write_config(tmp_path, config)), "--workers", "2")
        with serving(command, tmp_path, f"http://127.0.0.1:{port}") as (_, output):
            wait_until(lambda: output.read_text().count("Booting worker") == 2, 30, "two workers")
        lines = output.read_text().splitlines()
        first = lines[0]
        assert f"portside {__version__}" in first
        assert f"http://127.0.0.1:{port}" in first
        assert f"storage filesystem {tmp_path / 'data'}" in first
        assert f"metadata postgresql://{url.username}:***@" in first
        assert f":{url.password}@" not in "\n".join(lines)
        assert f"auth htpasswd {htpasswd}" in first
        assert "delete on" in first
        assert "read-only off" in first
        assert "workers 2" in first
        assert not [line for line in lines if "alembic.runtime.plugins" in line]
        assert any("Listening at" in line for line in lines[1:])
    finally:
        asyncio.run(_admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))


def test_sigterm_says_how_many_requests_drain_and_for_how_long(tmp_path: Path) -> None:
    """docs/operations.md "Shutdown": on SIGTERM each worker says how many requests it is draining and for
    how long at most."""
    port = free_port()
    config = base_config(tmp_path, http={"addr": f"127.0.0.1:{port}", "draintimeout": "25s"})
    command = portside("serve", str(write_config(tmp_path, config)), "--workers", "1")
    url = f"http://127.0.0.1:{port}"
    with serving(command, tmp_path, url) as (process, output):
        with httpx.Client(base_url=url, timeout=60) as c:
            started = c.post(f"/v2/{unique_repo('drain')}/blobs/uploads/")
            assert started.status_code == 202
            location = started.headers["Location"]
        # A request that stays in flight: `Expect: 100-continue` makes the server say when its handler starts,
        # and the body is finished only once the drain line is out.
        conn = socket.create_connection(("127.0.0.1", port))
        try:
            path = "/" + location.split("/", 3)[3]
            conn.sendall(
                f"PATCH {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: 4\r\nExpect: 100-continue\r\n"
                "Content-Type: application/octet-stream\r\n\r\n".encode()
            )
            conn.settimeout(30)
            assert b"100 Continue" in conn.recv(1024)
            conn.sendall(b"ab")
            os.kill(process.pid, signal.SIGTERM)
            line = wait_until(
                lambda: next((x for x in output.read_text().splitlines() if "stopping:" in x), None),
                30,
                "the drain line",
            )
            assert "draining 1 request(s) in flight for at most 25 s" in line, line
            conn.sendall(b"cd")
            assert conn.recv(1024).startswith(b"HTTP/1.1 202"), "the drained request was answered"
        finally:
            conn.close()


# ---------------------------------------------------------------------------
# The command line


def test_version_option() -> None:
    from portside import __version__

    for option in ("--version", "-V"):
        result = subprocess.run(portside(option), capture_output=True, text=True, timeout=60, check=False)
        assert result.returncode == 0, result.stderr
        assert result.stdout.strip() == f"portside {__version__}"


def test_config_check_prints_the_effective_configuration_without_secrets(tmp_path: Path) -> None:
    """`portside config check CONFIG`: the configuration as read (defaults and REGISTRY_* overrides applied),
    secrets as ***, loadable again; an invalid one: exit 1 naming the key."""
    config = base_config(
        tmp_path,
        database={"dsn": "postgresql://registry:db-secret@db.example:5432/portside"},
        redis={"addr": "redis.example:6379", "password": "redis-secret"},
        http={"secret": "http-secret"},
    )
    path = write_config(tmp_path, config)
    env = environment({"REGISTRY_STORAGE_DELETE_ENABLED": "true"})
    result = subprocess.run(
        portside("config", "check", str(path)), env=env, capture_output=True, text=True, timeout=60, check=False
    )
    assert result.returncode == 0, result.stderr
    for secret in ("db-secret", "redis-secret", "http-secret"):
        assert secret not in result.stdout
    printed = yaml.safe_load(result.stdout)
    assert printed["database"]["dsn"] == "postgresql://registry:***@db.example:5432/portside"
    assert printed["redis"]["password"] == "***"
    assert printed["storage"]["delete"] == {"enabled": True}
    assert printed["storage"]["filesystem"]["rootdirectory"] == str(tmp_path / "data")
    assert printed["storage"]["maintenance"]["uploadpurging"]["age"] == "604800s"

    from portside.config import load_config

    (tmp_path / "printed.yml").write_text(result.stdout)
    again = load_config(tmp_path / "printed.yml", {})
    assert again.storage.maintenance.uploadpurging.age == 168 * 3600
    assert again.storage.delete.enabled

    config["storage"]["s3"] = {"region": "eu-west-1"}
    del config["storage"]["filesystem"]
    bad = subprocess.run(
        portside("config", "check", str(write_config(tmp_path, config))),
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert bad.returncode == 1
    assert "storage.s3.bucket" in bad.stderr


def test_the_server_header_names_no_versions(tmp_path: Path) -> None:
    port = free_port()
    command = portside(
        "serve", str(write_config(tmp_path, base_config(tmp_path, http={"addr": f"127.0.0.1:{port}"}))), "-w", "1"
    )
    with serving(command, tmp_path, f"http://127.0.0.1:{port}"):
        for path in ("/v2/", "/v2/nope/tags/list"):
            server = httpx.get(f"http://127.0.0.1:{port}{path}", timeout=30).headers.get("server", "")
            assert server == "Portside"


def test_push_works_after_a_clean_start(tmp_path: Path) -> None:
    """The checks leave nothing behind that a push would trip on (the probe's file is removed)."""
    port = free_port()
    command = portside(
        "serve", str(write_config(tmp_path, base_config(tmp_path, http={"addr": f"127.0.0.1:{port}"}))), "-w", "1"
    )
    url = f"http://127.0.0.1:{port}"
    with serving(command, tmp_path, url), httpx.Client(base_url=url, timeout=30) as c:
        data = os.urandom(100)
        assert push_blob(c, unique_repo("clean"), data) == sha256(data)
    assert list((tmp_path / "data" / "docker/registry/v2/health").iterdir()) == []
