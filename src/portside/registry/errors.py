"""Typed errors of the registry library; the HTTP layer maps each class to a spec error code and status."""

from __future__ import annotations

from typing import Any


class RegistryError(Exception):
    """Base of every error the library raises on bad input or missing content."""

    def __init__(self, message: str, detail: Any = None) -> None:
        super().__init__(message)
        self.message = message
        self.detail = detail


class NameInvalid(RegistryError):
    """The repository name breaks the name grammar."""


class NameUnknown(RegistryError):
    """The repository does not exist."""


class TagInvalid(RegistryError):
    """The tag breaks the tag grammar."""


class DigestInvalid(RegistryError):
    """A digest is malformed, of an unsupported algorithm, or does not match the content."""


class SizeInvalid(RegistryError):
    """A declared length does not match the content received."""


class BlobUnknown(RegistryError):
    """The blob is not linked into the repository."""


class BlobUploadUnknown(RegistryError):
    """The upload session does not exist (never started, finished, cancelled or purged)."""


class BlobUploadInvalid(RegistryError):
    """The upload request cannot be applied to the session (malformed range, bad state)."""


class RangeInvalid(RegistryError):
    """A chunk does not start where the upload ends, or a read range lies outside the blob."""

    def __init__(self, message: str, size: int) -> None:
        super().__init__(message, {"size": size})
        self.size = size


class ManifestUnknown(RegistryError):
    """No manifest for that tag or digest in the repository."""


class ManifestInvalid(RegistryError):
    """The manifest cannot be parsed or breaks its schema."""


class ManifestTooLarge(ManifestInvalid):
    """The manifest body exceeds the configured limit."""


class ManifestBlobUnknown(RegistryError):
    """The manifest references blobs or manifests the repository does not hold."""

    def __init__(self, digests: list[str]) -> None:
        super().__init__(f"manifest references {len(digests)} unknown blob(s) or manifest(s)", digests)
        self.digests = digests


class Unsupported(RegistryError):
    """The operation is disabled by configuration."""


class UpstreamError(RegistryError):
    """Another registry (a cache's upstream) answered with an error the library has no class for."""

    def __init__(self, message: str, status: int, code: str | None = None) -> None:
        super().__init__(message, {"status": status, "code": code} if code else {"status": status})
        self.status = status
        self.code = code


class UpstreamUnavailable(RegistryError):
    """Another registry (a cache's upstream) cannot be used now: `reason` is unreachable, timeout, throttled
    (a 429, with the wait it asked for in `retry_after`) or failing (a 5xx)."""

    def __init__(self, message: str, reason: str, retry_after: float | None = None, status: int | None = None) -> None:
        super().__init__(message, {"reason": reason})
        self.reason = reason
        self.retry_after = retry_after
        self.status = status
