"""Range, Content-Range, pagination and Accept parsing of the HTTP layer."""

from __future__ import annotations

import pytest

from portside.api.errors import ApiError, ErrorCode
from portside.api.headers import (
    ByteRange,
    accepted_media_types,
    accepts,
    etag_matches,
    parse_content_range,
    parse_page_size,
    parse_range,
    upload_range,
)


@pytest.mark.parametrize(
    ("header", "expected"),
    [
        ("bytes=0-9", ByteRange(0, 9)),
        ("bytes=5-", ByteRange(5, 99)),
        ("bytes=-10", ByteRange(90, 99)),
        ("bytes=-1000", ByteRange(0, 99)),
        ("bytes=90-1000", ByteRange(90, 99)),
        ("bytes=0-0", ByteRange(0, 0)),
        ("bytes=0-1,5-6", None),
        (None, None),
    ],
)
def test_satisfiable_ranges(header: str | None, expected: ByteRange | None) -> None:
    assert parse_range(header, 100) == expected


@pytest.mark.parametrize(
    "header",
    ["bytes=100-", "bytes=200-300", "bytes=5-2", "bytes=", "bytes=a-b", "0-9", "bytes=-0", "bytes=-"],
)
def test_unsatisfiable_or_malformed_ranges(header: str) -> None:
    with pytest.raises(ApiError) as info:
        parse_range(header, 100)
    assert info.value.code is ErrorCode.RANGE_INVALID
    assert info.value.headers == {"Content-Range": "bytes */100"}


@pytest.mark.parametrize("header", ["items=0-1", "ITEMS=0-", "pages=-5", "x=abc"])
def test_a_range_unit_not_understood_is_ignored(header: str) -> None:
    """RFC 9110 14.2: a Range in a unit other than bytes is ignored: the whole representation."""
    assert parse_range(header, 100) is None


@pytest.mark.parametrize(
    ("header", "expected"),
    [("0-99", ByteRange(0, 99)), ("bytes 100-199/*", ByteRange(100, 199)), ("bytes=5-5", ByteRange(5, 5))],
)
def test_content_range(header: str, expected: ByteRange) -> None:
    assert parse_content_range(header) == expected


@pytest.mark.parametrize("header", ["", "5", "a-b", "10-5", "-5", "0-", "1-2-3"])
def test_bad_content_range(header: str) -> None:
    with pytest.raises(ApiError) as info:
        parse_content_range(header)
    assert info.value.code is ErrorCode.BLOB_UPLOAD_INVALID


def test_upload_range() -> None:
    assert upload_range(0) == "0-0"
    assert upload_range(1) == "0-0"
    assert upload_range(100) == "0-99"


def test_page_size() -> None:
    assert parse_page_size(None) is None
    assert parse_page_size("0") == 0
    assert parse_page_size("25") == 25
    assert parse_page_size("9" * 30) == int("9" * 30)
    for bad in ("-1", "abc", "1.5", "", "²", "9" * 1001):
        with pytest.raises(ApiError):
            parse_page_size(bad)


def test_accept() -> None:
    accepted = accepted_media_types(
        ["application/vnd.oci.image.manifest.v1+json, application/json;q=0.5", "text/*;q=0"]
    )
    assert accepted == ["application/vnd.oci.image.manifest.v1+json", "application/json"]
    assert accepts(accepted, "application/vnd.oci.image.manifest.v1+json")
    assert not accepts(accepted, "application/vnd.oci.image.index.v1+json")
    assert accepts(None, "anything/at-all")
    assert accepts(["*/*"], "application/x")
    assert accepts(["application/*"], "application/x")


def test_etag() -> None:
    assert etag_matches('"sha256:a"', '"sha256:a"')
    assert etag_matches('"x", "sha256:a"', '"sha256:a"')
    assert etag_matches("*", '"sha256:a"')
    assert not etag_matches(None, '"sha256:a"')
    assert not etag_matches('"sha256:b"', '"sha256:a"')
