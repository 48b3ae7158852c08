"""The web UI in a real browser: clicking from the repositories to a repository's tags, a tag's manifest and
its referrers; deleting a tag after confirming; signing in with htpasswd, where an anonymous visitor sees
nothing; the keyboard, a phone's width and the dark theme."""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from tests.auth.support import USERS, WRONG_PASSWORD, basic, htpasswd_config, write_htpasswd
from tests.conftest import Registry
from tests.management.conftest import start
from tests.management.content import Demo, Pusher, push_demo
from tests.ui.conftest import WAIT_MS, Shots

pytestmark = pytest.mark.browser


@pytest.fixture(scope="module")
def shop(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Registry, Demo]]:
    """A registry without access control, holding the demo shop."""
    registry = start(tmp_path_factory)
    with httpx.Client(base_url=registry.url, timeout=60) as client:
        demo = push_demo(Pusher(client), "shop")
    yield registry, demo
    registry.stop()


@pytest.fixture
def page(browser: Any) -> Iterator[Any]:
    context = browser.new_context(viewport={"width": 1280, "height": 860})
    context.set_default_timeout(WAIT_MS)
    yield context.new_page()
    context.close()


def test_repositories_to_tags_to_manifest_to_referrers(shop: tuple[Registry, Demo], page: Any, shots: Shots) -> None:
    from playwright.sync_api import expect

    registry, demo = shop
    page.goto(registry.url + "/")
    expect(page.get_by_role("heading", name="Repositories")).to_be_visible()
    rows = page.locator("table.list tbody tr")
    expect(rows).to_have_count(3)
    expect(page.locator("p.summary")).to_contain_text("3 repositories")
    shots.take(page, "ui-repositories")

    page.get_by_role("link", name=demo.web, exact=True).click()
    expect(page.get_by_role("heading", name=demo.web)).to_be_visible()
    tags = page.locator("table.tags tbody tr")
    expect(tags).to_have_count(5)
    expect(tags.first.locator("th")).to_contain_text("latest")  # newest first
    latest = page.locator("table.tags tbody tr", has=page.get_by_role("link", name="latest", exact=True))
    expect(latest).to_contain_text("linux/amd64")
    expect(latest).to_contain_text("linux/arm64")
    expect(latest).to_contain_text("OCI index")
    expect(latest.locator(".badge")).to_have_text("2 ref")
    expect(page.locator(".command code")).to_have_text(re.compile(r"^docker pull 127\.0\.0\.1:\d+/shop/web:latest$"))
    shots.take(page, "ui-tags")

    latest.get_by_role("link", name="latest", exact=True).click()
    expect(page.get_by_role("heading", name="latest", exact=True)).to_be_visible()
    platforms = page.locator("section[aria-labelledby=platforms] tbody tr")
    expect(platforms).to_have_count(2)
    expect(platforms.nth(1)).to_contain_text("linux/arm64")
    referrers = page.locator("section[aria-labelledby=referrers]")
    expect(referrers).to_contain_text("SBOM (SPDX)")
    expect(referrers).to_contain_text("Signature")
    shots.take(page, "ui-index")

    # The SBOM, itself signed: its page names its subject and its own referrer.
    referrers.locator(".group", has_text="SBOM").get_by_role("link").first.click()
    expect(page.locator("h1 code")).to_have_text(demo.sbom.digest[:19])
    expect(page.locator("p.notice")).to_contain_text("Refers to")
    expect(page.locator("section[aria-labelledby=referrers]")).to_contain_text("Signature")
    page.locator("p.notice a").click()
    expect(page.locator("dl.facts")).to_contain_text("latest")

    # An image of the index: config, layers, history.
    page.locator("section[aria-labelledby=platforms] tbody tr").first.get_by_role("link").click()
    expect(page.locator("dl.facts")).to_contain_text("linux/amd64")
    config = page.locator("section[aria-labelledby=config]")
    expect(config.locator("dd", has_text="/usr/local/bin/serve")).to_have_count(1)
    expect(config.locator("dd", has_text="--port 8080")).to_have_count(1)
    expect(page.locator("section[aria-labelledby=layers] tbody tr")).to_have_count(2)
    expect(page.locator("ol.history li")).to_have_count(3)
    shots.take(page, "ui-image")


def test_filter_sort_and_copy(shop: tuple[Registry, Demo], browser: Any) -> None:
    from playwright.sync_api import expect

    registry, demo = shop
    context = browser.new_context(viewport={"width": 1280, "height": 860})
    context.set_default_timeout(WAIT_MS)
    context.grant_permissions(["clipboard-read", "clipboard-write"], origin=registry.url)
    page = context.new_page()
    try:
        page.goto(f"{registry.url}/repositories/{demo.web}")
        page.get_by_label("Filter tags").fill("1.")
        page.get_by_label("Filter tags").press("Enter")
        expect(page.locator("table.tags tbody tr")).to_have_count(3)
        sort_by_name = page.locator("thead a", has_text="Tag")
        sort_by_name.click()
        names = page.locator("table.tags tbody th a")
        expect(names).to_have_text(["1.0.0", "1.1.0", "1.2.0"])
        expect(sort_by_name).to_have_text("Tag ↑")
        sort_by_name.click()
        expect(names).to_have_text(["1.2.0", "1.1.0", "1.0.0"])
        row = page.locator("table.tags tbody tr").first
        row.get_by_role("button", name="Copy digest").click()
        expect(row.get_by_role("button", name="Copy digest")).to_have_text("Copied")
        copied = page.evaluate("navigator.clipboard.readText()")
        assert re.fullmatch(r"sha256:[0-9a-f]{64}", copied)
        assert copied.startswith(row.locator(".digest code").inner_text())
    finally:
        context.close()


def test_keyboard_phone_and_dark_theme(shop: tuple[Registry, Demo], browser: Any, shots: Shots) -> None:
    from playwright.sync_api import expect

    registry, demo = shop
    phone = browser.new_context(viewport={"width": 390, "height": 844}, is_mobile=True, color_scheme="dark")
    phone.set_default_timeout(WAIT_MS)
    page = phone.new_page()
    try:
        page.goto(registry.url + "/")
        page.keyboard.press("Tab")
        expect(page.get_by_role("link", name="Skip to content")).to_be_focused()
        page.keyboard.press("/")
        expect(page.get_by_label("Find a repository")).to_be_focused()
        page.keyboard.type("tools")
        page.keyboard.press("Enter")
        expect(page.locator("table.list tbody tr")).to_have_count(1)
        for _ in range(20):  # through the header and the search form to the result
            if page.evaluate("document.activeElement.textContent") == demo.cli:
                break
            page.keyboard.press("Tab")
        expect(page.get_by_role("link", name=demo.cli)).to_be_focused()
        page.keyboard.press("Enter")
        expect(page.get_by_role("heading", name=demo.cli)).to_be_visible()

        page.goto(f"{registry.url}/repositories/{demo.web}")
        assert page.evaluate("document.documentElement.scrollWidth <= window.innerWidth")
        background = page.evaluate("getComputedStyle(document.body).backgroundColor")
        assert _dark(background), background
        shots.take(page, "ui-tags-phone-dark")
        page.get_by_role("button", name="Switch between light and dark").click()
        expect(page.locator("html")).to_have_attribute("data-theme", "light")
        assert not _dark(page.evaluate("getComputedStyle(document.body).backgroundColor"))
        page.reload()  # the choice is kept
        expect(page.locator("html")).to_have_attribute("data-theme", "light")
    finally:
        phone.close()


def _dark(color: str) -> bool:
    red, green, blue = (int(v) for v in re.findall(r"\d+", color)[:3])
    return red + green + blue < 3 * 80


def test_delete_a_tag_after_confirming(shop: tuple[Registry, Demo], page: Any, shots: Shots) -> None:
    from playwright.sync_api import expect

    registry, demo = shop
    page.goto(f"{registry.url}/repositories/{demo.web}")
    row = page.locator("table.tags tbody tr", has=page.get_by_role("link", name="1.0.0", exact=True))
    row.get_by_role("link", name="Delete tag 1.0.0").click()
    expect(page.get_by_role("heading", name="Delete tag 1.0.0?")).to_be_visible()
    shots.take(page, "ui-delete")
    page.get_by_role("link", name="Cancel").click()
    expect(page.get_by_role("heading", name="1.0.0")).to_be_visible()
    page.get_by_role("link", name="Delete tag 1.0.0").click()
    page.get_by_role("button", name="Delete").click()
    expect(page.get_by_role("status")).to_contain_text("Deleted 1.0.0")
    expect(page.get_by_role("link", name="1.0.0", exact=True)).to_have_count(0)
    expect(page.get_by_role("link", name="1.1.0", exact=True)).to_be_visible()
    assert httpx.head(f"{registry.url}/v2/{demo.web}/manifests/1.0.0").status_code == 404


@pytest.fixture(scope="module")
def locked(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Registry]:
    """A registry behind htpasswd (without a policy: any user may do anything)."""
    files = tmp_path_factory.mktemp("ui-htpasswd")
    registry = start(tmp_path_factory, htpasswd_config(write_htpasswd(files / "htpasswd", USERS)))
    with httpx.Client(base_url=registry.url, timeout=60, headers=basic("admin", USERS["admin"])) as client:
        push_demo(Pusher(client, dict(client.headers)), "secret")
    yield registry
    registry.stop()


def test_anonymous_visitor_sees_nothing_when_auth_is_on(locked: Registry, browser: Any, shots: Shots) -> None:
    from playwright.sync_api import expect

    context = browser.new_context()
    context.set_default_timeout(WAIT_MS)
    page = context.new_page()
    try:
        for path in ("/", "/storage", "/repositories/secret/web", "/repositories/secret/web/-/manifests/latest"):
            response = page.goto(locked.url + path)
            assert response is not None
            assert response.status == 401
            expect(page.get_by_role("heading", name="Sign in required")).to_be_visible()
            text = page.locator("body").inner_text()
            assert "secret" not in text
            assert "sha256" not in text
            expect(page.get_by_role("link", name="Repositories")).to_have_count(0)
        shots.take(page, "ui-sign-in")
    finally:
        context.close()


def test_sign_in_with_htpasswd(locked: Registry, browser: Any, shots: Shots) -> None:
    """The sign-in link asks the browser for credentials (a Basic challenge); signed in, every page opens."""
    from playwright.sync_api import Error, expect

    context = browser.new_context(http_credentials={"username": "puller", "password": USERS["puller"]})
    context.set_default_timeout(WAIT_MS)
    page = context.new_page()
    try:
        first = page.goto(f"{locked.url}/repositories/secret/web")
        assert first is not None
        assert first.status == 401  # no dialog before the visitor asks to sign in
        page.get_by_role("link", name="Sign in").click()
        expect(page.get_by_role("heading", name="secret/web")).to_be_visible()
        expect(page.locator(".user")).to_have_text("puller")
        expect(page.locator("table.tags tbody tr")).to_have_count(5)
        page.get_by_role("link", name="Repositories", exact=True).first.click()
        expect(page.get_by_role("link", name="secret/web", exact=True)).to_be_visible()
        page.get_by_role("link", name="secret/web", exact=True).click()
        page.get_by_role("link", name="latest", exact=True).click()
        expect(page.locator("section[aria-labelledby=referrers]")).to_contain_text("Signature")
        page.get_by_role("link", name="Storage").click()
        expect(page.get_by_role("heading", name="Storage")).to_be_visible()
        shots.take(page, "ui-storage")
    finally:
        context.close()

    wrong = browser.new_context(http_credentials={"username": "puller", "password": WRONG_PASSWORD})
    wrong.set_default_timeout(WAIT_MS)
    page = wrong.new_page()
    try:
        failure = ""
        try:
            response = page.goto(f"{locked.url}/login")
        except Error as exc:  # the browser gives up on credentials the server keeps refusing
            failure = str(exc)
            response = None
        if response is None:
            assert "ERR_INVALID_AUTH_CREDENTIALS" in failure
        else:
            assert response.status == 401
            assert "secret" not in page.locator("body").inner_text()
    finally:
        wrong.close()
