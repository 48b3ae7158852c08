"""Digests and the reference grammar, against the OCI descriptor rules and distribution's reference package."""

from __future__ import annotations

import hashlib

import pytest

from portside.digest import Digest, DigestError
from portside.reference import ReferenceError, parse, parse_normalized, validate_repository_name, validate_tag

SHA256_EMPTY = "sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"


def test_digest_of_bytes() -> None:
    assert Digest.of(b"") == SHA256_EMPTY
    assert Digest.of(b"abc", "sha512") == "sha512:" + hashlib.sha512(b"abc").hexdigest()
    d = Digest.parse(SHA256_EMPTY)
    assert (d.algorithm, d.encoded) == ("sha256", SHA256_EMPTY[7:])


@pytest.mark.parametrize(
    "text",
    [
        "",
        "sha256",
        "sha256:",
        "sha256:abc",
        SHA256_EMPTY.upper(),
        "sha256:" + "g" * 64,
        "sha256:" + "a" * 65,
        "sha512:" + "a" * 64,
        "md5:d41d8cd98f00b204e9800998ecf8427e",
        "SHA256:" + "a" * 64,
        " " + SHA256_EMPTY,
    ],
)
def test_bad_digests_are_refused(text: str) -> None:
    with pytest.raises(DigestError):
        Digest.parse(text)


@pytest.mark.parametrize(
    "name",
    ["a", "library/ubuntu", "a/b/c/d", "foo.bar", "foo_bar", "foo__bar", "foo---bar", "0", "a" * 255],
)
def test_valid_repository_names(name: str) -> None:
    assert validate_repository_name(name) == name


@pytest.mark.parametrize(
    "name",
    [
        "",
        "A",
        "a/",
        "/a",
        "a//b",
        "../a",
        "a/../b",
        "a/./b",
        ".a",
        "a.",
        "a_",
        "a___b",
        "a.-b",
        "a" * 256,
        "a b",
        "a%2fb",
    ],
)
def test_invalid_repository_names(name: str) -> None:
    with pytest.raises(ReferenceError):
        validate_repository_name(name)


@pytest.mark.parametrize("tag", ["latest", "v1.0", "_x", "A-b_c.d", "a" * 128])
def test_valid_tags(tag: str) -> None:
    assert validate_tag(tag) == tag


@pytest.mark.parametrize("tag", ["", ".x", "-x", "a" * 129, "a:b", "a/b", "é", "a b"])
def test_invalid_tags(tag: str) -> None:
    with pytest.raises(ReferenceError):
        validate_tag(tag)


def test_parse_reference_parts() -> None:
    ref = parse(f"registry.example.com:5000/team/app:1.2@{SHA256_EMPTY}")
    assert (ref.domain, ref.path, ref.tag, ref.digest) == ("registry.example.com:5000", "team/app", "1.2", SHA256_EMPTY)
    assert str(ref) == f"registry.example.com:5000/team/app:1.2@{SHA256_EMPTY}"
    assert parse("localhost/app").domain == "localhost"
    assert parse("team/app").domain == ""


def test_parse_rejects_upper_case_path_with_a_clear_message() -> None:
    with pytest.raises(ReferenceError, match="lowercase"):
        parse("Team/App")


def test_normalised_names_follow_docker() -> None:
    assert parse_normalized("ubuntu").name == "docker.io/library/ubuntu"
    assert parse_normalized("index.docker.io/foo/bar:1").name == "docker.io/foo/bar"
    assert parse_normalized("ubuntu:22.04").familiar() == "ubuntu:22.04"
    assert parse_normalized("quay.io/a/b").familiar() == "quay.io/a/b"


@pytest.mark.parametrize("suffix", ["\n", "\r\n", "\n\n"])
def test_a_trailing_line_break_is_never_valid(suffix: str) -> None:
    """Names, tags, digests and references are matched whole: `$` would let a final newline through."""
    with pytest.raises(DigestError):
        Digest.parse(SHA256_EMPTY + suffix)
    with pytest.raises(ReferenceError):
        validate_repository_name("library/alpine" + suffix)
    with pytest.raises(ReferenceError):
        validate_tag("latest" + suffix)
    with pytest.raises(ReferenceError):
        parse("example.com/alpine:latest" + suffix)
    with pytest.raises(ReferenceError):
        parse(f"example.com{suffix}/alpine")
