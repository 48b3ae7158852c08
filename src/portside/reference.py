"""The image reference grammar, as Docker Distribution's `reference` package defines it.

    reference       := name [ ":" tag ] [ "@" digest ]
    name            := [domain '/'] remote-name
    domain          := host [':' port-number]
    remote-name     := path-component ['/' path-component]*
    path-component  := alpha-numeric [separator alpha-numeric]*
    separator       := /[_.]|__|[-]+/
    tag             := /[\\w][\\w.-]{0,127}/

Registry routes carry only the remote name (`validate_repository_name`); full references with a domain are
parsed and normalised (`docker.io/library/...`) for library users and tooling.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Final

from portside.digest import Digest, DigestError

NAME_TOTAL_LENGTH_MAX: Final = 255
DEFAULT_DOMAIN: Final = "docker.io"
LEGACY_DEFAULT_DOMAIN: Final = "index.docker.io"
OFFICIAL_REPO_PREFIX: Final = "library/"

_ALNUM = r"[a-z0-9]+"
_SEPARATOR = r"(?:[._]|__|[-]+)"
_PATH_COMPONENT = rf"{_ALNUM}(?:{_SEPARATOR}{_ALNUM})*"
_REMOTE_NAME = rf"{_PATH_COMPONENT}(?:/{_PATH_COMPONENT})*"
_DOMAIN_COMPONENT = r"(?:[a-zA-Z0-9]|[a-zA-Z0-9][a-zA-Z0-9-]*[a-zA-Z0-9])"
_DOMAIN_NAME = rf"{_DOMAIN_COMPONENT}(?:\.{_DOMAIN_COMPONENT})*"
_IPV6 = r"\[(?:[a-fA-F0-9:]+)\]"
_DOMAIN = rf"(?:{_DOMAIN_NAME}|{_IPV6})(?::[0-9]+)?"
_TAG = r"[\w][\w.-]{0,127}"
_DIGEST = r"[A-Za-z][A-Za-z0-9]*(?:[-_+.][A-Za-z][A-Za-z0-9]*)*:[0-9a-fA-F]{32,}"

# Every pattern is matched whole (`fullmatch`): `$` would also match before a final newline.
REPOSITORY_NAME_RE: Final = re.compile(_REMOTE_NAME)
TAG_RE: Final = re.compile(_TAG, re.ASCII)
_REFERENCE_RE: Final = re.compile(
    rf"(?P<name>(?:{_DOMAIN}/)?{_REMOTE_NAME})(?::(?P<tag>{_TAG}))?(?:@(?P<digest>{_DIGEST}))?", re.ASCII
)
_ANCHORED_DOMAIN_RE: Final = re.compile(_DOMAIN)


class ReferenceError(ValueError):
    """The text is not a valid reference, name or tag."""


def validate_repository_name(name: str) -> str:
    """Check a repository name as it appears in a `/v2/<name>/...` route."""
    if len(name) > NAME_TOTAL_LENGTH_MAX:
        raise ReferenceError(f"repository name must not be more than {NAME_TOTAL_LENGTH_MAX} characters")
    if not REPOSITORY_NAME_RE.fullmatch(name):
        raise ReferenceError(f"invalid repository name {name[:150]!r}")
    return name


def validate_tag(tag: str) -> str:
    if not TAG_RE.fullmatch(tag):
        raise ReferenceError(f"invalid tag {tag[:150]!r}")
    return tag


@dataclass(frozen=True)
class Reference:
    """A parsed reference: `domain/path[:tag][@digest]`; domain may be empty when not normalised."""

    domain: str
    path: str
    tag: str | None = None
    digest: Digest | None = None

    @property
    def name(self) -> str:
        return f"{self.domain}/{self.path}" if self.domain else self.path

    def __str__(self) -> str:
        out = self.name
        if self.tag:
            out += f":{self.tag}"
        if self.digest:
            out += f"@{self.digest}"
        return out

    def familiar(self) -> str:
        """The short form the docker CLI shows: `ubuntu:22.04` rather than `docker.io/library/ubuntu:22.04`."""
        path = self.path
        if self.domain == DEFAULT_DOMAIN and path.startswith(OFFICIAL_REPO_PREFIX):
            rest = path[len(OFFICIAL_REPO_PREFIX) :]
            if "/" not in rest:
                path = rest
        out = path if self.domain == DEFAULT_DOMAIN else self.name
        if self.tag:
            out += f":{self.tag}"
        if self.digest:
            out += f"@{self.digest}"
        return out


def _split_domain(name: str) -> tuple[str, str]:
    first, sep, rest = name.partition("/")
    if sep and (first == "localhost" or "." in first or ":" in first or first != first.lower()):
        return first, rest
    return "", name


def parse(text: str) -> Reference:
    """Parse a reference as written, without normalising the domain (distribution's `reference.Parse`)."""
    if not text:
        raise ReferenceError("repository name must have at least one component")
    match = _REFERENCE_RE.fullmatch(text)
    if match is None:
        if _REFERENCE_RE.fullmatch(text.lower()):
            raise ReferenceError("repository name must be lowercase")
        raise ReferenceError(f"invalid reference format {text[:150]!r}")
    name = match["name"]
    if len(name) > NAME_TOTAL_LENGTH_MAX:
        raise ReferenceError(f"repository name must not be more than {NAME_TOTAL_LENGTH_MAX} characters")
    domain, path = _split_domain(name)
    if domain and not _ANCHORED_DOMAIN_RE.fullmatch(domain):
        raise ReferenceError(f"invalid domain {domain!r}")
    digest = None
    if match["digest"]:
        try:
            digest = Digest.parse(match["digest"])
        except DigestError as exc:
            raise ReferenceError(str(exc)) from None
    return Reference(domain=domain, path=path, tag=match["tag"], digest=digest)


def parse_normalized(text: str) -> Reference:
    """Parse as the docker CLI reads user input: `ubuntu` is `docker.io/library/ubuntu`."""
    ref = parse(text)
    domain, path = ref.domain, ref.path
    if not domain or domain == LEGACY_DEFAULT_DOMAIN:
        domain = DEFAULT_DOMAIN
    if domain == DEFAULT_DOMAIN and "/" not in path:
        path = OFFICIAL_REPO_PREFIX + path
    if len(f"{domain}/{path}") > NAME_TOTAL_LENGTH_MAX:
        raise ReferenceError(f"repository name must not be more than {NAME_TOTAL_LENGTH_MAX} characters")
    return Reference(domain=domain, path=path, tag=ref.tag, digest=ref.digest)
