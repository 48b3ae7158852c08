"""A repository's manifests: validated on the way in, stored byte for byte, served as pushed."""

from __future__ import annotations

from typing import Any

from portside.digest import CANONICAL, Digest, DigestError, is_digest_like
from portside.manifest import mediatypes as mt
from portside.manifest.descriptor import Descriptor
from portside.manifest.schema import Manifest, ManifestError, SchemaRegistry
from portside.metadata.records import ManifestRecord, NewManifest
from portside.metadata.store import MetadataStore
from portside.reference import TAG_RE, ReferenceError, validate_tag
from portside.registry.errors import (
    DigestInvalid,
    ManifestBlobUnknown,
    ManifestInvalid,
    ManifestTooLarge,
    ManifestUnknown,
    NameUnknown,
    TagInvalid,
    Unsupported,
)
from portside.registry.events import DELETE, PUSH, EventSink, entries
from portside.registry.interfaces import ManifestContent
from portside.registry.options import RegistryOptions


def parse_manifest_reference(reference: str, *, lookup: bool = False) -> tuple[str | None, Digest | None]:
    """A `/manifests/<reference>` is a digest when it has a colon, a tag otherwise: (tag, digest).

    For a lookup, a reference that is no valid tag comes back as a tag all the same: no manifest can have it,
    so reading it is unknown (the OCI conformance suite expects 404), where pushing to it is TAG_INVALID."""
    if is_digest_like(reference):
        try:
            return None, Digest.parse(reference)
        except DigestError as exc:
            raise DigestInvalid(str(exc)) from None
    try:
        return validate_tag(reference), None
    except ReferenceError as exc:
        if lookup:
            return reference, None
        raise TagInvalid(str(exc), {"tag": reference[:200]}) from None


def _check_urls(layer: Descriptor, options: RegistryOptions) -> None:
    """Layers fetched from elsewhere (`urls`: non-distributable and foreign layers) are accepted, as the OCI
    conformance suite expects; `validation.manifests.urls` restricts them when configured: with `allow`,
    every URL must match one of its expressions, with `deny`, none may match one of its."""
    for url in layer.urls:
        allowed = not options.url_allow or any(p.search(url) for p in options.url_allow)
        denied = any(p.search(url) for p in options.url_deny)
        if not allowed or denied:
            raise ManifestInvalid(f"layer {layer.digest} has a URL that is not allowed: {url[:200]}")


def _wants_child(child: Descriptor, options: RegistryOptions) -> bool:
    mode = options.index_platforms
    if mode == "all":
        return True
    if mode == "none" or child.platform is None:
        return False
    return any(
        child.platform.architecture == p.architecture and child.platform.os == p.os for p in options.index_platform_list
    )


def manifest_references(
    manifest: Manifest, options: RegistryOptions, manifest_types: frozenset[str]
) -> tuple[list[str], list[str]]:
    """The blobs and manifests (children whose media type is in `manifest_types`) that must be in the repository
    for `manifest` to be accepted; shared by pushes and imports so both record the same references.
    `validation.disabled` lifts the URL rules and the index checks, as in Docker Distribution; configs and layers
    must be there all the same."""
    blobs: list[str] = []
    children: list[str] = []
    if manifest.config is not None:
        blobs.append(manifest.config.digest)
    for layer in manifest.layers:
        if layer.urls:
            if options.validation_enabled:
                _check_urls(layer, options)
        elif layer.media_type == "application/vnd.docker.image.rootfs.foreign.diff.tar.gzip":
            raise ManifestInvalid(f"foreign layer {layer.digest} has no urls")
        else:
            blobs.append(layer.digest)
    if not options.validation_enabled:
        return blobs, children
    for child in manifest.manifests:
        if not _wants_child(child, options):
            continue
        if child.media_type in manifest_types or child.media_type in mt.SCHEMA1:
            children.append(child.digest)
        else:
            blobs.append(child.digest)
    return blobs, children


def new_manifest(manifest: Manifest, blob_refs: list[str], manifest_refs: list[str]) -> NewManifest:
    """What the metadata store records for a parsed manifest, pushed or imported alike."""
    return NewManifest(
        digest=manifest.digest,
        media_type=manifest.media_type,
        payload=manifest.payload,
        artifact_type=manifest.referrer_artifact_type,
        subject_digest=manifest.subject.digest if manifest.subject is not None else None,
        annotations=manifest.annotations,
        blob_refs=blob_refs,
        manifest_refs=manifest_refs,
    )


def _content(record: ManifestRecord) -> ManifestContent:
    return ManifestContent(digest=Digest(record.digest), media_type=record.media_type, payload=record.payload)


class LocalManifestService:
    def __init__(
        self,
        repository: str,
        store: MetadataStore,
        schemas: SchemaRegistry,
        options: RegistryOptions,
        events: EventSink | None = None,
    ) -> None:
        self.repository = repository
        self._store = store
        self._schemas = schemas
        self._options = options
        self._events = events

    async def _unknown(self, reference: str) -> Exception:
        if not await self._store.registry.repository_exists(self.repository):
            return NameUnknown(f"repository {self.repository} is not known", {"name": self.repository})
        reference = reference[:200]
        return ManifestUnknown(f"manifest {reference} is not in {self.repository}", {"reference": reference})

    async def get(self, digest: Digest) -> ManifestContent:
        record = await self._store.registry.manifest(self.repository, digest)
        if record is None:
            raise await self._unknown(digest)
        return _content(record)

    async def get_by_tag(self, tag: str) -> ManifestContent:
        # A tag outside the grammar is no manifest's, and is not asked of the store (PostgreSQL refuses a NUL).
        record = await self._store.registry.manifest_by_tag(self.repository, tag) if TAG_RE.fullmatch(tag) else None
        if record is None:
            raise await self._unknown(tag)
        return _content(record)

    async def exists(self, digest: Digest) -> bool:
        return await self._store.registry.manifest(self.repository, digest) is not None

    def parse(self, payload: bytes, content_type: str | None, algorithm: str = CANONICAL) -> Manifest:
        if len(payload) > self._options.max_manifest_size:
            raise ManifestTooLarge(f"manifest is larger than {self._options.max_manifest_size} bytes")
        try:
            return self._schemas.parse(payload, content_type, algorithm)
        except ManifestError as exc:
            raise ManifestInvalid(str(exc)) from None

    def references(self, manifest: Manifest) -> tuple[list[str], list[str]]:
        """The blobs and manifests that must already be in the repository for `manifest` to be accepted."""
        return manifest_references(manifest, self._options, self._schemas.media_types)

    async def put(
        self, payload: bytes, content_type: str | None, tag: str | None = None, digest: Digest | None = None
    ) -> Manifest:
        """Validate and store a manifest, and point `tag` at it; `digest` (a by-digest push) must match."""
        manifest = self.parse(payload, content_type, digest.algorithm if digest is not None else CANONICAL)
        if digest is not None and manifest.digest != digest:
            raise DigestInvalid(f"manifest digest {manifest.digest} does not match {digest}", {"digest": digest})
        blob_refs, manifest_refs = self.references(manifest)
        new = new_manifest(manifest, blob_refs, manifest_refs)
        target: dict[str, Any] = {
            "mediaType": manifest.media_type,
            "digest": manifest.digest,
            "size": len(payload),
            "repository": self.repository,
            "references": [
                {"mediaType": d.media_type, "digest": d.digest, "size": d.size}
                for d in ([manifest.config] if manifest.config else []) + [*manifest.layers, *manifest.manifests]
            ],
        }
        if tag is not None:
            target["tag"] = tag
        outbox = entries(self._events, PUSH, target)
        missing = await self._store.registry.put_manifest(self.repository, new, tag, outbox)
        if missing:
            raise ManifestBlobUnknown(missing)
        return manifest

    async def delete(self, digest: Digest) -> None:
        """Delete the manifest and every tag that points at it."""
        if not self._options.delete_enabled:
            raise Unsupported("manifest deletion is disabled (storage.delete.enabled)")
        outbox = entries(self._events, DELETE, {"repository": self.repository, "digest": digest})
        if not await self._store.registry.delete_manifest(self.repository, digest, outbox):
            raise await self._unknown(digest)
