"""Content digests: the `algorithm:encoded` identifiers of the OCI image spec, and streaming hashers."""

from __future__ import annotations

import hashlib
import re
from collections.abc import Callable
from typing import Any, Final

# The OCI descriptor grammar: algorithm components joined by [+._-], then an encoded part.
_GRAMMAR: Final = re.compile(r"[a-z0-9]+(?:[+._-][a-z0-9]+)*:[a-zA-Z0-9=_-]+")

# Registered algorithms Portside accepts: hasher constructor and the exact encoded form. Patterns are
# matched whole (`fullmatch`), so no trailing newline passes.
ALGORITHMS: Final[dict[str, tuple[Callable[[], Any], re.Pattern[str]]]] = {
    "sha256": (hashlib.sha256, re.compile(r"[a-f0-9]{64}")),
    "sha512": (hashlib.sha512, re.compile(r"[a-f0-9]{128}")),
}
CANONICAL: Final = "sha256"


class DigestError(ValueError):
    """The text is not a digest Portside can verify."""


class Digest(str):
    """A validated digest string such as `sha256:9f86...`; it compares and hashes as its text."""

    __slots__ = ()

    @classmethod
    def parse(cls, text: str) -> Digest:
        if not _GRAMMAR.fullmatch(text):
            raise DigestError(f"invalid digest {text[:150]!r}")
        algorithm, encoded = text.split(":", 1)
        spec = ALGORITHMS.get(algorithm)
        if spec is None:
            raise DigestError(f"unsupported digest algorithm {algorithm[:40]!r}")
        if not spec[1].fullmatch(encoded):
            raise DigestError(f"invalid {algorithm} digest {text[:150]!r}")
        return cls(text)

    @classmethod
    def of(cls, data: bytes, algorithm: str = CANONICAL) -> Digest:
        hasher = new_hasher(algorithm)
        hasher.update(data)
        return cls(f"{algorithm}:{hasher.hexdigest()}")

    @property
    def algorithm(self) -> str:
        return self.split(":", 1)[0]

    @property
    def encoded(self) -> str:
        return self.split(":", 1)[1]


def new_hasher(algorithm: str) -> Any:
    """A fresh hashlib object for a registered algorithm (hashlib releases the GIL on large updates)."""
    try:
        return ALGORITHMS[algorithm][0]()
    except KeyError:
        raise DigestError(f"unsupported digest algorithm {algorithm!r}") from None


def is_digest_like(text: str) -> bool:
    """A manifest reference with a colon is meant as a digest (tags cannot contain one)."""
    return ":" in text
