"""Listing tags: GET /v2/<name>/tags/list with `n`, `last` and `Link` pagination."""

from __future__ import annotations

import random

import httpx
import pytest

from .oci import (
    assert_error,
    describe,
    follow_pages,
    link_query,
    next_link,
    push_blob,
    push_image,
    push_manifest,
    random_blob,
)

# Byte order puts digits before upper case, `_` between upper and lower case.
TAGS = ["latest", "v1.0", "v1.10", "v1.2", "A", "Z_top", "_under", "a", "b-1", "0", "9.9", "B"]
SORTED = sorted(TAGS)


@pytest.fixture
def tagged(client: httpx.Client, repo: str) -> list[str]:
    """`repo` with one image under every tag of TAGS, pushed in random order."""
    image = push_image(client, repo)
    order = list(TAGS)
    random.shuffle(order)
    for tag in order:
        push_manifest(client, repo, tag, image.manifest)
    return SORTED


def get_tags(client: httpx.Client, repo: str, **params: str) -> httpx.Response:
    resp = client.get(f"/v2/{repo}/tags/list", params=params)
    assert resp.status_code == 200, describe(resp)
    assert resp.headers.get("content-type", "").split(";")[0] == "application/json"
    body = resp.json()
    assert body.get("name") == repo, body
    assert isinstance(body.get("tags"), list), body
    return resp


def test_tags_are_listed_in_byte_order(client: httpx.Client, repo: str, tagged: list[str]) -> None:
    """OCI "Listing Tags": 200 `{"name", "tags"}`; behaviour doc: sorted by byte value (Go `sort.Strings`)."""
    resp = get_tags(client, repo)
    assert resp.json()["tags"] == tagged
    assert "link" not in resp.headers


def test_n_limits_the_page_and_link_leads_on(client: httpx.Client, repo: str, tagged: list[str]) -> None:
    """OCI "Listing Tags": `n` caps the list from the start; behaviour doc: `Link:
    </v2/<name>/tags/list?last=..&n=..>`."""
    resp = get_tags(client, repo, n="5")
    assert resp.json()["tags"] == tagged[:5]
    link = next_link(resp)
    assert link is not None
    path, query = link_query(link)
    assert path == f"/v2/{repo}/tags/list"
    assert query == {"last": tagged[4], "n": "5"}


def test_link_is_absolute_on_the_request_host(client: httpx.Client, repo: str, tagged: list[str]) -> None:
    """Behaviour doc "URLs" and "Listing": `Link: <<base>/v2/<name>/tags/list?last=<last tag>&n=<n>>;
    rel="next"`, where `<base>` is the scheme and host the request came to."""
    resp = get_tags(client, repo, n="5")
    assert resp.headers.get("link", "").startswith(f"<{client.base_url}/v2/{repo}/tags/list?"), describe(resp)


def test_following_links_yields_every_tag_once(client: httpx.Client, repo: str, tagged: list[str]) -> None:
    """Docker API "Pagination": follow `Link` until it is absent to get the whole result set."""
    pages = list(follow_pages(client, f"/v2/{repo}/tags/list?n=5", "tags"))
    assert [tag for page in pages for tag in page] == tagged
    assert all(1 <= len(page) <= 5 for page in pages), pages
    assert len(pages) == 3


def test_n_equal_to_count_has_no_link(client: httpx.Client, repo: str, tagged: list[str]) -> None:
    """Behaviour doc "Listing": `Link` only when more tags follow the page."""
    resp = get_tags(client, repo, n=str(len(tagged)))
    assert resp.json()["tags"] == tagged
    assert "link" not in resp.headers


@pytest.mark.parametrize("n", ["1000", "100000000000000000000000000000"])
def test_n_larger_than_count_gives_everything(client: httpx.Client, repo: str, tagged: list[str], n: str) -> None:
    """OCI "Listing Tags": fewer than `n` results only when the repository has fewer tags."""
    resp = get_tags(client, repo, n=n)
    assert resp.json()["tags"] == tagged
    assert "link" not in resp.headers


def test_n_zero_is_empty_without_link(client: httpx.Client, repo: str, tagged: list[str]) -> None:
    """OCI "Listing Tags": when `n` is zero the list MUST be empty and there MUST NOT be a `Link` header."""
    for params in [{"n": "0"}, {"n": "0", "last": "A"}]:
        resp = get_tags(client, repo, **params)
        assert resp.json()["tags"] == []
        assert "link" not in resp.headers


@pytest.mark.parametrize(
    ("last", "n", "expected_slice"),
    [
        ("B", None, slice(4, None)),
        ("b", None, slice(7, None)),
        ("a", "2", slice(7, 9)),
        ("0", "3", slice(1, 4)),
        ("v1.2", None, slice(12, None)),
        ("zzz", "4", slice(12, None)),
    ],
)
def test_last_starts_after_the_given_tag(
    client: httpx.Client, repo: str, tagged: list[str], last: str, n: str | None, expected_slice: slice
) -> None:
    """OCI "Listing Tags": up to `n` tags after `last`, `last`
    itself excluded; `n` is optional with `last`."""
    params = {"last": last} if n is None else {"last": last, "n": n}
    resp = get_tags(client, repo, **params)
    expected = tagged[expected_slice]
    assert resp.json()["tags"] == expected
    more = n is not None and expected and tagged.index(expected[-1]) < len(tagged) - 1
    assert ("link" in resp.headers) == bool(more), describe(resp)


@pytest.mark.parametrize("n", ["-1", "abc", "1.5", "1e3", "0x10"])
def test_invalid_n_is_400(client: httpx.Client, repo: str, tagged: list[str], n: str) -> None:
    """Docker API errors / behaviour doc: `n` not a non-negative integer is 400 (code: see test_error_codes)."""
    assert_error(client.get(f"/v2/{repo}/tags/list", params={"n": n}), 400)


def test_unknown_repository_is_404_name_unknown(client: httpx.Client, repo: str) -> None:
    """OCI "Listing Tags" (200 only when the repository exists); behaviour doc: 404 NAME_UNKNOWN."""
    assert_error(client.get(f"/v2/{repo}/tags/list"), 404, "NAME_UNKNOWN")
    assert_error(client.get(f"/v2/{repo}/tags/list", params={"n": "2"}), 404, "NAME_UNKNOWN")


def test_repository_without_tags_lists_none(client: httpx.Client, repo: str) -> None:
    """OCI "Listing Tags": the list MAY be empty; behaviour
    doc: a committed blob makes the repository exist."""
    push_blob(client, repo, random_blob(8))
    assert get_tags(client, repo).json()["tags"] == []
    push_image(client, repo)
    assert get_tags(client, repo).json()["tags"] == []
