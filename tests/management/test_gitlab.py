"""GitLab's container registry API v1 as its specification (docs/spec/gitlab/api.md of GitLab's container
registry) describes it: the compliance check, repository details with deduplicated sizes, the detailed tag
list with its pagination, filter and sorts, and the repositories under a path. Responses are compared field
for field with the specification's examples."""

from __future__ import annotations

import base64
import os
import re
from datetime import datetime
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest

from tests.management.content import OCI_MANIFEST, SBOM, SIGNATURE, Pusher

# "ISO 8601 with millisecond precision", as GitLab's registry writes times (UTC, `Z`).
MILLIS = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$")
TAG_KEYS = {"name", "digest", "config_digest", "media_type", "size_bytes", "created_at", "published_at"}


def links(response: httpx.Response) -> dict[str, str]:
    """`Link` header targets by relation (RFC 5988)."""
    found = {}
    for part in response.headers.get("Link", "").split(","):
        match = re.match(r'\s*<([^>]*)>;\s*rel="(\w+)"', part)
        if match:
            found[match[2]] = match[1]
    return found


def tag_names(client: httpx.Client, repo: str, **params: str) -> list[str]:
    r = client.get(f"/gitlab/v1/repositories/{repo}/tags/list/", params=params)
    assert r.status_code == 200, r.text
    return [t["name"] for t in r.json()]


def assert_error(r: httpx.Response, status: int, code: str) -> None:
    assert r.status_code == status, r.text
    assert r.headers["Content-Type"].startswith("application/json")
    assert code in [e["code"] for e in r.json()["errors"]], r.text


def test_compliance_check_is_200_with_an_empty_body(client: httpx.Client) -> None:
    r = client.get("/gitlab/v1/")
    assert r.status_code == 200
    assert r.content == b""
    assert r.headers["Content-Length"] == "0"


def test_sizes_count_each_blob_once_per_repository_and_once_across_descendants(
    client: httpx.Client, pusher: Pusher, prefix: str
) -> None:
    """Two repositories share a base layer: each repository's size counts it once, and the size of their parent
    path with descendants counts it once in all (the sum of unique layers referenced by tagged manifests)."""
    shared = os.urandom(40_000)
    a = pusher.image(f"{prefix}/a", "v1", [shared, os.urandom(3_000)])
    pusher.image(f"{prefix}/a", "v2", [shared, os.urandom(2_000)])  # the shared layer again: still once
    b = pusher.image(f"{prefix}/b", "v1", [shared, os.urandom(5_000)])
    v2 = client.get(f"/portside/v1/repositories/{prefix}/a/manifests/v2").json()
    a_blobs = {**a.blobs, **{layer["digest"]: layer["size_bytes"] for layer in v2["layers"]}}
    a_blobs[v2["config"]["digest"]] = v2["config"]["size_bytes"]

    size_a = client.get(f"/gitlab/v1/repositories/{prefix}/a/", params={"size": "self"}).json()
    size_b = client.get(f"/gitlab/v1/repositories/{prefix}/b/", params={"size": "self"}).json()
    assert size_a["size_bytes"] == sum(a_blobs.values())
    assert size_b["size_bytes"] == sum(b.blobs.values())
    assert size_a["size_precision"] == size_b["size_precision"] == "default"

    # The parent path is no repository itself; GitLab still answers its size with descendants.
    both = client.get(f"/gitlab/v1/repositories/{prefix}/", params={"size": "self_with_descendants"})
    assert both.status_code == 200, both.text
    assert both.json() == {
        "name": prefix,
        "path": prefix,
        "size_bytes": sum({**a_blobs, **b.blobs}.values()),
        "size_precision": "default",
        "created_at": "",
    }
    assert both.json()["size_bytes"] < size_a["size_bytes"] + size_b["size_bytes"]
    assert client.get(f"/gitlab/v1/repositories/{prefix}/", params={"size": "self"}).status_code == 404


def test_size_counts_what_tagged_manifests_reach_through_an_index(
    client: httpx.Client, pusher: Pusher, prefix: str
) -> None:
    """Untagged images count only through a tagged index that lists them; an untagged image alone does not."""
    repo = f"{prefix}/multi"
    amd = pusher.image(repo, None, [os.urandom(4_000)], ("linux", "amd64"))
    arm = pusher.image(repo, None, [os.urandom(6_000)], ("linux", "arm64"))
    pusher.index(repo, "latest", [(amd, ("linux", "amd64")), (arm, ("linux", "arm64"))])
    stray = pusher.image(repo, None, [os.urandom(9_000)])
    body = client.get(f"/gitlab/v1/repositories/{repo}/", params={"size": "self"}).json()
    assert body["size_bytes"] == sum({**amd.blobs, **arm.blobs}.values())
    # Portside's own size is what the repository holds: the untagged image too.
    stored = client.get(f"/portside/v1/repositories/{repo}/").json()["size_bytes"]
    assert stored == sum({**amd.blobs, **arm.blobs, **stray.blobs}.values())


def test_repository_details_match_the_specification(client: httpx.Client, pusher: Pusher, prefix: str) -> None:
    repo = f"{prefix}/build/cng/registry"
    pusher.image(repo, "v1", [os.urandom(100)])
    plain = client.get(f"/gitlab/v1/repositories/{repo}/")
    assert plain.status_code == 200
    assert plain.headers["Content-Type"].startswith("application/json")
    body = plain.json()
    assert set(body) == {"name", "path", "created_at", "updated_at"}  # updated: the push after the upload
    assert body["name"] == "registry"
    assert body["path"] == repo
    assert MILLIS.match(body["created_at"])
    assert MILLIS.match(body["updated_at"])
    assert body["updated_at"] >= body["created_at"]
    sized = client.get(f"/gitlab/v1/repositories/{repo}", params={"size": "self"}).json()  # no slash: same
    assert list(sized) == ["name", "path", "size_bytes", "size_precision", "created_at", "updated_at"]
    assert isinstance(sized["size_bytes"], int)


def test_repository_details_errors(client: httpx.Client, prefix: str) -> None:
    assert_error(client.get(f"/gitlab/v1/repositories/{prefix}/none/"), 404, "NAME_UNKNOWN")
    r = client.get(f"/gitlab/v1/repositories/{prefix}/none/", params={"size": "everything"})
    assert_error(r, 400, "INVALID_QUERY_PARAMETER_VALUE")
    assert r.json()["errors"][0]["detail"] == (
        "the 'size' query parameter must be set to one of: self, self_with_descendants"
    )
    r = client.get(f"/gitlab/v1/repositories/{prefix}/none/", params={"size": "self_with_descendants"})
    assert_error(r, 404, "NAME_UNKNOWN")  # nothing in the namespace either
    assert_error(client.get("/gitlab/v1/repositories/Not_A_Name/"), 400, "NAME_INVALID")


def test_tag_list_fields_match_the_specification(client: httpx.Client, pusher: Pusher, prefix: str) -> None:
    """The example response's fields: name, digest, config_digest, media_type, size_bytes, created_at,
    updated_at only once the tag moved to another manifest, and published_at, the later of the two."""
    repo = f"{prefix}/app"
    first = pusher.image(repo, "0.1.0", [os.urandom(1_000)])
    pusher.manifest(repo, "latest", first.body, OCI_MANIFEST)
    pusher.manifest(repo, "latest", first.body, OCI_MANIFEST)  # the same manifest again: not an update
    r = client.get(f"/gitlab/v1/repositories/{repo}/tags/list/")
    assert r.status_code == 200
    assert r.headers["Content-Type"].startswith("application/json")
    assert "Link" not in r.headers
    tags = r.json()
    assert [t["name"] for t in tags] == ["0.1.0", "latest"]
    for tag in tags:
        assert set(tag) == TAG_KEYS
        assert tag["digest"] == first.digest
        assert tag["config_digest"] == first.config
        assert tag["media_type"] == OCI_MANIFEST
        assert tag["size_bytes"] == first.size + sum(first.blobs.values())
        assert MILLIS.match(tag["created_at"])
        assert tag["published_at"] == tag["created_at"]

    second = pusher.image(repo, None, [os.urandom(2_000)])
    pusher.manifest(repo, "latest", second.body, OCI_MANIFEST)
    moved = next(t for t in client.get(f"/gitlab/v1/repositories/{repo}/tags/list/").json() if t["name"] == "latest")
    assert set(moved) == TAG_KEYS | {"updated_at"}
    assert moved["digest"] == second.digest
    assert moved["config_digest"] == second.config
    assert moved["created_at"] == tags[1]["created_at"]
    assert MILLIS.match(moved["updated_at"])
    assert moved["updated_at"] > moved["created_at"]
    assert moved["published_at"] == moved["updated_at"]


@pytest.fixture
def six_tags(pusher: Pusher, prefix: str) -> str:
    """The specification's pagination example: a repository with tags a, b, c, d, e and f."""
    repo = f"{prefix}/six"
    image = pusher.image(repo, "a", [os.urandom(64)])
    for tag in "bcdef":
        pusher.manifest(repo, tag, image.body, OCI_MANIFEST)
    return repo


# "Sort examples with pagination" of the specification, row by row: (n, before, last, sort, expected).
NAME_SORTS = [
    ("", "", "", "name", "abcdef"),
    ("", "", "", "-name", "fedcba"),
    ("3", "", "", "name", "abc"),
    ("3", "", "", "-name", "fed"),
    ("", "c", "", "name", "ab"),
    ("", "c", "", "-name", "fed"),
    ("2", "c", "", "name", "ab"),
    ("2", "d", "", "-name", "fe"),
    ("", "", "c", "name", "def"),
    ("", "", "c", "-name", "ba"),
    ("2", "", "b", "name", "cd"),
    ("2", "", "e", "-name", "dc"),
]


@pytest.mark.parametrize(("n", "before", "last", "sort", "expected"), NAME_SORTS)
def test_sort_by_name_with_markers(
    client: httpx.Client, six_tags: str, n: str, before: str, last: str, sort: str, expected: str
) -> None:
    params = {k: v for k, v in {"n": n, "before": before, "last": last, "sort": sort}.items() if v}
    assert tag_names(client, six_tags, **params) == list(expected)


def test_pagination_links_follow_the_specification(client: httpx.Client, six_tags: str) -> None:
    """n=2: the first page links only onwards (last=b); the next has `previous` (before=c) and `next`
    (last=d); the last page links back only."""
    first = client.get(f"/gitlab/v1/repositories/{six_tags}/tags/list/", params={"n": "2"})
    assert [t["name"] for t in first.json()] == ["a", "b"]
    assert set(links(first)) == {"next"}
    query = parse_qs(urlsplit(links(first)["next"]).query)
    assert query == {"n": ["2"], "last": ["b"]}
    assert urlsplit(links(first)["next"]).path == f"/gitlab/v1/repositories/{six_tags}/tags/list/"

    second = client.get(links(first)["next"])
    assert [t["name"] for t in second.json()] == ["c", "d"]
    assert parse_qs(urlsplit(links(second)["previous"]).query) == {"n": ["2"], "before": ["c"]}
    assert parse_qs(urlsplit(links(second)["next"]).query) == {"n": ["2"], "last": ["d"]}
    assert second.headers["Link"].index('rel="previous"') < second.headers["Link"].index('rel="next"')

    third = client.get(links(second)["next"])
    assert [t["name"] for t in third.json()] == ["e", "f"]
    assert set(links(third)) == {"previous"}
    back = client.get(links(third)["previous"])
    assert [t["name"] for t in back.json()] == ["c", "d"]
    assert set(links(back)) == {"previous", "next"}


def test_sort_by_published_date_pages_with_encoded_markers(client: httpx.Client, pusher: Pusher, prefix: str) -> None:
    """The specification's published_at example: tags created in one order, two of them updated later; the
    markers are base64 of `<time>|<tag>`, and ties fall back to the name."""
    repo = f"{prefix}/dates"
    images = [pusher.image(repo, name, [os.urandom(32)]) for name in ("older", "old", "latest", "new", "newer")]
    for name in ("old", "latest"):  # moved to another manifest: published again
        pusher.manifest(repo, name, images[0].body, OCI_MANIFEST)
    order = ["older", "new", "newer", "old", "latest"]
    assert tag_names(client, repo, sort="published_at") == order
    assert tag_names(client, repo, sort="-published_at") == order[::-1]

    for sort, expected in (("published_at", order), ("-published_at", order[::-1])):
        seen: list[str] = []
        url: str | None = f"/gitlab/v1/repositories/{repo}/tags/list/?n=2&sort={sort}"
        while url:
            page = client.get(url)
            assert page.status_code == 200, page.text
            seen += [t["name"] for t in page.json()]
            url = links(page).get("next")
            if url:
                marker = base64.b64decode(parse_qs(urlsplit(url).query)["last"][0]).decode()
                moment, _, name = marker.partition("|")
                assert name == seen[-1]
                datetime.fromisoformat(moment.replace("Z", "+00:00"))
        assert seen == expected

    first = client.get(f"/gitlab/v1/repositories/{repo}/tags/list/", params={"n": "2", "sort": "published_at"})
    marker = parse_qs(urlsplit(links(first)["next"]).query)["last"][0]  # base64("<time of new>|new")
    assert tag_names(client, repo, sort="published_at", before=marker) == ["older"]
    assert tag_names(client, repo, sort="published_at", last=marker, n="1") == ["newer"]


def test_name_filter_is_a_partial_match(client: httpx.Client, pusher: Pusher, prefix: str) -> None:
    repo = f"{prefix}/filter"
    image = pusher.image(repo, "v1.0_rc", [os.urandom(32)])
    for tag in ("v1.0", "v10", "latest", "v1x0"):
        pusher.manifest(repo, tag, image.body, OCI_MANIFEST)
    assert tag_names(client, repo, name="v1.0") == ["v1.0", "v1.0_rc"]  # "." and "_" are not wildcards
    assert tag_names(client, repo, name="_") == ["v1.0_rc"]
    assert tag_names(client, repo, name="LAT") == ["latest"]
    assert tag_names(client, repo, name="nothing") == []
    assert tag_names(client, repo, name="v1", n="2") == ["v1.0", "v1.0_rc"]


@pytest.mark.parametrize(
    ("params", "code"),
    [
        ({"n": "many"}, "INVALID_QUERY_PARAMETER_TYPE"),
        ({"n": "0"}, "INVALID_QUERY_PARAMETER_VALUE"),
        ({"n": "1001"}, "INVALID_QUERY_PARAMETER_VALUE"),
        ({"last": "-bad"}, "INVALID_QUERY_PARAMETER_VALUE"),
        ({"before": "b", "last": "a"}, "INVALID_QUERY_PARAMETER_VALUE"),
        ({"name": "a*"}, "INVALID_QUERY_PARAMETER_VALUE"),
        ({"sort": "size"}, "INVALID_QUERY_PARAMETER_VALUE"),
        ({"sort": "published_at", "last": "not base64 at all"}, "INVALID_QUERY_PARAMETER_VALUE"),
        ({"referrers": "true", "referrer_type": "not a media type"}, "INVALID_QUERY_PARAMETER_VALUE"),
    ],
)
def test_invalid_query_parameters(client: httpx.Client, six_tags: str, params: dict[str, str], code: str) -> None:
    assert_error(client.get(f"/gitlab/v1/repositories/{six_tags}/tags/list/", params=params), 400, code)


def test_tag_list_of_an_unknown_repository_is_404(client: httpx.Client, prefix: str) -> None:
    assert_error(client.get(f"/gitlab/v1/repositories/{prefix}/none/tags/list/"), 404, "NAME_UNKNOWN")


def test_referrers_of_each_tag_with_an_artifact_type_filter(client: httpx.Client, pusher: Pusher, prefix: str) -> None:
    repo = f"{prefix}/signed"
    image = pusher.image(repo, "v1", [os.urandom(64)])
    pusher.image(repo, "v2", [os.urandom(64)])
    signature = pusher.referrer(repo, image, SIGNATURE, b"signature")
    sbom = pusher.referrer(repo, image, SBOM, b"{}")
    tags = {t["name"]: t for t in client.get(f"/gitlab/v1/repositories/{repo}/tags/list/?referrers=true").json()}
    assert sorted(tags["v1"]["referrers"], key=lambda r: r["digest"]) == sorted(
        [{"artifactType": SIGNATURE, "digest": signature.digest}, {"artifactType": SBOM, "digest": sbom.digest}],
        key=lambda r: r["digest"],
    )
    assert "referrers" not in tags["v2"]
    only = client.get(f"/gitlab/v1/repositories/{repo}/tags/list/", params={"referrers": "true", "referrer_type": SBOM})
    assert next(t for t in only.json() if t["name"] == "v1")["referrers"] == [
        {"artifactType": SBOM, "digest": sbom.digest}
    ]
    plain = client.get(f"/gitlab/v1/repositories/{repo}/tags/list/").json()
    assert all("referrers" not in t for t in plain)


def test_repositories_under_a_path(client: httpx.Client, pusher: Pusher, prefix: str) -> None:
    """The repositories with at least one tag at and below a path, in path order, paged with `last`."""
    for name in ("docker-alpine", "git-base", "sub/nested"):
        pusher.image(f"{prefix}/cng/{name}", "v1", [os.urandom(32)])
    pusher.image(f"{prefix}/cng", "v1", [os.urandom(32)])
    pusher.image(f"{prefix}/cng/untagged", None, [os.urandom(32)])
    pusher.image(f"{prefix}/cngx", "v1", [os.urandom(32)])  # shares the prefix, not the path
    r = client.get(f"/gitlab/v1/repository-paths/{prefix}/cng/repositories/list/")
    assert r.status_code == 200, r.text
    body = r.json()
    assert [e["path"] for e in body] == [f"{prefix}/cng"] + [
        f"{prefix}/cng/{n}" for n in ("docker-alpine", "git-base", "sub/nested")
    ]
    assert body[1]["name"] == "docker-alpine"
    assert body[3]["name"] == "nested"
    for entry in body:
        assert set(entry) == {"name", "path", "created_at", "updated_at"}
        assert MILLIS.match(entry["created_at"])
        assert MILLIS.match(entry["updated_at"])

    page = client.get(f"/gitlab/v1/repository-paths/{prefix}/cng/repositories/list/", params={"n": "2"})
    assert [e["path"] for e in page.json()] == [f"{prefix}/cng", f"{prefix}/cng/docker-alpine"]
    following = client.get(links(page)["next"])
    assert [e["path"] for e in following.json()] == [f"{prefix}/cng/git-base", f"{prefix}/cng/sub/nested"]
    assert "Link" not in following.headers

    empty = client.get(f"/gitlab/v1/repository-paths/{prefix}/nothing/repositories/list/")
    assert empty.status_code == 200
    assert empty.json() == []
    unknown = client.get(f"/gitlab/v1/repository-paths/{prefix}x0/repositories/list/")
    assert_error(unknown, 404, "NAME_UNKNOWN")
    bad = client.get(f"/gitlab/v1/repository-paths/{prefix}/repositories/list/", params={"last": "UPPER"})
    assert_error(bad, 400, "INVALID_QUERY_PARAMETER_VALUE")
