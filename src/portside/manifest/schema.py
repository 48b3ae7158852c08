"""The manifest schema registry: media type -> parser/validator, and the parsed `Manifest`.

Each schema turns a JSON object into the fields Portside records (config, layers, children, subject,
artifact type, annotations). New manifest types are added with `SchemaRegistry.register`.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any, Protocol

from portside.digest import CANONICAL, Digest
from portside.manifest import mediatypes as mt
from portside.manifest.descriptor import (
    Descriptor,
    DescriptorError,
    is_media_type,
    parse_descriptor,
    string_map,
)


class ManifestError(ValueError):
    """The payload is not a manifest Portside accepts."""


@dataclass(frozen=True)
class Manifest:
    media_type: str
    payload: bytes
    digest: Digest
    config: Descriptor | None = None
    layers: tuple[Descriptor, ...] = ()
    manifests: tuple[Descriptor, ...] = ()
    subject: Descriptor | None = None
    artifact_type: str | None = None
    annotations: dict[str, str] | None = None

    @property
    def is_index(self) -> bool:
        return self.media_type in mt.INDEXES

    @property
    def referrer_artifact_type(self) -> str | None:
        """The `artifactType` a referrers listing shows: the manifest's own, else its config's media type."""
        if self.artifact_type:
            return self.artifact_type
        return self.config.media_type if self.config is not None else None


@dataclass(frozen=True)
class Fields:
    config: Descriptor | None = None
    layers: tuple[Descriptor, ...] = ()
    manifests: tuple[Descriptor, ...] = ()
    subject: Descriptor | None = None
    artifact_type: str | None = None
    annotations: dict[str, str] | None = None


class Schema(Protocol):
    media_type: str

    def parse(self, data: dict[str, Any]) -> Fields: ...


def _descriptors(data: dict[str, Any], key: str) -> tuple[Descriptor, ...]:
    value = data.get(key)
    if not isinstance(value, list):
        raise ManifestError(f"{key} must be an array of descriptors")
    return tuple(parse_descriptor(item, f"{key}[{i}]") for i, item in enumerate(value))


def _optional_descriptor(data: dict[str, Any], key: str) -> Descriptor | None:
    return None if data.get(key) is None else parse_descriptor(data[key], key)


def _artifact_type(data: dict[str, Any]) -> str | None:
    value = data.get("artifactType")
    if value is not None and not is_media_type(value):
        raise ManifestError("artifactType must be a media type")
    return value


class ImageManifestSchema:
    """OCI image manifest (artifacts included) and Docker image manifest v2 schema 2: config plus layers."""

    def __init__(self, media_type: str, oci: bool) -> None:
        self.media_type = media_type
        self.oci = oci

    def parse(self, data: dict[str, Any]) -> Fields:
        if "config" not in data:
            raise ManifestError("config is required")
        config = parse_descriptor(data["config"], "config")
        layers = _descriptors(data, "layers")
        if not self.oci:
            return Fields(config=config, layers=layers)
        return Fields(
            config=config,
            layers=layers,
            subject=_optional_descriptor(data, "subject"),
            artifact_type=_artifact_type(data),
            annotations=string_map(data.get("annotations"), "annotations"),
        )


class IndexSchema:
    """OCI image index and Docker manifest list: a list of manifests, usually one per platform."""

    def __init__(self, media_type: str, oci: bool) -> None:
        self.media_type = media_type
        self.oci = oci

    def parse(self, data: dict[str, Any]) -> Fields:
        manifests = _descriptors(data, "manifests")
        if not self.oci:
            return Fields(manifests=manifests)
        return Fields(
            manifests=manifests,
            subject=_optional_descriptor(data, "subject"),
            artifact_type=_artifact_type(data),
            annotations=string_map(data.get("annotations"), "annotations"),
        )


_GENERIC_CONTENT_TYPES = frozenset({"", "application/json", "application/octet-stream", "text/plain"})


def bare_media_type(content_type: str | None) -> str:
    """`Content-Type` without parameters, lower-cased."""
    return (content_type or "").split(";", 1)[0].strip().lower()


class SchemaRegistry:
    """Media type -> schema; picks the schema for a pushed payload and validates it."""

    def __init__(self) -> None:
        self._schemas: dict[str, Schema] = {}

    def register(self, schema: Schema) -> None:
        self._schemas[schema.media_type] = schema

    @property
    def media_types(self) -> frozenset[str]:
        return frozenset(self._schemas)

    def _media_type(self, content_type: str, data: dict[str, Any]) -> str:
        body_type = data.get("mediaType")
        if body_type is not None and not isinstance(body_type, str):
            raise ManifestError("mediaType must be a string")
        if content_type in mt.SCHEMA1 or body_type in mt.SCHEMA1 or data.get("schemaVersion") == 1:
            raise ManifestError("schema1 manifests are not supported; push schema2 or OCI manifests")
        if content_type in self._schemas:
            if body_type is not None and body_type != content_type:
                raise ManifestError(f"mediaType {body_type!r} does not match Content-Type {content_type!r}")
            return content_type
        if body_type is not None:
            # distribution-spec 1.0.1: the body's mediaType, when present, must match Content-Type; only a
            # generic Content-Type (or none) leaves the body to say what it is.
            if content_type not in _GENERIC_CONTENT_TYPES:
                raise ManifestError(f"mediaType {body_type!r} does not match Content-Type {content_type!r}"[:300])
            if body_type in self._schemas:
                return body_type
            raise ManifestError(f"unsupported manifest media type {body_type!r}"[:300])
        if content_type not in _GENERIC_CONTENT_TYPES:
            raise ManifestError(f"unsupported manifest media type {content_type!r}"[:300])
        if "manifests" in data:
            return mt.OCI_INDEX
        if "config" in data:
            return mt.OCI_MANIFEST
        raise ManifestError("cannot tell the manifest type: no Content-Type, mediaType, config or manifests")

    def parse(self, payload: bytes, content_type: str | None, algorithm: str = CANONICAL) -> Manifest:
        try:
            data = json.loads(payload)
        except (UnicodeDecodeError, json.JSONDecodeError) as exc:
            raise ManifestError(f"manifest is not valid JSON: {exc}") from None
        except RecursionError:
            raise ManifestError("manifest JSON is nested too deeply") from None
        if not isinstance(data, dict):
            raise ManifestError("manifest must be a JSON object")
        media_type = self._media_type(bare_media_type(content_type), data)
        version = data.get("schemaVersion")
        if version != 2 or isinstance(version, bool):
            raise ManifestError(f"schemaVersion must be 2, got {version!r}"[:200])
        try:
            fields = self._schemas[media_type].parse(data)
        except DescriptorError as exc:
            raise ManifestError(str(exc)) from None
        return Manifest(
            media_type=media_type,
            payload=payload,
            digest=Digest.of(payload, algorithm),
            config=fields.config,
            layers=fields.layers,
            manifests=fields.manifests,
            subject=fields.subject,
            artifact_type=fields.artifact_type,
            annotations=fields.annotations,
        )


def default_registry() -> SchemaRegistry:
    registry = SchemaRegistry()
    registry.register(ImageManifestSchema(mt.OCI_MANIFEST, oci=True))
    registry.register(ImageManifestSchema(mt.DOCKER_MANIFEST, oci=False))
    registry.register(IndexSchema(mt.OCI_INDEX, oci=True))
    registry.register(IndexSchema(mt.DOCKER_MANIFEST_LIST, oci=False))
    return registry
