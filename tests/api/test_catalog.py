"""Listing repositories: GET /v2/_catalog with `n`, `last` and `Link` pagination."""

from __future__ import annotations

from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from uuid import uuid4

import httpx
import pytest

from .oci import (
    Server,
    assert_error,
    describe,
    follow_pages,
    link_query,
    next_link,
    push_blob,
    push_image,
    random_blob,
)

SUFFIXES = ["zeta", "alpha", "mid/deep", "beta", "alpha-2"]


def make_repositories(client: httpx.Client) -> tuple[str, list[str]]:
    """Five repositories under a fresh prefix, made by blob pushes, manifest pushes and a mount."""
    prefix = f"catalog-{uuid4().hex[:10]}"
    names = [f"{prefix}/{suffix}" for suffix in SUFFIXES]
    shared = push_blob(client, names[0], random_blob(16))
    push_image(client, names[1], "latest")
    push_blob(client, names[2], random_blob(16))
    push_image(client, names[3])
    mounted = client.post(f"/v2/{names[4]}/blobs/uploads/", params={"mount": shared.digest, "from": names[0]})
    assert mounted.status_code == 201, describe(mounted)
    return prefix, sorted(names)


@pytest.fixture
def mine(client: httpx.Client) -> tuple[str, list[str]]:
    return make_repositories(client)


def catalog_page(client: httpx.Client, **params: str) -> httpx.Response:
    resp = client.get("/v2/_catalog", params=params)
    assert resp.status_code == 200, describe(resp)
    assert resp.headers.get("content-type", "").split(";")[0] == "application/json"
    assert isinstance(resp.json().get("repositories"), list), describe(resp)
    return resp


def assert_sorted_once(listing: list[str], names: list[str]) -> None:
    """The listing is sorted by byte value and holds each of `names` once, in order."""
    assert listing == sorted(listing), "catalog is not sorted"
    assert len(set(listing)) == len(listing), "catalog repeats a repository"
    assert [name for name in listing if name in names] == names


def test_catalog_lists_repositories_sorted(client: httpx.Client, mine: tuple[str, list[str]]) -> None:
    """Docker API "Listing Repositories": a lexically sorted list; every page followed to the end."""
    _, names = mine
    listing = [name for page in follow_pages(client, "/v2/_catalog", "repositories") for name in page]
    assert_sorted_once(listing, names)


def test_paging_with_n_and_last(client: httpx.Client, mine: tuple[str, list[str]]) -> None:
    """Docker API "Pagination": `n` results after `last`, `Link: <...?n=&last=>; rel="next"` to go on."""
    prefix, names = mine
    resp = catalog_page(client, n="2", last=prefix)
    seen: list[str] = []
    while True:
        page = resp.json()["repositories"]
        assert 1 <= len(page) <= 2, describe(resp)
        seen.extend(page)
        link = next_link(resp)
        if link is None or not page[-1].startswith(prefix + "/"):
            break
        path, query = link_query(link)
        assert path == "/v2/_catalog"
        assert query == {"last": page[-1], "n": "2"}
        resp = client.get(link)
        assert resp.status_code == 200, describe(resp)
    assert [name for name in seen if name.startswith(prefix + "/")] == names
    assert seen[: len(names)] == names
    assert_sorted_once(seen, names)


def test_link_is_absolute_on_the_request_host(client: httpx.Client, mine: tuple[str, list[str]]) -> None:
    """Behaviour doc "URLs" and "Listing": `Link: <<base>/v2/_catalog?last=<last>&n=<n>>; rel="next"`, where
    `<base>` is the scheme and host the request came to (Docker Distribution's absolute URLs)."""
    prefix, _ = mine
    resp = catalog_page(client, n="1", last=prefix)
    assert resp.headers.get("link", "").startswith(f"<{client.base_url}/v2/_catalog?"), describe(resp)


def test_last_without_n(client: httpx.Client, mine: tuple[str, list[str]]) -> None:
    """Docker API "Pagination": entries start after `last`; `n` may be left out."""
    prefix, names = mine
    listing = catalog_page(client, last=prefix).json()["repositories"]
    assert listing[: len(names)] == names
    after = catalog_page(client, last=names[2]).json()["repositories"]
    assert after[:2] == names[3:]


def test_n_zero_is_empty_without_link(client: httpx.Client, mine: tuple[str, list[str]]) -> None:
    """Behaviour doc "Listing": the tags rules apply; `n=0` gives `[]` and no `Link`."""
    resp = catalog_page(client, n="0")
    assert resp.json()["repositories"] == []
    assert "link" not in resp.headers


@pytest.mark.parametrize("n", ["-1", "abc", "2.5", "1e2"])
def test_invalid_n_is_400(client: httpx.Client, n: str) -> None:
    """Behaviour doc "Listing": `n` not a non-negative integer is 400 (its code: see test_error_codes)."""
    assert_error(client.get("/v2/_catalog", params={"n": n}), 400)


def test_huge_n_is_lowered_to_the_default_maxentries(registry_factory: Callable[..., Server]) -> None:
    """Behaviour doc "Listing": `n` above `catalog.maxentries` (default 1000) is lowered to it, and so is a page
    without `n`: with 1003 repositories each such page holds exactly the first 1000, and `Link` leads to the
    other three."""
    server = registry_factory(workers=2)
    names = sorted(f"many/{i:04d}-{uuid4().hex[:6]}" for i in range(1003))
    with httpx.Client(base_url=server.url, timeout=60.0) as c:
        shared = push_blob(c, names[0], random_blob(8))

        def make(name: str) -> None:
            r = c.post(f"/v2/{name}/blobs/uploads/", params={"mount": shared.digest, "from": names[0]})
            assert r.status_code == 201, describe(r)

        with ThreadPoolExecutor(4) as pool:
            list(pool.map(make, names[1:]))
        for params in [{"n": "5000"}, {"n": "100000000000000000000000000000"}, {}]:
            resp = catalog_page(c, **params)
            assert resp.json()["repositories"] == names[:1000], f"{params}: {len(resp.json()['repositories'])}"
            link = next_link(resp)
            assert link is not None, describe(resp)
            rest = c.get(link)
            assert rest.status_code == 200, describe(rest)
            assert rest.json()["repositories"] == names[1000:]
            assert next_link(rest) is None


def test_maxentries_caps_pages(registry_factory: Callable[..., Server]) -> None:
    """Behaviour doc "Listing": without `n` one page of `catalog.maxentries`; a larger `n` is lowered,
    and the `Link` header says where to go on."""
    server = registry_factory({"catalog": {"maxentries": 3}})
    with httpx.Client(base_url=server.url, timeout=60.0) as small:
        _, names = make_repositories(small)
        for params in [{}, {"n": "100"}]:
            resp = catalog_page(small, **params)
            assert resp.json()["repositories"] == names[:3]
            assert next_link(resp) is not None, describe(resp)
        pages = list(follow_pages(small, "/v2/_catalog", "repositories"))
        assert [name for page in pages for name in page] == names
        assert [len(page) for page in pages] == [3, 2]
        pages = list(follow_pages(small, "/v2/_catalog?n=2", "repositories"))
        assert [len(page) for page in pages] == [2, 2, 1]
