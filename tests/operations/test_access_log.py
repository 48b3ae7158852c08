"""Access logs and request ids.

docs/operations.md, Logs: unless `log.accesslog.disabled`, each request gets one access log line; in JSON its
fields are `request_id`, `method`, `path`, `status`, `bytes`, `duration`, `remote`, `user_agent`, `user`,
`repository`; `log.fields` are added to every line. "Every response carries `X-Request-Id`; a request that
arrives with an `X-Request-Id` keeps it."
"""

from __future__ import annotations

import os
import time
import uuid
from dataclasses import dataclass
from typing import Any

import pytest

from tests.conftest import Registry, RegistryFactory
from tests.operations.support import (
    RFC3339,
    USER_AGENT,
    Call,
    Client,
    access_lines,
    json_log_lines,
    sha256,
    unique_repo,
    wait_until,
    write_htpasswd,
)

FIELDS = {"service": "portside-ops", "environment": "test"}
DOCUMENTED = (
    "request_id",
    "method",
    "path",
    "status",
    "bytes",
    "duration",
    "remote",
    "user_agent",
    "user",
    "repository",
)
USER = "log-writer"


@dataclass
class Logged:
    registry: Registry
    password: str

    def client(self, authenticated: bool = True) -> Client:
        return Client(self.registry.url, auth=(USER, self.password) if authenticated else None)

    def line(self, call: Call) -> dict[str, Any]:
        """The one access line of `call` (waiting for it to be written)."""
        rid = call.request_id
        assert rid, f"{call.method} {call.path}: no X-Request-Id in the response"
        lines = wait_until(lambda: access_lines(self.registry, rid), timeout=10, what=f"the access line of {rid}")
        assert len(lines) == 1, f"{call.method} {call.path}: {len(lines)} access lines: {lines}"
        return lines[0]


@pytest.fixture(scope="module")
def logged(module_registry_factory: RegistryFactory, tmp_path_factory: pytest.TempPathFactory) -> Logged:
    password = f"pw-{uuid.uuid4().hex}"
    htpasswd = write_htpasswd(tmp_path_factory.mktemp("log-auth") / "htpasswd", {USER: password})
    reg = module_registry_factory(
        {
            "log": {"formatter": "json", "level": "info", "fields": FIELDS, "accesslog": None},
            "auth": {"htpasswd": {"realm": "ops", "path": str(htpasswd)}},
        }
    )
    return Logged(reg, password)


def test_every_response_carries_a_distinct_request_id(logged: Logged) -> None:
    c = logged.client()
    repo = unique_repo("rid")
    calls = [
        c.request("GET", "/v2/"),
        c.request("GET", f"/v2/{repo}/tags/list"),
        c.request("GET", "/v2/no/such/route/here"),
        c.push_blob(repo, os.urandom(100)),
    ]
    anonymous = logged.client(authenticated=False)
    calls.append(anonymous.request("GET", "/v2/"))
    c.close()
    anonymous.close()
    assert [x.status for x in calls] == [200, 404, 404, 201, 401]
    ids = [x.request_id for x in calls]
    assert all(ids), ids
    assert len(set(ids)) == len(ids), ids


def test_a_client_request_id_is_kept(logged: Logged) -> None:
    c = logged.client()
    rid = f"ops-log-{uuid.uuid4()}"
    call = c.request("GET", "/v2/", headers={"X-Request-Id": rid})
    c.close()
    assert call.request_id == rid
    assert logged.line(call)["request_id"] == rid


def test_one_access_line_with_the_documented_fields(logged: Logged) -> None:
    """A blob GET: `method`, `path`, `status`, `bytes` (the body sent), `duration`, `remote`, `user_agent`,
    `user` (the authenticated user) and `repository`."""
    c = logged.client()
    repo = unique_repo("access")
    data = os.urandom(4096)
    c.push_blob(repo, data)
    call = c.request("GET", f"/v2/{repo}/blobs/{sha256(data)}", headers={"X-Request-Id": f"ops-get-{uuid.uuid4()}"})
    c.close()
    assert call.status == 200
    line = logged.line(call)
    for name in DOCUMENTED:
        assert name in line, f"access line without {name}: {line}"
    assert line["method"] == "GET"
    assert line["path"] == f"/v2/{repo}/blobs/{sha256(data)}"
    assert int(line["status"]) == 200
    assert int(line["bytes"]) == len(data)
    assert line["duration"] is not None
    assert line["duration"] != ""
    if isinstance(line["duration"], int | float):
        assert line["duration"] >= 0
    assert str(line["remote"]).startswith("127.0.0.1")
    assert line["user_agent"] == USER_AGENT
    assert line["user"] == USER
    assert line["repository"] == repo


def test_write_and_refused_requests_are_logged_too(logged: Logged) -> None:
    """A push (POST 201) and an unauthenticated request (401, no user) each get their line."""
    c = logged.client()
    repo = unique_repo("access")
    push = c.push_blob(repo, os.urandom(300))
    c.close()
    line = logged.line(push)
    assert line["method"] == "POST"
    assert int(line["status"]) == 201
    assert str(line["path"]).startswith(f"/v2/{repo}/blobs/uploads/")
    assert line["repository"] == repo
    assert line["user"] == USER
    anonymous = logged.client(authenticated=False)
    refused = anonymous.request("GET", f"/v2/{repo}/tags/list")
    anonymous.close()
    assert refused.status == 401
    line = logged.line(refused)
    assert int(line["status"]) == 401
    assert not line.get("user"), line


def test_log_fields_on_every_line(logged: Logged) -> None:
    """`log.fields` are "added to every line", and with `formatter: json` every line is a JSON object."""
    c = logged.client()
    call = c.request("GET", "/v2/")
    c.close()
    logged.line(call)
    text = logged.registry.log_path.read_text(errors="replace")
    not_json = [line for line in text.splitlines() if line.strip() and not line.lstrip().startswith("{")]
    assert not not_json, f"lines that are not JSON with formatter json: {not_json[:5]}"
    for doc in json_log_lines(logged.registry):
        for k, v in FIELDS.items():
            assert doc.get(k) == v, f"line without log.fields {k}={v}: {doc}"


def test_no_access_lines_when_disabled(registry_factory: RegistryFactory) -> None:
    """`log.accesslog.disabled: true`: no access log line (other logging goes on)."""
    reg = registry_factory({"log": {"formatter": "json", "level": "info", "accesslog": {"disabled": True}}}, workers=2)
    c = Client(reg.url)
    rid = f"ops-quiet-{uuid.uuid4()}"
    call = c.request("GET", "/v2/", headers={"X-Request-Id": rid})
    c.close()
    assert call.request_id == rid
    time.sleep(1.5)
    assert access_lines(reg, rid) == []
    assert not [d for d in json_log_lines(reg) if d.get("path") == "/v2/" and d.get("status") is not None]


def _formatted(registry_factory: RegistryFactory, formatter: str) -> tuple[Registry, str, str]:
    """A registry logging with `formatter` and FIELDS, a blob pulled through it with a known request id,
    and the text of the log once that request's access line is in it."""
    reg = registry_factory(
        {"log": {"formatter": formatter, "level": "info", "fields": FIELDS, "accesslog": None}}, workers=2
    )
    c = Client(reg.url)
    repo = unique_repo("format")
    data = os.urandom(1500)
    c.push_blob(repo, data)
    rid = f"ops-format-{uuid.uuid4()}"
    call = c.request("GET", f"/v2/{repo}/blobs/{sha256(data)}", headers={"X-Request-Id": rid})
    c.close()
    assert call.status == 200

    def logged() -> str | None:
        text = reg.log_path.read_text(errors="replace")
        return text if rid in text else None

    return reg, rid, wait_until(logged, timeout=10, what=f"the access line of {rid}")


def test_text_formatter(registry_factory: RegistryFactory) -> None:
    """`formatter: text`: no line is JSON; the access line carries the request id, method, path, status,
    bytes, user agent and repository; `log.fields` end every line, gunicorn's own included."""
    _, rid, text = _formatted(registry_factory, "text")
    lines = [line for line in text.splitlines() if line.strip()]
    assert not [line for line in lines if line.lstrip().startswith("{")], "a JSON line with formatter text"
    fields = {f"{k}={v}" for k, v in FIELDS.items()}
    without = [line for line in lines if set(line.split()[-len(fields) :]) != fields]
    assert not without, f"lines that do not end with log.fields: {without[:5]}"
    assert any("gunicorn" in line for line in lines), "gunicorn's messages are not in the log"
    access = [line for line in lines if rid in line]
    assert len(access) == 1, access
    for part in ("GET", "/v2/", "/blobs/sha256:", " 200 ", " 1500 ", USER_AGENT, "repository=format/"):
        assert part in access[0], f"{part!r} not in the access line {access[0]!r}"


def test_logstash_formatter(registry_factory: RegistryFactory) -> None:
    """`formatter: logstash`: every line is a Logstash event (`@timestamp` in RFC 3339, `@version` "1",
    `message`, `level`) with `log.fields`; the access line also has the documented fields."""
    reg, rid, text = _formatted(registry_factory, "logstash")
    lines = [line for line in text.splitlines() if line.strip()]
    docs = json_log_lines(reg)
    assert len(docs) == len(lines), [line for line in lines if not line.lstrip().startswith("{")][:5]
    for doc in docs:
        assert RFC3339.match(str(doc.get("@timestamp"))), doc
        assert doc.get("@version") == "1", doc
        assert isinstance(doc.get("message"), str), doc
        assert doc["message"], doc
        assert doc.get("level") in {"debug", "info", "warning", "warn", "error", "critical"}, doc
        for k, v in FIELDS.items():
            assert doc.get(k) == v, doc
    access = [d for d in docs if d.get("request_id") == rid]
    assert len(access) == 1, access
    for name in DOCUMENTED:
        assert name in access[0], f"access line without {name}: {access[0]}"
    assert (access[0]["method"], int(access[0]["status"]), int(access[0]["bytes"])) == ("GET", 200, 1500)
