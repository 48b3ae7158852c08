"""The web UI's configuration (`ui`), as HTTP sees it: the switch, the path prefix, pages without access
control or with `silly`, and what deletes it offers when the registry allows none."""

from __future__ import annotations

import base64
import os
import re

import httpx

from tests.conftest import RegistryFactory
from tests.management.content import Pusher


def test_ui_can_be_switched_off(registry_factory: RegistryFactory) -> None:
    reg = registry_factory({"ui": {"enabled": False}})
    r = httpx.get(f"{reg.url}/")
    assert r.status_code == 404
    assert r.json()["errors"][0]["code"] == "UNSUPPORTED"
    assert httpx.get(f"{reg.url}/portside/v1/").status_code == 200  # the API stays
    assert "/" not in httpx.get(f"{reg.url}/openapi.json").json()["paths"]


def test_ui_under_a_path_and_http_prefix(registry_factory: RegistryFactory) -> None:
    reg = registry_factory({"ui": {"path": "console"}, "http": {"prefix": "/registry"}})
    with httpx.Client(base_url=f"{reg.url}/registry", timeout=30) as client:
        Pusher(client).image("shop/web", "v1", [os.urandom(64)])
        assert client.get("/").status_code == 404
        home = client.get("/console/")
        assert home.status_code == 200
        assert 'href="/registry/console/repositories/shop/web"' in home.text
        assert client.get("/console").status_code == 200
        stylesheet = re.search(r'href="(/registry/console/-/static/app\.css\?v=\w+)"', home.text)
        assert stylesheet is not None
        assert httpx.get(f"{reg.url}{stylesheet[1]}").status_code == 200
        page = client.get("/console/repositories/shop/web")
        assert "docker pull 127.0.0.1:" in page.text
        assert 'href="/registry/console/repositories/shop/web/-/manifests/v1"' in page.text


def test_ui_pages_are_locked_down_for_browsers(registry_factory: RegistryFactory) -> None:
    reg = registry_factory()
    with httpx.Client(base_url=reg.url, timeout=30) as client:
        image = Pusher(client).image("shop/web", "v1", [os.urandom(64)])
        r = client.get("/repositories/shop/web")
        assert r.status_code == 200
        assert r.headers["Content-Type"] == "text/html; charset=utf-8"
        assert "script-src 'self'" in r.headers["Content-Security-Policy"]
        assert "frame-ancestors 'none'" in r.headers["Content-Security-Policy"]
        assert r.headers["X-Frame-Options"] == "DENY"
        assert r.headers["Cache-Control"] == "no-store"
        assert image.digest in r.text  # the full digest, for the copy button
        assert "<script>" not in r.text  # no inline script: the policy would block it
        missing = client.get("/repositories/shop/none")
        assert missing.status_code == 404
        assert missing.headers["Content-Type"].startswith("text/html")
        assert "NAME_UNKNOWN" in missing.text
        bad = client.get("/repositories/shop/web/-/manifests/sha256:nothex")
        assert bad.status_code == 400
        assert "DIGEST_INVALID" in bad.text


def test_deletes_are_offered_only_when_the_registry_allows_them(registry_factory: RegistryFactory) -> None:
    reg = registry_factory({"storage": {"delete": {"enabled": False}}})
    with httpx.Client(base_url=reg.url, timeout=30) as client:
        Pusher(client).image("shop/web", "v1", [os.urandom(64)])
        assert "/-/delete" not in client.get("/repositories/shop/web").text
        assert "/-/delete" not in client.get("/repositories/shop/web/-/manifests/v1").text
        confirm = client.get("/repositories/shop/web/-/delete", params={"tag": "v1"})
        assert confirm.status_code == 405
        assert "storage.delete.enabled" in confirm.text
        post = client.post("/repositories/shop/web/-/delete", data={"tag": "v1"})
        assert post.status_code == 405
    read_only = registry_factory({"storage": {"maintenance": {"readonly": {"enabled": True}}}})
    with httpx.Client(base_url=read_only.url, timeout=30) as client:
        assert client.get("/").status_code == 200
        assert client.post("/repositories/shop/web/-/delete", data={"tag": "v1"}).status_code == 405


def test_silly_auth_asks_browsers_for_any_credentials(registry_factory: RegistryFactory) -> None:
    reg = registry_factory({"auth": {"silly": {"realm": "https://auth.example/token", "service": "registry"}}})
    first = httpx.get(f"{reg.url}/")
    assert first.status_code == 401
    assert 'href="/login?next=%2F"' in first.text
    login = httpx.get(f"{reg.url}/login")
    assert login.status_code == 401
    assert login.headers["WWW-Authenticate"] == 'Basic realm="Portside"'
    anyone = {"Authorization": "Basic " + base64.b64encode(b"dev:anything").decode()}
    assert httpx.get(f"{reg.url}/", headers=anyone).status_code == 200
    # The registry API keeps silly's Bearer challenge.
    assert httpx.get(f"{reg.url}/v2/").headers["WWW-Authenticate"].startswith("Bearer ")
