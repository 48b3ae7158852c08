"""The route table's generated descriptions: the OpenAPI document (printed and served) and the error table of
docs/http-behaviour.md."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import httpx
from openapi_spec_validator import validate

from portside.api.routes import ROUTES, debug_routes
from tests.conftest import Registry

DOCS = Path(__file__).resolve().parents[2] / "docs" / "http-behaviour.md"


def portside(*args: str) -> str:
    return subprocess.run(
        [sys.executable, "-m", "portside", *args], capture_output=True, text=True, check=True, timeout=60
    ).stdout


def test_printed_document_is_valid_openapi_covering_every_route() -> None:
    document = json.loads(portside("openapi"))
    validate(document)
    assert document["openapi"].startswith("3.1")
    expected = {(route.path, method.lower()) for route in ROUTES.routes for method in route.methods}
    expected |= {(route.path, method.lower()) for route in debug_routes(None).routes for method in route.methods}
    documented = {
        (path, method)
        for path, item in document["paths"].items()
        for method in item
        if method in ("get", "head", "put", "post", "patch", "delete")
    }
    assert documented == expected


def test_each_operation_documents_its_error_codes_and_success_headers() -> None:
    document = json.loads(portside("openapi"))
    upload_put = document["paths"]["/v2/{name}/blobs/uploads/{uuid}"]["put"]
    assert set(upload_put["responses"]) >= {"201", "400", "401", "403", "404", "405", "416"}
    assert "DIGEST_INVALID" in upload_put["responses"]["400"]["description"]
    assert "BLOB_UPLOAD_UNKNOWN" in upload_put["responses"]["404"]["description"]
    assert set(upload_put["responses"]["201"]["headers"]) == {"Location", "Docker-Content-Digest"}
    manifest_put = document["paths"]["/v2/{name}/manifests/{reference}"]["put"]
    assert "413" in manifest_put["responses"]
    assert "OCI-Subject" in manifest_put["responses"]["201"]["headers"]
    assert "WWW-Authenticate" in manifest_put["responses"]["401"]["headers"]


def test_token_route_is_documented_when_the_token_server_runs_inside(tmp_path: Path) -> None:
    config = tmp_path / "config.yml"
    config.write_text(
        "version: 0.1\n"
        f"storage: {{filesystem: {{rootdirectory: {tmp_path / 'data'}}}}}\n"
        "auth: {token: {service: s, issuer: i}}\n"
        f"tokenserver: {{htpasswd: {tmp_path / 'htpasswd'}, path: /auth/token}}\n"
    )
    document = json.loads(portside("openapi", str(config)))
    validate(document)
    assert set(document["paths"]["/auth/token"]) >= {"get", "post"}


def test_error_table_in_the_docs_is_the_generated_one() -> None:
    text = DOCS.read_text()
    found = re.search(r"<!-- error table:[^\n]*-->\n(.*?)<!-- end of error table -->", text, re.DOTALL)
    assert found is not None, "docs/http-behaviour.md lost its generated error table"
    assert found[1] == portside("openapi", "--error-table"), "regenerate it with `portside openapi --error-table`"


def test_the_registry_serves_its_document(registry: Registry) -> None:
    response = httpx.get(f"{registry.url}/openapi.json", timeout=30)
    assert response.status_code == 200
    assert response.headers["Content-Type"].startswith("application/json")
    document = response.json()
    validate(document)
    assert "/v2/{name}/blobs/{digest}" in document["paths"]
