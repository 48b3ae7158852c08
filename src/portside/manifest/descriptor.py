"""Descriptors: the typed pointers (media type, digest, size) that manifests are made of."""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any, Final

from portside.digest import Digest, DigestError

# RFC 6838 type "/" subtype, restricted-name characters only.
_MEDIA_TYPE: Final = re.compile(r"^[A-Za-z0-9][A-Za-z0-9!#$&^_.+-]{0,126}/[A-Za-z0-9][A-Za-z0-9!#$&^_.+-]{0,126}\Z")


class DescriptorError(ValueError):
    """A descriptor or manifest field breaks the image spec."""


def is_media_type(value: object) -> bool:
    return isinstance(value, str) and _MEDIA_TYPE.match(value) is not None


def string_map(value: object, what: str) -> dict[str, str] | None:
    if value is None:
        return None
    if not isinstance(value, dict) or not all(isinstance(k, str) and isinstance(v, str) for k, v in value.items()):
        raise DescriptorError(f"{what} must be an object of strings")
    return value


@dataclass(frozen=True)
class Platform:
    architecture: str
    os: str
    variant: str | None = None


@dataclass(frozen=True)
class Descriptor:
    media_type: str
    digest: Digest
    size: int
    urls: tuple[str, ...] = ()
    annotations: dict[str, str] | None = None
    artifact_type: str | None = None
    platform: Platform | None = None

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {"mediaType": self.media_type, "digest": str(self.digest), "size": self.size}
        if self.artifact_type:
            out["artifactType"] = self.artifact_type
        if self.annotations:
            out["annotations"] = self.annotations
        return out


def _platform(value: object, where: str) -> Platform | None:
    if value is None:
        return None
    if not isinstance(value, dict):
        raise DescriptorError(f"{where}.platform must be an object")
    arch, os_name, variant = value.get("architecture"), value.get("os"), value.get("variant")
    if not isinstance(arch, str) or not isinstance(os_name, str):
        raise DescriptorError(f"{where}.platform needs string architecture and os")
    if variant is not None and not isinstance(variant, str):
        raise DescriptorError(f"{where}.platform.variant must be a string")
    return Platform(arch, os_name, variant)


def parse_descriptor(value: object, where: str) -> Descriptor:
    """Validate one descriptor object as the image spec's descriptor.md requires."""
    if not isinstance(value, dict):
        raise DescriptorError(f"{where} must be a descriptor object")
    media_type = value.get("mediaType")
    if not is_media_type(media_type):
        raise DescriptorError(f"{where}.mediaType must be a media type, got {media_type!r}"[:300])
    assert isinstance(media_type, str)
    size = value.get("size")
    if not isinstance(size, int) or isinstance(size, bool) or size < 0 or size >= 2**63:
        raise DescriptorError(f"{where}.size must be a non-negative integer")
    raw_digest = value.get("digest")
    if not isinstance(raw_digest, str):
        raise DescriptorError(f"{where}.digest must be a string")
    try:
        digest = Digest.parse(raw_digest)
    except DigestError as exc:
        raise DescriptorError(f"{where}.digest: {exc}") from None
    urls = value.get("urls")
    if urls is not None and (not isinstance(urls, list) or not all(isinstance(u, str) for u in urls)):
        raise DescriptorError(f"{where}.urls must be an array of strings")
    artifact_type = value.get("artifactType")
    if artifact_type is not None and not is_media_type(artifact_type):
        raise DescriptorError(f"{where}.artifactType must be a media type")
    return Descriptor(
        media_type=media_type,
        digest=digest,
        size=size,
        urls=tuple(urls or ()),
        annotations=string_map(value.get("annotations"), f"{where}.annotations"),
        artifact_type=artifact_type,
        platform=_platform(value.get("platform"), where),
    )
